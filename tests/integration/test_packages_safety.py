"""What ``register_workflow`` refuses (DESIGN.md §6): archives that are not packages, unsafe
members (traversal, absolute paths, links, duplicates), sizes over the limits, contents changed
after the build, and — when signatures are required — unsigned, untrusted or tampered packages.
Every refusal raises the specific error and stores nothing.

The bad archives are made here with ``zipfile`` from a good package's members.
"""

from __future__ import annotations

import io
import json
import stat
import textwrap
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cloacina import DefaultRunner
from cloacina.errors import PackageError, SignatureError, UnsafePackageError
from cloacina.packaging.archive import Limits, fingerprint, read_archive
from cloacina.packaging.signing import generate_keypair, sign_archive, write_keypair

pytestmark = pytest.mark.timeout(60)

RunnerFactory = Callable[..., DefaultRunner]
PackageFactory = Callable[..., bytes]

FLOW = """
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="NAME", package="PKG")
class flow:
    @task(id="only")
    def only(context: Context) -> None:
        context.insert("ran", "PKG")
"""


def good_package(
    tmp_path: Path,
    make_package: PackageFactory,
    package: str,
    extra_files: dict[str, tuple[bytes, bool]] | None = None,
) -> bytes:
    src = {
        f"{package}/__init__.py": "",
        f"{package}/flows.py": textwrap.dedent(
            FLOW.replace("NAME", f"{package}_flow").replace("PKG", package)
        ),
    }
    return make_package(tmp_path, package, "1.0", src, [f"{package}.flows"], extra_files or {})


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def rezip(
    files: dict[str, bytes],
    *,
    links: dict[str, str] | None = None,
    duplicate: str | None = None,
    refingerprint: bool = True,
) -> bytes:
    """A zip of ``files`` (plus symlink members ``links``: name -> target), with the metadata's
    fingerprint recomputed unless ``refingerprint`` is false (to model a modified member)."""
    files = dict(files)
    if refingerprint:
        meta = json.loads(files["metadata.json"])
        meta["fingerprint"] = fingerprint(files)
        files["metadata.json"] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3
            zf.writestr(info, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            info.create_system = 3
            zf.writestr(info, target)
        if duplicate is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
                zf.writestr(duplicate, b"# the second copy\n")
    return buf.getvalue()


def flows_member(package: str) -> str:
    return f"lib/{package}/flows.py"


BadArchive = Callable[[dict[str, bytes]], bytes]

SAFETY_CASES: list[tuple[str, BadArchive, type[PackageError], str]] = [
    ("not_a_zip", lambda _m: b"this is not a zip archive at all", PackageError, "not a .cloacina"),
    ("empty_bytes", lambda _m: b"", PackageError, "not a .cloacina"),
    (
        "parent_traversal",
        lambda m: rezip({**m, "../evil.py": b"print('escaped')\n"}),
        UnsafePackageError,
        "path traversal",
    ),
    (
        "nested_traversal",
        lambda m: rezip({**m, "lib/../../evil.py": b"print('escaped')\n"}),
        UnsafePackageError,
        "path traversal",
    ),
    (
        "absolute_path",
        lambda m: rezip({**m, "/tmp/cloacina-evil.py": b"print('escaped')\n"}),
        UnsafePackageError,
        "absolute path",
    ),
    (
        "symlink_member",
        lambda m: rezip(m, links={"lib/secrets.py": "/etc/passwd"}),
        UnsafePackageError,
        "it is a link",
    ),
    (
        "duplicate_member",
        lambda m: rezip(m, duplicate="manifest.toml"),
        UnsafePackageError,
        "twice",
    ),
    (
        "modified_member",
        lambda m: rezip(
            {
                name: content + b"\nimport os  # added after the build\n"
                if name.endswith("/flows.py")
                else content
                for name, content in m.items()
            },
            refingerprint=False,
        ),
        UnsafePackageError,
        "fingerprint mismatch",
    ),
    (
        "added_member",
        lambda m: rezip({**m, "lib/backdoor.py": b"import os\n"}, refingerprint=False),
        UnsafePackageError,
        "fingerprint mismatch",
    ),
    (
        "missing_manifest",
        lambda m: rezip({k: v for k, v in m.items() if k != "manifest.toml"}),
        PackageError,
        "manifest.toml is missing",
    ),
]


@pytest.mark.parametrize(
    ("case", "make_bad", "error", "needle"),
    SAFETY_CASES,
    ids=[c[0] for c in SAFETY_CASES],
)
def test_unsafe_or_invalid_archives_are_refused(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    case: str,
    make_bad: BadArchive,
    error: type[PackageError],
    needle: str,
) -> None:
    runner = make_package_runner()
    package = f"safe_{case}"
    good = good_package(tmp_path, make_package, package)
    bad = make_bad(members(good))

    with pytest.raises(error) as caught:
        runner.register_workflow(bad)
    assert needle in str(caught.value), str(caught.value)
    assert runner.list_packages() == []
    assert f"{package}_flow" not in {wf.name for wf in runner.list_workflows()}
    assert not Path("/tmp/cloacina-evil.py").exists()

    # The genuine package still registers and runs on the same runner.
    runner.register_workflow(good)
    result = runner.execute(f"{package}_flow", timeout=30)
    assert (result.status, result.final_context) == ("completed", {"ran": package})


@pytest.mark.parametrize(
    ("limits", "needle"),
    [
        (Limits(max_member_bytes=10_000), "over the limit of 10000"),
        (Limits(max_total_bytes=15_000), "exceed the limit of 15000"),
        (Limits(max_members=3), "over the limit of 3"),
    ],
    ids=["member_bytes", "total_bytes", "members"],
)
def test_packages_over_the_size_limits_are_refused(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    limits: Limits,
    needle: str,
) -> None:
    runner = make_package_runner(package_limits=limits)
    big = good_package(tmp_path, make_package, "big_pkg", {"data/big.bin": (b"x" * 20_000, False)})
    with pytest.raises(UnsafePackageError) as caught:
        runner.register_workflow(big)
    assert needle in str(caught.value), str(caught.value)
    assert runner.list_packages() == []


def test_member_header_that_lies_about_its_size_is_refused(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    """A zip bomb's header understates the member: the inflated size is what counts."""
    runner = make_package_runner(package_limits=Limits(max_member_bytes=10_000))
    data = bytearray(
        good_package(tmp_path, make_package, "bomb_pkg", {"data/big.bin": (b"x" * 50_000, False)})
    )
    # Patch the uncompressed size of data/big.bin (central directory and local header) to 100.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos, position = zf.infolist(), zf.start_dir
    for info in infos:
        name_len, extra_len, comment_len = (
            int.from_bytes(data[position + at : position + at + 2], "little") for at in (28, 30, 32)
        )
        if info.filename == "data/big.bin":
            data[position + 24 : position + 28] = (100).to_bytes(4, "little")
            local = info.header_offset
            data[local + 22 : local + 26] = (100).to_bytes(4, "little")
        position += 46 + name_len + extra_len + comment_len
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("data/big.bin").file_size == 100

    with pytest.raises(UnsafePackageError) as caught:
        runner.register_workflow(bytes(data))
    assert "data/big.bin" in str(caught.value), str(caught.value)
    assert runner.list_packages() == []


def _flip_in_member_data(data: bytes, name: str) -> bytes:
    """``data`` with one byte changed in the middle of member ``name``'s compressed bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    start = info.header_offset
    name_len = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(data[start + 28 : start + 30], "little")
    offset = start + 30 + name_len + extra_len + info.compress_size // 2
    bad = bytearray(data)
    bad[offset] ^= 0xFF
    return bytes(bad)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned_runner", "signing_runner"])
def test_corrupted_member_data_is_refused_with_a_package_error(
    tmp_path: Path,
    make_package: PackageFactory,
    make_package_runner: RunnerFactory,
    signed: bool,
) -> None:
    pair = generate_keypair()
    _, public = write_keypair(pair, tmp_path / "keys", "team")
    runner = (
        make_package_runner(require_signatures=True, trusted_keys=[public])
        if signed
        else make_package_runner()
    )
    data = good_package(tmp_path, make_package, "corrupt_pkg")
    signature = sign_archive(data, pair.private_pem) if signed else None
    bad = _flip_in_member_data(data, flows_member("corrupt_pkg"))

    with pytest.raises(PackageError) as caught:  # not a raw zipfile.BadZipFile / zlib.error
        runner.register_workflow(bad, signature)
    assert "corrupt_pkg/flows.py" in str(caught.value), str(caught.value)
    assert runner.list_packages() == []


# ---- signatures --------------------------------------------------------------------------------
def test_signatures_required(
    tmp_path: Path, make_package: PackageFactory, make_package_runner: RunnerFactory
) -> None:
    trusted = generate_keypair()
    _, public = write_keypair(trusted, tmp_path / "keys", "team")
    stranger = generate_keypair()
    runner = make_package_runner(require_signatures=True, trusted_keys=[public])
    data = good_package(tmp_path, make_package, "signed_pkg")
    signature = sign_archive(data, trusted.private_pem)

    with pytest.raises(SignatureError, match="not signed"):
        runner.register_workflow(data)
    with pytest.raises(SignatureError, match="not among the trusted keys"):
        runner.register_workflow(data, sign_archive(data, stranger.private_pem))
    with pytest.raises(SignatureError, match="malformed"):
        runner.register_workflow(data, b"not a signature file")

    # One byte changed (a member's timestamp in its local header): still a well-formed
    # package, but not the bytes that were signed.
    tampered = bytearray(data)
    tampered[10] ^= 0x01
    read_archive(bytes(tampered))  # a valid archive: only the signature can catch it
    with pytest.raises(SignatureError, match="different package bytes"):
        runner.register_workflow(bytes(tampered), signature)

    # A forged signature: the right key named, the right hash, a signature by another key.
    forged = json.loads(sign_archive(data, stranger.private_pem))
    forged["key"] = trusted.fingerprint
    with pytest.raises(SignatureError, match="does not verify"):
        runner.register_workflow(data, json.dumps(forged).encode())
    assert runner.list_packages() == []

    package_id = runner.register_workflow(data, signature)
    [info] = runner.list_packages()
    assert (info.id, info.signer) == (package_id, trusted.fingerprint)
    result = runner.execute("signed_pkg_flow", timeout=30)
    assert (result.status, result.final_context) == ("completed", {"ran": "signed_pkg"})

    # Another runner trusting the key (a directory of .pub files) loads and runs it too.
    other = make_package_runner(require_signatures=True, trusted_keys=[tmp_path / "keys"])
    again = other.execute("signed_pkg_flow", timeout=30)
    assert again.status == "completed", again.error
