"""The web UI's Workers page (DESIGN §12): every worker of the signed-in tenant, alive or
lost, the tasks each runs now and how long ago it was last heard of. The table is fetched
again every two seconds by htmx (no reload); reads go through the tenant's runner."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cloacina.server.ui.pages import page, to_signin
from cloacina.server.ui.session import Viewer, viewer_of
from cloacina.service.executions import SILENT_AFTER
from cloacina.service.types import WorkerInfo

router = APIRouter(include_in_schema=False)

#: The word shown for each worker state of the service (``silent``: not heard of lately).
STATE_WORDS = {"running": "alive", "silent": "lost", "lost": "lost", "stopped": "stopped"}
#: Running tasks listed per worker (the count is always whole).
TASKS_SHOWN = 20


def heartbeat_age(seconds: float) -> str:
    """``3 s ago``, ``4 min ago``, ``2 h ago``, ``3 d ago``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)} s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)} min ago"
    if seconds < 172_800:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86_400)} d ago"


@dataclass(frozen=True)
class WorkerRow:
    """One worker as the page shows it."""

    info: WorkerInfo
    word: str
    age: str
    tasks: list[tuple[str, str]]


def read_workers(viewer: Viewer, include_stopped: bool) -> dict[str, Any]:
    """The page's rows and its counts by word."""
    workers = viewer.runner.list_workers(include_stopped)
    held = viewer.runner.worker_tasks()
    now = time.time()
    rows = [
        WorkerRow(
            info=w,
            word=STATE_WORDS.get(w.state, w.state),
            age=heartbeat_age(now - w.last_heartbeat_at.timestamp()),
            tasks=held.get(w.id, []),
        )
        for w in workers
    ]
    return {"workers": rows, "summary": summary(rows), "tasks_shown": TASKS_SHOWN}


def summary(rows: list[WorkerRow]) -> str:
    """``2 workers: 1 alive, 1 lost; 3 tasks running.``: what the page's status line says
    (announced by screen readers when it changes; the table's heartbeat ages are not)."""
    if not rows:
        return "No workers."
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.word] = counts.get(row.word, 0) + 1
    by_word = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
    running = sum(len(r.tasks) for r in rows)
    workers = f"{len(rows)} worker{'' if len(rows) == 1 else 's'}"
    tasks = f"{running} task{'' if running == 1 else 's'} running"
    return f"{workers}: {by_word}; {tasks}."


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def poll_query(stopped: bool, said: str) -> str:
    """The table's next fetch: it names the status line the page shows, so that the line
    is sent (and announced) again only when it changes."""
    return urlencode({**({"stopped": "1"} if stopped else {}), "said": digest(said)})


def wants_stopped(request: Request) -> bool:
    return request.query_params.get("stopped") in ("1", "true", "on")


@router.get("/workers")
async def workers_page(request: Request) -> Response:
    viewer = await viewer_of(request)
    if viewer is None:
        return to_signin()
    stopped = wants_stopped(request)
    found = await run_in_threadpool(read_workers, viewer, stopped)
    poll = poll_query(stopped, found["summary"])
    return page(
        request,
        "workers.html",
        viewer=viewer,
        stopped=stopped,
        poll=poll,
        silent_after=int(SILENT_AFTER),
        **found,
    )


@router.get("/ui/workers")
async def workers_table(request: Request) -> Response:
    """The table alone, fetched every two seconds by the page (with the status line when
    it changed)."""
    viewer = await viewer_of(request)
    if viewer is None:
        return Response(status_code=401)
    stopped = wants_stopped(request)
    found = await run_in_threadpool(read_workers, viewer, stopped)
    changed = digest(found["summary"]) != request.query_params.get("said")
    return page(
        request,
        "workers_table.html",
        viewer=viewer,
        stopped=stopped,
        poll=poll_query(stopped, found["summary"]),
        summary_changed=changed,
        **found,
    )


PATHS = frozenset({"/workers", "/ui/workers"})

__all__ = ["PATHS", "heartbeat_age", "router"]
