"""``--json`` on ``package build``, ``verify`` and ``register``: stdout is one JSON document
for scripts, progress and problems go to stderr (issue 9, item 28)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cloacina.packaging.archive import METADATA, read_archive, write_archive

from .helpers import Cli

pytestmark = pytest.mark.timeout(180)


def test_build_verify_register_as_json(cli: Cli, tmp_path: Path) -> None:
    assert cli("package", "new", "jflows").returncode == 0

    built = cli("package", "build", "jflows", "--json")
    assert built.returncode == 0, built
    data = json.loads(built.stdout)
    path = Path(data["file"])
    assert path == tmp_path / "jflows" / "dist" / "jflows-0.1.0.cloacina"
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data["size"] == path.stat().st_size
    assert (data["package"], data["version"]) == ("jflows", "0.1.0")
    assert data["workflows"] == ["jflows_pipeline"]
    assert data["files"] > 0
    assert "jflows.workflows" in built.stderr  # the progress is still shown, on stderr

    verified = cli("package", "verify", path, "--json")
    assert verified.returncode == 0, verified
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["matches_code"] is True and report["signature"] == "none"
    assert report["sha256"] == data["sha256"] and report["workflows"] == ["jflows_pipeline"]

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    registered = cli("package", "register", path, "--db", db, "--json")
    assert registered.returncode == 0, registered
    entry = json.loads(registered.stdout)
    assert (entry["package"], entry["version"], entry["tenant"]) == ("jflows", "0.1.0", "public")
    assert entry["workflows"] == ["jflows_pipeline"] and entry["notes"] == []
    assert entry["sha256"] == data["sha256"] and entry["id"]
    listed = json.loads(cli("package", "list", "--db", db, "--json").stdout)
    assert [p["id"] for p in listed] == [entry["id"]]


def test_verify_json_reports_problems_and_exits_1(cli: Cli, tmp_path: Path) -> None:
    assert cli("package", "new", "jliar").returncode == 0
    assert cli("package", "build", "jliar").returncode == 0
    archive = read_archive((tmp_path / "jliar/dist/jliar-0.1.0.cloacina").read_bytes())
    files = {n: c for n, c in archive.files.items() if n != METADATA}
    code = files["lib/jliar/workflows.py"].decode()
    files["lib/jliar/workflows.py"] = code.replace(
        "@task(dependencies=[transform], timeout=30)", "@task(dependencies=[extract], timeout=30)"
    ).encode()
    meta = {k: v for k, v in archive.metadata.items() if k not in ("fingerprint", "format")}
    lying = tmp_path / "lying.cloacina"
    lying.write_bytes(write_archive(files, meta))

    res = cli("package", "verify", lying, "--json")
    assert res.returncode == 1, res
    report = json.loads(res.stdout)
    assert report["ok"] is False and report["matches_code"] is False
    assert any("but the code says ['extract']" in p for p in report["problems"])
    assert "FAILED" in res.stderr

    garbage = tmp_path / "garbage.cloacina"
    garbage.write_bytes(b"not a zip file at all")
    res = cli("package", "verify", garbage, "--json")
    assert res.returncode == 1, res
    report = json.loads(res.stdout)
    assert report["ok"] is False and len(report["problems"]) == 1
    assert "does not verify" in res.stderr
