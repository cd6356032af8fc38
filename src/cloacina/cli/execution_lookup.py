"""Finding one workflow execution from what a user types (an id or a unique prefix of one),
and naming where the executions commands look."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloacina.cli.databases import display_url
from cloacina.cli.errors import CliError
from cloacina.errors import ExecutionNotFoundError, RequestError
from cloacina.model.status import WorkflowResult

if TYPE_CHECKING:
    from cloacina.cli.remote import Service

#: How many characters of an execution id ``executions list`` shows (``show`` takes prefixes).
SHORT_ID = 8


def where(url: str, tenant: str) -> str:
    """The database (without its password) and the tenant unless it is ``public``."""
    return display_url(url) + ("" if tenant == "public" else f" (tenant {tenant})")


def resolve_execution(runner: Service, ident: str) -> WorkflowResult:
    """The execution with id ``ident``, or the only one whose id starts with ``ident``
    (with its tasks); none, or several, is a :class:`CliError` that says so."""
    try:
        return runner.find_execution(ident)
    except (ExecutionNotFoundError, RequestError) as exc:
        raise CliError(str(exc)) from None
