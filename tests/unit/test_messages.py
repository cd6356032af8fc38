"""Messages a new user found wrong or unclear (issue 9, items 17 and 24), where no process or
database is needed to see them."""

from __future__ import annotations

import pytest

from cloacina.errors import SignatureError, WorkflowNotFoundError
from cloacina.model.workflow import WorkflowCatalog
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
