"""Vendoring: what is read from a ``pip install --target`` directory, and what is left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloacina.errors import PackageError
from cloacina.packaging.vendor import (
    canonical,
    collect,
    host_platform,
    is_native_file,
    requirement_name,
    scan,
    vendor,
)


def fake_dist(
    site: Path, name: str, version: str, files: dict[str, bytes], purelib: bool = True
) -> None:
    """Lay out an installed distribution as pip --target does (with RECORD)."""
    info = f"{name}-{version}.dist-info"
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: {'true' if purelib else 'false'}\n"
            "Tag: py3-none-any\n"
        ).encode(),
        f"{info}/INSTALLER": b"pip\n",
        f"{info}/direct_url.json": b'{"url": "file:///tmp/somewhere"}',
    }
    for rel, data in members.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    record = "".join(f"{rel},sha256=x,{len(data)}\n" for rel, data in members.items())
    record += f"{info}/RECORD,,\n../../bin/tool,,\n"
    (site / info / "RECORD").write_text(record)


def test_scan_and_collect(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_dist(site, "pure", "1.0", {"pure/__init__.py": b"X = 1\n", "pure/data.txt": b"d"})
    fake_dist(
        site,
        "Native_Thing",
        "2.0",
        {"native_thing/__init__.py": b"", "native_thing/_c.so": b"\x7fELF"},
    )
    fake_dist(site, "platlib", "3.0", {"platlib/__init__.py": b""}, purelib=False)
    (site / "bin").mkdir()
    (site / "bin" / "tool").write_text("#!/bin/sh\n")
    (site / "pure" / "__pycache__").mkdir()
    (site / "pure" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")

    dists = {d.name: d for d in scan(site)}
    assert set(dists) == {"pure", "Native_Thing", "platlib"}
    assert dists["pure"].version == "1.0" and dists["pure"].purelib
    assert not dists["platlib"].purelib

    files, dropped = collect(site, list(dists.values()))
    assert dropped == ["bin/"]
    assert "pure/__init__.py" in files and "pure/data.txt" in files
    assert "pure-1.0.dist-info/METADATA" in files and "pure-1.0.dist-info/WHEEL" in files
    for name in files:  # nothing that differs between two builds, nothing that cannot run
        assert not name.startswith("bin/")
        assert "__pycache__" not in name
        assert not name.endswith(("/RECORD", "/INSTALLER", "/direct_url.json"))
    assert list(files) == sorted(files)
    assert dists["Native_Thing"].native_files == ["native_thing/_c.so"]
    assert dists["Native_Thing"].native and dists["platlib"].native
    assert not dists["pure"].native
    assert dists["pure"].shipped == 4  # two package files, METADATA, WHEEL
    assert dists["pure"].size == len(b"X = 1\n") + 1 + sum(
        (site / "pure-1.0.dist-info" / f).stat().st_size for f in ("METADATA", "WHEEL")
    )


def test_vendor_without_dependencies_does_not_run_pip(tmp_path: Path) -> None:
    result = vendor(["cloacina>=0.1", "Cloacina"], tmp_path / "site")
    assert result.files == {} and result.distributions == []
    assert result.skipped == ["cloacina>=0.1", "Cloacina"]
    assert not (tmp_path / "site").exists()


def test_requirement_names() -> None:
    assert requirement_name("Six>=1.0") == "six"
    assert requirement_name("my_dep @ file:///tmp/x.whl") == "my-dep"
    assert requirement_name("zope.interface[test]; python_version>'3'") == "zope-interface"
    assert canonical("A__b.C") == "a-b-c"
    with pytest.raises(PackageError, match="PEP 508"):
        requirement_name(">=1.0")


def test_native_file_names() -> None:
    assert is_native_file("a/_speedups.cpython-311-x86_64-linux-gnu.so")
    assert is_native_file("a/x.pyd") and is_native_file("a/x.dylib")
    assert is_native_file("pkg.libs/libgfortran.so.5")
    assert not is_native_file("a/solver.py") and not is_native_file("a/so.txt")


def test_host_platform() -> None:
    assert re.fullmatch(r"[a-z]+\d+-[A-Za-z0-9_]+", host_platform())
