"""Messages a new user found wrong or unclear (issue 9, items 17 and 24), where no process or
database is needed to see them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloacina.errors import SignatureError, WorkflowNotFoundError
from cloacina.model.workflow import WorkflowCatalog
from cloacina.packaging.archive import read_archive
from cloacina.packaging.build import build, fmt_size
from cloacina.packaging.signing import generate_keypair, sign_archive, verify_signature


def test_an_unknown_workflow_names_what_is_known_and_both_ways_to_get_one() -> None:
    with pytest.raises(WorkflowNotFoundError) as caught:
        WorkflowCatalog().get("nosuch")
    message = str(caught.value)
    assert "no workflow named 'nosuch' (known: none)" in message
    assert "in this process" not in message  # the CLI shows it too, where it means nothing
    assert "import its module" in message and "register the package" in message


def test_an_untrusted_signer_is_told_the_option_that_trusts_a_key() -> None:
    signer = generate_keypair()
    with pytest.raises(SignatureError) as caught:
        verify_signature(b"archive bytes", sign_archive(b"archive bytes", signer.private_pem), {})
    message = str(caught.value)
    assert "--trusted-key FILE.pub" in message  # the CLI's option, as the CLI spells it
    assert "trusted_keys=[...] (DefaultRunner)" in message  # and the API's keyword


FLOWS = """\
from cloacina import Context, packaged_workflow, task


@packaged_workflow(name="sizes", package="sizes")
class sizes:
    @task()
    def only(context: Context) -> None:
        context.insert("n", 1)
"""


def test_build_and_inspect_count_the_same_files_and_uncompressed_size(tmp_path: Path) -> None:
    root = tmp_path / "sizes"
    (root / "sizes").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "sizes"\nversion = "1.0"\n')
    (root / "sizes" / "__init__.py").write_text("")
    (root / "sizes" / "flows.py").write_text(FLOWS + "# padding\n" * 400)
    lines: list[str] = []
    result = build(root, log=lines.append)
    archive = read_archive(result.path.read_bytes())
    # What `cloacina package inspect` shows: every member, metadata.json included.
    files, total = len(archive.files), sum(len(c) for c in archive.files.values())
    [wrote] = [line for line in lines if line.startswith("Wrote ")]
    assert f", {files} files, {fmt_size(total)} uncompressed)" in wrote, wrote
    assert result.files == files
