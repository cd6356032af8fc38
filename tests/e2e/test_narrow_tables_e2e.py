"""Tables at 80 columns keep names and paths whole (they fold, never cut), and only URLs give
way: ``package inspect``'s files, ``config show`` and ``tenant list`` (issue 9.15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import Cli, Result

pytestmark = pytest.mark.timeout(120)

NARROW = {"COLUMNS": "80"}
#: The longest tenant name there is (63 characters, a PostgreSQL identifier).
TENANT = "acme_" + "x" * 58


def _narrow(res: Result) -> list[str]:
    """The lines of a command's output, none wider than 80 columns."""
    assert res.returncode == 0, res
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, res
    return lines


def _cells(
    lines: list[str], header: str, column: str, end: str | None, key: str | None = None
) -> list[str]:
    """The cells of ``column`` (up to column ``end``) under the header line that starts with
    ``header``, one string per row, a folded cell's pieces joined. A row starts on a line
    where column ``key`` (default: the first one) is not blank; the table ends at a blank
    line or at ``config show``'s closing advice."""
    h = next(i for i, line in enumerate(lines) if line.startswith(header))
    start = lines[h].index(column)
    stop = lines[h].index(end) if end is not None else None
    key = key if key is not None else lines[h].split()[0]
    marker = lines[h].index(key)
    cells: list[str] = []
    for line in lines[h + 2 :]:
        if not line.strip() or line.startswith("Set one with its option"):
            break
        piece = line[start:stop].strip()
        if line[marker : marker + len(key)].strip() or not cells:
            cells.append(piece)
        else:
            cells[-1] += piece
    return cells


def test_package_inspect_folds_long_paths(cli: Cli, tmp_path: Path) -> None:
    assert cli("package", "new", "narrow_pkg", "--dir", "proj").returncode == 0
    project = tmp_path / "proj"
    deep = "scripts/" + "/".join(f"level_{i}_directory" for i in range(5))
    script = project / deep / "a_script_with_a_rather_long_name_to_run.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho hi\n", encoding="utf-8")
    script.chmod(0o755)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(
        text.replace("[tool.cloacina]", '[tool.cloacina]\ninclude = ["scripts"]', 1),
        encoding="utf-8",
    )
    built = cli("package", "build", "proj", "--json")
    assert built.returncode == 0, built
    archive = json.loads(built.stdout)["file"]

    lines = _narrow(cli("package", "inspect", archive, env=NARROW))
    title = next(line for line in lines if line.startswith("Files ("))
    assert title.rstrip().endswith("uncompressed)"), lines  # on one line
    paths = _cells(lines, "path", "path", "files", key="size")
    rel = script.relative_to(project).as_posix()
    # The path whole, folded over lines, never cut with an ellipsis.
    assert [rel, "(executable)"] in [p.split() for p in paths], lines
    assert not any("…" in p for p in paths), lines


def test_config_show_keeps_setting_names_and_sources(cli: Cli) -> None:
    url = "postgresql://someone:secret@a-database-host.example.internal.cluster.local:5432/prod"
    lines = _narrow(cli("config", "show", "--db", url, "--tenant", TENANT, env=NARROW))
    assert not any("secret" in line for line in lines)
    shown = json.loads(cli("config", "show", "--db", url, "--tenant", TENANT, "--json").stdout)
    rows = _cells(lines, "setting", "setting", "value")
    values = _cells(lines, "setting", "value", "from")
    sources = _cells(lines, "setting", "from", None)
    # Every setting name whole, and every source (folded when it must be).
    assert rows == ["database", "tenant", *shown["settings"]], lines
    expected = [
        s["source"] + ("" if s["used"] else " (unused on PostgreSQL)")
        for s in shown["settings"].values()
    ]
    assert [s.replace(" ", "") for s in sources[2:]] == [e.replace(" ", "") for e in expected]
    # The tenant, a name, folds whole; only the URL gives way, with an ellipsis.
    assert values[1] == TENANT, lines
    assert values[0].startswith("postgresql://someone:***@") and values[0].endswith("…")
    assert sources[0] == "option --db"


def test_tenant_list_keeps_names_on_one_line(cli: Cli, tmp_path: Path) -> None:
    deep = tmp_path / "a" / "rather" / "long" / "directory" / "for" / "the" / "databases"
    deep.mkdir(parents=True)
    url = f"sqlite:///{deep / 'runs.db'}"
    for name in (TENANT, "b"):
        assert cli("tenant", "create", name, "--db", url).returncode == 0
    lines = _narrow(cli("tenant", "list", "--db", url, env=NARROW))
    names = _cells(lines, "tenant", "tenant", "location")
    locations = _cells(lines, "tenant", "location", None)
    # The name whole on one line; the location is the tenant's file beside the database
    # the title names (the JSON gives its whole path).
    assert any(line.startswith(f"{TENANT} ") for line in lines), lines
    found = dict(zip(names, locations, strict=True))
    assert found[TENANT] == f"runs.{TENANT}.db" and found["b"] == "runs.b.db", lines
    listed = {
        t["tenant"]: t["location"]
        for t in json.loads(cli("tenant", "list", "--db", url, "--json").stdout)
    }
    assert listed[TENANT] == str(deep / f"runs.{TENANT}.db")


def test_tenant_list_on_postgresql_names_the_schema(cli: Cli, postgres_url: str) -> None:
    assert cli("tenant", "create", "acme", "--db", postgres_url).returncode == 0
    lines = _narrow(cli("tenant", "list", "--db", postgres_url, env=NARROW))
    assert lines[0].startswith("Tenants in postgresql://"), lines  # not folded to the table
    found = dict(
        zip(
            _cells(lines, "tenant", "tenant", "location"),
            _cells(lines, "tenant", "location", None),
            strict=True,
        )
    )
    assert found["acme"] == "schema 'acme'", lines
