"""The ``.cloacina`` archive: round trip, reproducible bytes, and every refusal of
``read_archive`` (the bad archives are built here, member by member, with ``zipfile``)."""

from __future__ import annotations

import io
import json
import stat
import struct
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from cloacina.errors import PackageError, UnsafePackageError
from cloacina.packaging.archive import (
    MANIFEST,
    METADATA,
    Limits,
    archive_name,
    fingerprint,
    read_archive,
    write_archive,
)
from cloacina.packaging.manifest import Manifest, TaskSpec, WorkflowSpec

MANIFEST_TEXT = Manifest(
    package="demo",
    version="1.0.0",
    modules=("demo.flows",),
    workflows=(
        WorkflowSpec(
            name="flow",
            version="abc",
            module="demo.flows",
            qualname="flow",
            tasks=(
                TaskSpec(id="a", function="a"),
                TaskSpec(id="b", function="b", dependencies=("a",), timeout=5.0),
            ),
        ),
    ),
).to_toml()

FILES = {
    MANIFEST: MANIFEST_TEXT.encode(),
    "lib/demo/__init__.py": b"",
    "lib/demo/flows.py": b"print('hi')\n",
    "bin/run.sh": b"#!/bin/sh\necho '{}'\n",
}
META = {"package": "demo", "version": "1.0.0", "builder": "test"}


def good_archive() -> bytes:
    return write_archive(FILES, META, executable=frozenset({"bin/run.sh"}))


def metadata_for(files: dict[str, bytes], **extra: object) -> bytes:
    """A metadata.json whose fingerprint matches ``files``."""
    meta = {**META, "format": 1, "fingerprint": fingerprint(files), **extra}
    return json.dumps(meta).encode()


def raw_zip(members: Sequence[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    """A zip holding exactly ``members`` (in order, duplicates allowed)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in members:
                zf.writestr(info, data)
    return buf.getvalue()


def valid_members(**replace: bytes) -> list[tuple[str | zipfile.ZipInfo, bytes]]:
    """The members of a valid archive (metadata included), some contents replaced."""
    files = {**FILES, **replace}
    return [(METADATA, metadata_for(FILES)), *list(files.items())]


# ---- writing and reading ----------------------------------------------------------------------
def test_round_trip() -> None:
    data = good_archive()
    archive = read_archive(data)
    assert archive.name == "demo" and archive.version == "1.0.0"
    assert archive.files["lib/demo/flows.py"] == b"print('hi')\n"
    assert set(archive.files) == {*FILES, METADATA}
    assert archive.modes["bin/run.sh"] == 0o755
    assert archive.modes["lib/demo/flows.py"] == 0o644
    assert archive.metadata["builder"] == "test"
    assert archive.metadata["fingerprint"] == fingerprint(archive.files) == archive.fingerprint
    assert archive.manifest.workflows[0].structure() == [("a", ()), ("b", ("a",))]
    assert len(archive.sha256) == 64


def test_extract_writes_files_with_modes(tmp_path: Path) -> None:
    read_archive(good_archive()).extract(tmp_path)
    assert (tmp_path / "lib/demo/flows.py").read_bytes() == b"print('hi')\n"
    assert (tmp_path / "bin/run.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "lib/demo/flows.py").stat().st_mode & 0o777 == 0o644


def test_bytes_are_reproducible() -> None:
    first = good_archive()
    reordered = dict(reversed(list(FILES.items())))
    second = write_archive(
        reordered, dict(reversed(list(META.items()))), executable=frozenset({"bin/run.sh"})
    )
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_content_changes_the_bytes_and_fingerprint() -> None:
    changed = write_archive({**FILES, "lib/demo/flows.py": b"print('ho')\n"}, META)
    assert read_archive(changed).fingerprint != read_archive(good_archive()).fingerprint


def test_write_needs_a_manifest_and_safe_names() -> None:
    with pytest.raises(PackageError, match=r"manifest"):
        write_archive({"lib/x.py": b""}, META)
    with pytest.raises(UnsafePackageError):
        write_archive({**FILES, "../x": b""}, META)


def test_archive_name() -> None:
    assert archive_name("demo", "1.0.0") == "demo-1.0.0.cloacina"


# ---- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../x", "traversal"),
        ("lib/../../x", "traversal"),
        ("/etc/x", "absolute"),
        ("C:/x", "absolute"),
        ("lib\\x.py", "plain relative"),
        ("lib//x.py", "non-canonical"),
        ("./x", "non-canonical"),
    ],
)
def test_refuses_unsafe_paths(name: str, why: str) -> None:
    data = raw_zip([*valid_members(), (name, b"evil")])
    with pytest.raises(UnsafePackageError, match=why):
        read_archive(data)


def test_refuses_a_symlink_member() -> None:
    info = zipfile.ZipInfo("lib/demo/link.py")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = raw_zip([*valid_members(), (info, b"/etc/passwd")])
    with pytest.raises(UnsafePackageError, match=r"link"):
        read_archive(data)


def test_refuses_a_special_file() -> None:
    info = zipfile.ZipInfo("lib/demo/fifo")
    info.create_system = 3
    info.external_attr = (stat.S_IFIFO | 0o644) << 16
    with pytest.raises(UnsafePackageError, match=r"not a regular file"):
        read_archive(raw_zip([*valid_members(), (info, b"")]))


def test_refuses_an_oversized_member() -> None:
    with pytest.raises(UnsafePackageError, match=r"over the limit"):
        read_archive(good_archive(), Limits(max_member_bytes=100))


def test_refuses_an_oversized_total() -> None:
    with pytest.raises(UnsafePackageError, match=r"exceed the limit"):
        read_archive(good_archive(), Limits(max_member_bytes=10_000, max_total_bytes=500))


def test_refuses_too_many_members() -> None:
    with pytest.raises(UnsafePackageError, match=r"members"):
        read_archive(good_archive(), Limits(max_members=3))


def test_refuses_a_zip_bomb_whose_header_lies() -> None:
    """200 kB of zeros that the headers call 10 bytes: reading stops at the declared size
    (never inflating the rest) and the CRC check refuses the member."""
    bomb = raw_zip([*valid_members(), ("lib/bomb.bin", b"\0" * 200_000)])
    data = bytearray(bomb)
    # patch the uncompressed size of lib/bomb.bin in its local header and central entry
    name = b"lib/bomb.bin"
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + name_len] == name:
            struct.pack_into("<I", data, local + 22, 10)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len] == name:
            struct.pack_into("<I", data, central + 24, 10)
        central = data.find(b"PK\x01\x02", central + 4)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        assert zf.getinfo("lib/bomb.bin").file_size == 10  # the lie is in place
    with pytest.raises(UnsafePackageError, match=r"bomb.bin"):
        read_archive(bytes(data), Limits(max_member_bytes=1_000))


def test_refuses_duplicate_names() -> None:
    data = raw_zip([*valid_members(), ("lib/demo/flows.py", b"print('other')\n")])
    with pytest.raises(UnsafePackageError, match=r"twice"):
        read_archive(data)


@pytest.mark.parametrize("missing", [MANIFEST, METADATA])
def test_refuses_a_missing_manifest_or_metadata(missing: str) -> None:
    members = [(n, d) for n, d in valid_members() if n != missing]
    with pytest.raises(PackageError, match=f"{missing} is missing"):
        read_archive(raw_zip(members))


def test_refuses_modified_content() -> None:
    """A member changed after the build: the fingerprint no longer matches."""
    data = raw_zip(valid_members(**{"lib/demo/flows.py": b"import os; os.system('evil')\n"}))
    with pytest.raises(UnsafePackageError, match=r"fingerprint mismatch"):
        read_archive(data)


def test_refuses_an_added_member() -> None:
    data = raw_zip([*valid_members(), ("lib/demo/extra.py", b"")])
    with pytest.raises(UnsafePackageError, match=r"fingerprint mismatch"):
        read_archive(data)


@pytest.mark.parametrize("key", ["package", "version"])
def test_refuses_metadata_that_disagrees_with_the_manifest(key: str) -> None:
    data = write_archive(FILES, {**META, key: "other"})
    with pytest.raises(PackageError, match=f"metadata.json says {key} 'other'"):
        read_archive(data)


def test_refuses_malformed_metadata() -> None:
    members = [(METADATA, b"{not json"), *list(FILES.items())]
    with pytest.raises(PackageError, match=r"metadata.json is malformed"):
        read_archive(raw_zip(members))


def test_refuses_a_newer_format() -> None:
    data = write_archive(FILES, META)
    archive = read_archive(data)
    meta = {**archive.metadata, "format": 99}
    members = [(METADATA, json.dumps(meta).encode()), *list(FILES.items())]
    with pytest.raises(PackageError, match=r"newer"):
        read_archive(raw_zip(members))


def test_refuses_a_malformed_manifest() -> None:
    files = {**FILES, MANIFEST: b"this is = = not toml"}
    members = [(METADATA, metadata_for(files)), *list(files.items())]
    with pytest.raises(PackageError, match=r"manifest.toml is malformed"):
        read_archive(raw_zip(members))


@pytest.mark.parametrize("data", [b"", b"hello, not a zip", b"PK\x03\x04truncated"])
def test_refuses_what_is_not_a_zip(data: bytes) -> None:
    with pytest.raises(PackageError, match=r"not a .cloacina package"):
        read_archive(data)


def test_refuses_what_is_not_bytes() -> None:
    with pytest.raises(PackageError, match=r"bytes"):
        read_archive("demo-1.0.0.cloacina")  # type: ignore[arg-type]
