"""The workflows of ``bench/ui.py``, defined in the ``cloacina serve`` process it starts
(``--module bench/ui_flows.py``) and in the bench's own process (which runs the big ones).

- ``grid_N`` (N = 1,000 and 10,000): layers of WIDTH trivial tasks, each depending on two
  tasks of the layer before (a realistic, crossing DAG, not a plain fan-out).
- ``gated``: GATED tasks in a line, each waiting until the file ``go-<i>`` appears in the
  directory ``$CLOACINA_UI_BENCH_GATES`` names, so the bench decides when each status
  changes and can time how long the browser takes to show it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # bench/workloads.py, next to this file

WIDTH = 100
GATED = 40
SIZES = (1_000, 10_000)


def grid(size: int) -> None:
    def body(context: workloads.Context) -> None:
        return None

    tasks: list[tuple[str, list[str], workloads.TaskFn]] = []
    for n in range(size):
        layer, i = divmod(n, WIDTH)
        deps = [] if layer == 0 else [f"t{layer - 1}_{i}", f"t{layer - 1}_{(i + 1) % WIDTH}"]
        fn = (lambda: lambda context: body(context))()  # a fresh function per task
        tasks.append((f"t{layer}_{i}", deps, fn))
    workloads.build_workflow(f"grid_{size}", tasks)


def gate(i: int) -> workloads.TaskFn:
    def body(context: workloads.Context) -> None:
        flag = Path(os.environ.get("CLOACINA_UI_BENCH_GATES", ".")) / f"go-{i}"
        deadline = time.monotonic() + 120
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.002)

    return body


def define() -> None:
    from cloacina.model.workflow import catalog

    for size in SIZES:
        if catalog.find(f"grid_{size}") is None:
            grid(size)
    if catalog.find("gated") is None:
        workloads.build_workflow(
            "gated", [(f"g{i}", [f"g{i - 1}"] if i else [], gate(i)) for i in range(GATED)]
        )


define()
