"""The web UI's figures (issue 11, "Must reach") in a real headless browser, in one command.

    python bench/ui.py                       # 5 loads of each big run page, 40 live changes
    python bench/ui.py --repeat 3 --json bench/out/ui.json --shots bench/out/ui

What it does, on loopback:

1. A fresh SQLite file. In this process, one run each of ``grid_1000`` and ``grid_10000``
   (bench/ui_flows.py: layers of 100 tasks, each depending on two of the layer before),
   executed to the end. An admin key made with the CLI; ``cloacina serve`` started in a
   subprocess with ``--module bench/ui_flows.py``.
2. Debian's Chromium (``/usr/bin/chromium``, headless) driven by Playwright signs in, then
   opens each big run's page ``--repeat`` times in a fresh tab, and records, from the tab's
   navigation start: **first meaningful paint** (the page's script has drawn the graph, the
   task list and the Gantt chart: ``#run-live`` gets ``data-loaded``); **interactive** (a
   click on the first task row, sent as soon as the page is drawn, is dispatched to the page:
   the main thread is free for input); the time until that task's panel is shown; and the
   tab's **JS heap** (``Runtime.getHeapUsage`` over CDP, used size, no forced GC). It also
   scrolls the task list to its end and checks the last task's row is drawn.
3. **Live status latency**: a run of ``gated`` (40 tasks in a line, each waiting for a file
   the bench creates) is opened; the bench releases the tasks one by one, 150 ms apart. In
   the page, a MutationObserver notes when each graph node's ``data-status`` changes (wall
   clock); the run's own record gives when each task started and finished (stamped just
   before the transaction that commits it, so the figure errs high). Latency = shown -
   committed, for every observed change to ``running`` and ``completed``: p50, p95, max.

No peer here has a web UI that can run on this machine (cloaca has none; DBOS's console is a
hosted service), so the figures stand beside the issue's targets only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import ui_flows  # noqa: E402  (bench/ui_flows.py: defines the workflows)
from http_api import make_admin_key, serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

#: Records, from the tab's navigation start, when the run page is drawn and when the first
#: click reaches the page (Playwright injects it before the page's own scripts).
TIMING = """
window.__bench = {loaded: null, clicked: null};
new MutationObserver(function () {
  var box = document.getElementById("run-live");
  if (box && box.getAttribute("data-loaded") && window.__bench.loaded === null)
    window.__bench.loaded = performance.now();
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-loaded"]});
document.addEventListener("click", function () {
  if (window.__bench.clicked === null) window.__bench.clicked = performance.now();
}, true);
"""

#: Notes every change of a graph node's status with the wall-clock time it happened.
STATUS_WATCH = """
window.__seen = [];
document.addEventListener("DOMContentLoaded", function () {
  new MutationObserver(function (records) {
    var now = performance.timeOrigin + performance.now();
    records.forEach(function (r) {
      var task = r.target.getAttribute("data-task");
      if (task) window.__seen.push([task, r.target.getAttribute("data-status"), now]);
    });
  }).observe(document.getElementById("graph"),
             {subtree: true, attributes: true, attributeFilter: ["data-status"]});
});
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def open_big_run(context: Any, execution_id: str, size: int, shot: Path | None) -> dict[str, float]:
    page = context.new_page()
    page.add_init_script(TIMING)
    cdp = context.new_cdp_session(page)
    page.goto(f"/runs/{execution_id}")
    page.wait_for_selector("#run-live[data-loaded=true]", timeout=60_000)
    page.click("#task-rows tr[data-task]")
    page.wait_for_function("window.__bench.clicked !== null")
    page.wait_for_selector("#task-panel:not([hidden]) h2", timeout=30_000)
    panel = page.evaluate("performance.now()")
    timing = page.evaluate("window.__bench")
    heap = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
    # The list is windowed: scrolled to its end, the last task's row is drawn.
    page.eval_on_selector("#task-box", "box => { box.scrollTop = box.scrollHeight; }")
    last = f"t{size // ui_flows.WIDTH - 1}_{ui_flows.WIDTH - 1}"
    page.wait_for_selector(f'#task-rows tr[data-task="{last}"]', timeout=10_000)
    if shot is not None:
        page.eval_on_selector("#task-box", "box => { box.scrollTop = 0; }")
        page.screenshot(path=str(shot), full_page=False)
    page.close()
    return {
        "paint_ms": timing["loaded"],
        "interactive_ms": timing["clicked"],
        "panel_ms": panel,
        "heap_mb": heap,
    }


def status_latency(context: Any, base: str, key: str, gates: Path) -> dict[str, float]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(
        f"{base}/api/v1/executions", headers=headers, json={"workflow": "gated", "context": {}}
    )
    answer.raise_for_status()
    execution_id = answer.json()["execution_id"]
    page = context.new_page()
    page.add_init_script(STATUS_WATCH)
    page.goto(f"/runs/{execution_id}")
    page.wait_for_selector("#run-live[data-loaded=true]", timeout=30_000)
    time.sleep(0.5)
    for i in range(ui_flows.GATED):
        (gates / f"go-{i}").touch()
        time.sleep(0.15)
    deadline = time.monotonic() + 60
    while True:
        run = httpx.get(f"{base}/api/v1/executions/{execution_id}", headers=headers).json()
        if run["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if run["status"] != "completed":
        raise SystemExit(f"the gated run ended {run['status']}: {run.get('error')}")
    time.sleep(0.5)
    seen: list[list[Any]] = page.evaluate("window.__seen")
    page.close()
    tasks = run["tasks"]
    lags = []
    for task_id, status, at_ms in seen:
        field = {"running": "started_at", "completed": "finished_at"}.get(status)
        stamp = tasks.get(task_id, {}).get(field) if field else None
        if stamp:
            lags.append(at_ms - epoch(stamp) * 1000)
    if len(lags) < ui_flows.GATED:
        raise SystemExit(f"only {len(lags)} status changes were seen live in the browser")
    return {
        "changes": len(lags),
        "p50_ms": statistics.median(lags),
        "p95_ms": pct(lags, 0.95),
        "max_ms": max(lags),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="loads of each big run's page")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--shots", type=Path, help="save a screenshot of each page here")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"bench/ui.py needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from cloacina import DefaultRunner

    work = Path(tempfile.mkdtemp(prefix="cloacina-ui-bench-"))
    gates = work / "gates"
    gates.mkdir()
    os.environ["CLOACINA_UI_BENCH_GATES"] = str(gates)  # the server inherits it
    url = f"sqlite:///{work / 'ui.db'}"
    runs: dict[int, str] = {}
    with DefaultRunner(url) as runner:
        for size in ui_flows.SIZES:
            started = time.perf_counter()
            result = runner.execute(f"grid_{size}", {}, timeout=600)
            took = time.perf_counter() - started
            if str(result.status) != "completed" or len(result.tasks) != size:
                raise SystemExit(f"grid_{size}: {result.status} {result.error}")
            runs[size] = result.execution_id
            print(f"set up: grid_{size} ran in {took:.1f} s", flush=True)
    key = make_admin_key(url)
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    with (
        serve(url, key, work / "serve.log", module=BENCH_DIR / "ui_flows.py") as base,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(60_000)
        page = context.new_page()
        page.goto("/")
        page.fill("#api_key", key)
        page.press("#api_key", "Enter")
        page.wait_for_url("**/runs")
        page.close()
        for size in ui_flows.SIZES:
            loads = []
            for rep in range(args.repeat):
                shot = args.shots / f"run-{size}.png" if args.shots and rep == 0 else None
                loads.append(open_big_run(context, runs[size], size, shot))
            figures[f"run_page_{size}"] = {
                k: statistics.median(load[k] for load in loads) for k in loads[0]
            } | {f"{k}_max": max(load[k] for load in loads) for k in loads[0]}
            print(f"run page of {size:,} tasks: {figures[f'run_page_{size}']}", flush=True)
        figures["status_latency"] = status_latency(context, base, key, gates)
        browser.close()
    small, big = figures["run_page_1000"], figures["run_page_10000"]
    live = figures["status_latency"]
    rows = [
        ("1,000-task run page: first meaningful paint", small["paint_ms"], "ms", 1000, "<="),
        ("10,000-task run page: interactive", big["interactive_ms"], "ms", 3000, "<="),
        ("10,000-task run page: JS heap", big["heap_mb"], "MB", 300, "<="),
        ("task status change on screen, p95", live["p95_ms"], "ms", 200, "<="),
    ]
    print()
    print(f"{'figure':48} {'value':>10}   {'target':>10}  met")
    for label, value, unit, target, _ in rows:
        met = "yes" if value <= target else "NO"
        print(f"{label:48} {value:>7.0f} {unit:2}   <= {target:>5} {unit:2}  {met}")
    print(
        f"(medians of {args.repeat} loads; 10,000-task paint {big['paint_ms']:.0f} ms, panel "
        f"{big['panel_ms']:.0f} ms; status latency p50 {live['p50_ms']:.0f} ms, max "
        f"{live['max_ms']:.0f} ms over {live['changes']} changes)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(value <= target for _, value, _, target, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
