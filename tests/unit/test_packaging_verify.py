"""Comparing a manifest with what the code declares, and reading ``.sig`` files."""

from __future__ import annotations

from cloacina.packaging.manifest import TaskSpec, WorkflowSpec
from cloacina.packaging.signing import generate_keypair, sign_archive
from cloacina.packaging.verify import Declared, compare, read_signature

RETRY = {"max_attempts": 1, "backoff": "exponential", "initial_delay": 0.0, "max_delay": 60.0}


def spec(name: str = "flow", version: str = "v1", **task_b: object) -> WorkflowSpec:
    b = {"id": "b", "function": "b", "dependencies": ("a",), "retry": RETRY, **task_b}
    return WorkflowSpec(
        name=name,
        version=version,
        module="pkg.flows",
        qualname=name,
        tasks=(TaskSpec(id="a", function="a", retry=RETRY), TaskSpec(**b)),  # type: ignore[arg-type]
    )


def test_identical_workflows_match() -> None:
    assert compare("pkg", [spec()], [Declared(spec(), "pkg")]) == []


def test_none_values_and_tuples_compare_like_toml() -> None:
    code = spec(trigger_rule={"kind": "context_value", "key": "k", "op": "in", "value": [1]})
    listed = spec(trigger_rule={"kind": "context_value", "key": "k", "op": "in", "value": (1,)})
    assert compare("pkg", [listed], [Declared(code, "pkg")]) == []


def test_every_difference_is_named() -> None:
    problems = compare(
        "pkg",
        [spec(), spec("gone")],
        [
            Declared(spec(version="v2", dependencies=(), timeout=5.0), "other"),
            Declared(spec("new"), "pkg"),
        ],
    )
    text = "\n".join(problems)
    assert "the manifest lists workflow 'gone' but the code does not declare it" in text
    assert "the code declares workflow 'new' but the manifest does not list it" in text
    assert "workflow 'flow' is declared for package 'other', but this is package 'pkg'" in text
    assert "workflow 'flow': the manifest says version = 'v1' but the code says 'v2'" in text
    assert "task 'b': the manifest says dependencies = ['a'] but the code says []" in text
    assert "task 'b': the manifest says timeout = None but the code says 5.0" in text


def test_task_sets_differ() -> None:
    code = WorkflowSpec(
        "flow",
        "v1",
        "pkg.flows",
        "flow",
        (TaskSpec(id="a", function="a", retry=RETRY), TaskSpec(id="c", function="c", retry=RETRY)),
    )
    problems = compare("pkg", [spec()], [Declared(code, "pkg")])
    assert any("manifest lists task(s) b" in p for p in problems)
    assert any("code declares task(s) c" in p for p in problems)


def test_read_signature() -> None:
    pair = generate_keypair()
    sig = sign_archive(b"data", pair.private_pem)
    assert read_signature(b"data", sig).matches
    assert read_signature(b"data", sig).key == pair.fingerprint
    other = read_signature(b"other data", sig)
    assert not other.matches and other.error and "different bytes" in other.error
    assert not read_signature(b"data", b"junk").matches
