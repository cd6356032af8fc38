"""Task namespaces: ``tenant::package::workflow::task``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloacina.errors import CloacinaError

DEFAULT_TENANT = "public"
EMBEDDED_PACKAGE = "embedded"
SEPARATOR = "::"
_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")


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
