"""The workflows of ``bench/http_api.py``, defined in the ``cloacina serve`` process it starts
(``--module bench/http_flows.py``) and in the bench's own process (for the embedded figure).

- ``chain3``: bench/workloads.py's chain3 (the seed's pipeline, the peers' task bodies).
- ``ticker``: TICKS tasks in a line, each sleeping TICK_S: its events come one by one, far
  enough apart that a stream listener sees each arrive live.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads  # bench/workloads.py, next to this file

TICKS = 5
TICK_S = 0.02


def define() -> None:
    """Define chain3 and ticker in this process (once)."""
    from cloacina.model.workflow import catalog

    if catalog.find("chain3") is None:
        workloads.define_chain3()
    if catalog.find("ticker") is None:

        def tick(key: str) -> workloads.TaskFn:
            def body(context: workloads.Context) -> None:
                time.sleep(TICK_S)
                context.set(key, True)

            return body

        workloads.build_workflow(
            "ticker",
            [(f"t{i}", [f"t{i - 1}"] if i else [], tick(f"t{i}")) for i in range(TICKS)],
        )


define()
