"""Plain records the store returns: executions, tasks, claims and events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from cloacina.model.status import ExecutionStatus, TaskStatus


@dataclass(frozen=True, slots=True)
class Claim:
    """A task this worker claimed: run it, then complete it with ``claim_token``."""

    row_id: int
    execution_id: str
    task_id: str
    attempt: int
    recovery_count: int
    claim_token: str
    workflow_name: str
    workflow_version: str
    started_at: float
    deps_total: int = 0
    deps_failed: int = 0
    deps_skipped: int = 0
    #: The run's input context, when the claim query brought it along (a root task's input).
    input_json: str | None = None
    #: The run's priority (claims found by a search carry it; 0 otherwise): an engine that
    #: sees a low one sends that run's next tasks through the queue, behind fresher work.
    priority: int = 0
    #: An instance of a mapped task (``map_over``): its index and its item (JSON); None for
    #: an ordinary task. Its ``task_id`` is ``"<task>[<index>]"``.
    map_index: int | None = None
    map_item: str | None = None
    #: An instance's mapped task (its row id).
    map_parent: int | None = None


#: A workflow version a worker can run: ``(name, version)``.
WorkflowKey = tuple[str, str]


class NewEvent(NamedTuple):
    """A row to append to a run's event log (a named tuple: made for every task started
    and finished, so cheap to build, and a row the drivers take as it is)."""

    execution_id: str
    task_id: str | None
    event: str
    attempt: int | None
    detail: str | None  # JSON
    created_at: float


class NewLogChunk(NamedTuple):
    """A piece of one attempt's captured output to append to ``task_logs`` (a named tuple
    in the columns' order, a row the drivers take as it is)."""

    execution_id: str
    task_id: str
    attempt: int
    stream: str  # stdout | stderr | log
    created_at: float
    text: str


class LogChunkRow(NamedTuple):
    """A stored piece of an attempt's output (``id`` orders them; read after an id)."""

    id: int
    execution_id: str
    task_id: str
    attempt: int
    stream: str
    created_at: float
    text: str


class ReadyTask(NamedTuple):
    """A pending task whose dependencies are settled and whose trigger rule lets it run:
    claim it directly (no search), or mark it ``ready`` for whoever has a free slot (a named
    tuple: one is made for every task of a run)."""

    row_id: int
    execution_id: str
    task_id: str
    workflow_name: str
    workflow_version: str
    deps_total: int
    deps_failed: int
    deps_skipped: int


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task row to create in a run: its id, its place in the workflow's order, its
    dependencies (task ids, in declared order: the run's graph) and its attempt budget."""

    task_id: str
    index: int
    dependencies: tuple[str, ...]
    max_attempts: int
    #: The dependencies as stored (JSON), made once with the record: a runner builds the
    #: records of a workflow version once and reuses them for every run.
    dependencies_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = json.dumps(list(self.dependencies), separators=(",", ":"))
        object.__setattr__(self, "dependencies_json", text)


@dataclass(frozen=True, slots=True)
class RunOrigin:
    """Where a run came from and how urgent it is: ``priority`` (claims prefer higher; a
    backfill's runs are below fresh ones, 0), the schedule time it stands for, and the
    schedule, backfill or trigger (with the hash of its context) that started it."""

    priority: int = 0
    scheduled_for: float | None = None
    schedule_id: str | None = None
    backfill_id: str | None = None
    trigger_name: str | None = None
    trigger_key: str | None = None


#: A plain submission: priority 0, started by nobody in particular.
PLAIN_RUN = RunOrigin()


@dataclass(frozen=True, slots=True)
class Completion:
    """A task body that succeeded: record it (fenced by its claim) with its output."""

    claim: Claim
    output_json: str
    finished_at: float
    #: The ids of the tasks that depend on this one (their counters are bumped).
    dependents: tuple[str, ...]


@dataclass(slots=True)
class CompletionResult:
    """What recording a batch of completions did."""

    #: The completions whose claims still held (the others were fenced out).
    completed: list[Completion]
    #: Per run, its pending dependents' counters after all of the batch's bumps, by row id.
    dependents: dict[str, dict[int, DependentState]]
    #: Per run with completed tasks, its counters afterwards.
    progress: dict[str, RunProgress]


@dataclass(frozen=True, slots=True)
class DependentState:
    """A pending dependent's counters after a dependency settled."""

    row_id: int
    task_id: str
    deps_total: int
    deps_remaining: int
    deps_failed: int
    deps_skipped: int


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A run's counters after tasks settled."""

    status: ExecutionStatus
    tasks_remaining: int
    tasks_failed: int


def map_instance_id(task_id: str, index: int) -> str:
    """The task id of instance ``index`` of mapped task ``task_id``: ``"process[7]"``."""
    return f"{task_id}[{index}]"


def map_base_id(instance_id: str) -> str:
    """The mapped task's id of an instance's id (``"process[7]"`` -> ``"process"``)."""
    return instance_id[: instance_id.rindex("[")]


@dataclass(frozen=True, slots=True)
class MapCounts:
    """A mapped task's instances: how many, by status, and the indexes that failed (the
    first ``limit`` of them, in order; ``failed_more``: whether there are more)."""

    total: int
    by_status: dict[str, int]
    failed_indexes: tuple[int, ...] = ()
    failed_more: bool = False


@dataclass(frozen=True, slots=True)
class MapInstanceRow:
    """One instance of a mapped task, as a page of instances lists it (no output)."""

    index: int
    task_id: str
    status: TaskStatus
    attempt: int
    max_attempts: int
    error: str | None
    worker_id: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: str
    tenant: str
    package: str
    workflow_name: str
    workflow_version: str
    status: ExecutionStatus
    input_context: str | None
    final_context: str | None
    error: str | None
    tasks_total: int
    tasks_remaining: int
    tasks_failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    execution_id: str
    task_id: str
    task_index: int
    status: TaskStatus
    attempt: int
    max_attempts: int
    recovery_count: int
    error: str | None
    error_traceback: str | None
    skip_reason: str | None
    retry_at: float | None
    worker_id: str | None
    heartbeat_at: float | None
    started_at: float | None
    finished_at: float | None
    #: The task's dependencies in declared order, as stored (JSON; None for runs created
    #: before they were stored): see :attr:`dependencies`. Decoded only when asked for.
    dependencies_json: str | None = None
    #: A mapped task's number of instances (None: not mapped, or not expanded yet).
    map_total: int | None = None

    @property
    def dependencies(self) -> tuple[str, ...] | None:
        """The task's dependencies in declared order (None for runs created before they
        were stored: take them from the workflow)."""
        text = self.dependencies_json
        return None if text is None else tuple(json.loads(text))

    @property
    def claimed_by(self) -> str | None:
        """The old name of :attr:`worker_id` (the worker holding the task's claim)."""
        return self.worker_id


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One finished attempt of a task. ``outcome`` is completed, failed (retried or not),
    skipped, or lost (its worker stopped responding and the task was taken back). ``id`` is
    0 for a task's current completed attempt, which its own row holds."""

    id: int
    execution_id: str
    task_id: str
    attempt: int
    recovery: int
    outcome: str
    worker_id: str | None
    started_at: float | None
    finished_at: float
    error: str | None
    error_traceback: str | None
    skip_reason: str | None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    execution_id: str
    task_id: str | None
    event: str
    attempt: int | None
    detail: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class StaleClaim:
    """A running task whose worker's heartbeat is older than the threshold."""

    row_id: int
    execution_id: str
    task_id: str
    recovery_count: int
    attempt: int
    workflow_name: str
    workflow_version: str
    claim_token: str


@dataclass(frozen=True, slots=True)
class PackageRow:
    """A registered package (without its archive bytes)."""

    id: str
    tenant: str
    package: str
    version: str
    sha256: str
    fingerprint: str
    metadata: str
    manifest: str
    signer: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker (a process that executes tasks), as it last reported itself."""

    id: str
    host: str
    pid: int
    status: str
    started_at: float
    last_heartbeat: float
    running_tasks: int
    max_tasks: int
    version: str
    stopped_at: float | None
