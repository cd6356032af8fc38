"""An ``async def`` body cancelled before its first step (its run cancelled at once, a
shutdown) leaves no coroutine behind that was never awaited."""

from __future__ import annotations

import asyncio
import gc
import warnings

from cloacina import Context, task
from cloacina.engine.executor import Job, run_async
from cloacina.store.records import Claim
from cloacina.taskinfo import TaskInfo


@task
async def nap(context: Context) -> None:
    await asyncio.sleep(10)


def test_a_body_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    claim = Claim(1, "run", "nap", 1, 0, "token", "wf", "v1", 0.0)
    info = TaskInfo("run", "nap", "wf", "public::embedded::wf::nap", 1, 0)
    job = Job(claim, nap, ["{}"], info)

    async def scenario() -> None:
        runner = asyncio.ensure_future(run_async(job))
        await asyncio.sleep(0)  # run_async starts the body's task, which has not run yet
        assert job.body_task is not None and not job.body_task.done()
        runner.cancel()  # the engine cancels: the body's task goes before its first step
        try:
            await runner
        except asyncio.CancelledError:
            pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(scenario())
        gc.collect()
    unawaited = [w for w in caught if "never awaited" in str(w.message)]
    assert unawaited == [], [str(w.message) for w in unawaited]
