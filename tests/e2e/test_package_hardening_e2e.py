"""``cloacina package verify|inspect|register`` on hostile files (issue 9, items 2, 3, 14):
verify checks a signature before it runs any code, archives that cannot be extracted are
refused as unsafe with the member named, and package files are never read whole into memory
before their size is checked.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cloacina.packaging.archive import (
    DEFAULT_LIMITS,
    METADATA,
    fingerprint,
    read_archive,
    write_archive,
)

from .helpers import Cli, run_cli

pytestmark = pytest.mark.timeout(180)


def _build_signed(cli: Cli, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A scaffolded project built and signed: (the package, the trusted public key)."""
    assert cli("package", "new", name).returncode == 0
    built = cli("package", "build", name)
    assert built.returncode == 0, built
    path = tmp_path / f"{name}/dist/{name}-0.1.0.cloacina"
    assert cli("keys", "generate", "--dir", "keys", "--name", "team").returncode == 0
    signed = cli("package", "sign", path, "--key", tmp_path / "keys/team.key")
    assert signed.returncode == 0, signed
    return path, tmp_path / "keys/team.pub"


# ---- item 2: no code runs before the signature verifies ----------------------------------------
def test_verify_with_a_trusted_key_checks_the_signature_before_running_any_code(
    cli: Cli, tmp_path: Path
) -> None:
    path, pub = _build_signed(cli, tmp_path, "vetted")
    marker = tmp_path / "the-code-ran"
    archive = read_archive(path.read_bytes())
    files = {n: c for n, c in archive.files.items() if n != METADATA}
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n".encode()
    files["lib/vetted/__init__.py"] = payload + files["lib/vetted/__init__.py"]
    meta = {k: v for k, v in archive.metadata.items() if k not in ("fingerprint", "format")}
    evil = tmp_path / "evil.cloacina"
    evil.write_bytes(write_archive(files, meta))  # re-fingerprinted: only the .sig can tell
    Path(str(evil) + ".sig").write_bytes(Path(str(path) + ".sig").read_bytes())

    res = cli("package", "verify", evil, "--trusted-key", pub)
    assert not marker.exists(), "verify ran the package's code before checking its signature"
    assert res.returncode == 1, res
    assert "the signature is for different package bytes" in res.stderr, res
    assert "not imported" in res.stderr, res

    # An unsigned copy with a trusted key given: refused, still without running it.
    unsigned = tmp_path / "unsigned.cloacina"
    unsigned.write_bytes(evil.read_bytes())
    res = cli("package", "verify", unsigned, "--trusted-key", pub)
    assert res.returncode == 1 and "not signed" in res.stderr, res
    assert not marker.exists()

    # The genuine package still verifies, code and all.
    ok = cli("package", "verify", path, "--trusted-key", pub)
    assert ok.returncode == 0, ok
    assert "manifest matches the code" in ok.stdout


# ---- item 3: archives that cannot be extracted --------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A genuine package (scaffolded and built once for this module)."""
    root = tmp_path_factory.mktemp("built")
    assert run_cli("package", "new", "plain", cwd=root).returncode == 0
    res = run_cli("package", "build", "plain", cwd=root)
    assert res.returncode == 0, res
    return (root / "plain/dist/plain-0.1.0.cloacina").read_bytes()


def _with_members(data: bytes, extra: dict[str, bytes]) -> bytes:
    """``data`` with ``extra`` members added, re-fingerprinted, written without the
    builder's checks: an archive that passes the old safety checks."""
    archive = read_archive(data)
    members = {n: c for n, c in archive.files.items() if n != METADATA}
    members.update(extra)
    meta = {**archive.metadata, "fingerprint": fingerprint(members)}
    members[METADATA] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in sorted(members.items()):
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "member"),
    [
        ({"lib/" + "x" * 300 + ".py": b""}, "lib/" + "x" * 300 + ".py"),
        ({"lib/extra": b"a file", "lib/extra/mod.py": b""}, "lib/extra"),
    ],
    ids=["name-too-long", "file-and-directory"],
)
def test_register_and_inspect_refuse_an_archive_that_cannot_be_extracted(
    cli: Cli, tmp_path: Path, built: bytes, files: dict[str, bytes], member: str
) -> None:
    path = tmp_path / "raw.cloacina"
    path.write_bytes(_with_members(built, files))
    for args in (
        ("package", "inspect", path),
        ("package", "verify", path),
        ("package", "register", path, "--db", f"sqlite:///{tmp_path / 'r.db'}"),
    ):
        res = cli(*args)
        assert res.returncode == 1, res
        assert "Traceback" not in res.output, res
        assert repr(member)[:60] in res.stderr, res


# ---- item 14: sizes before contents -------------------------------------------------------------
MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(proc.returncode)
print(peak_kib)
print(proc.stderr)
"""


def _cli_peak(*args: str | Path, cwd: Path) -> tuple[int, int, str]:
    """Run the CLI in a fresh process: (exit code, its peak RSS in bytes, its stderr)."""
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "cloacina", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=150, cwd=cwd, check=True)
    code, peak, stderr = out.stdout.split("\n", 2)
    return int(code), int(peak) * 1024, stderr


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    size = DEFAULT_LIMITS.max_archive_bytes * 4
    sparse = tmp_path / "huge.cloacina"
    with sparse.open("wb") as fh:
        fh.truncate(size)  # sparse: no disk used, but reading it would take `size` bytes
    for command in ("inspect", "verify"):
        code, peak, stderr = _cli_peak("package", command, sparse, cwd=tmp_path)
        assert code == 1, stderr
        assert "over the limit" in stderr and "Traceback" not in stderr, stderr
        assert peak < 200 * 1024 * 1024, f"{command} peaked at {peak} bytes"


def test_a_device_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    code, peak, stderr = _cli_peak("package", "inspect", "/dev/zero", cwd=tmp_path)
    assert code == 2, stderr  # a usage error, like a file that does not exist
    assert "not a regular file" in stderr and "Traceback" not in stderr, stderr
    assert peak < 200 * 1024 * 1024, peak
    fifo = tmp_path / "pipe.cloacina"
    os.mkfifo(fifo)  # opening a FIFO for reading would block until a writer came
    code, _, stderr = _cli_peak("package", "verify", fifo, cwd=tmp_path)
    assert code == 2 and "not a regular file" in stderr, stderr
