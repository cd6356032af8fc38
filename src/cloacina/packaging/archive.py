"""The ``.cloacina`` archive: a reproducible zip of ``metadata.json``, ``manifest.toml`` and
``lib/`` (plus any extra files such as command-task executables).

Writing is deterministic: sorted entries, fixed timestamps and modes, so the same inputs give
byte-identical archives. Reading refuses anything unsafe before a byte reaches the disk:
absolute paths, ``..``, links, special files, duplicate names, names no file system takes
(a component over 255 bytes), a path that is both a file and a directory, oversized files,
members or totals, and a content fingerprint that does not match. Package files are checked
(a regular file, not over the limit) before they are read, and read no further than it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
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
    """Size limits applied when reading an archive: the ``.cloacina`` file itself, and its
    members uncompressed (bytes)."""

    max_member_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024
    max_members: int = 20_000
    #: The file itself: its uncompressed limit plus room for the zip's own structures (an
    #: archive larger than this cannot hold contents within ``max_total_bytes``).
    max_archive_bytes: int = 272 * 1024 * 1024


DEFAULT_LIMITS = Limits()

#: The longest name component most file systems take (``NAME_MAX``), and the longest member
#: name accepted, leaving room for the directory a package is extracted into (``PATH_MAX``).
MAX_COMPONENT_BYTES = 255
MAX_NAME_BYTES = 1024
#: Signature and key files are small; a bigger one is not what it claims to be.
MAX_SMALL_FILE_BYTES = 64 * 1024


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
        """Write the members under ``target`` (regular files only, modes 0644/0755).

        A member the file system refuses (a name too long, a path that is already a file or
        a directory) raises :class:`UnsafePackageError` naming it; other failures (a full
        disk, no permission on ``target``) raise :class:`PackageError`.
        """
        root = target.resolve()
        try:  # the place first: an error here is not the package's fault
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PackageError(f"cannot extract a package into {root}: {exc}") from None
        for name, content in sorted(self.files.items()):
            path = (root / name).resolve()
            if root not in path.parents:  # belt and braces: names were checked on read
                raise UnsafePackageError(f"refusing to write {name!r} outside {root}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # A short temporary name: NAME.tmp would not fit beside a 255-byte NAME.
                fd, tmp = tempfile.mkstemp(prefix=".extract-", dir=path.parent)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                os.chmod(tmp, 0o755 if self.modes.get(name, 0) & 0o111 else 0o644)
                os.replace(tmp, path)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno in _MEMBER_ERRORS:
                    raise UnsafePackageError(
                        f"refusing archive member {show_name(name)}: it cannot be extracted "
                        f"({reason})"
                    ) from None
                raise PackageError(
                    f"cannot extract archive member {show_name(name)} into {root}: {reason}"
                ) from None


#: Extraction errors that come from the member's name, not from the place or the machine.
_MEMBER_ERRORS = frozenset(
    {errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.EILSEQ}
)


def show_name(name: str) -> str:
    """A member name as messages quote it: shortened in the middle when very long."""
    if len(name) > 120:
        return repr(name[:80] + "..." + name[-20:])
    return repr(name)


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
    _check_tree(members)
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
        raise UnsafePackageError(
            f"refusing archive member {show_name(name)}: not a plain relative path"
        )
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafePackageError(f"refusing archive member {show_name(name)}: absolute path")
    parts = PurePosixPath(name).parts
    if (
        any(p in ("..", ".", "") for p in parts)
        or name.endswith("/")
        or PurePosixPath(name).as_posix() != name  # "a//b", "./a": another name for a file
    ):
        raise UnsafePackageError(
            f"refusing archive member {show_name(name)}: path traversal or a non-canonical path"
        )
    encoded = name.encode("utf-8", errors="surrogatepass")
    if len(encoded) > MAX_NAME_BYTES:
        raise UnsafePackageError(
            f"refusing archive member {show_name(name)}: its name is {len(encoded)} bytes long, "
            f"over the limit of {MAX_NAME_BYTES}"
        )
    for part in parts:
        size = len(part.encode("utf-8", errors="surrogatepass"))
        if size > MAX_COMPONENT_BYTES:
            raise UnsafePackageError(
                f"refusing archive member {show_name(name)}: a part of its path is {size} bytes "
                f"long, over the {MAX_COMPONENT_BYTES} bytes file systems take"
            )


def _check_tree(files: Iterable[str], directories: Iterable[str] = ()) -> None:
    """Refuse a path that is both a file and a directory (``a`` and ``a/b``): it cannot be
    extracted."""
    names = set(files)
    for name in sorted(names):
        parent = PurePosixPath(name).parent
        while parent.parts:
            if parent.as_posix() in names:
                raise UnsafePackageError(
                    f"refusing archive member {show_name(parent.as_posix())}: it is a file, "
                    f"and also a directory of member {show_name(name)}"
                )
            parent = parent.parent
    for directory in directories:
        if directory in names:
            raise UnsafePackageError(
                f"refusing archive member {show_name(directory)}: it is both a file and a "
                "directory entry"
            )


def read_archive(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PackageArchive:
    """Open and verify an archive held in memory. Raises :class:`UnsafePackageError` or
    :class:`PackageError` saying exactly what is wrong; nothing is written anywhere."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PackageError(f"a package is bytes (the .cloacina file's content), not {type(data)}")
    data = bytes(data)
    if len(data) > limits.max_archive_bytes:
        raise UnsafePackageError(
            f"package is {len(data)} bytes, over the limit of {limits.max_archive_bytes}"
        )
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
        directories: list[str] = []
        names: set[str] = set()
        for info in infos:  # every name first: nothing is inflated for a package refused
            name = info.filename
            if info.is_dir():
                directories.append(name.rstrip("/"))
                _check_name(directories[-1])
                continue
            _check_name(name)
            if name in names:
                raise UnsafePackageError(f"package lists member {show_name(name)} twice")
            names.add(name)
        _check_tree(names, directories)
        total = 0
        for info in infos:
            name = info.filename
            if info.is_dir():
                continue
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


def read_file_capped(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The content of regular file ``path``, refused before it is read when it is something
    else (a device such as ``/dev/zero``, a FIFO, a socket, a directory) or larger than
    ``max_bytes``; read no further than that even if it grows meanwhile.

    Raises :class:`OSError` when the file cannot be opened, :class:`PackageError` when it is
    not a regular file and :class:`UnsafePackageError` when it is too large.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, FIFO or socket"
            raise PackageError(
                f"{os.fspath(path)!r} is not a regular file ({kind}); give the path of a {what}"
            )
        if st.st_size > max_bytes:
            raise UnsafePackageError(
                f"{os.fspath(path)!r} is {st.st_size} bytes, over the limit of {max_bytes} "
                f"for a {what}"
            )
        fh = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with fh:
        # One read of the expected size (no copy); more only if the file grew meanwhile.
        chunks: list[bytes] = []
        size, cap = 0, max_bytes + 1
        request = min(st.st_size + 1, cap)
        while size < cap:
            chunk = fh.read(min(request, cap - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            request = 1 << 20
        if size > max_bytes:
            raise UnsafePackageError(
                f"{os.fspath(path)!r} grew past the limit of {max_bytes} bytes for a {what} "
                "while it was read"
            )
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_package_file(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a ``.cloacina`` file, size-checked before reading (see
    :func:`read_file_capped`); :func:`read_archive` then verifies them."""
    return read_file_capped(path, limits.max_archive_bytes, ".cloacina package")


def archive_name(package: str, version: str) -> str:
    return f"{package}-{version}{SUFFIX}"
