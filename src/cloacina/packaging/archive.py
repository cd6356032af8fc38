"""The ``.cloacina`` archive: a reproducible zip of ``metadata.json``, ``manifest.toml`` and
``lib/`` (plus any extra files such as command-task executables).

Writing is deterministic: sorted entries, fixed timestamps and modes, so the same inputs give
byte-identical archives. Reading refuses anything unsafe before a byte reaches the disk:
absolute paths, ``..``, links, special files, duplicate names, oversized members or totals,
and a content fingerprint that does not match.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cloacina.errors import PackageError, UnsafePackageError
from cloacina.packaging.manifest import Manifest

METADATA = "metadata.json"
MANIFEST = "manifest.toml"
ARCHIVE_FORMAT = 1
SUFFIX = ".cloacina"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Limits:
    """Size limits applied when reading an archive (bytes, uncompressed)."""

    max_member_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024
    max_members: int = 20_000


DEFAULT_LIMITS = Limits()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(files: Mapping[str, bytes]) -> str:
    """The content fingerprint: SHA-256 over every member but ``metadata.json``, by path."""
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == METADATA:
            continue
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class PackageArchive:
    """A verified archive, held in memory."""

    data: bytes
    files: dict[str, bytes]
    modes: dict[str, int]
    metadata: dict[str, Any]
    manifest: Manifest
    sha256: str = field(default="")

    @property
    def name(self) -> str:
        return self.manifest.package

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def fingerprint(self) -> str:
        return str(self.metadata.get("fingerprint", ""))

    def extract(self, target: Path) -> None:
        """Write the members under ``target`` (regular files only, modes 0644/0755)."""
        root = target.resolve()
        for name, content in sorted(self.files.items()):
            path = (root / name).resolve()
            if root not in path.parents:  # belt and braces: names were checked on read
                raise UnsafePackageError(f"refusing to write {name!r} outside {root}")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(content)
            os.chmod(tmp, 0o755 if self.modes.get(name, 0) & 0o111 else 0o644)
            os.replace(tmp, path)


def write_archive(
    files: Mapping[str, bytes],
    metadata: dict[str, Any],
    *,
    executable: frozenset[str] = frozenset(),
) -> bytes:
    """Build a reproducible archive of ``files`` (which must include ``manifest.toml``).

    ``metadata`` gains the content fingerprint. Entries are sorted, timestamps fixed at
    1980-01-01 (zip's epoch), modes 0644 (0755 for ``executable`` members).
    """
    if MANIFEST not in files:
        raise PackageError("a package needs a manifest.toml")
    members = dict(files)
    meta = dict(metadata)
    meta["format"] = ARCHIVE_FORMAT
    meta["fingerprint"] = fingerprint(members)
    members[METADATA] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(members):
            _check_name(name)
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name in executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.create_system = 3  # unix, so the mode bits are honoured
            zf.writestr(info, members[name])
    return buf.getvalue()


def _check_name(name: str) -> None:
    if not name or "\\" in name or "\0" in name:
        raise UnsafePackageError(f"refusing archive member {name!r}: not a plain relative path")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePackageError(f"refusing archive member {name!r}: absolute path")
    parts = PurePosixPath(name).parts
    if (
        any(p in ("..", ".", "") for p in parts)
        or name.endswith("/")
        or PurePosixPath(name).as_posix() != name  # "a//b", "./a": another name for a file
    ):
        raise UnsafePackageError(
            f"refusing archive member {name!r}: path traversal or a non-canonical path"
        )


def read_archive(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PackageArchive:
    """Open and verify an archive held in memory. Raises :class:`UnsafePackageError` or
    :class:`PackageError` saying exactly what is wrong; nothing is written anywhere."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PackageError(f"a package is bytes (the .cloacina file's content), not {type(data)}")
    data = bytes(data)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise PackageError(
            f"not a .cloacina package ({exc}); build one with `cloacina package build`"
        ) from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise UnsafePackageError(
                f"package has {len(infos)} members, over the limit of {limits.max_members}"
            )
        files: dict[str, bytes] = {}
        modes: dict[str, int] = {}
        total = 0
        for info in infos:
            name = info.filename
            if info.is_dir():
                _check_name(name.rstrip("/"))
                continue
            _check_name(name)
            if name in files:
                raise UnsafePackageError(f"package lists member {name!r} twice")
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise UnsafePackageError(f"refusing archive member {name!r}: it is a link")
            if kind not in (0, stat.S_IFREG):
                raise UnsafePackageError(f"refusing archive member {name!r}: not a regular file")
            if info.file_size > limits.max_member_bytes:
                raise UnsafePackageError(
                    f"archive member {name!r} is {info.file_size} bytes, over the limit of "
                    f"{limits.max_member_bytes}"
                )
            try:  # read at most limit+1: the header may lie (zip bombs)
                with zf.open(info) as fh:
                    content = fh.read(limits.max_member_bytes + 1)
            except (
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                # A header that lies about sizes ends in a CRC error; encrypted (RuntimeError)
                # or exotic (NotImplementedError) members cannot be read either.
                raise UnsafePackageError(f"archive member {name!r} cannot be read: {exc}") from exc
            if len(content) > limits.max_member_bytes:
                raise UnsafePackageError(
                    f"archive member {name!r} inflates past the limit of "
                    f"{limits.max_member_bytes} bytes"
                )
            total += len(content)
            if total > limits.max_total_bytes:
                raise UnsafePackageError(
                    f"package contents exceed the limit of {limits.max_total_bytes} bytes"
                )
            files[name] = content
            modes[name] = mode & 0o777
    for required in (METADATA, MANIFEST):
        if required not in files:
            raise PackageError(f"not a .cloacina package: {required} is missing")
    try:
        metadata = json.loads(files[METADATA])
        if not isinstance(metadata, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise PackageError(f"metadata.json is malformed: {exc}") from exc
    try:
        archive_format = int(metadata.get("format", 1))
    except (TypeError, ValueError):
        raise PackageError(f"metadata.json has a bad format {metadata.get('format')!r}") from None
    if archive_format > ARCHIVE_FORMAT:
        raise PackageError(
            f"package format {metadata['format']} is newer than this cloacina reads; upgrade"
        )
    expected = metadata.get("fingerprint")
    actual = fingerprint(files)
    if expected != actual:
        raise UnsafePackageError(
            f"package fingerprint mismatch: metadata says {expected!r} but the contents hash "
            f"to {actual!r}; the archive was modified after it was built"
        )
    manifest = Manifest.from_toml(files[MANIFEST].decode("utf-8", errors="replace"))
    for key in ("package", "version"):
        meta_value = metadata.get(key)
        manifest_value = manifest.package if key == "package" else manifest.version
        if meta_value != manifest_value:
            raise PackageError(
                f"metadata.json says {key} {meta_value!r} but manifest.toml says {manifest_value!r}"
            )
    return PackageArchive(
        data=data,
        files=files,
        modes=modes,
        metadata=metadata,
        manifest=manifest,
        sha256=sha256_hex(data),
    )


def archive_name(package: str, version: str) -> str:
    return f"{package}-{version}{SUFFIX}"
