"""Operational reads: what metrics read at scrape time (ready backlog, live workers, the
connection pool) and the timings of a workflow's recent runs for its statistics.

Not on the hot path (SQLAlchemy Core, backend-neutral). Each read is bounded: a count stops
at a limit, the statistics read at most the runs asked for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.pool import QueuePool

from cloacina.store.clock import db_now_sql
from cloacina.store.sql_common import CHUNK
from cloacina.store.tables import (
    task_attempts,
    task_dependencies,
    task_executions,
    workers,
    workflow_executions,
)

#: The outcomes of finished runs that statistics read (a cancelled run's timings say little).
FINISHED = ("completed", "failed")


class PoolStatus(NamedTuple):
    """The database connection pool: connections handed out now, and its configured size
    (plus how many overflow connections are open beyond it)."""

    in_use: int
    size: int
    overflow: int


class RunTimes(NamedTuple):
    """A finished run's times (epoch seconds)."""

    id: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None


class TaskTimes(NamedTuple):
    """A task of a run as it ended, with its dependencies as stored (JSON; None for a run
    whose graph was not stored)."""

    execution_id: str
    task_id: str
    task_index: int
    status: str
    attempt: int
    started_at: float | None
    finished_at: float | None
    dependencies_json: str | None


class AttemptTimes(NamedTuple):
    """An attempt of a task that did not complete (or one a rerun reset), from
    ``task_attempts``: the task's own row holds its completed attempt."""

    execution_id: str
    task_id: str
    attempt: int
    outcome: str
    started_at: float | None
    finished_at: float


class StatsQueries:
    """Scrape-time counts and workflow statistics, given a SQLAlchemy engine."""

    engine: Engine

    # ---- what /metrics reads -----------------------------------------------------------------
    def ready_backlog(self, now: float, limit: int = 10_000) -> int:
        """How many tasks are ready to start now (their retry due), counted up to ``limit``
        (the count stops there: a scrape must stay cheap whatever the backlog)."""
        due = (
            select(literal(1))
            .select_from(task_executions)
            .where(
                task_executions.c.status == "ready",
                or_(task_executions.c.retry_at.is_(None), task_executions.c.retry_at <= now),
            )
            .limit(limit)
            .subquery()
        )
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(due)).scalar_one())

    def count_live_workers(self, max_age: float) -> int:
        """Workers running, whose heartbeat is at most ``max_age`` seconds old (by the
        database's clock, as heartbeats are stamped)."""
        now = db_now_sql(self.engine.dialect.name)
        query = (
            select(func.count())
            .select_from(workers)
            .where(
                workers.c.status == "running",
                workers.c.last_heartbeat >= literal_column(now, Float) - max_age,
            )
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def pool_status(self) -> PoolStatus | None:
        """The connection pool's state (None where there is no pool: SQLite opens its
        connections as it needs them)."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return None
        return PoolStatus(pool.checkedout(), pool.size(), max(0, pool.overflow()))

    def ready_times(self, tasks: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """When each ``(run, task)`` became ready, as the rows tell: its last dependency's
        end, or the run's creation for a task without dependencies. Left out: a task whose
        dependencies have not all ended, or whose run is gone or has no stored graph."""
        wanted = set(tasks)
        w, d = workflow_executions.c, task_dependencies.c
        created: dict[str, float] = {}
        deps: dict[tuple[str, str], list[str]] = {}
        with self.engine.connect() as conn:
            for part, names in _by_run(wanted):
                runs = select(w.id, w.created_at).where(w.id.in_(part), w.graph_stored == 1)
                created.update((str(r[0]), float(r[1])) for r in conn.execute(runs))
                for name_part in _chunks(names):
                    graph = select(d.execution_id, d.task_id, d.dependencies).where(
                        d.execution_id.in_(part), d.task_id.in_(name_part)
                    )
                    for r in conn.execute(graph):
                        if (r[0], r[1]) in wanted:
                            deps[(str(r[0]), str(r[1]))] = list(json.loads(r[2]))
            needed = {(eid, dep) for (eid, _tid), names in deps.items() for dep in names}
            ends = self._ends(conn, needed)
        out: dict[tuple[str, str], float] = {}
        for eid, tid in wanted:
            if eid not in created:
                continue
            names = deps.get((eid, tid), [])
            finished = [ends.get((eid, dep)) for dep in names]
            if not names:
                out[(eid, tid)] = created[eid]
            elif all(end is not None for end in finished):
                out[(eid, tid)] = max(end for end in finished if end is not None)
        return out

    @staticmethod
    def _ends(conn: Connection, tasks: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """When each of these ``(run, task)`` ended (those that did)."""
        t = task_executions.c
        ends: dict[tuple[str, str], float] = {}
        for part, names in _by_run(tasks):
            for name_part in _chunks(names):
                query = select(t.execution_id, t.task_id, t.finished_at).where(
                    t.execution_id.in_(part), t.task_id.in_(name_part), t.finished_at.is_not(None)
                )
                for r in conn.execute(query):
                    ends[(str(r[0]), str(r[1]))] = float(r[2])
        return ends

    # ---- workflow statistics -------------------------------------------------------------
    def recent_finished_runs(self, workflow_name: str, last: int) -> list[RunTimes]:
        """The ``last`` most recently created runs of ``workflow_name`` that finished
        (completed or failed), newest first."""
        w = workflow_executions.c
        query = (
            select(w.id, w.status, w.created_at, w.started_at, w.finished_at)
            .where(w.workflow_name == workflow_name, w.status.in_(FINISHED))
            .order_by(w.created_at.desc(), w.id.desc())
            .limit(last)
        )
        with self.engine.connect() as conn:
            return [RunTimes(*row) for row in conn.execute(query)]

    def workflow_names_with_runs(self, limit: int = 1000) -> list[str]:
        """The names of workflows that have runs here, in order (at most ``limit``)."""
        w = workflow_executions.c
        query = select(w.workflow_name).distinct().order_by(w.workflow_name).limit(limit)
        with self.engine.connect() as conn:
            return [str(name) for (name,) in conn.execute(query)]

    def task_times(self, execution_ids: Sequence[str]) -> list[TaskTimes]:
        """Every task of these runs, with its dependencies (``'[]'`` for a task without any
        in a run whose graph was stored)."""
        t = task_executions.c
        d = task_dependencies.c
        deps = case(
            (d.dependencies.is_not(None), d.dependencies),
            (workflow_executions.c.graph_stored == 1, literal("[]")),
            else_=None,
        )
        out: list[TaskTimes] = []
        with self.engine.connect() as conn:
            for part in _chunks(execution_ids):
                query = (
                    select(
                        t.execution_id,
                        t.task_id,
                        t.task_index,
                        t.status,
                        t.attempt,
                        t.started_at,
                        t.finished_at,
                        deps,
                    )
                    .select_from(
                        task_executions.join(
                            workflow_executions, workflow_executions.c.id == t.execution_id
                        ).outerjoin(
                            task_dependencies,
                            and_(d.execution_id == t.execution_id, d.task_id == t.task_id),
                        )
                    )
                    .where(t.execution_id.in_(part))
                )
                out.extend(TaskTimes(*row) for row in conn.execute(query))
        return out

    def attempt_times(self, execution_ids: Sequence[str]) -> list[AttemptTimes]:
        """The attempts of these runs' tasks kept in ``task_attempts`` (those that did not
        complete, and those a rerun reset)."""
        a = task_attempts.c
        out: list[AttemptTimes] = []
        with self.engine.connect() as conn:
            for part in _chunks(execution_ids):
                query = select(
                    a.execution_id, a.task_id, a.attempt, a.outcome, a.started_at, a.finished_at
                ).where(a.execution_id.in_(part))
                out.extend(AttemptTimes(*row) for row in conn.execute(query))
        return out


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def _by_run(pairs: set[tuple[str, str]]) -> list[tuple[Sequence[str], list[str]]]:
    """``(run, task)`` pairs as chunks of run ids, each with the task ids of those runs."""
    out: list[tuple[Sequence[str], list[str]]] = []
    for part in _chunks(sorted({eid for eid, _tid in pairs})):
        runs = set(part)
        out.append((part, sorted({tid for eid, tid in pairs if eid in runs})))
    return out
