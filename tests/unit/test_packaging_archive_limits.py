"""Archives that pass the path checks but cannot be extracted, and package files checked before
they are read (issue 9, items 3 and 14)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from cloacina.errors import PackageError, SignatureError, UnsafePackageError
from cloacina.packaging.archive import (
    MANIFEST,
    METADATA,
    Limits,
    PackageArchive,
    fingerprint,
    read_archive,
    read_file_capped,
    read_package_file,
    write_archive,
)
from cloacina.packaging.manifest import Manifest
from cloacina.packaging.signing import load_trusted_keys

MANIFEST_BYTES = Manifest(package="demo", version="1.0.0", modules=(), workflows=()).to_toml()
META = {"package": "demo", "version": "1.0.0"}
LONG = "lib/" + "x" * 256 + ".py"


def crafted(files: dict[str, bytes], directories: tuple[str, ...] = ()) -> bytes:
    """A fingerprinted archive of ``files`` (plus directory entries), without write checks."""
    members = {MANIFEST: MANIFEST_BYTES.encode(), **files}
    meta = {**META, "format": 1, "fingerprint": fingerprint(members)}
    members[METADATA] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for directory in directories:
            zf.writestr(zipfile.ZipInfo(directory + "/"), b"")
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


# ---- item 3: names the file system refuses, files that are also directories --------------------
@pytest.mark.parametrize(
    ("files", "directories", "named", "why"),
    [
        ({LONG: b""}, (), "lib/xxxxxxxx", "over the 255 bytes"),
        ({"lib/" + "é" * 128: b""}, (), "lib/ééé", "256 bytes long"),  # 128 chars, 256 bytes
        ({"lib/" + "/".join(["d" * 200] * 6): b""}, (), "lib/ddd", "over the limit of 1024"),
        ({"lib/pkg": b"", "lib/pkg/mod.py": b""}, (), "'lib/pkg'", "also a directory"),
        ({"lib/a": b"", "lib/a/b/c/d.py": b""}, (), "'lib/a'", "also a directory"),
        ({"lib/pkg": b""}, ("lib/pkg",), "'lib/pkg'", "directory entry"),
    ],
    ids=["long-component", "long-in-utf8", "long-name", "file-dir", "deep-file-dir", "dir-entry"],
)
def test_members_that_cannot_be_extracted_are_refused_on_read(
    files: dict[str, bytes], directories: tuple[str, ...], named: str, why: str
) -> None:
    with pytest.raises(UnsafePackageError) as caught:
        read_archive(crafted(files, directories))
    message = str(caught.value)
    assert named in message and why in message, message


def test_the_builder_refuses_them_too() -> None:
    base = {MANIFEST: MANIFEST_BYTES.encode()}
    with pytest.raises(UnsafePackageError, match="over the 255 bytes"):
        write_archive({**base, LONG: b""}, META)
    with pytest.raises(UnsafePackageError, match="'lib/pkg': it is a file, and also a dir"):
        write_archive({**base, "lib/pkg": b"", "lib/pkg/mod.py": b""}, META)


def test_names_at_the_limits_are_fine(tmp_path: Path) -> None:
    name = "lib/" + "x" * 252 + ".py"  # a 255-byte component
    data = write_archive({MANIFEST: MANIFEST_BYTES.encode(), name: b"ok"}, META)
    read_archive(data).extract(tmp_path / "out")
    assert (tmp_path / "out" / name).read_bytes() == b"ok"


def test_an_extraction_error_names_the_member(tmp_path: Path) -> None:
    # An archive object that skipped read_archive's checks: extract still refuses cleanly.
    archive = PackageArchive(
        data=b"",
        files={"lib/pkg": b"", "lib/pkg/mod.py": b"", MANIFEST: b""},
        modes={},
        metadata={},
        manifest=Manifest(package="demo", version="1.0.0", modules=(), workflows=()),
    )
    with pytest.raises(UnsafePackageError, match=r"refusing archive member 'lib/pkg/mod\.py'"):
        archive.extract(tmp_path / "out")


def test_an_extraction_error_of_the_place_is_not_called_unsafe(tmp_path: Path) -> None:
    archive = read_archive(write_archive({MANIFEST: MANIFEST_BYTES.encode(), "a": b""}, META))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PackageError, match="cannot extract a package into") as caught:
        archive.extract(blocker / "out")
    assert not isinstance(caught.value, UnsafePackageError)


# ---- item 14: sizes before contents ------------------------------------------------------------
def test_read_archive_refuses_bytes_over_the_file_limit() -> None:
    data = write_archive({MANIFEST: MANIFEST_BYTES.encode()}, META)
    with pytest.raises(UnsafePackageError, match="over the limit of 100"):
        read_archive(data, Limits(max_archive_bytes=100))


def test_read_package_file_checks_the_size_before_reading(tmp_path: Path) -> None:
    limits = Limits(max_archive_bytes=1000)
    sparse = tmp_path / "big.cloacina"
    with sparse.open("wb") as fh:
        fh.truncate(10**12)  # a terabyte, sparse: only a stat can afford to look at it
    with pytest.raises(UnsafePackageError, match="is 1000000000000 bytes, over the limit of 1000"):
        read_package_file(sparse, limits)
    fine = tmp_path / "fine.cloacina"
    fine.write_bytes(b"x" * 1000)
    assert read_package_file(fine, limits) == b"x" * 1000


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_read_package_file_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    if kind == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = Path("/dev/zero")
    elif kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)  # opening it must not wait for a writer
    else:
        path = tmp_path
    with pytest.raises(PackageError, match="is not a regular file"):
        read_package_file(path)


def test_read_file_capped_reads_what_fits(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert read_file_capped(path, 3) == b"abc"
    with pytest.raises(UnsafePackageError, match="over the limit of 2"):
        read_file_capped(path, 2)
    with pytest.raises(FileNotFoundError):
        read_file_capped(tmp_path / "missing", 10)


def test_trusted_key_that_is_a_device_is_refused() -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(SignatureError, match="not a regular file"):
        load_trusted_keys(["/dev/zero"])
