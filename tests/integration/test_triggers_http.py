"""Triggers through the HTTP API and ``cloacina.Client`` (SQLite and PostgreSQL): the same
values as ``DefaultRunner``'s, a viewer reads and an operator pauses and resumes (audited),
an unknown name is a 404 naming the nearest trigger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloacina.errors import NotFoundError, PermissionDeniedError
from cloacina.store.triggers import TriggerDecl

from .client_support import Served, start_server

pytestmark = pytest.mark.timeout(90)

#: A default name (a function's qualified name) holds characters a URL path must encode.
ODD = "test_mod.<locals>.poll"


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    yield from start_server(db_url)


def test_triggers_through_the_client_match_the_runner(served: Served) -> None:
    local = served.local
    # Recorded as a worker that knows them records them (no worker polls them here: none
    # has their code).
    local.store.upsert_triggers(
        [TriggerDecl("files", "ingest", 30.0, False), TriggerDecl(ODD, "ingest", 5.0, True)],
        local.clock.now(),
    )
    client = served.client()
    assert client.list_triggers() == local.list_triggers()
    assert [t.name for t in client.list_triggers()] == ["files", ODD]
    assert client.get_trigger(ODD) == local.get_trigger(ODD)
    assert client.get_trigger(ODD).allow_concurrent is True

    client.pause_trigger("files")
    assert local.get_trigger("files").enabled is False
    client.resume_trigger("files")
    assert local.get_trigger("files").enabled is True
    client.pause_trigger(ODD)
    assert local.get_trigger(ODD).enabled is False

    with pytest.raises(NotFoundError, match="did you mean 'files'"):
        client.pause_trigger("filez")
    with pytest.raises(NotFoundError):
        client.get_trigger("nothing")

    audit = [(e.action, e.target, e.outcome) for e in local.list_audit(limit=50).items]
    assert ("trigger.pause", "files", "ok") in audit
    assert ("trigger.resume", "files", "ok") in audit
    assert ("trigger.pause", ODD, "ok") in audit
    assert any(a == "trigger.pause" and t == "filez" and o != "ok" for a, t, o in audit)


def test_a_viewer_reads_triggers_and_may_not_change_them(served: Served) -> None:
    local = served.local
    local.store.upsert_triggers([TriggerDecl("watched", "ingest", 30.0, False)], 0.0)
    viewer = served.client(local.create_api_key("viewer", "viewer").key)
    assert [t.name for t in viewer.list_triggers()] == ["watched"]
    with pytest.raises(PermissionDeniedError):
        viewer.pause_trigger("watched")
    with pytest.raises(PermissionDeniedError):
        viewer.resume_trigger("watched")
    assert local.get_trigger("watched").enabled
