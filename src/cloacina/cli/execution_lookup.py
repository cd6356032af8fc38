"""Finding one workflow execution from what a user types (an id or a unique prefix of one),
and naming where the executions commands look."""

from __future__ import annotations

from cloacina.cli.databases import display_url
from cloacina.cli.errors import CliError
from cloacina.store import Store
from cloacina.store.records import ExecutionRow

#: How many characters of an execution id ``executions list`` shows (``show`` takes prefixes).
SHORT_ID = 8


def where(url: str, tenant: str) -> str:
    """The database (without its password) and the tenant unless it is ``public``."""
    return display_url(url) + ("" if tenant == "public" else f" (tenant {tenant})")


def resolve_execution(store: Store, ident: str) -> ExecutionRow:
    """The execution with id ``ident``, or the only one whose id starts with ``ident``."""
    ident = ident.strip()
    if not ident:
        raise CliError("give an execution id (or a unique prefix of one)")
    row = store.get_execution(ident)
    if row is not None:
        return row
    matches = store.find_executions(ident, limit=6)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(
            f"no workflow execution with id or id prefix {ident!r}; "
            "list them with: cloacina executions list"
        )
    shown = ", ".join(f"{r.id} ({r.workflow_name})" for r in matches[:5])
    more = " and more" if len(matches) > 5 else ""
    raise CliError(
        f"execution id prefix {ident!r} is ambiguous: it matches {shown}{more}; "
        "give more characters"
    )
