"""Fixtures for the pure-model unit tests (no database, no threads).

The workflow catalog is process-global, so every workflow a test defines gets a unique name
from ``new_name`` and is removed from the catalog when the test ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from cloacina.model.workflow import catalog


@pytest.fixture
def new_name() -> Iterator[Callable[..., str]]:
    """A factory of unique workflow names, unregistered again after the test."""
    made: list[str] = []

    def make(prefix: str = "wf") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield make
    for name in made:
        catalog.remove(name)


@pytest.fixture
def wf_name(new_name: Callable[..., str]) -> str:
    """One unique workflow name for tests that need only one."""
    return new_name()
