"""What code declares, and whether a package's manifest tells the truth about it.

:func:`inspect_code` imports modules in a clean interpreter, the same isolated process a
package's tasks run in (``cloacina.packaging.worker inspect``: the standard library,
``cloacina`` and the package's ``lib/``), so nothing of the calling process (its ``sys.path``,
its site-packages, already-imported modules, environment variables) leaks in. The builder
uses it to write the manifest; :func:`verify_package` uses it to check a built package
against its manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloacina.errors import PackageError, SignatureError
from cloacina.packaging import protocol
from cloacina.packaging.archive import DEFAULT_LIMITS, Limits, PackageArchive, read_archive
from cloacina.packaging.manifest import TaskSpec, WorkflowSpec
from cloacina.packaging.signing import load_trusted_keys, verify_signature
from cloacina.packaging.worker import command as worker_command
from cloacina.packaging.worker import describe_exit

INSPECT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Declared:
    """A workflow as the code declares it, with the package it names."""

    spec: WorkflowSpec
    package: str


def inspect_code(
    lib: Sequence[Path],
    modules: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = INSPECT_TIMEOUT,
) -> list[Declared]:
    """Import ``modules`` with ``lib`` first on the path in a fresh, isolated interpreter;
    the ``@packaged_workflow`` classes they define. Raises :class:`PackageError` with the
    import's traceback when it fails."""
    # It dies with us (a killed build or verify), and sees what a package process sees.
    cmd = worker_command(
        "inspect", lib=[str(p) for p in lib], modules=list(modules), parent_pid=os.getpid()
    )
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PackageError(
            f"importing {', '.join(modules)} did not finish within {timeout:g}s; does a module "
            "do work at import time (a loop, a network call)?"
        ) from exc
    stderr = proc.stderr.decode("utf-8", errors="replace").strip()
    try:
        reply = protocol.read(io.BytesIO(proc.stdout))
    except ValueError:
        reply = None
    if reply is None:
        raise PackageError(
            f"the inspection process ended without an answer ({describe_exit(proc.returncode)})"
            + (f":\n{stderr[-3000:]}" if stderr else "")
        )
    if "error" in reply:
        text = tidy_traceback(str(reply["error"]))
        raise PackageError(f"importing {', '.join(modules)} failed:\n{text}")
    return [
        Declared(WorkflowSpec.from_data(data), str(data.get("package", "")))
        for data in reply.get("workflows", [])
    ]


_MACHINERY = ("<frozen importlib.", "/importlib/__init__.py", "/cloacina/packaging/worker.py")


def tidy_traceback(text: str) -> str:
    """A traceback without the frames of the import machinery and of the inspection
    process, so that it starts in the user's code."""
    out: list[str] = []
    skipping = False
    for line in text.strip().splitlines():
        if line.startswith('  File "'):
            path = line[len('  File "') :].split('"', 1)[0]
            skipping = any(marker in path for marker in _MACHINERY)
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            out.append(line)
    return "\n".join(out)


# ---- manifest against code --------------------------------------------------------------------
def _norm(value: Any) -> Any:
    """A value as TOML and JSON both carry it: tuples as lists, ``None`` entries left out."""
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


_TASK_FIELDS = (
    "dependencies",
    "function",
    "is_async",
    "timeout",
    "retry",
    "trigger_rule",
    "command",
    "description",
)
_WORKFLOW_FIELDS = (
    ("version", "version"),
    ("module", "module"),
    ("qualname", "class"),
    ("triggers", "triggers"),
)


def _task_problems(workflow: str, ours: TaskSpec, theirs: TaskSpec) -> list[str]:
    problems = []
    for name in _TASK_FIELDS:
        a, b = _norm(getattr(ours, name)), _norm(getattr(theirs, name))
        if a != b:
            problems.append(
                f"workflow {workflow!r}, task {ours.id!r}: the manifest says {name} = {a!r} "
                f"but the code says {b!r}"
            )
    return problems


def compare(package: str, manifest: Sequence[WorkflowSpec], code: Sequence[Declared]) -> list[str]:
    """Every difference between a manifest's workflows and the code's, as sentences."""
    problems: list[str] = []
    listed = {w.name: w for w in manifest}
    declared = {d.spec.name: d for d in code}
    for name in sorted(set(listed) - set(declared)):
        problems.append(f"the manifest lists workflow {name!r} but the code does not declare it")
    for name in sorted(set(declared) - set(listed)):
        problems.append(f"the code declares workflow {name!r} but the manifest does not list it")
    for name in sorted(set(listed) & set(declared)):
        ours, d = listed[name], declared[name]
        theirs = d.spec
        if d.package != package:
            problems.append(
                f"workflow {name!r} is declared for package {d.package!r}, "
                f"but this is package {package!r}"
            )
        for attr, label in _WORKFLOW_FIELDS:
            a, b = getattr(ours, attr), getattr(theirs, attr)
            if a != b:
                problems.append(
                    f"workflow {name!r}: the manifest says {label} = {a!r} but the code says {b!r}"
                )
        our_tasks = {t.id: t for t in ours.tasks}
        their_tasks = {t.id: t for t in theirs.tasks}
        only_ours = [t for t in our_tasks if t not in their_tasks]
        only_theirs = [t for t in their_tasks if t not in our_tasks]
        if only_ours:
            problems.append(
                f"workflow {name!r}: the manifest lists task(s) {', '.join(only_ours)} "
                "that the code does not declare"
            )
        if only_theirs:
            problems.append(
                f"workflow {name!r}: the code declares task(s) {', '.join(only_theirs)} "
                "that the manifest does not list"
            )
        for task_id, task in our_tasks.items():
            if task_id in their_tasks:
                problems.extend(_task_problems(name, task, their_tasks[task_id]))
        for attr in ("description", "author"):
            a, b = getattr(ours, attr), getattr(theirs, attr)
            if a != b:
                problems.append(
                    f"workflow {name!r}: the manifest says {attr} = {a!r} but the code says {b!r}"
                )
    return problems


def command_problems(archive: PackageArchive) -> list[str]:
    """Command tasks whose executable is not in the package, or not executable."""
    problems = []
    for wf in archive.manifest.workflows:
        for task in wf.tasks:
            if not task.command:
                continue
            program = task.command[0]
            if program not in archive.files:
                problems.append(
                    f"workflow {wf.name!r}, task {task.id!r}: command {program!r} is not in "
                    "the package"
                )
            elif not archive.modes.get(program, 0) & 0o111:
                problems.append(
                    f"workflow {wf.name!r}, task {task.id!r}: command {program!r} is not "
                    "executable in the package"
                )
    return problems


# ---- a whole package --------------------------------------------------------------------------
@dataclass
class Verification:
    """The outcome of :func:`verify_package`: ``ok`` when ``problems`` is empty."""

    archive: PackageArchive
    declared: list[Declared] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signer: str | None = None  # the trusted key that signed it, when checked
    signature: str = "none"  # none | unchecked | verified | invalid
    matches_code: bool = False  # the manifest describes exactly what the code declares

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_package(
    data: bytes,
    *,
    signature: bytes | None = None,
    trusted_keys: Sequence[str | bytes | Path] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Verification:
    """Check a package: the archive's safety and fingerprint (raises
    :class:`PackageError`), its command executables and, with ``trusted_keys``, its
    signature; then, last, its manifest against its own code imported in a clean process
    from the extracted ``lib/``. Problems are collected in the result.

    Importing runs the package's code, so with ``trusted_keys`` the code is imported only
    once the signature has verified: an unsigned or tampered package is refused on what can
    be checked without running it.
    """
    archive = read_archive(data, limits)
    result = Verification(archive)
    commands = command_problems(archive)
    result.problems.extend(commands)
    if trusted_keys and not signature:
        result.problems.append(
            "signature: the package is not signed (no .sig file was found or given), but "
            "trusted keys were given to check it"
        )
    elif trusted_keys:
        try:
            trusted = load_trusted_keys(trusted_keys)
            result.signer = verify_signature(data, signature, trusted)
            result.signature = "verified"
        except SignatureError as exc:
            result.signature = "invalid"
            result.problems.append(f"signature: {exc}")
    elif signature:
        result.signature = "unchecked"
    if trusted_keys and result.signature != "verified":
        result.problems.append(
            "code: not imported, since importing runs it and the signature did not verify"
        )
        return result
    code_problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cloacina-verify-") as tmp:
        root = Path(tmp)
        archive.extract(root)
        try:
            result.declared = inspect_code([root / "lib"], list(archive.manifest.modules), cwd=root)
        except PackageError as exc:
            code_problems.append(f"the package's code cannot be imported: {exc}")
    if result.declared or not code_problems:
        code_problems.extend(
            compare(archive.manifest.package, archive.manifest.workflows, result.declared)
        )
    result.problems.extend(code_problems)
    result.matches_code = not code_problems and not commands
    return result


@dataclass(frozen=True)
class SignatureInfo:
    """What a ``.sig`` file says, checked against the archive bytes (not against trust)."""

    key: str | None
    matches: bool
    error: str | None = None


def read_signature(data: bytes, signature: bytes) -> SignatureInfo:
    """Whether ``signature`` is a well-formed signature of exactly these bytes, and by whom.

    The cryptographic check against trusted keys is :func:`verify_signature`; this only
    tells whether the ``.sig`` belongs to the file."""
    try:
        doc = json.loads(signature)
        key, digest = str(doc["key"]), str(doc["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        return SignatureInfo(None, False, f"malformed signature file: {exc}")
    if digest != hashlib.sha256(data).hexdigest():
        return SignatureInfo(key, False, "the signature is for different bytes than this file")
    return SignatureInfo(key, True)
