"""The engine: one thread with an asyncio loop that claims, dispatches and completes.

Push-based: when a task finishes, its outcome is recorded and its ready dependents are claimed
in the same transaction and dispatched at once. Outcomes that arrive together are committed
together (group commit). A short poll, heartbeats and stale-claim recovery run on timers.

The engine's loop is the only one that waits on the database. Task bodies never share it:
``def`` tasks run on a thread pool, ``async def`` tasks on a second loop of their own
(started on first use), packaged tasks in their package's processes (the engine's loop only
serves the pipes to them), so a contended database lock never stalls a body or an async
task's timeout. Every claim the engine takes ends on one path: as an outcome (a failure if the
body's machinery itself broke), or handed back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cloacina.clock import SYSTEM_CLOCK, Clock, SystemClock
from cloacina.engine import capture
from cloacina.engine.alert_delivery import AlertDeliverer
from cloacina.engine.alerts import outbox_items
from cloacina.engine.dispatch import LOG_FLUSH_INTERVAL, Dispatch, RunningTask
from cloacina.engine.executor import (
    Job,
    Outcome,
)
from cloacina.engine.fanout import MapClaims, is_map_parent
from cloacina.engine.liveness import Liveness
from cloacina.engine.scheduler import INPUT_KEY, Effects, RunCache, Scheduler
from cloacina.engine.subworkflows import SubClaims, is_sub_parent
from cloacina.engine.threads import TaskThreads
from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.model.workflow import Workflow, WorkflowCatalog
from cloacina.observability.metrics import EngineMetrics, metrics_available
from cloacina.registry.loader import PackageLoader
from cloacina.settings import Settings
from cloacina.store.base import Store, WriteTx
from cloacina.store.records import (
    Claim,
    NewEvent,
    NewLogChunk,
    ReadyTask,
    WorkflowKey,
)
from cloacina.taskinfo import TaskInfo

log = logging.getLogger("cloacina.engine")

#: Low-priority runs remembered at most (see Engine._note_low).
LOW_RUNS_MAX = 100_000
#: How long past ``shutdown_grace`` a shutdown waits for package processes to close.
SHUTDOWN_SLACK = 15.0


#: The engine reads its timing and capacity from the one settings object (its defaults,
#: bounds and checks live there); the old name stays for code that imports it.
EngineSettings = Settings


@dataclass
class _Waiters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_run: dict[str, list[threading.Event]] = field(default_factory=dict)


class Engine(Dispatch, Liveness, MapClaims, SubClaims):
    """Runs the tasks of workflow executions stored in ``store``."""

    def __init__(
        self,
        store: Store,
        catalog: WorkflowCatalog,
        worker_id: str,
        settings: EngineSettings,
        tenant: str = DEFAULT_TENANT,
        *,
        loader: PackageLoader | None = None,
        on_poll: Callable[[], object] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        #: Every time-based decision (retry delays, schedules) reads this clock. The
        #: system clock is read as ``time.time`` itself: the hot path stays as it was.
        self.clock = clock
        self._now: Callable[[], float] = time.time if isinstance(clock, SystemClock) else clock.now
        self._unjump: Callable[[], None] = lambda: None
        self.catalog = catalog
        self.worker_id = worker_id
        self.settings = settings
        self.tenant = tenant
        self.loader = loader
        self._on_poll = on_poll
        self.cache = RunCache()
        self.scheduler = Scheduler(self.cache, tenant=tenant, max_map_items=settings.max_map_items)
        #: Delivers alerts (the outbox's webhooks, this runner's callbacks) on threads.
        self.alerter = AlertDeliverer(store, worker_id, settings)
        self.free = settings.max_concurrent_tasks
        self._pool = TaskThreads(settings.max_concurrent_tasks)
        self._running: dict[str, RunningTask] = {}
        self._outcomes: list[Outcome] = []
        # Outcomes from task threads and the task loop, for the engine loop (None: the body
        # was cancelled by the engine, nothing to record).
        self._inbox: list[tuple[RunningTask, Outcome | None]] = []
        self._inbox_lock = threading.Lock()
        self._inbox_signalled = False
        self._cycle_scheduled = False
        self._waiters = _Waiters()
        # Called (on the engine's thread) after a cycle committed events: the server's
        # event hub reads them at once instead of at its next poll. Copied on change.
        self._commit_listeners: tuple[Callable[[], None], ...] = ()
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="cloacina-engine", daemon=True)
        # The loop of async and packaged task bodies, started on first use.
        self._task_loop: asyncio.AbstractEventLoop | None = None
        self._task_thread: threading.Thread | None = None
        self._polling_hook = False  # the poll hook runs on a thread; one at a time
        self._started = threading.Event()
        self._stopped = threading.Event()
        self.last_error: BaseException | None = None
        self._keys: list[WorkflowKey] = []
        self._unlisten: Callable[[], None] = lambda: None
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name="cloacina-heartbeat", daemon=True
        )
        self._prune_thread = threading.Thread(
            target=self._prune_loop, name="cloacina-retention", daemon=True
        )
        # Since when (monotonic) our heartbeats have been reaching the database without a
        # break; None while they fail. Recovery waits for a full threshold of it.
        self._healthy_since: float | None = None
        self._store_failures = 0  # consecutive failed cycles (for the back-off)
        self._one_at_a_time = False  # the database refused a batch: find the outcome it refuses
        self._refusals: dict[str, int] = {}  # claim token -> times the database refused it
        self._orphans: list[Claim] = []  # claims of failed cycles, perhaps committed anyway
        self._maybe_ready = True  # whether a search for ready tasks may find something
        self._expanded = False  # a mapped task made instances this cycle (look for them)
        self._expansions = {}  # mapped tasks whose instances are being made (MapClaims)
        self._grown = None
        # Runs seen with a negative priority (a backfill's), whose next tasks go through the
        # queue (by priority) instead of being claimed directly; see _split_low.
        self._low_runs: set[str] = set()
        self._keys_generation = -1
        # Runs that wait on a version of a known workflow whose code this worker lacks.
        self._next_code_check = 0.0
        self._waiting_for_code: set[str] = set()
        self._warned_for_code: set[str] = set()
        # Task output waiting for the next write (see Dispatch), and whether this engine
        # routes bodies' output to it (from start() to shutdown()).
        self._log_rows: list[NewLogChunk] = []
        self._capturing = False
        #: Counters and histograms (prometheus-client installed: from start(), or
        #: enable_metrics() for an engine that is never started).
        self.metrics: EngineMetrics | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def enable_metrics(self) -> EngineMetrics | None:
        """Collect metrics from now on (None: prometheus-client is not installed)."""
        if self.metrics is None and metrics_available():
            self.metrics = EngineMetrics()
        return self.metrics

    def start(self) -> None:
        self.enable_metrics()
        if self.settings.max_log_bytes:
            capture.install()
            self._capturing = True
        self._thread.start()
        self._started.wait()
        # Other processes' work (new runs, ready tasks) wakes us at once where the database
        # can say so (PostgreSQL NOTIFY); the poll stays as the fallback.
        self._unlisten = self.store.listen(self.wake, self.notify_external)
        # A clock a test moves: delayed retries (and schedules) fall due when it jumps.
        self._unjump = self.clock.on_jump(self._clock_jumped)
        # The runner registered this worker (a heartbeat) just before starting us.
        self._healthy_since = time.monotonic()
        self._heartbeat_thread.start()
        self.alerter.start()
        if self.settings.retention is not None:
            self._prune_thread.start()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        loop = self._loop
        loop.call_soon(self._started.set)
        loop.call_soon(self._request_cycle, True)
        loop.call_later(self.settings.poll_interval, self._poll_tick)
        loop.call_later(self._recovery_interval(), self._recovery_tick)
        loop.call_later(LOG_FLUSH_INTERVAL, self._log_flush_tick)
        try:
            loop.run_forever()
        finally:
            self._stopped.set()

    def shutdown(self, wait: bool = True) -> None:
        """Stop claiming; let running tasks finish (up to the grace period) and record them."""
        if not self._thread.is_alive():
            self._pool.shutdown()
            if not self._loop.is_closed():
                self._loop.close()
            return
        self._unlisten()
        self._unjump()
        done = threading.Event()
        self._loop.call_soon_threadsafe(self._begin_stop, done, wait)
        # Bounded: a shutdown must end even if closing the packages' processes hangs.
        if not done.wait(self.settings.shutdown_grace + SHUTDOWN_SLACK):
            log.error(
                "shutdown: running tasks and package processes did not finish within the grace "
                "period and %ss more; stopping anyway (their claims are handed back)",
                SHUTDOWN_SLACK,
            )
        # Only now: while running tasks finish within the grace period, our heartbeats must
        # go on, or other workers would take those tasks back and run them a second time.
        self._heartbeat_stop.set()
        self.alerter.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._stop_task_loop()
        self._pool.shutdown()
        self._loop.close()
        self._flush_logs()  # the loop has ended: what is left of every attempt's output
        if self._capturing:
            self._capturing = False
            capture.uninstall()

    def _begin_stop(self, done: threading.Event, wait: bool) -> None:
        self._stopping = True
        deadline = time.monotonic() + (self.settings.shutdown_grace if wait else 0.0)

        def check() -> None:
            if self._outcomes:
                self._cycle()
            if not self._running or time.monotonic() >= deadline:
                for running in self._running.values():
                    if running.future is not None:
                        running.future.cancel()
                if self.loader is None:
                    done.set()
                else:  # the packages' processes are served on this loop: close them here
                    closing = self._loop.create_task(self.loader.close())
                    closing.add_done_callback(lambda _t: done.set())
            else:
                self._loop.call_later(0.01, check)

        check()

    # ---- wake-ups --------------------------------------------------------------------------
    def wake(self) -> None:
        """Ask the engine to look for ready tasks (thread-safe)."""
        if not self._started.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(self._request_cycle, True)
        except RuntimeError:  # loop closed: the runner is shutting down
            pass

    def _clock_jumped(self) -> None:
        """The clock jumped (a test moved it): what it made due is looked for at once."""
        self.wake()

    def _request_cycle(self, look: bool = False) -> None:
        """Run a cycle soon; ``look`` says ready work may exist that this loop did not make."""
        if look:
            self._maybe_ready = True
        if not self._cycle_scheduled:
            self._cycle_scheduled = True
            self._loop.call_soon(self._cycle)

    def _poll_tick(self) -> None:
        if self._stopping:
            return
        if self._on_poll is not None and not self._polling_hook:
            # E.g. pick up packages registered by other processes: that may verify and
            # import a package, so on a thread of its own, never holding up the cycle.
            self._polling_hook = True
            self._loop.run_in_executor(None, self._run_poll_hook)
        try:
            # A cheap read first: an idle runner should not take the write lock every tick.
            if self.free > 0 and self.store.has_ready(self._now(), self._workflow_keys()):
                self._request_cycle(True)
        except Exception as exc:
            log.warning("poll failed: %s", exc)
        # Jittered, so that many workers polling one database do not move in lockstep.
        self._loop.call_later(
            self.settings.poll_interval * random.uniform(0.8, 1.2), self._poll_tick
        )

    def _run_poll_hook(self) -> None:
        assert self._on_poll is not None
        try:
            self._on_poll()
        except Exception as exc:
            log.warning("poll hook failed: %s", exc)
        finally:
            self._polling_hook = False

    # ---- the cycle: complete outcomes, claim, dispatch ---------------------------------------
    def _workflow_keys(self) -> list[WorkflowKey]:
        generation = self.catalog.generation
        if generation != self._keys_generation:
            self._keys = [(wf.name, wf.version) for wf in self.catalog.all_versions()]
            self._keys_generation = generation
        return self._keys

    def _cycle(self) -> None:
        self._cycle_scheduled = False
        outcomes, self._outcomes = self._outcomes, []
        if self._one_at_a_time and len(outcomes) > 1:
            outcomes, self._outcomes = outcomes[:1], outcomes[1:]
        if len(outcomes) > 1:
            # One order for every worker (runs, then tasks), so that what a backend cannot
            # batch is done in the order the runs were locked.
            outcomes.sort(key=lambda o: (o.claim.execution_id, o.claim.row_id))
        want = 0 if self._stopping else self.free
        if (
            not outcomes
            and not self._orphans
            and not self._expansions
            and (want <= 0 or not self._maybe_ready)
        ):
            return
        now = self._now()
        fx = Effects()
        claims: list[Claim] = []
        jobs: list[Job] = []
        searched = False
        try:
            with self.store.write() as tx:
                orphans = self._orphans
                runs = {o.claim.execution_id for o in outcomes}
                runs.update(c.execution_id for c in orphans)
                if runs:
                    tx.lock_runs(sorted(runs))
                if orphans:
                    # Claims of a cycle whose commit failed may have been committed all the
                    # same (the connection died after COMMIT reached the server), and claims
                    # whose outcome could not be stored: nobody runs them, so hand back
                    # those that hold.
                    self._hand_back(tx, orphans, None, now, fx)
                if outcomes:
                    items = []
                    unknown = []
                    for outcome in outcomes:
                        wf = self._workflow(outcome.claim)
                        if wf is None:
                            unknown.append(outcome.claim)
                        else:
                            items.append((wf, outcome))
                    if unknown:  # its workflow left the catalog meanwhile: someone else's
                        self._hand_back(tx, unknown, "its workflow is no longer loaded", now, fx)
                    self.scheduler.apply_all(tx, items, now, fx)
                # Dependents this cycle made runnable are claimed straight away (no search);
                # free slots left over look for work that did not come from this cycle: new
                # runs, retries, recoveries, resumed runs, other processes' runs.
                ready: list[ReadyTask] = fx.ready
                low: list[ReadyTask] = []
                if self._low_runs and ready:
                    ready, low = self._split_low(ready)
                direct, rest = ready[:want], ready[want:]
                if low:
                    rest = rest + low
                if rest:
                    tx.mark_ready([r.row_id for r in rest])
                    self._maybe_ready = True
                search = want - len(direct) if self._maybe_ready else 0
                if direct or search > 0:
                    searched = search > 0
                    claims, found = tx.claim_next(
                        direct,
                        search,
                        self._workflow_keys(),
                        self.worker_id,
                        now,
                    )
                    if searched and len(found) < search:
                        self._maybe_ready = False
                    for claim in found:
                        if claim.priority < 0:
                            self._note_low(claim.execution_id)
                    claims.extend(found)
                jobs = self._jobs_for(tx, claims)
                if len(jobs) < len(claims):  # their workflow left the catalog meanwhile
                    taken = {job.claim.claim_token for job in jobs}
                    unknown = [c for c in claims if c.claim_token not in taken]
                    self._hand_back(tx, unknown, "its workflow is no longer loaded", now, fx)
                if any(is_map_parent(job) for job in jobs):
                    jobs = self._expand_maps(tx, jobs, now, fx)
                if any(is_sub_parent(job) for job in jobs):  # start or settle child runs
                    jobs = self._start_children(tx, jobs, now, fx)
                if self._expansions:  # the next batch of a big map's instances
                    self._grow_maps(tx)
                for job in jobs:
                    claim = job.claim
                    if claim.map_index is not None:
                        continue  # an instance: its mapped task's events tell the story
                    fx.events.append(
                        NewEvent(
                            claim.execution_id,
                            claim.task_id,
                            "task_started",
                            claim.attempt,
                            None,
                            now,
                        )
                    )
                if fx.alerts:  # a run failed: its alert commits with it
                    tx.enqueue_alerts(outbox_items(fx.alerts), now)
                tx.add_events(fx.events)
                if self._log_rows:  # the output of attempts that ended, with their outcomes
                    tx.add_task_logs(self._log_rows)
        except Exception as exc:
            self._grown = None
            self.cache.discard_staged()
            self._orphans.extend(claims)
            self._on_store_error(exc, outcomes)
            return
        self.cache.commit_staged()
        self._maps_grown()
        self._orphans = []
        self._log_rows = []
        self._store_failures = 0
        if self.metrics is not None:  # in-memory counts of what just committed
            self.metrics.record(fx.events, now, outcomes=outcomes, ready=fx.ready, jobs=jobs)
        if fx.events and self._commit_listeners:
            for listener in self._commit_listeners:
                try:
                    listener()
                except Exception:  # a listener's failure is its own, never the cycle's
                    log.exception("a commit listener failed")
        if self._refusals:  # rare: only after the database refused an outcome
            for outcome in outcomes:
                self._refusals.pop(outcome.claim.claim_token, None)
        if self._one_at_a_time:
            if self._outcomes:
                self._request_cycle()
            else:
                self._one_at_a_time = False
        self.free -= len(jobs)
        for job in jobs:
            self._dispatch(job)
        for retry_at in fx.retry_at:
            # (A clock a test moves wakes the engine when it jumps, see _clock_jumped.)
            self._loop.call_later(
                max(0.0, retry_at - self._now()) + 0.001, self._request_cycle, True
            )
        if fx.alerts:  # before the waiters wake: a runner shut down at once still sends them
            self.alerter.raised(fx.alerts)
        if fx.finished_runs:
            self._notify_finished(fx.finished_runs)
        if self._expansions or (
            (searched or self._expanded) and self._maybe_ready and self.free > 0
        ):
            self._request_cycle()  # there may be more ready work than free slots took
        self._expanded = False

    def _hand_back(
        self, tx: WriteTx, claims: list[Claim], why: str | None, now: float, fx: Effects
    ) -> None:
        """Put claims this engine will not run back to ``ready`` (those that still hold)."""
        for claim in tx.hand_back(claims):
            if why is not None:
                log.warning(
                    "handing back task %s of execution %s: %s",
                    claim.task_id,
                    claim.execution_id,
                    why,
                )
            fx.events.append(
                NewEvent(claim.execution_id, claim.task_id, "task_handed_back", None, None, now)
            )
        self._maybe_ready = True

    def _workflow(self, claim: Claim) -> Workflow | None:
        return self.catalog.find(claim.workflow_name, claim.workflow_version)

    def _jobs_for(self, tx: WriteTx, claims: list[Claim]) -> list[Job]:
        # The outputs a claim needs that this process did not see made: one query for all.
        # (Claims are filtered by the workflow versions this runner knows.)
        known = [(claim, wf) for claim in claims if (wf := self._workflow(claim)) is not None]
        missing: dict[str, dict[str, None]] = {}  # an ordered set of task ids per run
        for claim, wf in known:
            eid = claim.execution_id
            if claim.map_index is not None:
                continue  # an instance: its input is its mapped task's (see Fanout)
            for dep in wf.tasks[claim.task_id].dependencies:
                if self.cache.get(eid, dep) is None:
                    missing.setdefault(eid, {})[dep] = None
        loaded: dict[str, dict[str, str]] = {}
        if missing:
            loaded = tx.get_outputs_of_runs({eid: list(ids) for eid, ids in missing.items()})
            for eid, outputs in loaded.items():
                for task_id, context in outputs.items():
                    self.cache.put(eid, task_id, context)  # other tasks of the run may need it
        # A rerun may merge a context over its first tasks' input (kept in its event): only
        # a task claimed again (attempt 2 on) can be one of those, so one read for those.
        again = sorted({claim.execution_id for claim, _wf in known if claim.attempt > 1})
        patches = tx.rerun_patches(again) if again else {}
        jobs: list[Job] = []
        for claim, wf in known:
            eid = claim.execution_id
            if claim.map_index is not None:  # an instance of a mapped task
                jobs.append(self._instance_job(tx, claim, wf))
                continue
            task = wf.tasks[claim.task_id]
            if task.dependencies:
                inputs: list[str] = []
                run_loaded = loaded.get(eid, {})
                for dep in task.dependencies:
                    output = self.cache.get(eid, dep) or run_loaded.get(dep)
                    if output is not None:  # a skipped or failed dependency has no output
                        inputs.append(output)
            else:
                text = self.cache.get(eid, INPUT_KEY) or claim.input_json
                if text is None:
                    text = tx.get_input(eid)
                    self.cache.put(eid, INPUT_KEY, text)
                inputs = [text]
            if patches and eid in patches and claim.task_id in patches[eid][0]:
                inputs.append(patches[eid][1])  # merged last: over the task's own input
            info = TaskInfo(
                execution_id=eid,
                task_id=claim.task_id,
                workflow_name=wf.name,
                namespace=str(wf.namespace(claim.task_id, self.tenant)),
                attempt=claim.attempt,
                recovery=claim.recovery_count,
            )
            jobs.append(Job(claim, task, inputs or ["{}"], info, origin=wf.origin))
        return jobs

    # ---- runs cancelled from outside -------------------------------------------------------
    def abandon_run(self, execution_id: str) -> None:
        """Stop caring about a cancelled run's running tasks (thread-safe)."""

        def abandon() -> None:
            for running in list(self._running.values()):
                if running.job.claim.execution_id == execution_id:
                    if running.future is not None:
                        running.future.cancel()
                        self._release(running)
                    elif self._release(running):
                        self._pool.mark_stuck()  # the body runs on; its result is discarded
            self.cache.drop(execution_id)
            self._request_cycle()

        if self._started.is_set():
            self._loop.call_soon_threadsafe(abandon)

    # ---- hearing of events ------------------------------------------------------------------
    def add_commit_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after each cycle that committed events (on the engine's
        thread: it must return at once, e.g. set an event); returns a function that removes
        it."""
        with self._waiters.lock:
            self._commit_listeners = (*self._commit_listeners, listener)

        def remove() -> None:
            with self._waiters.lock:
                self._commit_listeners = tuple(
                    fn for fn in self._commit_listeners if fn is not listener
                )

        return remove

    # ---- waiting for runs ------------------------------------------------------------------
    def add_waiter(self, execution_id: str) -> threading.Event:
        event = threading.Event()
        with self._waiters.lock:
            self._waiters.by_run.setdefault(execution_id, []).append(event)
        return event

    def remove_waiter(self, execution_id: str, event: threading.Event) -> None:
        with self._waiters.lock:
            events = self._waiters.by_run.get(execution_id)
            if events and event in events:
                events.remove(event)
                if not events:
                    del self._waiters.by_run[execution_id]

    def _notify_finished(self, finished: list[tuple[str, str]]) -> None:
        with self._waiters.lock:
            for execution_id, _status in finished:
                for event in self._waiters.by_run.pop(execution_id, []):
                    event.set()
        for execution_id, _status in finished:
            self.cache.drop(execution_id)
            if self._low_runs:
                self._low_runs.discard(execution_id)

    # ---- priority ----------------------------------------------------------------------------
    def _note_low(self, execution_id: str) -> None:
        """A run below fresh work (a backfill's): its next tasks go through the queue."""
        if len(self._low_runs) >= LOW_RUNS_MAX:  # runs that ended elsewhere are never dropped
            self._low_runs.clear()
        self._low_runs.add(execution_id)

    def _split_low(self, ready: list[ReadyTask]) -> tuple[list[ReadyTask], list[ReadyTask]]:
        """The dependents this cycle made runnable: those of fresh runs (claimed directly)
        and those of low-priority runs, which are marked ready instead, for the search (by
        priority) to take unless fresher work waits: a backfill's run in flight never holds
        a slot from a run submitted meanwhile for the rest of its chain."""
        low_runs = self._low_runs
        low = [r for r in ready if r.execution_id in low_runs]
        if not low:
            return ready, low
        return [r for r in ready if r.execution_id not in low_runs], low

    def notify_external(self, execution_id: str) -> None:
        """A run finished elsewhere (another process, or cancelled): wake its waiters
        (thread-safe)."""
        with self._waiters.lock:
            events = self._waiters.by_run.pop(execution_id, [])
        for event in events:
            event.set()
        # Outputs this engine kept of a run that ended elsewhere would be stale after a
        # rerun: forget them (no search for work: nothing became ready).
        self.forget_run(execution_id, look=False)

    def forget_run(self, execution_id: str, look: bool = True) -> None:
        """Drop the outputs of a run kept in memory (a rerun makes some of them stale) and,
        with ``look``, look for work (thread-safe)."""
        if not self._started.is_set():
            return

        def forget() -> None:
            self.cache.drop(execution_id)
            if look:
                self._request_cycle(True)

        try:
            self._loop.call_soon_threadsafe(forget)
        except RuntimeError:  # loop closed: the runner is shutting down
            pass

    def new_run(self, execution_id: str, input_json: str) -> None:
        """A run was scheduled: cache its input (so its roots need no query) and wake up."""

        if self.metrics is not None:  # now: a notified cycle may claim its roots before arrive()
            self.metrics.run_created(execution_id, self._now())

        def arrive() -> None:
            self.cache.put(execution_id, INPUT_KEY, input_json)
            self._request_cycle(True)

        if not self._started.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(arrive)
        except RuntimeError:  # the loop is closed: another runner will run it
            pass
