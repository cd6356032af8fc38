"""cli.graph_render: a workflow's DAG as text, Mermaid and DOT (pure functions)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cloacina import Context, RetryPolicy, task, workflow
from cloacina.cli.graph_render import (
    chains,
    dot_quote,
    layers,
    mermaid_ids,
    render,
    render_dot,
    render_mermaid,
    render_text,
    render_workflow,
    task_notes,
)
from cloacina.model.graph import Graph, build_graph
from cloacina.model.workflow import workflow_of
from cloacina.rules import all_done, context_value


def chain() -> Graph:
    return build_graph(
        "chain",
        {
            "collect_data": [],
            "process_data": ["collect_data"],
            "generate_report": ["process_data"],
        },
    )


def diamond() -> Graph:
    return build_graph(
        "diamond", {"start": [], "left": ["start"], "right": ["start"], "join": ["left", "right"]}
    )


def fan_out(n: int = 10) -> Graph:
    leaves = [f"leaf_{i}" for i in range(n)]
    deps: dict[str, list[str]] = {"root": []}
    deps.update({leaf: ["root"] for leaf in leaves})
    deps["join"] = leaves
    return build_graph("fan", deps)


def body(text: str) -> list[str]:
    """The lines of a drawing without its header line, right-stripped."""
    return [line.rstrip() for line in text.splitlines()[1:]]


# ---- structure -------------------------------------------------------------------------------
def test_layers_are_longest_paths_from_a_root() -> None:
    assert layers(chain()) == [["collect_data"], ["process_data"], ["generate_report"]]
    assert layers(diamond()) == [["start"], ["left", "right"], ["join"]]
    # "late" depends on a root and on a layer-2 task: it goes below the deeper one.
    graph = build_graph("w", {"a": [], "b": ["a"], "c": ["b"], "late": ["a", "c"]})
    assert layers(graph) == [["a"], ["b"], ["c"], ["late"]]


def test_chains_only_for_simple_paths() -> None:
    assert chains(chain()) == [["collect_data", "process_data", "generate_report"]]
    assert chains(build_graph("w", {"a": [], "b": ["a"], "x": []})) == [["a", "b"], ["x"]]
    assert chains(diamond()) is None
    assert chains(fan_out()) is None


# ---- text ------------------------------------------------------------------------------------
def test_text_chain_is_one_arrow_line() -> None:
    text = render_text("chain", chain())
    assert text.splitlines()[0] == "chain · 3 tasks · 1 chain"
    assert body(text) == ["  collect_data ──▶ process_data ──▶ generate_report"]
    ascii_text = render_text("chain", chain(), unicode=False)
    assert body(ascii_text) == ["  collect_data --> process_data --> generate_report"]
    assert ascii_text.isascii()


def test_text_chain_shows_notes() -> None:
    text = render_text("chain", chain(), {"process_data": ["3 attempts", "timeout 30s"]})
    assert "process_data [3 attempts, timeout 30s] ──▶ generate_report" in text


def test_text_diamond_layers_and_dependencies() -> None:
    text = render_text("diamond", diamond(), {"join": ["trigger: all_done"]})
    assert text.splitlines()[0] == "diamond · 4 tasks · 3 layers · roots: start · leaves: join"
    assert body(text) == [
        "  layer 1  start",
        "           │",
        "           ▼",
        "  layer 2  left  ◀── start",
        "           right ◀── start",
        "           │",
        "           ▼",
        "  layer 3  join ◀── left, right [trigger: all_done]",
    ]


def test_text_fan_out_lists_every_leaf_and_the_join() -> None:
    text = render_text("fan", fan_out(10))
    lines = body(text)
    assert lines[0] == "  layer 1  root"
    assert "  layer 2  leaf_0 ◀── root" in lines
    assert "           leaf_9 ◀── root" in lines
    joined = ", ".join(f"leaf_{i}" for i in range(10))
    assert lines[-1] == f"  layer 3  join ◀── {joined}"


def test_text_abbreviates_very_wide_fan_in() -> None:
    text = render_text("fan", fan_out(40))
    last = text.splitlines()[-1]
    assert last.startswith("  layer 3  join ◀── leaf_0, leaf_1,")
    assert last.endswith("… leaf_39 (40 tasks)")
    assert "leaf_20" not in last


def test_text_marks_isolated_tasks_in_a_layered_drawing() -> None:
    graph = build_graph("w", {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "lonely": []})
    text = render_text("w", graph)
    assert "lonely (isolated: no dependencies, no dependents)" in text
    assert "roots: a, lonely" in text


def test_text_isolated_only_workflow_is_a_chain_per_task() -> None:
    text = render_text("solo", build_graph("solo", {"only": []}))
    assert text == "solo · 1 task · 1 chain\n  only\n"


# ---- Mermaid ---------------------------------------------------------------------------------
def test_mermaid_chain() -> None:
    assert render_mermaid("chain", chain()).splitlines() == [
        "flowchart LR",
        "    %% workflow chain",
        "    collect_data --> process_data",
        "    process_data --> generate_report",
    ]


def test_mermaid_diamond_and_fan_out_have_one_edge_per_dependency() -> None:
    lines = render_mermaid("diamond", diamond()).splitlines()
    edges = [line.strip() for line in lines if "-->" in line]
    assert edges == ["start --> left", "start --> right", "left --> join", "right --> join"]
    fan = render_mermaid("fan", fan_out(10))
    assert fan.count("-->") == 20
    assert "    root --> leaf_3" in fan and "    leaf_3 --> join" in fan


def test_mermaid_lists_isolated_tasks_and_notes() -> None:
    graph = build_graph("w", {"a": [], "b": ["a"], "lonely": []})
    lines = render_mermaid("w", graph, {"b": ["3 attempts"]}).splitlines()
    assert "    lonely" in lines
    assert '    b["b<br/>3 attempts"]' in lines
    assert "    a --> b" in lines


def test_mermaid_sanitises_odd_ids() -> None:
    ids = mermaid_ids(["1st-step", "end", "a.b", "a-b", "t_a_b", "ok_id", "End"])
    assert ids["ok_id"] == "ok_id"
    assert ids["1st-step"] == "t_1st_step"
    assert ids["end"] == "t_end" and ids["End"] == "t_End"  # keyword, in any case
    assert ids["t_a_b"] == "t_a_b"  # already safe: kept, so the sanitised ones move aside
    assert len(set(ids.values())) == len(ids)
    for value in ids.values():
        assert value.replace("_", "a").isalnum()

    graph = build_graph("odd", {"1st-step": [], "end": ["1st-step"], "a.b": ["end"]})
    lines = render_mermaid("odd", graph).splitlines()
    assert '    t_1st_step["1st-step"]' in lines
    assert '    t_end["end"]' in lines
    assert '    t_a_b["a.b"]' in lines
    assert "    t_1st_step --> t_end" in lines
    assert "    t_end --> t_a_b" in lines


def test_mermaid_escapes_label_text() -> None:
    graph = build_graph("w", {"a": []})
    text = render_mermaid("w", graph, {"a": ['trigger: context["x"] > 1']})
    assert 'a["a<br/>trigger: context[#quot;x#quot;] #gt; 1"]' in text


# ---- DOT -------------------------------------------------------------------------------------
def test_dot_chain() -> None:
    text = render_dot("chain", chain())
    lines = text.splitlines()
    assert lines[0] == 'digraph "chain" {'
    assert "    rankdir=LR;" in lines
    assert '    "collect_data" -> "process_data";' in lines
    assert '    "process_data" -> "generate_report";' in lines
    assert lines[-1] == "}"


def test_dot_lists_every_node_and_edge() -> None:
    text = render_dot("fan", fan_out(10), {"join": ["trigger: all_done"]})
    assert text.count(" -> ") == 20
    assert '    "leaf_7";' in text
    assert '    "join" [label="join\\ntrigger: all_done"];' in text
    graph = build_graph("w", {"a": [], "lonely": []})
    assert '    "lonely";' in render_dot("w", graph)


def test_dot_quotes_odd_ids_and_names() -> None:
    assert dot_quote('say "hi"') == '"say \\"hi\\""'
    assert dot_quote("back\\slash") == '"back\\\\slash"'
    graph = build_graph("w", {"1st-step": [], "a.b": ["1st-step"]})
    text = render_dot('my "odd" flow', graph)
    assert text.startswith('digraph "my \\"odd\\" flow" {')
    assert '    "1st-step" -> "a.b";' in text


def test_render_dispatches_and_rejects_unknown_formats() -> None:
    graph = chain()
    assert render("chain", graph, "mermaid") == render_mermaid("chain", graph)
    assert render("chain", graph, "dot") == render_dot("chain", graph)
    assert render("chain", graph, "text", unicode=False) == render_text(
        "chain", graph, unicode=False
    )
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        render("chain", graph, "svg")


# ---- notes from a workflow -------------------------------------------------------------------
def test_task_notes_mark_retries_timeouts_rules_and_async(
    new_name: Callable[..., str],
) -> None:
    name = new_name("notes")

    @workflow(name=name)
    class flow:
        @task()
        async def fetch(context: Context) -> None:
            await asyncio.sleep(0)

        @task(dependencies=["fetch"], retry=RetryPolicy(max_attempts=3), timeout=30)
        def process(context: Context) -> None:
            pass

        @task(dependencies=["process"], trigger_rule=all_done())
        def cleanup(context: Context) -> None:
            pass

        @task(dependencies=["process"], trigger_rule=context_value("n", ">", 1))
        def maybe(context: Context) -> None:
            pass

        @task(dependencies=["process"])
        def plain(context: Context) -> None:
            pass

    wf = workflow_of(flow)
    notes = task_notes(wf)
    assert notes["fetch"] == ["async"]
    assert notes["process"] == ["3 attempts", "timeout 30s"]
    assert notes["cleanup"] == ["trigger: all_done"]
    assert notes["maybe"][0].startswith("trigger: all_of(all_success, context['n'] > 1")
    assert "plain" not in notes

    text = render_workflow(wf, "text")
    assert "process ◀── fetch [3 attempts, timeout 30s]" in text
    assert "cleanup ◀── process [trigger: all_done]" in text
