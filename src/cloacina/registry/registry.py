"""The package registry: register, list, promote and unregister ``.cloacina`` packages in the
database, keep a runner's catalog of packaged workflows in step with it, and say which
workflow a name means.

Which workflow a name means (the same for every runner on the database, as everything it
depends on is stored):

- A workflow name belongs to one package: registering another package with a workflow of
  that name is refused (:class:`~cloacina.errors.WorkflowNameConflictError`) unless asked
  (``replace=True``); then the package registered last that has the name owns it.
- ``package::workflow`` picks the package, ``workflow@version`` / ``package::workflow@version``
  a version of the package (the package's version, such as ``1.2.0``, not the workflow's hash).
- A package's default version is the one promoted (``package_defaults``), else its highest
  version (PEP 440 order, see :func:`version_order`), whatever order they were registered in.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloacina.errors import (
    InvalidStateError,
    PackageError,
    PackageNotFoundError,
    WorkflowNameConflictError,
    WorkflowNotFoundError,
)
from cloacina.model.namespace import SEPARATOR
from cloacina.model.workflow import Workflow, WorkflowCatalog
from cloacina.packaging.archive import DEFAULT_LIMITS, Limits, PackageArchive, read_archive
from cloacina.packaging.manifest import Manifest, workflow_from_spec
from cloacina.packaging.signing import load_trusted_keys, verify_signature
from cloacina.packaging.verify import command_problems, compare, inspect_code
from cloacina.registry.loader import PackageRef
from cloacina.store.base import Store
from cloacina.store.packages import PackagesState
from cloacina.store.records import PackageRow

try:  # PEP 440 ordering when the packaging library is there (it usually is; not required)
    from packaging.version import InvalidVersion
    from packaging.version import Version as _Pep440
except ImportError:  # pragma: no cover - depends on the environment
    _Pep440 = None  # type: ignore[assignment,misc]
    InvalidVersion = ValueError  # type: ignore[assignment,misc]


# ---- naming a workflow -----------------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowRef:
    """A workflow as a user names it: ``workflow``, ``package::workflow``,
    ``workflow@version`` or ``package::workflow@version``; ``version`` is the package's."""

    workflow: str
    package: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> WorkflowRef:
        """Split a name; a :class:`WorkflowNotFoundError` for one that cannot name a workflow.

        Workflow and package names hold neither ``:`` nor ``@``; a version may hold anything
        after the ``@``.
        """
        package: str | None = None
        rest = text
        if SEPARATOR in text:
            package, rest = text.split(SEPARATOR, 1)
        workflow, at, version = rest.partition("@")
        if (
            not workflow
            or SEPARATOR in rest
            or ":" in workflow
            or package == ""
            or (at and not version)
        ):
            raise WorkflowNotFoundError(
                f"cannot read the workflow name {text!r}: name a workflow as WORKFLOW, "
                "PACKAGE::WORKFLOW, WORKFLOW@VERSION or PACKAGE::WORKFLOW@VERSION (VERSION is "
                "the package's version, such as 1.2.0)"
            )
        return cls(workflow, package, version if at else None)

    @property
    def qualified(self) -> bool:
        """Whether the name says more than the workflow (a package or a version)."""
        return self.package is not None or self.version is not None

    def __str__(self) -> str:
        text = (
            self.workflow if self.package is None else f"{self.package}{SEPARATOR}{self.workflow}"
        )
        return text if self.version is None else f"{text}@{self.version}"


# ---- ordering versions -----------------------------------------------------------------------
_PRE_RELEASE = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "c": 3, "rc": 3, "pre": 3}
_TOKENS = re.compile(r"\d+|[^\W\d_]+")


def _loose_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Numbers compared as numbers (0.10 > 0.9), pre-release words below the release
    (1.0rc1 < 1.0), other words above it (1.0-post > 1.0); separators ignored."""
    key = []
    for token in _TOKENS.findall(version.lower()):
        if token.isdigit():
            key.append((2, int(token), ""))
        elif token in _PRE_RELEASE:
            key.append((0, _PRE_RELEASE[token], token))
        else:
            key.append((1, 0, token))
    key.append((1, 0, ""))  # the end: below a further number or word, above a pre-release
    return tuple(key)


def version_order(versions: Iterable[str]) -> Callable[[str], Any]:
    """A sort key for package versions: PEP 440 order (``packaging.version``) when every one
    of ``versions`` is a PEP 440 version and the library is installed, else numbers compared
    as numbers (see :func:`_loose_key`). Either way 0.10.0 is above 0.9.0."""
    if _Pep440 is not None:
        try:
            parsed = {v: _Pep440(v) for v in versions}
        except InvalidVersion:
            pass
        else:
            return parsed.__getitem__
    return _loose_key


def highest_version(versions: Sequence[str]) -> str:
    """The highest of ``versions`` (ties: the last given)."""
    key = version_order(versions)
    best = versions[0]
    for version in versions[1:]:
        if not key(version) < key(best):
            best = version
    return best


@dataclass(frozen=True)
class _Entry:
    """A workflow as one registered package version holds it."""

    row: PackageRow
    workflow: Workflow


@dataclass(frozen=True)
class PackageInfo:
    """A registered package, as ``list_packages`` reports it."""

    id: str
    package: str
    version: str
    sha256: str
    workflows: tuple[str, ...]
    signer: str | None
    registered_at: float
    workflow_versions: tuple[tuple[str, str], ...] = ()
    #: New runs of this package's workflows take this version (promoted, or the highest).
    default: bool = False
    #: This version was made the default with ``promote`` (not just the highest).
    promoted: bool = False


class PackageRegistry:
    """Registered packages of one tenant, and the runner-local catalog built from them."""

    def __init__(
        self,
        store: Store,
        catalog: WorkflowCatalog,
        *,
        tenant: str,
        require_signatures: bool = False,
        trusted_keys: Iterable[str | bytes | Path] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.tenant = tenant
        self.require_signatures = require_signatures
        self.trusted = load_trusted_keys(trusted_keys)
        self.limits = limits
        self._loaded: dict[str, list[Workflow]] = {}
        self._state: PackagesState | None = None
        self._lock = threading.Lock()
        # Rebuilt whole by sync and swapped in, so readers need no lock: every registered
        # version of each workflow name in registration order, and the promoted versions.
        self._holders: dict[str, list[_Entry]] = {}
        self._promoted: dict[str, str] = {}

    # ---- registering -------------------------------------------------------------------------
    def register(
        self, data: bytes, signature: bytes | None = None, *, replace: bool = False
    ) -> str:
        """Verify, validate and store a package; its id. Identical bytes give the same id.

        A workflow name another package already has is refused
        (:class:`WorkflowNameConflictError`) unless ``replace``: then this package's workflow
        becomes the one the plain name runs (the other stays reachable as ``package::name``).
        """
        archive = read_archive(data, self.limits)
        signer = self._check_signature(archive.data, signature)
        existing = self.store.find_package(self.tenant, sha256=archive.sha256)
        if existing is not None:
            return existing.id
        same_version = self.store.find_package(
            self.tenant, name=archive.name, version=archive.version
        )
        if same_version is not None:
            raise PackageError(
                f"package {archive.name} {archive.version} is already registered with other "
                "contents; give the new build a new version (or unregister the old one first)"
            )
        if not replace:
            self._check_names(archive.name, archive.version, archive.manifest)
        self._validate_code(archive)
        now = time.time()
        row = PackageRow(
            id=str(uuid.uuid4()),
            tenant=self.tenant,
            package=archive.name,
            version=archive.version,
            sha256=archive.sha256,
            fingerprint=archive.fingerprint,
            metadata=json.dumps(archive.metadata, sort_keys=True),
            manifest=archive.files["manifest.toml"].decode(),
            signer=signer,
            created_at=now,
        )
        workflows = [(w.name, w.version) for w in archive.manifest.workflows]
        if not self.store.insert_package(row, archive.data, signature, workflows):
            again = self.store.find_package(self.tenant, sha256=archive.sha256)
            if again is not None:  # registered concurrently by another process
                return again.id
            raise PackageError(
                f"package {archive.name} {archive.version} was registered concurrently with "
                "other contents"
            )
        self.sync(force=True)
        return row.id

    def _check_names(self, package: str, version: str, manifest: Manifest) -> None:
        """Refuse workflow names that another package owns (before any code is imported)."""
        self.sync()
        holders = self._holders
        for spec in manifest.workflows:
            entries = holders.get(spec.name, [])
            owner = entries[-1].row.package if entries else None
            if owner is None or owner == package:
                continue
            theirs = self._sorted_versions(entries, owner)
            raise WorkflowNameConflictError(
                f"package {package} {version} has a workflow named {spec.name!r}, which package "
                f"{owner} already provides (version{'s' if len(theirs) > 1 else ''} "
                f"{', '.join(theirs)}): registering it would make `{spec.name}` run {package}'s "
                f"code instead of {owner}'s. Rename the workflow in {package}, or register with "
                f"--replace (replace=True) to make {package}'s the default for {spec.name!r} "
                f"({owner}'s stays reachable as {owner}{SEPARATOR}{spec.name})",
                workflow=spec.name,
                package=package,
                other_package=owner,
            )

    def _check_signature(self, data: bytes, signature: bytes | None) -> str | None:
        if signature is None and not self.require_signatures:
            return None
        if signature is not None and not self.trusted and not self.require_signatures:
            return None  # nothing to check it against; kept for runners that require it
        return verify_signature(data, signature, self.trusted)

    def _validate_code(self, archive: PackageArchive) -> None:
        if not archive.manifest.workflows:
            raise PackageError(f"package {archive.name} {archive.version} has no workflows")
        tmp = Path(tempfile.mkdtemp(prefix="cloacina-register-"))
        try:
            archive.extract(tmp)
            declared = inspect_code([tmp / "lib"], archive.manifest.modules, cwd=tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        problems = compare(archive.name, archive.manifest.workflows, declared)
        problems += command_problems(archive)
        if problems:
            raise PackageError("the manifest does not match the code: " + "; ".join(problems))

    def unregister(self, name: str, version: str) -> None:
        """Remove a package version; refused while runs of it are unfinished."""
        row = self.store.find_package(self.tenant, name=name, version=version)
        if row is None:
            raise PackageNotFoundError(
                f"no package {name} {version} is registered; list them with `cloacina package list`"
            )
        busy = self.store.count_unfinished_runs(row.id)
        if busy:
            raise InvalidStateError(
                f"package {name} {version} has {busy} unfinished run(s); wait for them or "
                "cancel them before unregistering it"
            )
        self.store.delete_package(row.id)
        self.sync(force=True)

    def promote(self, name: str, version: str | None) -> None:
        """Make ``version`` of package ``name`` the default for new runs of its workflows
        (stored: every runner agrees); None goes back to the highest version."""
        versions = [r.version for r in self.store.list_packages(self.tenant) if r.package == name]
        if not versions:
            raise PackageNotFoundError(
                f"no package {name} is registered; list them with `cloacina package list`"
            )
        if version is not None and version not in versions:
            raise PackageNotFoundError(
                f"package {name} has no version {version} registered (it has "
                f"{', '.join(sorted(versions, key=version_order(versions)))}); register it first"
            )
        self.store.set_promoted_version(self.tenant, name, version, time.time())
        self.sync(force=True)

    def list_packages(self) -> list[PackageInfo]:
        """Every registered package version, oldest registration first."""
        rows = self.store.list_packages(self.tenant)
        promoted = self.store.promoted_versions(self.tenant)
        by_package: dict[str, list[str]] = {}
        for row in rows:
            by_package.setdefault(row.package, []).append(row.version)
        defaults = {
            name: promoted[name] if promoted.get(name) in versions else highest_version(versions)
            for name, versions in by_package.items()
        }
        out = []
        for row in rows:
            specs = Manifest.from_toml(row.manifest).workflows
            out.append(
                PackageInfo(
                    id=row.id,
                    package=row.package,
                    version=row.version,
                    sha256=row.sha256,
                    workflows=tuple(w.name for w in specs),
                    signer=row.signer,
                    registered_at=row.created_at,
                    workflow_versions=tuple((w.name, w.version) for w in specs),
                    default=defaults[row.package] == row.version,
                    promoted=promoted.get(row.package) == row.version,
                )
            )
        return out

    # ---- naming ------------------------------------------------------------------------------
    def lookup(self, ref: WorkflowRef) -> Workflow | None:
        """The registered workflow ``ref`` names, or None (:meth:`missing` says why)."""
        entries = self._holders.get(ref.workflow, [])
        if ref.package is not None:
            entries = [e for e in entries if e.row.package == ref.package]
        if not entries:
            return None
        if ref.version is None:
            return self._default(entries).workflow
        exact = [e for e in entries if e.row.version == ref.version]
        if len(exact) > 1:  # workflow@version held by two packages: the owner's
            exact = [e for e in exact if e.row.package == entries[-1].row.package]
        return exact[0].workflow if len(exact) == 1 else None

    def missing(self, ref: WorkflowRef) -> str:
        """Why :meth:`lookup` found nothing for ``ref``, and what there is instead."""
        entries = self._holders.get(ref.workflow, [])
        if not entries:
            known = sorted(self._holders)
            return f"no registered package has a workflow named {ref.workflow!r}" + (
                f" (registered workflows: {', '.join(known)})" if known else ""
            )
        packages = sorted({e.row.package for e in entries})
        if ref.package is not None and ref.package not in packages:
            return (
                f"package {ref.package} has no workflow {ref.workflow!r} registered; "
                f"{' and '.join(packages)} {'has' if len(packages) == 1 else 'have'} one"
            )
        held = [e for e in entries if ref.package in (None, e.row.package)]
        exact = [e for e in held if e.row.version == ref.version]
        if len(exact) > 1:
            choices = " or ".join(
                f"{e.row.package}{SEPARATOR}{ref.workflow}@{ref.version}" for e in exact
            )
            return (
                f"{ref} is ambiguous: packages {', '.join(e.row.package for e in exact)} all "
                f"have version {ref.version} with workflow {ref.workflow!r}; say which: {choices}"
            )
        have = "; ".join(
            f"{pkg} has {', '.join(self._sorted_versions(held, pkg))}"
            for pkg in sorted({e.row.package for e in held})
        )
        return f"no registered version {ref.version} has workflow {ref.workflow!r} ({have})"

    @staticmethod
    def _sorted_versions(entries: Sequence[_Entry], package: str) -> list[str]:
        versions = [e.row.version for e in entries if e.row.package == package]
        return sorted(versions, key=version_order(versions))

    def _default(self, entries: Sequence[_Entry]) -> _Entry:
        """Of the versions holding one workflow (registration order): those of the package
        registered last (which owns the name), and of them the promoted or highest one."""
        owner = entries[-1].row.package
        mine = [e for e in entries if e.row.package == owner]
        promoted = self._promoted.get(owner)
        for entry in mine:
            if entry.row.version == promoted:
                return entry
        chosen = highest_version([e.row.version for e in mine])
        return [e for e in mine if e.row.version == chosen][-1]

    # ---- loading -----------------------------------------------------------------------------
    def sync(self, force: bool = False) -> bool:
        """Bring the catalog in step with the database; True if anything changed."""
        state = self.store.packages_state(self.tenant)
        if not force and state == self._state:
            return False
        with self._lock:
            rows = self.store.list_packages(self.tenant)
            promoted = self.store.promoted_versions(self.tenant)
            present = {row.id for row in rows}
            changed = promoted != self._promoted
            for package_id in list(self._loaded):
                if package_id not in present:
                    for wf in self._loaded.pop(package_id):
                        self.catalog.remove_version(wf.name, wf.version)
                    changed = True
            for row in rows:
                if row.id in self._loaded:
                    continue
                manifest = Manifest.from_toml(row.manifest)
                ref = PackageRef(row.id, row.sha256, row.package, row.version, manifest.modules)
                workflows = []
                for spec in manifest.workflows:
                    wf = workflow_from_spec(spec, row.package)
                    wf.origin = ref
                    workflows.append(wf)
                self._loaded[row.id] = workflows
                changed = True
            if changed or force:
                holders: dict[str, list[_Entry]] = {}
                for row in rows:  # oldest first: the package registered last owns a name
                    for wf in self._loaded[row.id]:
                        holders.setdefault(wf.name, []).append(_Entry(row, wf))
                self._holders, self._promoted = holders, promoted
                for row in rows:
                    for wf in self._loaded[row.id]:
                        self.catalog.add(wf, default=False)
                for entries in holders.values():  # then each name's default version
                    self.catalog.add(self._default(entries).workflow)
            self._state = state
        return changed

    def fetch(self, ref: PackageRef) -> PackageArchive:
        """The verified archive of a registered package (for the loader)."""
        found = self.store.get_package_archive(ref.package_id)
        if found is None:
            raise PackageError(f"package {ref.package} {ref.version} is no longer registered")
        data, signature = found
        archive = read_archive(data, self.limits)
        if archive.sha256 != ref.sha256:
            raise PackageError(f"package {ref.package} {ref.version} changed in the database")
        if self.require_signatures:
            verify_signature(data, signature, self.trusted)
        return archive
