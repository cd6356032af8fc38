"""Vendoring a project's dependencies into a package's ``lib/`` with pip.

``pip install --target`` puts the dependencies (and theirs) in a scratch directory; the files
that go into the package are read from there, minus what would make builds differ from one
run to the next (``RECORD``, ``INSTALLER``, ``direct_url.json``) and what cannot run from
``lib/`` (``bin/`` scripts, ``__pycache__``). Compiled code makes a package platform-specific,
so it is refused unless the caller allows it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from cloacina.errors import PackageError

#: The runtime provides cloacina itself; vendoring it would shadow the runner's copy.
PROVIDED = frozenset({"cloacina"})
#: Files that hold paths, hashes or the installer's name: different on every build.
DROPPED_DIST_INFO = frozenset({"RECORD", "INSTALLER", "direct_url.json"})
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
PIP_TIMEOUT = 600.0


@dataclass
class Distribution:
    """One installed dependency: its name, version and the files it brought."""

    name: str
    version: str
    dist_info: str
    files: list[str] = field(default_factory=list)
    purelib: bool = True
    tags: tuple[str, ...] = ()
    native_files: list[str] = field(default_factory=list)
    shipped: int = 0  # files that go into lib/
    size: int = 0  # their bytes

    @property
    def native(self) -> bool:
        return bool(self.native_files) or not self.purelib

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class Vendored:
    """The result of vendoring: files by path relative to ``lib/``, and what they came from."""

    files: dict[str, Path]
    distributions: list[Distribution]
    skipped: list[str]  # requirements left out (cloacina itself)


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The project name a PEP 508 requirement string starts with."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise PackageError(f"cannot read the dependency {requirement!r} (not a PEP 508 string)")
    return canonical(match.group(1))


def host_platform() -> str:
    """The interpreter and platform tag a package with native code is bound to,
    e.g. ``cp311-linux_x86_64``."""
    impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    plat = re.sub(r"[^0-9A-Za-z]+", "_", sysconfig.get_platform())
    return f"{impl}{sys.version_info.major}{sys.version_info.minor}-{plat}"


def is_native_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(NATIVE_SUFFIXES) or ".so." in base


def pip_install(requirements: Iterable[str], target: Path) -> None:
    """``pip install --target`` with the builder's interpreter (honours ``PIP_*`` settings,
    e.g. ``PIP_INDEX_URL`` or ``PIP_NO_INDEX``)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--target",
        str(target),
        "--no-compile",  # .pyc would differ between Python versions; lib/ ships sources
        "--disable-pip-version-check",
        "--no-input",
        "--no-warn-script-location",
        *requirements,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PackageError(f"pip did not finish within {PIP_TIMEOUT:g}s: {' '.join(cmd)}") from exc
    except OSError as exc:
        raise PackageError(f"cannot run pip ({sys.executable} -m pip): {exc}") from exc
    if proc.returncode != 0:
        text = (proc.stderr.strip() or proc.stdout.strip())[-4000:]
        if "No module named pip" in text:
            raise PackageError(
                f"vendoring dependencies needs pip, and {sys.executable} has none; "
                "install it with `python -m ensurepip`"
            )
        raise PackageError(
            f"pip could not install the dependencies ({', '.join(requirements)}):\n{text}"
        )


def _dist_files(site: Path, dist_info: Path) -> list[str]:
    record = dist_info / "RECORD"
    files: list[str] = []
    if record.is_file():
        for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
            if not row:
                continue
            path = os.path.normpath(row[0]).replace(os.sep, "/")
            if not path.startswith("../"):
                files.append(path)
    else:  # no RECORD: at least the dist-info directory itself
        files = [p.relative_to(site).as_posix() for p in dist_info.rglob("*") if p.is_file()]
    return files


def scan(site: Path) -> list[Distribution]:
    """The distributions installed in ``site`` (a ``--target`` directory), by name."""
    dists: list[Distribution] = []
    for dist_info in sorted(site.glob("*.dist-info")):
        meta_file = dist_info / "METADATA"
        headers = HeaderParser().parsestr(
            meta_file.read_text(encoding="utf-8", errors="replace") if meta_file.is_file() else ""
        )
        name = headers.get("Name") or dist_info.name.split("-")[0]
        version = headers.get("Version") or ""
        wheel_file = dist_info / "WHEEL"
        wheel = HeaderParser().parsestr(
            wheel_file.read_text(encoding="utf-8", errors="replace") if wheel_file.is_file() else ""
        )
        purelib = (wheel.get("Root-Is-Purelib") or "true").strip().lower() != "false"
        tags = tuple(wheel.get_all("Tag") or ())
        dists.append(
            Distribution(
                name=str(name),
                version=str(version),
                dist_info=dist_info.name,
                files=_dist_files(site, dist_info),
                purelib=purelib,
                tags=tags,
            )
        )
    return dists


def collect(site: Path, dists: list[Distribution]) -> tuple[dict[str, Path], list[str]]:
    """Files under ``site`` to ship, by relative path; also those left out on purpose."""
    files: dict[str, Path] = {}
    dropped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(site):
        here = Path(dirpath)
        rel_dir = here.relative_to(site)
        if rel_dir == Path("."):
            if "bin" in dirnames:
                dropped.append("bin/")
            dirnames[:] = [d for d in dirnames if d != "bin"]
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            rel = (rel_dir / filename).as_posix()
            if filename.endswith((".pyc", ".pyo")):
                continue
            if here.name.endswith(".dist-info") and filename in DROPPED_DIST_INFO:
                continue
            path = here / filename
            if path.is_symlink() or not path.is_file():
                raise PackageError(f"dependency file {rel} is not a regular file")
            files[rel] = path
    owner = {f: d for d in dists for f in d.files}
    for rel, path in files.items():
        dist = owner.get(rel)
        if dist is None:
            continue
        dist.shipped += 1
        dist.size += path.stat().st_size
        if is_native_file(rel):
            dist.native_files.append(rel)
    return dict(sorted(files.items())), dropped


def vendor(requirements: Iterable[str], scratch: Path) -> Vendored:
    """Install ``requirements`` into ``scratch`` and list what to ship in ``lib/``."""
    wanted: list[str] = []
    skipped: list[str] = []
    for req in requirements:
        (skipped if requirement_name(req) in PROVIDED else wanted).append(req)
    if not wanted:
        return Vendored(files={}, distributions=[], skipped=skipped)
    scratch.mkdir(parents=True, exist_ok=True)
    pip_install(wanted, scratch)
    dists = scan(scratch)
    # A dependency that itself requires cloacina must not bring a second copy of it.
    for dist in [d for d in dists if canonical(d.name) in PROVIDED]:
        for rel in dist.files:
            (scratch / rel).unlink(missing_ok=True)
        skipped.append(f"{dist.name} {dist.version} (pulled in by a dependency)")
        dists.remove(dist)
    files, _ = collect(scratch, dists)
    return Vendored(files=files, distributions=dists, skipped=skipped)
