"""Naming a workflow (``package::workflow@version``) and ordering package versions (issue 9,
items 7 and 18): the default is the highest version, and 0.10.0 is higher than 0.9.0."""

from __future__ import annotations

import random

import pytest

from cloacina.errors import WorkflowNotFoundError
from cloacina.registry import registry
from cloacina.registry.registry import WorkflowRef, highest_version, version_order


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("etl", WorkflowRef("etl")),
        ("acme::etl", WorkflowRef("etl", "acme")),
        ("etl@1.2.0", WorkflowRef("etl", None, "1.2.0")),
        ("acme::etl@1.2.0", WorkflowRef("etl", "acme", "1.2.0")),
        (
            "my-pkg.x::wf.name-2@2024.01+local@odd",
            WorkflowRef("wf.name-2", "my-pkg.x", "2024.01+local@odd"),
        ),
    ],
)
def test_parse_and_print(text: str, expected: WorkflowRef) -> None:
    assert WorkflowRef.parse(text) == expected
    assert str(expected) == text
    assert expected.qualified == (text != "etl")


@pytest.mark.parametrize("text", ["", "::etl", "acme::", "a::b::c", "etl@", "@1.0", "a:b", "x::@1"])
def test_unreadable_names_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(WorkflowNotFoundError, match="PACKAGE::WORKFLOW@VERSION"):
        WorkflowRef.parse(text)


ORDERED = [
    "0.1",
    "0.9.0",
    "0.10.0rc1",
    "0.10.0",
    "0.10.1",
    "1.0.dev1",
    "1.0a1",
    "1.0b2",
    "1.0rc1",
    "1.0",
    "1.0.post1",
    "2.0",
    "10.0",
]


def test_pep440_order() -> None:
    shuffled = ORDERED[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=version_order(shuffled)) == ORDERED
    assert highest_version(["0.10.0", "0.9.0"]) == "0.10.0"
    assert highest_version(["0.9.0", "0.10.0"]) == "0.10.0"


def test_without_packaging_numbers_still_compare_as_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_Pep440", None)
    expected = [
        "0.1",
        "0.9.0",
        "0.10.0rc1",
        "0.10.0",
        "0.10.1",
        "1.0rc1",
        "1.0",
        "1.0.post1",
        "2.0",
        "10.0",
    ]
    shuffled = expected[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(shuffled, key=version_order(shuffled)) == expected
    assert highest_version(["0.10.0", "0.9.0"]) == "0.10.0"


def test_versions_that_are_not_pep440_are_ordered_numerically() -> None:
    versions = ["2024-01-09", "2024-01-10", "release-9", "2023-12-31"]
    key = version_order(versions)
    assert sorted(versions, key=key) == ["release-9", "2023-12-31", "2024-01-09", "2024-01-10"]
    assert highest_version(["build-9", "build-10"]) == "build-10"
    assert highest_version(["1.0", "1.00"]) == "1.00"  # equal: the last registered
