"""The package registry: register, list and unregister ``.cloacina`` packages in the database,
and keep a runner's catalog of packaged workflows in step with it."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cloacina.errors import InvalidStateError, PackageError, PackageNotFoundError
from cloacina.model.workflow import Workflow, WorkflowCatalog
from cloacina.packaging.archive import DEFAULT_LIMITS, Limits, PackageArchive, read_archive
from cloacina.packaging.manifest import Manifest, workflow_from_spec
from cloacina.packaging.signing import load_trusted_keys, verify_signature
from cloacina.packaging.verify import command_problems, compare, inspect_code
from cloacina.registry.loader import PackageRef
from cloacina.store.base import Store
from cloacina.store.records import PackageRow


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
        self._state: tuple[int, float] | None = None
        self._lock = threading.Lock()

    # ---- registering -------------------------------------------------------------------------
    def register(self, data: bytes, signature: bytes | None = None) -> str:
        """Verify, validate and store a package; its id. Identical bytes give the same id."""
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
                f"no package {name} {version} is registered; list them with "
                "`cloacina workflows list`"
            )
        busy = self.store.count_unfinished_runs(row.id)
        if busy:
            raise InvalidStateError(
                f"package {name} {version} has {busy} unfinished run(s); wait for them or "
                "cancel them before unregistering it"
            )
        self.store.delete_package(row.id)
        self.sync(force=True)

    def list_packages(self) -> list[PackageInfo]:
        out = []
        for row in self.store.list_packages(self.tenant):
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
                )
            )
        return out

    # ---- loading -----------------------------------------------------------------------------
    def sync(self, force: bool = False) -> bool:
        """Bring the catalog in step with the database; True if anything changed."""
        state = self.store.packages_state(self.tenant)
        if not force and state == self._state:
            return False
        with self._lock:
            rows = self.store.list_packages(self.tenant)
            present = {row.id for row in rows}
            changed = False
            for package_id in list(self._loaded):
                if package_id not in present:
                    for wf in self._loaded.pop(package_id):
                        self.catalog.remove_version(wf.name, wf.version)
                    changed = True
            for row in rows:  # oldest first: the newest version of a workflow ends up default
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
            if changed:
                for row in rows:
                    for wf in self._loaded[row.id]:
                        self.catalog.add(wf)
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
