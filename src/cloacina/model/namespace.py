"""Task namespaces: ``tenant::package::workflow::task``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloacina.errors import CloacinaError

DEFAULT_TENANT = "public"
EMBEDDED_PACKAGE = "embedded"
SEPARATOR = "::"
_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")

# The longest names the database holds (the VARCHAR columns of store/tables.py). SQLite does
# not enforce these lengths and PostgreSQL does, so names are checked where they are defined
# (decorators, the package builder): the same error on both backends, before anything runs.
# The full ``tenant::package::workflow::task`` name is never stored, so it has no limit of
# its own. Tenant names are checked by the store (at most 63 characters).
MAX_TASK_ID = 255
MAX_WORKFLOW_NAME = 255
MAX_PACKAGE_NAME = 128
MAX_PACKAGE_VERSION = 64
#: A workflow's version is the hex SHA-256 of its code (64 characters); manifests say it too.
MAX_WORKFLOW_VERSION = 64


def too_long(kind: str, value: str, limit: int) -> str | None:
    """The message for ``value`` (a ``kind`` such as "task id") longer than ``limit``
    characters, or None when it fits."""
    if len(value) <= limit:
        return None
    shown = value if len(value) <= 60 else value[:50] + "..."
    return (
        f"{kind} {shown!r} is {len(value)} characters long, over the limit of {limit} "
        "(the longest the database stores); shorten it"
    )


@dataclass(frozen=True, slots=True)
class TaskNamespace:
    """The full name of a task: which tenant, package and workflow it belongs to."""

    tenant: str
    package: str
    workflow: str
    task: str

    def __post_init__(self) -> None:
        for label in ("tenant", "package", "workflow", "task"):
            value = getattr(self, label)
            if not value or not _PART.match(value):
                raise CloacinaError(
                    f"invalid {label} name {value!r} in a task namespace: use letters, digits, "
                    "'_', '.' and '-' only"
                )

    def __str__(self) -> str:
        return SEPARATOR.join((self.tenant, self.package, self.workflow, self.task))

    @classmethod
    def parse(cls, text: str) -> TaskNamespace:
        """Parse ``tenant::package::workflow::task``."""
        parts = text.split(SEPARATOR)
        if len(parts) != 4:
            raise CloacinaError(
                f"invalid task namespace {text!r}: expected tenant::package::workflow::task"
            )
        return cls(*parts)
