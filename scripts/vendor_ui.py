"""Refresh the web UI's vendored libraries from the npm registry.

The UI ships its scripts inside the wheel (no CDN, no Node.js for users). Each library is
pinned here by version and by the registry's sha512 integrity of its tarball; this script
downloads the tarball, checks the integrity, and copies the files the pages load and the
licence into ``src/cloacina/server/ui/static/vendor/<name>/``, with ``VERSIONS.json``
listing what is there. Run it after changing a pin::

    python scripts/vendor_ui.py            # fetch and write
    python scripts/vendor_ui.py --check    # verify the vendored files match the pins

To move to a new version, set ``version`` and ``integrity`` (the registry's
``dist.integrity`` for that version: ``npm view htmx.org@2.0.8 dist.integrity``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
VENDOR = Path(__file__).resolve().parents[1] / "src/cloacina/server/ui/static/vendor"


@dataclass(frozen=True)
class Library:
    package: str  # the npm package
    version: str
    integrity: str  # sha512 of the tarball, as the registry states it
    folder: str  # under static/vendor/
    files: dict[str, str]  # path inside the tarball -> file name in the folder
    purpose: str

    @property
    def tarball(self) -> str:
        base = self.package.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.package}/-/{base}-{self.version}.tgz"


LIBRARIES = [
    Library(
        package="htmx.org",
        version="2.0.8",
        integrity="sha512-fm297iru0iWsNJlBrjvtN7V9zjaxd+69Oqjh4F/Vq9Wwi2kFisLcrLCiv5oBX0KLfOX/zG8AUo9ROMU5XUB44Q==",
        folder="htmx",
        files={"package/dist/htmx.min.js": "htmx.min.js", "package/LICENSE": "LICENSE"},
        purpose="forms, fragments and partial page updates without hand-written fetch code",
    ),
    Library(
        package="@dagrejs/dagre",
        version="3.1.3",
        integrity="sha512-X4aUTwOReZvthaZWOVHqlJ52/ZdhZFEM4+Lh/uR4XooUSLE6p71bcy7MPGzYnNUcNh+nj+i/qJQpCMIdQnSmrg==",
        folder="dagre",
        files={
            "package/dist/dagre.min.js": "dagre.min.js",
            "package/LICENSE": "LICENSE",
            "package/dist/dagre.min.js.LEGAL.txt": "LEGAL.txt",
        },
        purpose="left-to-right layered layout of run and workflow graphs (bundles graphlib)",
    ),
]


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(library: Library) -> dict[str, bytes]:
    with urllib.request.urlopen(library.tarball, timeout=120) as answer:
        data = answer.read()
    expected = library.integrity
    if sri(data) != expected:
        raise SystemExit(
            f"{library.package}@{library.version}: the tarball's sha512 does not match the pin "
            f"({sri(data)} != {expected}); refusing to vendor it"
        )
    taken: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for inside, name in library.files.items():
            member = archive.extractfile(inside)
            if member is None:
                raise SystemExit(f"{library.package}@{library.version} has no {inside}")
            taken[name] = member.read()
    return taken


def manifest() -> dict[str, dict[str, object]]:
    return {
        lib.folder: {
            "package": lib.package,
            "version": lib.version,
            "tarball": lib.tarball,
            "purpose": lib.purpose,
            "files": {
                name: sri((VENDOR / lib.folder / name).read_bytes()) for name in lib.files.values()
            },
        }
        for lib in LIBRARIES
    }


def write() -> None:
    for library in LIBRARIES:
        folder = VENDOR / library.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in fetch(library).items():
            (folder / name).write_bytes(data)
        print(f"vendored {library.package}@{library.version} into {folder}")
    text = json.dumps(manifest(), indent=2, sort_keys=True) + "\n"
    (VENDOR / "VERSIONS.json").write_text(text)


def check() -> int:
    """Whether the vendored files are those VERSIONS.json names (no network)."""
    recorded = json.loads((VENDOR / "VERSIONS.json").read_text())
    problems = []
    for library in LIBRARIES:
        entry = recorded.get(library.folder, {})
        if entry.get("version") != library.version:
            problems.append(f"{library.folder}: VERSIONS.json says {entry.get('version')}")
        for name, digest in entry.get("files", {}).items():
            path = VENDOR / library.folder / name
            if not path.exists() or sri(path.read_bytes()) != digest:
                problems.append(f"{path} differs from VERSIONS.json")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not download")
    if parser.parse_args().check:
        return check()
    write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
