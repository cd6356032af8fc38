"""A cloacina worker in a process of its own, for the multi-process tests.

Usage: ``python worker_proc.py URL MODULE_DIR MODULE [SETTINGS_JSON]``

Puts ``MODULE_DIR`` on ``sys.path`` and runs :func:`cloacina.worker.serve` with the embedded
workflows of ``MODULE`` until SIGTERM/SIGINT (or SIGKILL, which is the point of most tests).
The timers are short by default (heartbeat 0.2 s, stale-claim threshold 1.5 s, poll 0.2 s);
``SETTINGS_JSON`` overrides them and adds any other ``DefaultRunner`` keyword. Prints
``ready <runner id>`` on stdout once the worker is claiming work.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

DEFAULTS: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "stale_claim_threshold": 1.5,
    "poll_interval": 0.2,
    "shutdown_grace": 5.0,
}


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    url, module_dir, module = argv[1:4]
    settings = {**DEFAULTS, **(json.loads(argv[4]) if len(argv) == 5 else {})}
    sys.path.insert(0, module_dir)
    logging.basicConfig(
        level=logging.WARNING,
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )

    from cloacina.runner import DefaultRunner
    from cloacina.worker import serve

    def ready(runner: DefaultRunner) -> None:
        print(f"ready {runner.worker_id}", flush=True)

    return serve(url, modules=[module], on_ready=ready, **settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
