"""TaskNamespace: tenant::package::workflow::task parsing, printing and validation."""

from __future__ import annotations

import dataclasses

import pytest

from cloacina import CloacinaError, TaskNamespace
from cloacina.model.namespace import DEFAULT_TENANT, EMBEDDED_PACKAGE, SEPARATOR


def test_defaults() -> None:
    assert DEFAULT_TENANT == "public"
    assert EMBEDDED_PACKAGE == "embedded"
    assert SEPARATOR == "::"


def test_str_joins_the_parts() -> None:
    ns = TaskNamespace("public", "embedded", "etl", "load")
    assert str(ns) == "public::embedded::etl::load"


@pytest.mark.parametrize(
    "text",
    [
        "public::embedded::etl::load",
        "acme::simple_demo::data_processing::collect_data",
        "t-1::pkg.v2::wf_name::9task",
    ],
)
def test_parse_and_str_round_trip(text: str) -> None:
    ns = TaskNamespace.parse(text)
    assert str(ns) == text
    assert TaskNamespace.parse(str(ns)) == ns


def test_parse_gives_the_fields() -> None:
    ns = TaskNamespace.parse("tenant::package::workflow::task")
    assert (ns.tenant, ns.package, ns.workflow, ns.task) == (
        "tenant",
        "package",
        "workflow",
        "task",
    )


@pytest.mark.parametrize(
    "text",
    ["a::b::c", "a::b::c::d::e", "", "a:b:c:d", "a::b::c::d::"],
)
def test_parse_rejects_the_wrong_number_of_parts(text: str) -> None:
    with pytest.raises(CloacinaError) as info:
        TaskNamespace.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["::b::c::d", "a::::c::d", "a::b::c::", "a b::b::c::d", "a::b::c::d/e", "a::b:x::c::d"],
)
def test_parse_rejects_empty_or_invalid_parts(text: str) -> None:
    with pytest.raises(CloacinaError):
        TaskNamespace.parse(text)


@pytest.mark.parametrize("label", ["tenant", "package", "workflow", "task"])
def test_constructor_names_the_invalid_part(label: str) -> None:
    parts = {"tenant": "t", "package": "p", "workflow": "w", "task": "k"}
    parts[label] = "bad name"
    with pytest.raises(CloacinaError) as info:
        TaskNamespace(**parts)
    assert f"invalid {label} name 'bad name'" in str(info.value)


def test_namespace_is_a_frozen_hashable_value() -> None:
    a = TaskNamespace("t", "p", "w", "k")
    b = TaskNamespace.parse("t::p::w::k")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.task = "other"  # type: ignore[misc]
