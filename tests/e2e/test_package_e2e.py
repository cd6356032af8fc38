"""``cloacina package ...`` and ``cloacina keys ...`` end to end: real files, the real CLI in
subprocesses, real pip (offline: dependencies are local wheels, ``PIP_NO_INDEX=1``)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from cloacina.packaging.archive import METADATA, read_archive, write_archive

from .helpers import Cli

pytestmark = pytest.mark.timeout(180)

#: pip must not reach an index: every dependency here is a local file.
OFFLINE = {"PIP_NO_INDEX": "1"}


# ---- helpers ---------------------------------------------------------------------------------
def make_wheel(
    directory: Path, name: str, version: str, files: dict[str, bytes], *, purelib: bool = True
) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD), built without any build backend."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: cloacina-tests\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: py3-none-any\n"
    ).encode()
    rows = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(data)}")
    rows.append(f"{info}/RECORD,,")
    members[f"{info}/RECORD"] = ("\n".join(rows) + "\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return wheel


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()


# ---- scaffold -> tests -> build twice -> inspect -> verify ------------------------------------
def test_scaffold_test_build_inspect_verify(cli: Cli, tmp_path: Path) -> None:
    res = cli("package", "new", "acme-flows")
    assert res.returncode == 0, res
    project = tmp_path / "acme-flows"
    for rel in (
        "pyproject.toml",
        "README.md",
        "src/acme_flows/__init__.py",
        "src/acme_flows/workflows.py",
        "tests/test_workflows.py",
    ):
        assert (project / rel).is_file(), rel
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "acme-flows"' in pyproject and 'version = "0.1.0"' in pyproject
    assert 'requires-python = ">=3.11"' in pyproject and "dependencies = []" in pyproject
    assert 'modules = ["acme_flows.workflows"]' in pyproject
    assert 'package="acme_flows"' in (project / "src/acme_flows/workflows.py").read_text()

    # the scaffold's own tests pass: a whole run on SQLite, and a task called directly
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout

    # it never overwrites
    again = cli("package", "new", "acme-flows")
    assert again.returncode == 2 and "already exists" in again.stderr

    first = cli("package", "build", "acme-flows")
    assert first.returncode == 0, first
    archive_path = project / "dist" / "acme_flows-0.1.0.cloacina"
    assert archive_path.is_file()
    out = first.stdout
    assert "acme_flows.workflows" in out  # discovered modules
    assert "workflow acme_flows_pipeline: 3 tasks (extract, transform, report)" in out
    assert "Built acme_flows 0.1.0" in out
    digest = hashlib.sha256(archive_path.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in out

    second = cli("package", "build", str(project), "-o", "elsewhere")
    assert second.returncode == 0, second
    assert (tmp_path / "elsewhere" / archive_path.name).read_bytes() == archive_path.read_bytes()

    shown = cli("package", "inspect", archive_path)
    assert shown.returncode == 0, shown
    for text in (
        "acme_flows 0.1.0",
        "acme_flows_pipeline",
        "extract",
        "transform",
        "report",
        "retry 3x exponential from 0.5s",
        "timeout 30s",
        "lib/acme_flows/",
        digest,
        "not signed",
    ):
        assert text in shown.stdout, text
    # the tree nests report under transform under extract
    lines = shown.stdout.splitlines()
    indent = {t: next(ln.index(t) for ln in lines if f" {t}" in ln) for t in ("extract", "report")}
    assert indent["report"] > indent["extract"]

    as_json = cli("package", "inspect", archive_path, "--json")
    assert as_json.returncode == 0, as_json
    data = json.loads(as_json.stdout)
    assert data["sha256"] == digest
    assert data["metadata"]["package"] == "acme_flows"
    (wf,) = data["manifest"]["workflows"]
    assert [t["id"] for t in wf["tasks"]] == ["extract", "transform", "report"]

    verified = cli("package", "verify", archive_path)
    assert verified.returncode == 0, verified
    assert "manifest matches the code" in verified.stdout
    assert "OK" in verified.stdout


def test_package_new_into_a_directory(cli: Cli, tmp_path: Path) -> None:
    res = cli("package", "new", "tiny", "--dir", "nested/place")
    assert res.returncode == 0, res
    assert (tmp_path / "nested/place/src/tiny/workflows.py").is_file()
    bad = cli("package", "new", "1-not-a-name")
    assert bad.returncode == 2 and "cannot name a Python package" in bad.stderr


# ---- a flat project with a vendored dependency and a command task -----------------------------
FLAT_FLOWS = """
from cloacina import Context, packaged_workflow, task
from cloacina.packaging.command import command_task
from tinydep import shout


@packaged_workflow(name="flat_flow", package="flat_flows", description="flat layout")
class flat_flow:
    @task()
    def greet(context: Context) -> None:
        context.insert("greeting", shout(context.get("name", "world")))

    enrich = command_task(
        id="enrich", command=["bin/enrich.sh"], dependencies=[greet], timeout=30
    )

    @task(dependencies=[greet, enrich])
    def finish(context: Context) -> None:
        context.insert("done", context["greeting"] + " " + str(context["enriched"]))
"""

ENRICH = """\
#!/bin/sh
# reads the context (JSON) on stdin, prints its updates (JSON) on stdout
cat > /dev/null
echo '{"enriched": 42}'
"""


def flat_project(root: Path, wheel: Path) -> Path:
    write_files(
        root,
        {
            "pyproject.toml": f"""
                [project]
                name = "flat-flows"
                version = "1.4.0"
                description = "A flat-layout project"
                authors = [{{name = "Flo", email = "flo@example.com"}}]
                dependencies = ["tinydep @ {wheel.as_uri()}", "cloacina>=0.1"]

                [tool.cloacina]
                include = ["bin/*.sh"]
            """,
            "flat_flows/__init__.py": "",
            "flat_flows/flows.py": FLAT_FLOWS,
            "bin/enrich.sh": ENRICH,
        },
    )
    (root / "bin/enrich.sh").chmod(0o755)
    return root


def test_flat_project_with_dependency_and_command_task(cli: Cli, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "wheels",
        "tinydep",
        "0.3.1",
        {"tinydep/__init__.py": b"def shout(text):\n    return text.upper() + '!'\n"},
    )
    project = flat_project(tmp_path / "flat", wheel)

    first = cli("package", "build", "flat", env=OFFLINE, timeout=120)
    assert first.returncode == 0, first
    assert "flat layout" in first.stdout
    assert "tinydep 0.3.1" in first.stdout
    assert "skipped cloacina>=0.1" in first.stdout
    assert "1 command" in first.stdout
    path = project / "dist" / "flat_flows-1.4.0.cloacina"
    data = path.read_bytes()

    second = cli("package", "build", "flat", "-o", "again", env=OFFLINE, timeout=120)
    assert second.returncode == 0, second
    assert (tmp_path / "again" / path.name).read_bytes() == data  # byte-identical

    archive = read_archive(data)
    members = names(data)
    assert "lib/tinydep/__init__.py" in members
    assert "lib/tinydep-0.3.1.dist-info/METADATA" in members
    assert not [n for n in members if n.endswith(("RECORD", "INSTALLER", "direct_url.json"))]
    assert not [n for n in members if "cloacina/" in n or "__pycache__" in n]
    assert "lib/flat_flows/flows.py" in members
    assert archive.modes["bin/enrich.sh"] == 0o755
    meta = archive.metadata
    assert meta["dependencies"] == ["tinydep==0.3.1"]
    assert meta["author"] == "Flo <flo@example.com>"
    assert meta["description"] == "A flat-layout project"
    assert "platform" not in meta
    (wf,) = archive.manifest.workflows
    assert [t.id for t in wf.tasks] == ["greet", "enrich", "finish"]
    assert wf.tasks[1].command == ("bin/enrich.sh",)

    shown = cli("package", "inspect", path)
    assert shown.returncode == 0, shown
    assert "command: bin/enrich.sh" in shown.stdout
    assert "tinydep==0.3.1" in shown.stdout
    assert "bin/enrich.sh  (executable)" in shown.stdout
    assert "also after greet" in shown.stdout  # finish hangs under enrich, also needs greet

    verified = cli("package", "verify", path)
    assert verified.returncode == 0, verified

    # register it and run it: the vendored dependency and the command task work
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    registered = cli("package", "register", path, "--db", db, timeout=60)
    assert registered.returncode == 0, registered
    for text in ("Registered flat_flows 1.4.0", "id ", "flat_flow", "1.4.0"):
        assert text in registered.stdout, text
    ran = cli("run", "flat_flow", "--db", db, "--json", "--context", '{"name": "ann"}', timeout=60)
    assert ran.returncode == 0, ran
    result = json.loads(ran.stdout)
    assert result["status"] == "completed", result
    assert result["final_context"]["done"] == "ANN! 42"


def test_native_dependency_is_refused_unless_allowed(cli: Cli, tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "wheels",
        "fastdep",
        "2.0.0",
        {"fastdep/__init__.py": b"X = 1\n", "fastdep/_speedups.so": b"\x7fELF not really"},
    )
    write_files(
        tmp_path / "proj",
        {
            "pyproject.toml": f"""
                [project]
                name = "native-flows"
                version = "0.1.0"
                dependencies = ["fastdep @ {wheel.as_uri()}"]
            """,
            "src/native_flows/__init__.py": """
                from cloacina import Context, packaged_workflow, task


                @packaged_workflow(name="native_flow", package="native_flows")
                class native_flow:
                    @task()
                    def only(context: Context) -> None:
                        pass
            """,
        },
    )
    refused = cli("package", "build", "proj", env=OFFLINE, timeout=120)
    assert refused.returncode == 1, refused
    assert "dependency fastdep 2.0.0: fastdep/_speedups.so" in refused.stderr
    assert "--allow-native" in refused.stderr
    assert not (tmp_path / "proj" / "dist").exists()

    allowed = cli("package", "build", "proj", "--allow-native", env=OFFLINE, timeout=120)
    assert allowed.returncode == 0, allowed
    meta = read_archive((tmp_path / "proj/dist/native_flows-0.1.0.cloacina").read_bytes()).metadata
    assert meta["platform"]
    shown = cli("package", "inspect", "proj/dist/native_flows-0.1.0.cloacina")
    assert meta["platform"] in shown.stdout


def test_build_errors_are_clear(cli: Cli, tmp_path: Path) -> None:
    write_files(
        tmp_path / "wrong",
        {
            "pyproject.toml": '[project]\nname = "wrong"\nversion = "1"\n',
            "wrong/__init__.py": """
                from cloacina import Context, packaged_workflow, task


                @packaged_workflow(name="w", package="not_wrong")
                class w:
                    @task()
                    def t(context: Context) -> None:
                        pass
            """,
        },
    )
    res = cli("package", "build", "wrong")
    assert res.returncode == 1
    assert "declares package 'not_wrong', but this project builds package 'wrong'" in res.stderr
    assert "Traceback" not in res.stderr
    missing = cli("package", "build", "nowhere")
    assert missing.returncode == 2 and "nowhere" in missing.stderr


# ---- keys, signing, tampering -----------------------------------------------------------------
def test_keys_sign_verify_and_tampering(cli: Cli, tmp_path: Path) -> None:
    assert cli("package", "new", "signed").returncode == 0
    assert cli("package", "build", "signed").returncode == 0
    path = tmp_path / "signed/dist/signed-0.1.0.cloacina"

    gen = cli("keys", "generate", "--dir", "keys", "--name", "team")
    assert gen.returncode == 0, gen
    key, pub = tmp_path / "keys/team.key", tmp_path / "keys/team.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and pub.is_file()
    fingerprint = cli("keys", "fingerprint", pub).stdout.strip()
    assert fingerprint.startswith("SHA256:") and fingerprint in gen.stdout
    assert cli("keys", "generate", "--dir", "keys", "--name", "team").returncode == 2
    assert cli("keys", "generate", "--dir", "keys", "--name", "other").returncode == 0

    signed = cli("package", "sign", path, "--key", key)
    assert signed.returncode == 0, signed
    sig = Path(str(path) + ".sig")
    assert sig.is_file() and fingerprint in signed.stdout

    ok = cli("package", "verify", path, "--trusted-key", pub)
    assert ok.returncode == 0, ok
    assert f"signature by trusted key {fingerprint}" in ok.stdout
    assert f"signed by {fingerprint}" in cli("package", "inspect", path).stdout
    unchecked = cli("package", "verify", path)
    assert unchecked.returncode == 0 and "not checked" in unchecked.stdout

    untrusted = cli("package", "verify", path, "--trusted-key", tmp_path / "keys/other.pub")
    assert untrusted.returncode == 1, untrusted
    assert "not among the trusted keys" in untrusted.stderr

    # one flipped byte: the archive (and its signature) no longer check out
    tampered = tmp_path / "tampered.cloacina"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    tampered.write_bytes(bytes(data))
    Path(str(tampered) + ".sig").write_bytes(sig.read_bytes())
    bad = cli("package", "verify", tampered, "--trusted-key", pub)
    assert bad.returncode == 1, bad
    assert "does not verify" in bad.stderr

    # a well-formed archive with other contents under the old signature
    archive = read_archive(path.read_bytes())
    files = {n: c for n, c in archive.files.items() if n != METADATA}
    files["lib/signed/__init__.py"] = b"# changed after signing\n"
    meta = {k: v for k, v in archive.metadata.items() if k not in ("fingerprint", "format")}
    resealed = tmp_path / "resealed.cloacina"
    resealed.write_bytes(write_archive(files, meta))
    Path(str(resealed) + ".sig").write_bytes(sig.read_bytes())
    res = cli("package", "verify", resealed, "--trusted-key", pub)
    assert res.returncode == 1, res
    assert "the signature is for different package bytes" in res.stderr

    # registering with signatures required: refused unsigned, accepted signed and trusted
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    unsigned = tmp_path / "unsigned.cloacina"
    unsigned.write_bytes(path.read_bytes())
    nosig = cli("package", "verify", unsigned, "--trusted-key", pub)
    assert nosig.returncode == 1 and "not signed" in nosig.stderr
    junk = cli("keys", "fingerprint", unsigned)
    assert junk.returncode == 2 and "not an Ed25519 public key" in junk.stderr
    refused = cli("package", "register", unsigned, "--db", db, "--require-signatures", timeout=60)
    assert refused.returncode == 1 and "not signed" in refused.stderr
    accepted = cli(
        "package", "register", path, "--db", db, "--require-signatures",
        "--trusted-key", pub, timeout=60,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted
    assert "signed_pipeline" in accepted.stdout


def test_verify_finds_a_manifest_that_lies(cli: Cli, tmp_path: Path) -> None:
    """Code changed inside a re-sealed archive (fingerprint recomputed): verify re-imports
    the code and names the difference."""
    assert cli("package", "new", "liar").returncode == 0
    assert cli("package", "build", "liar").returncode == 0
    archive = read_archive((tmp_path / "liar/dist/liar-0.1.0.cloacina").read_bytes())
    files = {n: c for n, c in archive.files.items() if n != METADATA}
    code = files["lib/liar/workflows.py"].decode()
    files["lib/liar/workflows.py"] = code.replace(
        "@task(dependencies=[transform], timeout=30)", "@task(dependencies=[extract], timeout=30)"
    ).encode()
    assert files["lib/liar/workflows.py"].decode() != code
    meta = {k: v for k, v in archive.metadata.items() if k not in ("fingerprint", "format")}
    lying = tmp_path / "lying.cloacina"
    lying.write_bytes(write_archive(files, meta))
    res = cli("package", "verify", lying)
    assert res.returncode == 1, res
    assert "FAILED" in res.stderr
    assert "task 'report': the manifest says dependencies = ['transform']" in res.stderr
    assert "but the code says ['extract']" in res.stderr
    assert "the manifest says version = " in res.stderr


# ---- a dependency built from a local source project (setuptools) ------------------------------
def _setuptools_builds_wheels_offline() -> bool:
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        from setuptools import __version__ as version
    except ImportError:
        return False
    major, minor = (int(p) for p in version.split(".")[:2])
    return (major, minor) >= (70, 1)  # bdist_wheel moved into setuptools in 70.1


@pytest.mark.skipif(
    not _setuptools_builds_wheels_offline(),
    reason="setuptools here cannot build wheels without the 'wheel' package (offline)",
)
def test_dependency_from_a_local_setuptools_project(cli: Cli, tmp_path: Path) -> None:
    dep = write_files(
        tmp_path / "localdep",
        {
            "pyproject.toml": """
                [build-system]
                requires = ["setuptools>=61"]
                build-backend = "setuptools.build_meta"

                [project]
                name = "localdep"
                version = "1.0.0"
            """,
            "localdep/__init__.py": "VALUE = 7\n",
        },
    )
    write_files(
        tmp_path / "proj",
        {
            "pyproject.toml": f"""
                [project]
                name = "uses-local"
                version = "0.1.0"
                dependencies = ["localdep @ {dep.as_uri()}"]
            """,
            "uses_local/__init__.py": """
                from localdep import VALUE

                from cloacina import Context, packaged_workflow, task


                @packaged_workflow(name="uses_local_flow", package="uses_local")
                class flow:
                    @task()
                    def read(context: Context) -> None:
                        context.insert("value", VALUE)
            """,
        },
    )
    env = {**OFFLINE, "PIP_NO_BUILD_ISOLATION": "0"}  # pip's inverted flag: 0 = no isolation
    res = cli("package", "build", "proj", env=env, timeout=120)
    assert res.returncode == 0, res
    data = (tmp_path / "proj/dist/uses_local-0.1.0.cloacina").read_bytes()
    assert "lib/localdep/__init__.py" in names(data)
    assert read_archive(data).metadata["dependencies"] == ["localdep==1.0.0"]


def test_build_imports_in_a_clean_process(cli: Cli, tmp_path: Path) -> None:
    """A module reachable only through PYTHONPATH (or the current directory) would be
    missing from the package: the build imports with -I, so it fails there too."""
    write_files(tmp_path / "outside", {"sneaky_helper.py": "VALUE = 1\n"})
    write_files(
        tmp_path / "proj",
        {
            "pyproject.toml": '[project]\nname = "leaky"\nversion = "1"\n',
            "leaky/__init__.py": """
                import sneaky_helper
            """,
        },
    )
    env = {"PYTHONPATH": str(tmp_path / "outside")}
    res = cli("package", "build", tmp_path / "proj", env=env, cwd=tmp_path / "outside")
    assert res.returncode == 1, res
    assert "No module named 'sneaky_helper'" in res.stderr
    assert "[project].dependencies" in res.stderr  # the hint
