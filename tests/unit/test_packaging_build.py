"""``build``: a project in, a package out, with every validation failing clearly.

These call the Python API (``build`` / ``build_package``); each build imports the project in
a real clean subprocess. The CLI and dependency vendoring are in tests/e2e.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from cloacina.errors import PackageError
from cloacina.packaging.archive import read_archive
from cloacina.packaging.build import build, build_package, fmt_size

HEADER = "from cloacina import Context, RetryPolicy, packaged_workflow, task\n"

FLOWS = """
@packaged_workflow(name="orders", package="shop", description="Process orders", author="Ann")
class orders:
    @task()
    def fetch(context: Context) -> None:
        context.insert("orders", [1, 2])

    @task(dependencies=[fetch], retry=RetryPolicy(max_attempts=3, initial_delay=0.1))
    def total(context: Context) -> None:
        context.insert("total", sum(context["orders"]))
"""


def make_project(
    root: Path,
    flows: str = FLOWS,
    *,
    name: str = "shop",
    tool: str = "",
    extra: dict[str, str] | None = None,
) -> Path:
    files = {
        "pyproject.toml": f'[project]\nname = "{name}"\nversion = "1.0.0"\n'
        f'requires-python = ">=3.11"\n{tool}\n',
        "src/shop/__init__.py": "",
        "src/shop/flows.py": HEADER + textwrap.dedent(flows),
        **(extra or {}),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_build_writes_a_valid_package(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop")
    lines: list[str] = []
    result = build(project, log=lines.append)
    assert result.path == project / "dist" / "shop-1.0.0.cloacina"
    archive = read_archive(result.path.read_bytes())
    assert archive.sha256 == result.sha256
    assert sorted(archive.files) == [
        "lib/shop/__init__.py",
        "lib/shop/flows.py",
        "manifest.toml",
        "metadata.json",
    ]
    meta = archive.metadata
    assert meta["package"] == "shop" and meta["version"] == "1.0.0"
    assert meta["builder"].startswith("cloacina ")
    assert meta["python"].count(".") == 1
    assert meta["requires_python"] == ">=3.11"
    assert meta["dependencies"] == []
    assert "build_time" not in meta and "platform" not in meta
    (wf,) = archive.manifest.workflows
    assert wf.name == "orders" and wf.module == "shop.flows" and wf.qualname == "orders"
    assert wf.author == "Ann" and wf.description == "Process orders"
    assert wf.structure() == [("fetch", ()), ("total", ("fetch",))]
    assert wf.tasks[1].retry["max_attempts"] == 3
    assert archive.manifest.modules == ("shop", "shop.flows")
    text = "\n".join(lines)
    assert "modules (discovered): shop, shop.flows" in text
    assert "workflow orders: 2 tasks (fetch, total)" in text
    assert "sha256 " + result.sha256 in text


def test_build_is_reproducible_and_ignores_mtimes_and_caches(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop")
    first = build_package(project, tmp_path / "one", log=lambda _: None).read_bytes()
    for path in (project / "src").rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (project / "src/shop/__pycache__").mkdir(exist_ok=True)
    (project / "src/shop/__pycache__/flows.cpython-311.pyc").write_bytes(b"junk")
    second = build_package(project, tmp_path / "two", log=lambda _: None).read_bytes()
    assert first == second


def test_source_date_epoch_sets_the_build_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    path = build_package(make_project(tmp_path / "shop"), log=lambda _: None)
    assert read_archive(path.read_bytes()).metadata["build_time"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(PackageError, match="SOURCE_DATE_EPOCH"):
        build_package(make_project(tmp_path / "shop"), log=lambda _: None)


def test_flat_layout_and_configured_modules(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    (root / "shop").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "2"\n[tool.cloacina]\nmodules = ["shop.flows"]\n'
    )
    (root / "shop/__init__.py").write_text("")
    (root / "shop/flows.py").write_text(HEADER + textwrap.dedent(FLOWS))
    (root / "shop/unused.py").write_text("raise RuntimeError('never imported')\n")
    (root / "tests").mkdir()
    (root / "tests/test_it.py").write_text("")
    archive = read_archive(build_package(root, log=lambda _: None).read_bytes())
    assert archive.manifest.modules == ("shop.flows",)
    assert "lib/shop/unused.py" in archive.files  # shipped, though not imported
    assert not any(name.startswith("lib/tests") for name in archive.files)


def fails(project: Path, message: str) -> str:
    with pytest.raises(PackageError, match=message) as info:
        build(project, log=lambda _: None)
    return str(info.value)


def test_no_packaged_workflow(tmp_path: Path) -> None:
    flows = """
    from cloacina import workflow

    @workflow(name="embedded_only_in_build_test")
    class embedded:
        @task()
        def work(context: Context) -> None:
            pass
    """
    fails(make_project(tmp_path, flows), "no @packaged_workflow found")


def test_wrong_package_name(tmp_path: Path) -> None:
    message = fails(
        make_project(tmp_path, FLOWS.replace('package="shop"', 'package="other"')),
        "declares package 'other', but this project builds package 'shop'",
    )
    assert 'package="shop"' in message


def test_package_name_from_tool_cloacina(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        FLOWS.replace('package="shop"', 'package="team.shop"'),
        tool='[tool.cloacina]\npackage = "team.shop"',
    )
    path = build_package(project, log=lambda _: None)
    assert path.name == "team.shop-1.0.0.cloacina"


def test_duplicate_workflow_names(tmp_path: Path) -> None:
    second = FLOWS.replace("class orders", "class orders_again").replace(
        'context.insert("orders", [1, 2])', 'context.insert("orders", [3])'
    )
    fails(make_project(tmp_path, FLOWS + second), "two workflows are named 'orders'")


def test_invalid_workflow_fails_at_import_with_the_culprit(tmp_path: Path) -> None:
    flows = FLOWS.replace("dependencies=[fetch]", 'dependencies=["missing"]')
    message = fails(make_project(tmp_path, flows), "importing shop, shop.flows failed")
    assert "missing" in message
    assert str(tmp_path / "src" / "shop" / "flows.py") in message  # the user's file, not a temp
    assert "worker.py" not in message and "importlib" not in message  # no machinery frames


def test_syntax_error(tmp_path: Path) -> None:
    message = fails(
        make_project(tmp_path, extra={"src/shop/broken.py": "def oops(:\n"}),
        "project file shop/broken.py does not compile",
    )
    assert "SyntaxError" in message or "invalid syntax" in message


def test_import_error_of_a_missing_dependency(tmp_path: Path) -> None:
    flows = "import not_a_real_module_xyz\n" + FLOWS
    fails(make_project(tmp_path, flows), "No module named 'not_a_real_module_xyz'")


COMMAND_FLOWS = """
from cloacina.packaging.command import command_task


@packaged_workflow(name="enriching", package="shop")
class enriching:
    @task()
    def fetch(context: Context) -> None:
        context.insert("n", 1)

    enrich = command_task(id="enrich", command=["bin/enrich.sh", "--all"], dependencies=[fetch])
"""


def test_command_task_ships_its_executable(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        COMMAND_FLOWS,
        tool='[tool.cloacina]\ninclude = ["bin/*.sh"]',
        extra={"bin/enrich.sh": "#!/bin/sh\ncat\n"},
    )
    (project / "bin/enrich.sh").chmod(0o755)
    archive = read_archive(build_package(project, log=lambda _: None).read_bytes())
    assert archive.modes["bin/enrich.sh"] == 0o755
    assert archive.files["bin/enrich.sh"] == b"#!/bin/sh\ncat\n"
    enrich = archive.manifest.workflows[0].tasks[1]
    assert enrich.command == ("bin/enrich.sh", "--all")


def test_command_not_included(tmp_path: Path) -> None:
    fails(
        make_project(tmp_path, COMMAND_FLOWS, extra={"bin/enrich.sh": "#!/bin/sh\n"}),
        r'include = \["bin/enrich.sh"\]',
    )


def test_command_not_executable(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        COMMAND_FLOWS,
        tool='[tool.cloacina]\ninclude = ["bin/enrich.sh"]',
        extra={"bin/enrich.sh": "#!/bin/sh\n"},
    )
    (project / "bin/enrich.sh").chmod(0o644)
    fails(project, "not executable; run `chmod \\+x bin/enrich.sh`")


def test_include_may_not_shadow_lib(tmp_path: Path) -> None:
    fails(
        make_project(
            tmp_path,
            tool='[tool.cloacina]\ninclude = ["lib/*"]',
            extra={"lib/x.txt": ""},
        ),
        "clash",
    )


def test_a_native_file_in_the_project_needs_allow_native(tmp_path: Path) -> None:
    project = make_project(tmp_path, extra={"src/shop/_fast.so": "not really ELF"})
    fails(project, "(?s)compiled code.*the project itself: shop/_fast.so.*--allow-native")
    path = build_package(project, allow_native=True, log=lambda _: None)
    meta = read_archive(path.read_bytes()).metadata
    assert meta["platform"]


def test_fmt_size() -> None:
    assert fmt_size(12) == "12 B"
    assert fmt_size(1536) == "1.5 KiB"
    assert fmt_size(3 * 1024 * 1024) == "3.0 MiB"
