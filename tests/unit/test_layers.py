"""The faces (``cli/``, ``server/``) and the cloaca compatibility layer (``compat/``) stand
on the service layer: none of their modules imports ``cloacina.store`` (issue 10, item 1).
Read from the source with ``ast``, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import cloacina

PACKAGE = Path(cloacina.__file__).parent
FACES = ("cli", "server", "compat")


def store_imports(path: Path, source: str | None = None) -> list[str]:
    """The lines of module ``path`` (its text: ``source``, else the file's) that import
    ``cloacina.store`` or a module under it."""
    text = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(text, filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            else:
                names = [node.module or ""]
            names += [f"{names[0]}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "cloacina.store" or name.startswith("cloacina.store."):
                line = getattr(node, "lineno", 0)
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
                break
    return found


def test_faces_do_not_import_the_store() -> None:
    modules = [p for face in FACES for p in sorted((PACKAGE / face).rglob("*.py"))]
    assert any(p.parent.name == "cli" for p in modules)
    offenders = [line for path in modules for line in store_imports(path)]
    assert offenders == [], "faces must call the service layer, not the store:\n" + "\n".join(
        offenders
    )


def test_the_check_sees_every_form_of_import() -> None:
    probe = PACKAGE / "cli" / "probe.py"  # never written: only its name places it
    for source in (
        "import cloacina.store\n",
        "import cloacina.store.records as records\n",
        "from cloacina.store.records import EventRow\n",
        "from cloacina import store\n",
        "def f():\n    from cloacina.store import open_store\n",
        "from .. import store\n",
        "from ..store import base\n",
    ):
        assert store_imports(probe, source), source
    for source in (
        "from cloacina.service import tenants\n",
        "import cloacina.storehouse\n",
        "from . import store\n",  # cloacina.cli.store, not the store
    ):
        assert not store_imports(probe, source), source
