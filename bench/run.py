"""Run the standard benchmark workloads on cloacina and on its peers, side by side.

One command runs each workload on this project's engine (``bench/workloads.py`` under
``sys.executable``) and on the peers (cloaca 0.3.1, the Rust engine, and DBOS Transact
3.4.0, each from its own virtual environment), one subprocess after another on the same
machine, and prints a table per workload with the speed-up of cloacina over each peer
(> 1 means cloacina is faster) and the peak memory (RSS) of every process. chain3 and
fanout also run on the packaged form of the workflow (``workloads.py --packaged``: the same
tasks in a registered ``.cloacina`` package, run in the package's worker processes), beside
the embedded form: the packaged/embedded ratio, the first-run overhead of a package (worker
process start and import) against its 100 ms target, and the difference on later runs.

    python bench/run.py all                       # every workload, cloacina + both peers
    python bench/run.py chain3 wide --peers dbos  # some workloads, one peer
    python bench/run.py fanout --no-peers --n 800 # cloacina alone, a given size
    python bench/run.py all --repeat 3 --json bench/out/results.json
    python bench/run.py pg-scale                  # fanout on PostgreSQL, 1/2/4 worker processes

The shared machines are noisy: read the ratios, not the absolute times, and use
``--repeat`` (median of the repeats, runs interleaved across systems) when it matters.
The peer scripts live outside the repository (``--peers-dir``, default
``$CLOACINA_PEERS_DIR`` or ``/work/shared/peers``); their virtual environments are built by
their ``setup.sh`` when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SCENARIOS = ("chain3", "fanout", "wide", "chain100")
PG_SCALE = "pg-scale"  # bench/pg_scale.py: needs a PostgreSQL server, so not part of "all"
ALL_PEERS = ("cloaca", "dbos")
OURS = "cloacina"
OURS_PKG = "cloacina-packaged"  # the same workloads, packaged (workloads.py --packaged)
PACKAGED_SCENARIOS = ("chain3", "fanout")
LABELS = {OURS: "cloacina (embedded)", OURS_PKG: "cloacina (packaged)"}
PEER_LABELS = {"cloaca": "cloaca", "dbos": "DBOS"}

# Default sizes per scenario and system. Latency and rate figures do not depend much on n,
# so slow peers run fewer iterations (cloaca takes ~500 ms per chain3 run, DBOS fanout
# ~45 tasks/s); figures whose size matters (wide, chain100) use the same n everywhere.
DEFAULT_N: dict[str, dict[str, int]] = {
    "chain3": {OURS: 200, "cloaca": 10, "dbos": 50},
    "fanout": {OURS: 400, "cloaca": 80, "dbos": 40},
    "chain100": {OURS: 100, "cloaca": 100, "dbos": 100},
}
WIDE_SIZES = (100, 1_000, 10_000)
# wide at N=10,000 would take cloaca ~45 s and DBOS several minutes (~40-85 tasks/s there):
PEER_WIDE_MAX = 1_000
WIDE_GROWTH_TARGET = 12.0


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    lower_is_better: bool
    second_key: str
    second_label: str


METRICS: dict[str, Metric] = {
    "chain3": Metric("median_ms", "median ms/run", True, "p95_ms", "p95 ms"),
    "fanout": Metric("tasks_per_s", "tasks/s", False, "wall_s", "wall s"),
    "wide": Metric("tasks_per_s", "tasks/s", False, "wall_s", "wall s"),
    "chain100": Metric("ms_per_step", "ms/step", True, "wall_s", "wall s"),
}

DESCRIPTIONS: dict[str, str] = {
    "chain3": "collect_data -> process_data -> generate_report, runs one after another",
    "fanout": "root -> 10 leaves -> join (12 tasks), runs submitted from 8 threads",
    "wide": "N independent tasks -> join, one run",
    "chain100": "tasks in a line, one run (durability overhead of one step)",
}

# cloacina's targets from shared/BENCHMARKS.md: (figure, bound, bound is an upper limit)
TARGETS: dict[str, tuple[str, float, bool]] = {
    "chain3": ("median_ms", 2.0, True),
    "fanout": ("tasks_per_s", 3_000.0, False),
    "wide": ("tasks_per_s", 3_000.0, False),
    "chain100": ("ms_per_step", 0.5, True),
}
RSS_TARGET_MB = 200.0  # a 10,000-task run
FIRST_RUN_OVERHEAD_TARGET_MS = 100.0  # registering and running a package, its first run


@dataclass
class System:
    name: str
    python: str
    script: Path
    venv: Path | None = None
    setup: Path | None = None
    module: str | None = None
    available: bool = True
    note: str = ""
    extra: tuple[str, ...] = ()  # arguments added to every run of this system
    scenarios: tuple[str, ...] = SCENARIOS  # the workloads it runs


@dataclass
class Run:
    system: str
    scenario: str
    n: int
    repeat: int
    cmd: list[str]
    ok: bool = False
    returncode: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    process_wall_s: float = 0.0
    error: str | None = None
    stderr_tail: str = ""


err = Console(stderr=True, highlight=False)
# wide enough for the tables when the output goes to a file or a pipe
out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def is_ours(name: str) -> bool:
    return name in (OURS, OURS_PKG)


# ---------------------------------------------------------------------------------------------
# Systems and their environments
# ---------------------------------------------------------------------------------------------


def make_systems(
    peers: list[str], peers_dir: Path, skip_ours: bool, packaged: bool = True
) -> list[System]:
    systems: list[System] = []
    if not skip_ours:
        script = BENCH_DIR / "workloads.py"
        systems.append(System(OURS, sys.executable, script))
        if packaged:
            systems.append(
                System(
                    OURS_PKG,
                    sys.executable,
                    script,
                    extra=("--packaged",),
                    scenarios=PACKAGED_SCENARIOS,
                )
            )
    for peer in peers:
        venv = Path(f"/tmp/{peer}-peer")
        systems.append(
            System(
                name=peer,
                python=str(venv / "bin" / "python"),
                script=peers_dir / peer / "workloads.py",
                venv=venv,
                setup=peers_dir / peer / "setup.sh",
                module=peer,
            )
        )
    return systems


def ensure_peer(system: System) -> None:
    """Build the peer's virtual environment with its setup.sh if it is missing or broken."""
    assert system.venv and system.setup and system.module
    if not system.script.is_file():
        system.available, system.note = False, f"no script at {system.script}"
        return
    probe = [system.python, "-c", f"import {system.module}"]
    if Path(system.python).exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    err.print(f"[bold]setting up {system.name}[/] in {system.venv} (takes a while) ...")
    t = time.perf_counter()
    res = subprocess.run(["bash", str(system.setup), str(system.venv)], capture_output=True)
    if res.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        system.available = False
        tail = res.stderr.decode(errors="replace").strip().splitlines()[-5:]
        system.note = f"setup failed (rc={res.returncode}): " + " | ".join(tail)
        err.print(f"[red]{system.name}: {system.note}[/]")
    else:
        err.print(f"  {system.name} ready in {time.perf_counter() - t:.0f} s")


# ---------------------------------------------------------------------------------------------
# Running one workload in a subprocess
# ---------------------------------------------------------------------------------------------


def run_one(
    system: System, scenario: str, n: int, repeat: int, timeout: float, extra: list[str]
) -> Run:
    cmd = [system.python, str(system.script), scenario, "--n", str(n), *system.extra, *extra]
    run = Run(system.name, scenario, n, repeat, cmd)
    env = dict(os.environ)
    if not is_ours(system.name):
        for var in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
            env.pop(var, None)
    # Every process gets its own TMPDIR (the workloads put their SQLite file there), removed
    # afterwards; all systems therefore write to the same file system.
    with tempfile.TemporaryDirectory(prefix=f"bench-{system.name}-") as tmp:
        env["TMPDIR"] = tmp
        stdout_path, stderr_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
            t = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=so, stderr=se, env=env, cwd=tmp, start_new_session=True
            )
            timed_out = threading.Event()

            def kill() -> None:
                timed_out.set()
                # the process group of the process started just above
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                # wait4 gives this child's own resource usage: its peak RSS.
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # e.g. Ctrl-C: do not leave the workload running
                kill()
                os.waitpid(proc.pid, 0)
                raise
            finally:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            run.process_wall_s = round(time.perf_counter() - t, 3)
        run.returncode = proc.returncode
        run.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
        stdout = stdout_path.read_text(errors="replace")
        stderr = stderr_path.read_text(errors="replace")
    run.stderr_tail = "\n".join(stderr.strip().splitlines()[-40:])
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "system" in obj:
            run.figures = obj
            break
    if timed_out.is_set():
        run.error = f"timed out after {timeout:.0f} s"
    elif run.returncode != 0:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        run.error = f"exit {run.returncode}: {last[-1] if last else 'no stderr'}"
    elif not run.figures:
        run.error = "no JSON result on stdout"
    run.ok = run.error is None
    return run


# ---------------------------------------------------------------------------------------------
# Aggregation and tables
# ---------------------------------------------------------------------------------------------


@dataclass
class Agg:
    system: str
    label: str
    n: int
    figures: dict[str, float]
    spread: tuple[float, float] | None
    rss_mb: float | None
    runs: int
    error: str | None


def aggregate(runs: list[Run], metric: Metric) -> Agg:
    ok = [r for r in runs if r.ok]
    first = runs[0]
    if not ok:
        label = LABELS.get(first.system, first.system)
        return Agg(first.system, label, first.n, {}, None, None, 0, runs[-1].error)
    figs: dict[str, float] = {}
    for key, value in ok[0].figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            vals = [r.figures[key] for r in ok if isinstance(r.figures.get(key), int | float)]
            figs[key] = statistics.median(vals)
    primary = [r.figures[metric.key] for r in ok]
    spread = (min(primary), max(primary)) if len(ok) > 1 else None
    rss = [r.peak_rss_mb for r in ok if r.peak_rss_mb is not None]
    label = LABELS.get(first.system) or str(ok[0].figures.get("system", first.system))
    return Agg(
        first.system,
        label,
        first.n,
        figs,
        spread,
        statistics.median(rss) if rss else None,
        len(ok),
        None,
    )


def speedup(ours: Agg | None, peer: Agg, metric: Metric) -> float | None:
    if ours is None or metric.key not in ours.figures or metric.key not in peer.figures:
        return None
    a, b = ours.figures[metric.key], peer.figures[metric.key]
    if a <= 0 or b <= 0:
        return None
    return b / a if metric.lower_is_better else a / b


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def ratio_text(x: float | None) -> str:
    if x is None:
        return "—"
    style = "green" if x >= 1 else "red"
    return f"[{style}]{x:.1f}x[/]" if x >= 10 else f"[{style}]{x:.2f}x[/]"


def find(aggs: list[Agg], system: str) -> Agg | None:
    """The aggregate of ``system`` among ``aggs``, if it has figures."""
    return next((a for a in aggs if a.system == system and a.figures), None)


def add_rows(
    table: Table, aggs: list[Agg], metric: Metric, peers: list[str], packaged: bool
) -> None:
    """One row per system; our rows carry the speed-up over each peer (and packaged the
    packaged/embedded ratio of the figure), peer rows their RSS relative to ours."""
    ours = find(aggs, OURS)
    blank = [""] * (len(peers) + (1 if packaged else 0))
    for a in aggs:
        if not a.figures:
            table.add_row(a.label, f"{a.n:,}", f"[red]failed: {a.error}[/]", "", *blank, "", "")
            continue
        value = fmt(a.figures.get(metric.key))
        if a.spread:
            value += f" ({fmt(a.spread[0])}..{fmt(a.spread[1])})"
        cells = [a.label, f"{a.n:,}", value, fmt(a.figures.get(metric.second_key))]
        if is_ours(a.system):
            for peer in peers:
                other = find(aggs, peer)
                cells.append(ratio_text(speedup(a, other, metric)) if other else "—")
            if packaged:
                ratio = None
                if a.system == OURS_PKG and ours and ours.figures.get(metric.key):
                    ratio = a.figures[metric.key] / ours.figures[metric.key]
                cells.append(f"{ratio:.2f}" if ratio is not None else "")
            mem = "(ours)"
        else:
            cells += blank
            mem = "—"
            if ours and ours.rss_mb and a.rss_mb:
                mem = ratio_text(a.rss_mb / ours.rss_mb)
        table.add_row(*cells, fmt(a.rss_mb, 1), mem)


def new_table(title: str, metric: Metric, peers: list[str], packaged: bool) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("system", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column(metric.label, justify="right", no_wrap=True)
    table.add_column(metric.second_label, justify="right")
    for peer in peers:
        table.add_column(f"speed-up vs {PEER_LABELS.get(peer, peer)}", justify="right")
    if packaged:
        table.add_column("packaged/ embedded", justify="right")
    table.add_column("peak RSS MB", justify="right")
    table.add_column("RSS peer/ embedded", justify="right")
    return table


def target_line(scenario: str, ours: Agg | None, what: str = "") -> str:
    key, bound, lower = TARGETS[scenario]
    rel = "<=" if lower else ">="
    if ours is None or key not in ours.figures:
        return f"target{what}: {key} {rel} {bound:g} — no cloacina figure"
    v = ours.figures[key]
    met = v <= bound if lower else v >= bound
    verdict = "[green]met[/]" if met else "[red]NOT met[/]"
    return f"target{what}: {key} {rel} {bound:g}: cloacina {fmt(v)} -> {verdict}"


def print_db_work(ours: Agg | None, what: str = "") -> None:
    """The --count-tx figures, when there are some."""
    if ours and ("tx_per_task" in ours.figures or "stmts_per_task" in ours.figures):
        tx, st = ours.figures.get("tx_per_task"), ours.figures.get("stmts_per_task")
        out.print(
            f"  database work{what} (--count-tx; timings of this run are slowed by counting):"
            f" {fmt(tx)} write transactions and {fmt(st, 1)} statements per task"
        )


def samples(runs: list[Run], key: str) -> list[float]:
    """Every value of the list figure ``key`` over the successful ``runs``."""
    values: list[float] = []
    for r in runs:
        if r.ok and isinstance(r.figures.get(key), list):
            values += [float(x) for x in r.figures[key]]
    return values


def med_range(values: list[float], unit: str = " ms") -> str:
    if not values:
        return "—"
    text = f"{fmt(statistics.median(values))}{unit}"
    if len(values) > 1:
        text += f" ({fmt(min(values))}..{fmt(max(values))} over {len(values)})"
    return text


def report_packaged(
    runs: list[Run], ours: Agg | None, pkg: Agg | None, metric: Metric
) -> dict[str, Any]:
    """What packaging adds: to the first run (target <= 100 ms) and to later runs (none)."""
    mine = [r for r in runs if r.system == OURS_PKG and r.ok]
    if pkg is None or not mine:
        out.print("  packaged: no figures")
        return {}
    first, emb = samples(mine, "first_run_ms_all"), samples(mine, "embedded_first_run_ms_all")
    register = samples(mine, "register_ms_all")
    overheads = []
    for r in mine:
        p_all, e_all = r.figures.get("first_run_ms_all"), r.figures.get("embedded_first_run_ms_all")
        if isinstance(p_all, list) and isinstance(e_all, list):
            overheads += [float(p) - float(e) for p, e in zip(p_all, e_all, strict=False)]
    summary: dict[str, Any] = {
        "first_run_ms": statistics.median(first) if first else None,
        "embedded_first_run_ms": statistics.median(emb) if emb else None,
        "first_run_overhead_ms": statistics.median(overheads) if overheads else None,
        "first_run_overhead_ms_range": (min(overheads), max(overheads)) if overheads else None,
        "register_ms": statistics.median(register) if register else None,
        "first_run_workers": pkg.figures.get("first_run_workers"),
    }
    workers = pkg.figures.get("first_run_workers")
    started = f"{workers:.0f} worker process(es) started" if workers is not None else "workers"
    if overheads:
        overhead = statistics.median(overheads)
        ok = overhead <= FIRST_RUN_OVERHEAD_TARGET_MS
        summary["first_run_target_met"] = ok
        out.print(
            f"  first run on a fresh runner ({started}):\n"
            f"    packaged {med_range(first)}; embedded {med_range(emb)}"
        )
        out.print(
            f"  first-run overhead (packaged - embedded, pairwise): {med_range(overheads)}\n"
            f"    target <= {FIRST_RUN_OVERHEAD_TARGET_MS:g} ms -> "
            + ("[green]met[/]" if ok else "[red]NOT met[/]")
        )
    out.print(f"  register_workflow (verify, import in a clean process): {med_range(register)}")
    if ours is not None and metric.key in ours.figures and metric.key in pkg.figures:
        e, p = ours.figures[metric.key], pkg.figures[metric.key]
        diff = p - e
        verdict = "one repeat: no spread to judge the difference against"
        measurable = None
        if ours.spread and pkg.spread:
            measurable = pkg.spread[0] > ours.spread[1] or pkg.spread[1] < ours.spread[0]
            verdict = (
                "[yellow]measurable[/] (the repeats' ranges do not overlap)"
                if measurable
                else "[green]no measurable difference[/] (the repeats' ranges overlap)"
            )
        summary.update(later_runs_difference=diff, later_runs_measurable=measurable)
        out.print(
            f"  later runs: packaged {metric.label} {fmt(p)} vs embedded {fmt(e)}:"
            f" {diff:+.2f} ({diff / e * 100:+.0f}%)\n    -> {verdict}"
        )
    if pkg.figures.get("worker_processes") is not None:
        out.print(
            f"  packaged: {pkg.figures['worker_processes']:.0f} worker process(es) at the end,"
            f" their peak RSS summed {fmt(pkg.figures.get('worker_rss_mb'), 1)} MB\n"
            "    (not in the table's peak RSS, which is the runner process's)"
        )
    return summary


def report_scenario(scenario: str, runs: list[Run], systems: list[System]) -> dict[str, Any]:
    metric = METRICS[scenario]
    order = {s.name: i for i, s in enumerate(systems)}
    summary: dict[str, Any] = {}
    peers = [s.name for s in systems if not is_ours(s.name) and scenario in s.scenarios]
    if scenario != "wide":
        aggs = []
        for s in systems:
            mine = [r for r in runs if r.system == s.name]
            if mine:
                aggs.append(aggregate(mine, metric))
        has_pkg = any(a.system == OURS_PKG for a in aggs)
        table = new_table(f"{scenario}: {DESCRIPTIONS[scenario]}", metric, peers, has_pkg)
        add_rows(table, aggs, metric, peers, has_pkg)
        out.print(table)
        ours, pkg = find(aggs, OURS), find(aggs, OURS_PKG)
        if any(a.system == OURS for a in aggs):
            out.print("  " + target_line(scenario, ours, " (embedded)" if has_pkg else ""))
        if has_pkg:
            out.print("  " + target_line(scenario, pkg, " (packaged)"))
        print_db_work(ours, " (embedded)" if has_pkg else "")
        print_db_work(pkg, " (packaged)")
        summary["aggregates"] = [asdict(a) for a in aggs]
        summary["speedup"] = {
            form: {
                p: speedup(mine, find(aggs, p), metric) if find(aggs, p) else None for p in peers
            }
            for form, mine in ((OURS, ours), (OURS_PKG, pkg))
            if mine is not None
        }
        if has_pkg:
            summary["packaged"] = report_packaged(runs, ours, pkg, metric)
        return summary

    sizes = sorted({r.n for r in runs})
    by_size: dict[int, list[Agg]] = {}
    for n in sizes:
        groups: dict[str, list[Run]] = {}
        for r in runs:
            if r.n == n:
                groups.setdefault(r.system, []).append(r)
        by_size[n] = [
            aggregate(g, metric) for _, g in sorted(groups.items(), key=lambda kv: order[kv[0]])
        ]
    table = new_table(f"wide: {DESCRIPTIONS['wide']}", metric, peers, False)
    for i, n in enumerate(sizes):
        if i:
            table.add_section()
        add_rows(table, by_size[n], metric, peers, False)
    out.print(table)
    peer_names = peers
    skipped = [n for n in sizes if n > PEER_WIDE_MAX]
    if peer_names and skipped:
        top = max(skipped)
        guesses = []
        for name in peer_names:
            at = next((x for x in by_size.get(PEER_WIDE_MAX, []) if x.system == name), None)
            if at and at.figures.get("tasks_per_s"):
                guesses.append(f"{name} ~{(top + 1) / at.figures['tasks_per_s']:.0f} s")
        guess = f" (at their N={PEER_WIDE_MAX:,} rate: {', '.join(guesses)})" if guesses else ""
        out.print(
            f"  peers skipped at N = {', '.join(f'{n:,}' for n in skipped)}: far too slow there"
            f"{guess}; --n {top} runs that size on every system"
        )

    def ours_at(n: int) -> Agg | None:
        return next((a for a in by_size.get(n, []) if a.system == OURS and a.figures), None)

    for n in sizes:
        if n >= 1_000 and any(a.system == OURS for a in by_size[n]):
            out.print("  " + target_line("wide", ours_at(n), f" at N={n:,}"))
    for n in sizes:
        print_db_work(ours_at(n), f" at N={n:,}")
    growth: dict[str, float | None] = {}
    for name in [OURS, *peer_names]:
        for lo, hi in ((1_000, 10_000), (100, 1_000)):
            a = next((x for x in by_size.get(lo, []) if x.system == name and x.figures), None)
            b = next((x for x in by_size.get(hi, []) if x.system == name and x.figures), None)
            if a and b:
                g = b.figures["wall_s"] / a.figures["wall_s"]
                growth[f"{name} {hi}/{lo}"] = g
                line = f"  growth {name}: time(N={hi:,}) / time(N={lo:,}) = {g:.1f}x"
                if name == OURS and hi == 10_000:
                    ok = g <= WIDE_GROWTH_TARGET
                    line += f" (target <= {WIDE_GROWTH_TARGET:g}x, linear = 10x) -> " + (
                        "[green]met[/]" if ok else "[red]NOT met[/]"
                    )
                out.print(line)
    big = ours_at(10_000)
    if big and big.rss_mb is not None:
        ok = big.rss_mb < RSS_TARGET_MB
        out.print(
            f"  memory target: a 10,000-task run < {RSS_TARGET_MB:g} MB RSS: cloacina "
            f"{big.rss_mb:.0f} MB -> " + ("[green]met[/]" if ok else "[red]NOT met[/]")
        )
    summary["aggregates"] = {str(n): [asdict(a) for a in aggs] for n, aggs in by_size.items()}
    summary["speedup"] = {
        str(n): {
            a.system: speedup(
                next((x for x in aggs if x.system == OURS and x.figures), None), a, metric
            )
            for a in aggs
            if not is_ours(a.system)
        }
        for n, aggs in by_size.items()
    }
    summary["growth"] = growth
    return summary


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def plan(
    scenario: str, systems: list[System], n: int | None, wide_sizes: list[int]
) -> list[tuple[System, int]]:
    jobs: list[tuple[System, int]] = []
    if scenario == "wide":
        sizes = [n] if n else wide_sizes
        for size in sizes:
            for s in systems:
                if scenario not in s.scenarios:
                    continue
                if not is_ours(s.name) and size > PEER_WIDE_MAX and not n:
                    continue
                jobs.append((s, size))
        return jobs
    for s in systems:
        if scenario in s.scenarios:
            jobs.append((s, n or DEFAULT_N[scenario].get(s.name, DEFAULT_N[scenario][OURS])))
    return jobs


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    if shutil.which("git"):
        rev = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
        )
        info["git"] = rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "scenarios",
        nargs="*",
        default=["all"],
        choices=[*SCENARIOS, "all", PG_SCALE],
        metavar="SCENARIO",
        help=f"one or more of {', '.join(SCENARIOS)}, or all (default; SQLite), and/or"
        f" {PG_SCALE} (fanout on PostgreSQL with 1, 2 and 4 worker processes: --pg*)",
    )
    peers = ap.add_mutually_exclusive_group()
    peers.add_argument(
        "--peers", default=",".join(ALL_PEERS), help="comma-separated peers (default: %(default)s)"
    )
    peers.add_argument("--no-peers", action="store_true", help="run cloacina only")
    ap.add_argument("--skip-cloacina", action="store_true", help="run the peers only")
    ap.add_argument(
        "--no-packaged",
        action="store_true",
        help="skip the packaged form of chain3 and fanout (workloads.py --packaged)",
    )
    ap.add_argument(
        "--n",
        type=int,
        default=None,
        help="one size for every system (default: per scenario and system, see DEFAULT_N)",
    )
    ap.add_argument(
        "--wide-sizes",
        default=",".join(str(s) for s in WIDE_SIZES),
        help="sizes for wide (default: %(default)s; peers only up to 1,000)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure, median taken")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per process")
    ap.add_argument(
        "--count-tx",
        action="store_true",
        help="cloacina: also count write transactions and statements per task (slower)",
    )
    ap.add_argument("--json", type=Path, default=None, help="write all raw results to FILE")
    ap.add_argument(
        "--pg",
        default=None,
        help=f"{PG_SCALE}: the PostgreSQL server's maintenance database URL (default"
        " postgresql://postgres@127.0.0.1:5432/postgres); a fresh database per measurement",
    )
    ap.add_argument(
        "--pg-workers", default="1,2,4", help=f"{PG_SCALE}: worker processes (%(default)s)"
    )
    ap.add_argument(
        "--pg-client-poll",
        type=float,
        default=None,
        help=f"{PG_SCALE}: the submit-only client's poll_interval (default: DefaultRunner's)",
    )
    ap.add_argument(
        "--peers-dir",
        type=Path,
        default=Path(os.environ.get("CLOACINA_PEERS_DIR", "/work/shared/peers")),
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    want_pg = PG_SCALE in a.scenarios
    asked = [x for x in a.scenarios if x != PG_SCALE] or ([] if want_pg else ["all"])
    scenarios = list(SCENARIOS) if "all" in asked else list(dict.fromkeys(asked))
    peer_names = [] if a.no_peers else [p.strip() for p in a.peers.split(",") if p.strip()]
    unknown = set(peer_names) - set(ALL_PEERS)
    if unknown:
        err.print(f"[red]unknown peer(s): {', '.join(sorted(unknown))}[/]")
        return 2
    systems = make_systems(peer_names, a.peers_dir, a.skip_cloacina, not a.no_packaged)
    for s in systems:
        if not is_ours(s.name):
            ensure_peer(s)
    skipped = [s for s in systems if not s.available]
    systems = [s for s in systems if s.available]
    if not systems:
        err.print("[red]nothing to run[/]")
        return 2
    wide_sizes = [int(x) for x in a.wide_sizes.split(",") if x.strip()]
    extra_ours = ["--count-tx"] if a.count_tx else []

    doc: dict[str, Any] = {
        "machine": machine_info(),
        "args": {k: str(v) for k, v in vars(a).items()},
        "skipped_systems": {s.name: s.note for s in skipped},
        "runs": [],
        "summary": {},
    }
    failures = 0
    t_all = time.perf_counter()
    for scenario in scenarios:
        jobs = plan(scenario, systems, a.n, wide_sizes)
        runs: list[Run] = []
        for rep in range(a.repeat):
            for system, n in jobs:
                extra = extra_ours if is_ours(system.name) else []
                err.print(
                    f"[dim]{scenario:<8}[/] {system.name:<8} n={n:<6,} "
                    f"run {rep + 1}/{a.repeat} ...",
                    end="",
                )
                r = run_one(system, scenario, n, rep, a.timeout, extra)
                runs.append(r)
                doc["runs"].append(asdict(r))
                if r.ok:
                    m = METRICS[scenario]
                    err.print(
                        f" {m.label} {fmt(r.figures.get(m.key))}, "
                        f"RSS {fmt(r.peak_rss_mb, 1)} MB ({r.process_wall_s:.1f} s)"
                    )
                else:
                    failures += 1
                    err.print(f" [red]FAILED[/] {r.error}")
                    if r.stderr_tail:
                        err.print(r.stderr_tail, markup=False, style="dim")
                if a.json:
                    write_json(a.json, doc)
        out.print()
        doc["summary"][scenario] = report_scenario(scenario, runs, systems)
        if a.json:
            write_json(a.json, doc)
    if doc["runs"]:
        out.print(
            f"\n[dim]{len(doc['runs'])} processes in {time.perf_counter() - t_all:.0f} s;"
            " speed-up = peer time / cloacina time (or cloacina rate / peer rate): > 1 means"
            " cloacina is faster. RSS is each process's peak resident memory (wait4)."
            " packaged/embedded = the packaged form's figure over the embedded form's.[/]"
        )
    if want_pg:
        available = [s.name for s in systems if not is_ours(s.name)]
        try:
            doc["summary"][PG_SCALE] = run_pg_scale(a, available)
        except (SystemExit, Exception) as exc:  # a failed measurement: report it, go on
            failures += 1
            doc["summary"][PG_SCALE] = {"error": str(exc)}
            err.print(f"[red]{PG_SCALE} FAILED[/] {exc}")
        if a.json:
            write_json(a.json, doc)
    versions = sorted(
        {str(r["figures"]["system"]) for r in doc["runs"] if r["figures"].get("system")}
    )
    if versions:
        out.print(f"[dim]systems: {', '.join(versions)}[/]")
    for s in skipped:
        out.print(f"[yellow]skipped {s.name}: {s.note}[/]")
    if a.json:
        out.print(f"[dim]raw results: {a.json}[/]")
    return 1 if failures else 0


def run_pg_scale(a: argparse.Namespace, peers: list[str]) -> dict[str, Any]:
    """The pg-scale workload: bench/pg_scale.py in this process (it starts the workers)."""
    sys.path.insert(0, str(BENCH_DIR))
    import pg_scale

    argv = ["--workers", a.pg_workers, "--repeat", str(a.repeat), "--peers-dir", str(a.peers_dir)]
    argv += ["--peers", ",".join(peers)] if peers else ["--no-peers"]
    if a.n:  # one size for every system, as for the other workloads
        argv += ["--n", str(a.n), "--peer-n", str(a.n)]
    if a.pg:
        argv += ["--pg", a.pg]
    if a.pg_client_poll is not None:
        argv += ["--client-poll", str(a.pg_client_poll)]
    out.print(f"\n[bold]{PG_SCALE}[/] [dim](bench/pg_scale.py {' '.join(argv)})[/]")
    return pg_scale.run(pg_scale.parse_args(argv))


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
