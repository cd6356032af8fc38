"""``cloacina package build``: a workflow project in, a reproducible ``.cloacina`` file out.

Steps: read ``pyproject.toml``; collect the project's sources and ``include`` files; vendor
its pure-Python dependencies with pip; byte-compile every ``.py`` to check its syntax; stage
``lib/`` and import it in a clean subprocess (the package process a runner starts: the
standard library, ``cloacina`` and ``lib/``, nothing installed beside it) to find the
``@packaged_workflow`` classes; validate them; write the manifest, the metadata and the
archive.

Same inputs, same bytes: files are read in sorted order, the archive has fixed timestamps and
modes, and the metadata holds no clock time, path or host name (a build time only from
``SOURCE_DATE_EPOCH``).
"""

from __future__ import annotations

import os
import py_compile
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloacina import __version__
from cloacina.errors import PackageError
from cloacina.packaging.archive import (
    MANIFEST,
    METADATA,
    archive_name,
    read_archive,
    sha256_hex,
    write_archive,
)
from cloacina.packaging.manifest import Manifest, WorkflowSpec
from cloacina.packaging.project import (
    Project,
    include_files,
    is_executable,
    load_project,
    source_files,
)
from cloacina.packaging.vendor import (
    Distribution,
    host_platform,
    is_native_file,
    vendor,
)
from cloacina.packaging.verify import Declared, inspect_code

Log = Callable[[str], None]


@dataclass
class BuildResult:
    """What a build produced (the CLI prints it; tests look into it)."""

    path: Path
    sha256: str
    size: int
    project: Project
    manifest: Manifest
    metadata: dict[str, Any]
    files: int
    distributions: list[Distribution] = field(default_factory=list)


def fmt_size(size: float) -> str:
    """``512 B``, ``1.5 KiB``, ``2.0 MiB``."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _build_time() -> str | None:
    """The build time from ``SOURCE_DATE_EPOCH`` (never the clock: builds must repeat)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        moment = datetime.fromtimestamp(int(epoch), tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PackageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time in seconds") from exc
    return moment.isoformat().replace("+00:00", "Z")


def check_syntax(files: Mapping[str, Path], scratch: Path, origin: str) -> int:
    """Byte-compile every ``.py`` of ``files`` to check its syntax; the number checked.

    Only the sources are shipped: ``.pyc`` files are specific to one Python version (their
    magic number and bytecode change between versions), so a runner compiles on first import.
    """
    cfile = scratch / "syntax-check.pyc"
    count = 0
    for rel, path in files.items():
        if not rel.endswith(".py"):
            continue
        try:
            py_compile.compile(str(path), cfile=str(cfile), dfile=rel, doraise=True)
        except py_compile.PyCompileError as exc:
            raise PackageError(f"{origin} {rel} does not compile:\n{exc.msg.strip()}") from exc
        count += 1
    return count


def _validate(project: Project, declared: list[Declared], shipped: set[str]) -> None:
    if not declared:
        raise PackageError(
            f"no @packaged_workflow found in {', '.join(project.modules)}; declare one with "
            f'@packaged_workflow(name="...", package="{project.package}") on a class of @task '
            "functions (@workflow classes are embedded workflows and are not packaged)"
        )
    seen: dict[str, str] = {}
    for d in declared:
        wf = d.spec
        if wf.name in seen:
            raise PackageError(
                f"two workflows are named {wf.name!r} ({seen[wf.name]} and "
                f"{wf.module}.{wf.qualname}); workflow names must be unique in a package"
            )
        seen[wf.name] = f"{wf.module}.{wf.qualname}"
        if d.package != project.package:
            raise PackageError(
                f"workflow {wf.name!r} ({wf.module}.{wf.qualname}) declares package "
                f"{d.package!r}, but this project builds package {project.package!r}; write "
                f'@packaged_workflow(..., package="{project.package}") (or set '
                "[tool.cloacina] package in pyproject.toml)"
            )
        module_file = wf.module.replace(".", "/")
        if f"{module_file}.py" not in shipped and f"{module_file}/__init__.py" not in shipped:
            raise PackageError(
                f"workflow {wf.name!r} is defined in module {wf.module!r}, which is not part of "
                "the package (define it inside the project's own package)"
            )
        for task in wf.tasks:
            if not task.function:
                raise PackageError(
                    f"workflow {wf.name!r}: task {task.id!r} is not an attribute of class "
                    f"{wf.qualname}, so a package process could not find it; define it in the "
                    "class body"
                )


def _check_commands(
    declared: list[Declared], includes: Mapping[str, Path], executable: set[str]
) -> None:
    for d in declared:
        for task in d.spec.tasks:
            if not task.command:
                continue
            program = task.command[0]
            where = f"workflow {d.spec.name!r}, command task {task.id!r}"
            if program not in includes:
                raise PackageError(
                    f"{where} runs {program!r}, which the package does not ship; add it to "
                    f'pyproject.toml: [tool.cloacina] include = ["{program}"]'
                )
            if program not in executable:
                raise PackageError(
                    f"{where} runs {program!r}, which is not executable; run "
                    f"`chmod +x {program}` (the mode is kept in the package)"
                )


def build(
    project_dir: Path | str,
    out_dir: Path | str | None = None,
    *,
    allow_native: bool = False,
    log: Log = print,
) -> BuildResult:
    """Build the project in ``project_dir`` into ``out_dir`` (default ``project_dir/dist``)."""
    project = load_project(Path(project_dir))
    out = Path(out_dir) if out_dir is not None else project.root / "dist"
    log(
        f"Project {project.name} {project.version}: package {project.package!r}, "
        f"{project.layout} layout ({project.source_root})"
    )
    how = "from [tool.cloacina] modules" if project.modules_configured else "discovered"
    log(f"  modules ({how}): {', '.join(project.modules)}")

    sources = source_files(project)
    includes = include_files(project)
    for rel in includes:
        if rel in (METADATA, MANIFEST) or rel.startswith("lib/"):
            raise PackageError(
                f"include file {rel!r} would clash with the package's own {rel.split('/')[0]}"
            )
    executable = {rel for rel, path in includes.items() if is_executable(path)}
    own_size = sum(p.stat().st_size for p in sources.values())
    log(f"  sources: {len(sources)} files, {fmt_size(own_size)}")
    for rel, path in includes.items():
        mode = " (executable)" if rel in executable else ""
        log(f"  include: {rel} {fmt_size(path.stat().st_size)}{mode}")

    with tempfile.TemporaryDirectory(prefix="cloacina-build-") as tmp:
        scratch = Path(tmp)
        # ---- dependencies
        deps = list(project.dependencies)
        if deps:
            log(f"Vendoring {len(deps)} dependenc{'y' if len(deps) == 1 else 'ies'} with pip")
        vendored = vendor(deps, scratch / "site")
        for skipped in vendored.skipped:
            log(f"  skipped {skipped}: the cloacina runtime provides it")
        for dist in vendored.distributions:
            log(f"  {dist.label}: {dist.shipped} files, {fmt_size(dist.size)}")
        own_native = sorted(rel for rel in sources if is_native_file(rel))
        native = [d for d in vendored.distributions if d.native]
        if (native or own_native) and not allow_native:
            lines = [
                f"dependency {d.label}: "
                + (
                    ", ".join(d.native_files[:3])
                    if d.native_files
                    else "a platform wheel (Root-Is-Purelib: false)"
                )
                for d in native
            ] + [f"the project itself: {rel}" for rel in own_native]
            raise PackageError(
                "compiled code would tie the package to one platform:\n  "
                + "\n  ".join(lines)
                + "\nuse pure-Python dependencies, or pass --allow-native to build a package "
                f"for {host_platform()} only"
            )
        clash = sorted(set(sources) & set(vendored.files))
        if clash:
            raise PackageError(
                f"a dependency ships {clash[0]}, which the project ships too; rename the "
                "project's package or drop the dependency"
            )
        lib: dict[str, Path] = {**vendored.files, **sources}

        # ---- syntax
        checked = check_syntax(sources, scratch, "project file")
        checked += check_syntax(vendored.files, scratch, "dependency file")
        checked += check_syntax(includes, scratch, "include file")
        log(f"Byte-compiled {checked} Python files (syntax OK; sources are shipped, not .pyc)")

        # ---- import in a clean process, from exactly the files that ship
        stage = scratch / "stage"
        contents: dict[str, bytes] = {}
        for rel, path in sorted(lib.items()):
            data = path.read_bytes()
            contents[f"lib/{rel}"] = data
            target = stage / "lib" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for rel, path in includes.items():
            contents[rel] = path.read_bytes()
        log(
            f"Importing {', '.join(project.modules)} in a clean subprocess "
            "(the standard library, cloacina and lib/ only, as a runner will)"
        )
        try:
            declared = inspect_code([stage / "lib"], list(project.modules), cwd=stage)
        except PackageError as exc:
            # A missing dependency's hint (declare it in [project].dependencies) comes from
            # the package process itself, so registration and run time give it too.
            text = str(exc).replace(str(stage / "lib") + os.sep, str(project.source_root) + os.sep)
            raise PackageError(text) from None

    # ---- validate
    _validate(project, declared, set(lib))
    _check_commands(declared, includes, executable)
    for d in declared:
        wf = d.spec
        commands = sum(1 for t in wf.tasks if t.command)
        extra = f", {_plural(commands, 'command')}" if commands else ""
        log(
            f"  workflow {wf.name}: {_plural(len(wf.tasks), 'task')}{extra} "
            f"({', '.join(t.id for t in wf.tasks)}), version {wf.version[:12]}"
        )

    # ---- manifest, metadata, archive
    specs: tuple[WorkflowSpec, ...] = tuple(d.spec for d in declared)
    manifest = Manifest(
        package=project.package,
        version=project.version,
        workflows=specs,
        modules=project.modules,
        description=project.description,
        author=project.author,
        requires_python=project.requires_python,
    )
    contents[MANIFEST] = manifest.to_toml().encode()
    metadata: dict[str, Any] = {
        "package": project.package,
        "version": project.version,
        "description": project.description,
        "author": project.author,
        "requires_python": project.requires_python,
        "builder": f"cloacina {__version__}",
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dependencies": sorted(f"{d.name}=={d.version}" for d in vendored.distributions),
    }
    build_time = _build_time()
    if build_time is not None:
        metadata["build_time"] = build_time
    if native or own_native:
        metadata["platform"] = host_platform()
        log(f"  native code allowed: the package is for {metadata['platform']} only")
    data = write_archive(contents, metadata, executable=frozenset(executable))
    # Read it back as a runner would (paths, sizes, fingerprint) before anything is written.
    written = read_archive(data)

    out.mkdir(parents=True, exist_ok=True)
    path = out / archive_name(project.package, project.version)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    digest = sha256_hex(data)
    # Counted from the archive as read back (metadata.json included), as `package inspect`
    # counts them, so the two agree.
    uncompressed = sum(len(v) for v in written.files.values())
    log(
        f"Wrote {path} ({fmt_size(len(data))}, {len(written.files)} files, "
        f"{fmt_size(uncompressed)} uncompressed)"
    )
    log(f"  sha256 {digest}")
    return BuildResult(
        path=path,
        sha256=digest,
        size=len(data),
        project=project,
        manifest=manifest,
        metadata=written.metadata,
        files=len(written.files),
        distributions=vendored.distributions,
    )


def build_package(
    project_dir: Path | str,
    out_dir: Path | str | None = None,
    *,
    allow_native: bool = False,
    log: Log = print,
) -> Path:
    """Build a ``.cloacina`` package from a workflow project; the archive's path.

    ``out_dir`` defaults to ``project_dir/dist``; ``log`` receives a line per step.
    """
    return build(project_dir, out_dir, allow_native=allow_native, log=log).path


__all__ = ["BuildResult", "build", "build_package", "check_syntax", "fmt_size"]
