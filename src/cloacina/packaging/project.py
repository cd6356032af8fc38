"""A workflow project: a normal Python project whose ``pyproject.toml`` the builder reads.

``[project]`` gives the name, version, description, authors, ``requires-python`` and
``dependencies``; the optional ``[tool.cloacina]`` table adds::

    [tool.cloacina]
    package = "my_flows"              # default: [project].name as an identifier
    modules = ["my_flows.workflows"]  # default: the top-level package and all its submodules
    include = ["bin/*.sh"]            # extra files shipped at the same relative path

Both layouts work: ``src/<package>/`` and ``<package>/`` next to ``pyproject.toml``.
"""

from __future__ import annotations

import keyword
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloacina.errors import PackageError
from cloacina.model.namespace import MAX_PACKAGE_NAME, MAX_PACKAGE_VERSION, too_long

PYPROJECT = "pyproject.toml"
#: Directories never taken for the project's own package when guessing it.
_NOT_PACKAGES = frozenset({"tests", "test", "docs", "doc", "build", "dist", "examples", "bin"})
#: Files and directories never shipped from a source tree.
_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


def import_name(name: str) -> str:
    """A project name as a Python identifier: ``My-Flows.io`` -> ``my_flows_io``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()


def is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


@dataclass(frozen=True)
class Project:
    """What the builder needs to know about a workflow project."""

    root: Path
    name: str  # [project].name as written
    version: str
    package: str  # the cloacina package name every workflow must declare
    description: str
    author: str
    requires_python: str
    dependencies: tuple[str, ...]
    source_root: Path  # the directory that goes on sys.path (root or root/src)
    top_level: tuple[str, ...]  # top-level modules/packages shipped in lib/
    modules: tuple[str, ...]  # what the builder imports
    modules_configured: bool  # modules came from [tool.cloacina] (else: discovered)
    include: tuple[str, ...] = field(default=())

    @property
    def layout(self) -> str:
        return "src" if self.source_root != self.root else "flat"


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PackageError(f"{where} must be a table")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PackageError(f"{where} must be a list of strings")
    return tuple(value)


def _authors(value: Any) -> str:
    """``[project].authors`` as ``Name <email>, ...``."""
    if not isinstance(value, list):
        return ""
    out = []
    for item in value:
        if not isinstance(item, dict):
            continue
        name, email = str(item.get("name", "")).strip(), str(item.get("email", "")).strip()
        if name and email:
            out.append(f"{name} <{email}>")
        elif name or email:
            out.append(name or email)
    return ", ".join(out)


def load_project(path: Path) -> Project:
    """Read ``path/pyproject.toml`` and find the project's sources and modules."""
    root = path.resolve()
    pyproject = root / PYPROJECT
    if not pyproject.is_file():
        hint = " (it is a file; give the project directory)" if root.is_file() else ""
        raise PackageError(
            f"no {PYPROJECT} in {root}{hint}; a workflow project is a Python project with a "
            "pyproject.toml (create one with `cloacina package new NAME`)"
        )
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackageError(f"cannot read {pyproject}: {exc}") from exc
    project = _table(data, "project", "[project]")
    tool = _table(_table(data, "tool", "[tool]"), "cloacina", "[tool.cloacina]")

    name = project.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PackageError(f"{pyproject}: [project] needs a name")
    version = project.get("version")
    if not isinstance(version, str) or not version.strip():
        dynamic = "version" in (project.get("dynamic") or [])
        raise PackageError(
            f'{pyproject}: [project] needs a static version = "..."'
            + (" (a dynamic version cannot name the package)" if dynamic else "")
        )
    if "/" in version or "\\" in version or version.strip() != version:
        raise PackageError(f"{pyproject}: version {version!r} cannot be part of a file name")
    problem = too_long("version", version, MAX_PACKAGE_VERSION)
    if problem:
        raise PackageError(f"{pyproject}: [project] {problem}")

    package = tool.get("package", import_name(name))
    if not isinstance(package, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.\-]*$", package):
        raise PackageError(
            f"{pyproject}: package name {package!r} is invalid; set [tool.cloacina] package to "
            "letters, digits, '_', '.' and '-'"
        )
    problem = too_long("package name", package, MAX_PACKAGE_NAME)
    if problem:
        where = "[tool.cloacina] package" if "package" in tool else "[project].name"
        raise PackageError(
            f"{pyproject}: {problem} (set by {where}; a shorter [tool.cloacina] package "
            "keeps the project name)"
        )
    deps = _str_list(project.get("dependencies", []), "[project].dependencies")
    requires_python = project.get("requires-python", "")
    description = project.get("description", "")
    include = _str_list(tool.get("include", []), "[tool.cloacina].include")

    configured = "modules" in tool
    if configured:
        modules = _str_list(tool["modules"], "[tool.cloacina].modules")
        if not modules:
            raise PackageError(f"{pyproject}: [tool.cloacina] modules is empty")
        for module in modules:
            if not all(is_identifier(p) for p in module.split(".")):
                raise PackageError(f"{pyproject}: {module!r} in modules is not a module name")
        top_level = tuple(sorted({m.split(".")[0] for m in modules}))
        source_root = _find_source_root(root, top_level)
        if source_root is None:
            raise PackageError(
                f"cannot find {', '.join(top_level)} (listed in [tool.cloacina] modules) in "
                f"{root / 'src'} or {root}"
            )
        missing = [m for m in modules if _module_path(source_root, m) is None]
        if missing:
            raise PackageError(
                f"module {missing[0]!r} (listed in [tool.cloacina] modules) has no file under "
                f"{source_root}"
            )
    else:
        top = _guess_top_level(root, [import_name(name), import_name(package)])
        top_level = (top,)
        found = _find_source_root(root, top_level)
        assert found is not None
        source_root = found
        modules = tuple(discover_modules(source_root, top))

    return Project(
        root=root,
        name=name,
        version=version,
        package=package,
        description=str(description) if isinstance(description, str) else "",
        author=_authors(project.get("authors")),
        requires_python=str(requires_python) if isinstance(requires_python, str) else "",
        dependencies=deps,
        source_root=source_root,
        top_level=top_level,
        modules=modules,
        modules_configured=configured,
        include=include,
    )


def _exists(source_root: Path, top: str) -> bool:
    return (source_root / top / "__init__.py").is_file() or (source_root / f"{top}.py").is_file()


def _find_source_root(root: Path, top_level: tuple[str, ...]) -> Path | None:
    for candidate in (root / "src", root):
        if all(_exists(candidate, t) for t in top_level):
            return candidate
    return None


def _module_path(source_root: Path, module: str) -> Path | None:
    base = source_root.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _guess_top_level(root: Path, names: list[str]) -> str:
    for candidate in (root / "src", root):
        for name in names:
            if name and _exists(candidate, name):
                return name
    for candidate in (root / "src", root):
        if not candidate.is_dir():
            continue
        packages = sorted(
            p.name
            for p in candidate.iterdir()
            if p.is_dir()
            and (p / "__init__.py").is_file()
            and is_identifier(p.name)
            and p.name not in _NOT_PACKAGES
        )
        if len(packages) == 1:
            return packages[0]
        if len(packages) > 1:
            raise PackageError(
                f"cannot tell which package in {candidate} holds the workflows "
                f"({', '.join(packages)}); list them in pyproject.toml: "
                f'[tool.cloacina] modules = ["{packages[0]}.workflows"]'
            )
    raise PackageError(
        f"no Python package named {names[0]!r} in {root / 'src'} or {root}; create "
        f"{names[0]}/__init__.py (or src/{names[0]}/__init__.py), or list the modules that "
        'define your workflows: [tool.cloacina] modules = ["pkg.workflows"]'
    )


def discover_modules(source_root: Path, top: str) -> list[str]:
    """``top`` and all its submodules (regular packages only; ``__main__`` is skipped)."""
    single = source_root / f"{top}.py"
    package = source_root / top
    if not (package / "__init__.py").is_file():
        return [top] if single.is_file() else []
    modules = [top]
    for dirpath, dirnames, filenames in os.walk(package):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if is_identifier(d) and (here / d / "__init__.py").is_file()
        )
        prefix = ".".join(here.relative_to(source_root).parts)
        for filename in sorted(filenames):
            stem, suffix = os.path.splitext(filename)
            if suffix != ".py" or stem in ("__init__", "__main__") or not is_identifier(stem):
                continue
            modules.append(f"{prefix}.{stem}")
        modules.extend(f"{prefix}.{d}" for d in dirnames)
    return sorted(set(modules))


def source_files(project: Project) -> dict[str, Path]:
    """The files of the project's top-level packages, by path relative to the source root
    (POSIX form, sorted). Byte-code and ``__pycache__`` are left out, and so are hidden files
    and directories."""
    files: dict[str, Path] = {}
    root = project.root
    for top in project.top_level:
        single = project.source_root / f"{top}.py"
        package = project.source_root / top
        if package.is_dir():
            for dirpath, dirnames, filenames in os.walk(package, followlinks=False):
                here = Path(dirpath)
                dirnames[:] = sorted(
                    d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")
                )
                for link in [d for d in dirnames if (here / d).is_symlink()]:
                    raise PackageError(
                        f"{here / link} is a symbolic link to a directory; packages ship "
                        "regular files only"
                    )
                for filename in sorted(filenames):
                    if filename.startswith(".") or filename.endswith(_SKIP_SUFFIXES):
                        continue
                    path = here / filename
                    _check_inside(path, root)
                    files[path.relative_to(project.source_root).as_posix()] = path
        elif single.is_file():
            _check_inside(single, root)
            files[single.name] = single
    return dict(sorted(files.items()))


def _check_inside(path: Path, root: Path) -> None:
    if not path.is_file():
        raise PackageError(f"{path} is not a regular file")
    real = path.resolve()
    if root != real and root not in real.parents:
        raise PackageError(f"{path} links to {real}, outside the project {root}")


def include_files(project: Project) -> dict[str, Path]:
    """The extra files ``[tool.cloacina] include`` names, by path relative to the root."""
    root = project.root
    files: dict[str, Path] = {}
    for pattern in project.include:
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise PackageError(
                f"include pattern {pattern!r} must be relative to the project root, without '..'"
            )
        matches = sorted(root.glob(pattern))
        found = 0
        for match in matches:
            candidates = (
                sorted(p for p in match.rglob("*") if p.is_file()) if match.is_dir() else [match]
            )
            for path in candidates:
                rel = path.relative_to(root)
                if any(part in _SKIP_DIRS for part in rel.parts) or path.name.endswith(
                    _SKIP_SUFFIXES
                ):
                    continue
                _check_inside(path, root)
                files[rel.as_posix()] = path
                found += 1
        if not found:
            raise PackageError(
                f"include pattern {pattern!r} matches no file under {root} "
                "(patterns are globs relative to the project root)"
            )
    return dict(sorted(files.items()))


def is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)
