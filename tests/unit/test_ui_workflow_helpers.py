"""Helpers of the web UI's Workflows and Packages pages: the start form's context, a
workflow's versions from the package list, the graph's data and its safe embedding."""

from __future__ import annotations

import json

import pytest

from cloacina.errors import RequestError
from cloacina.registry.registry import PackageInfo
from cloacina.server.ui.pages_packages import grouped, signature_word
from cloacina.server.ui.pages_workflows import embed, graph_spec, parse_context, versions_of
from cloacina.service.stats import TaskStats, WorkflowStats
from cloacina.service.types import TaskInfo, WorkflowInfo


def test_parse_context() -> None:
    assert parse_context("") == {} and parse_context("  \n") == {}
    assert parse_context('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(RequestError, match=r"not valid JSON: .* line 1 column 6"):
        parse_context('{"a" 1}')
    for text, kind in (("[1]", "list"), ("3", "int"), ('"x"', "str"), ("null", "NoneType")):
        with pytest.raises(RequestError, match=rf"must be a JSON object .*not {kind}"):
            parse_context(text)


def info(
    package: str,
    version: str,
    at: float,
    workflows: tuple[str, ...],
    workflow_versions: tuple[tuple[str, str], ...] = (),
    default: bool = False,
) -> PackageInfo:
    return PackageInfo(
        f"id-{package}-{version}",
        package,
        version,
        "0" * 64,
        workflows,
        None,
        at,
        workflow_versions=workflow_versions,
        default=default,
    )


def test_versions_newest_first_with_the_default_and_workflow_versions() -> None:
    packages = [
        info("p", "1.0", 10.0, ("wf", "other"), workflow_versions=(("wf", "w1"),)),
        info("p", "2.0", 20.0, ("wf",), default=True),
        info("q", "1.0", 30.0, ("unrelated",)),
    ]
    found = versions_of("wf", packages)
    assert [(v.version, v.package_version, v.default) for v in found] == [
        ("2.0", "2.0", True),
        ("w1", "1.0", False),
    ]
    assert versions_of("embedded_only", packages) == []
    assert [(name, [p.version for p in vs]) for name, vs in grouped(packages)] == [
        ("p", ["2.0", "1.0"]),
        ("q", ["1.0"]),
    ]
    assert signature_word(packages[0]) == "unsigned"
    signed = PackageInfo("i", "s", "1", "0" * 64, (), "alice", 1.0)
    assert signature_word(signed) == "signed by alice"


def test_graph_spec_and_embedding() -> None:
    wf = WorkflowInfo(
        "wf",
        "v1",
        "embedded",
        "",
        [TaskInfo("a", []), TaskInfo("b", ["a"]), TaskInfo("c</script>", ["a"])],
    )
    assert graph_spec(wf, None) == {
        "nodes": [{"id": "a"}, {"id": "b"}, {"id": "c</script>"}],
        "edges": [["a", "b"], ["a", "c</script>"]],
        "critical": [],
    }
    task = TaskStats("a", 3, 3, 0, 0, 3, 0.0, 0.25, 0.5, 0.01, 0.02)
    stats = WorkflowStats("wf", 3, 3, 0, 0.0, 1.0, 2.0, None, None, [task], ["a", "b"], 3, 1.0)
    spec = graph_spec(wf, stats)
    assert spec["critical"] == ["a", "b"] and spec["nodes"][0] == {
        "id": "a",
        "sub": "critical · p50 0.250 s",
    }
    assert spec["nodes"][1] == {"id": "b", "sub": "critical"}
    text = embed(spec)
    assert "</script>" not in text and "<" not in text
    assert json.loads(text) == spec
