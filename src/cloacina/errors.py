"""The exceptions Cloacina raises. Every one derives from :class:`CloacinaError`.

Messages name the thing that was wrong and say what to do about it. Three families tell a
caller (the HTTP layer, say) what kind of failure it is without reading the message:
:class:`NotFoundError` (a named thing does not exist: 404), :class:`ConflictError` (the
request does not fit the current state: 409) and :class:`UnavailableError` (a service, the
database, cannot be reached right now: retry later, 503).
"""

from __future__ import annotations


class CloacinaError(Exception):
    """Base class of every error raised by Cloacina."""


class WorkflowDefinitionError(CloacinaError):
    """A workflow or task definition is invalid (cycle, unknown dependency, bad signature...)."""


class CycleError(WorkflowDefinitionError):
    """The tasks of a workflow depend on each other in a cycle."""

    def __init__(self, workflow: str, cycle: list[str]) -> None:
        self.workflow = workflow
        self.cycle = cycle
        path = " -> ".join(cycle)
        super().__init__(
            f"workflow {workflow!r} has a dependency cycle: {path}. "
            "Remove one of these dependencies so the tasks form a DAG."
        )


class UnknownDependencyError(WorkflowDefinitionError):
    """A task depends on a task id that the workflow does not define."""


class DuplicateTaskError(WorkflowDefinitionError):
    """Two tasks of one workflow share an id."""


class NotFoundError(CloacinaError, LookupError):
    """A named thing (workflow, execution, package, tenant, ...) does not exist."""


class ConflictError(CloacinaError):
    """The request does not fit the current state of what it acts on."""


class UnavailableError(CloacinaError):
    """Something the request needs (the database) cannot be reached right now; the same
    request may succeed later."""


class ContextError(CloacinaError):
    """A context operation was invalid: a missing or existing key, or a non-JSON value."""


class ContextKeyError(ContextError, KeyError):
    """``insert`` of a key that exists, or ``update``/``remove`` of one that does not."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class ContextSerializationError(ContextError, TypeError):
    """A context value cannot be stored as JSON."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        super().__init__(
            f"context key {key!r} holds a value that is not JSON-serialisable ({detail}). "
            "Store only dicts, lists, strings, numbers, booleans and None "
            "(convert dates to ISO strings, sets to lists, objects to dicts)."
        )


class ContextTooDeepError(ContextSerializationError):
    """A context nests objects and arrays deeper than the limit (``MAX_DEPTH`` of
    ``cloacina.model.context``): deeper data would end in a ``RecursionError`` somewhere."""

    def __init__(self, key: str, where: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        what = "the context" if key == "<context>" else f"context key {key!r}"
        at = f" (at {where})" if where else ""
        # Not ContextSerializationError's message: the value is JSON, just too deep.
        ContextError.__init__(
            self,
            f"{what} nests objects and arrays more than {limit} levels deep{at}; "
            f"a context may nest at most {limit} levels: store the data flatter, or as a "
            "JSON string",
        )


class TaskError(CloacinaError):
    """Raise inside a task to fail it with a message.

    ``retryable=False`` fails the task at once, without using its remaining retries.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class RemoteTaskError(TaskError):
    """A task failed in a package's process; ``retryable`` was decided there by its policy."""

    def __init__(self, message: str, *, retryable: bool, exc_type: str = "") -> None:
        super().__init__(message, retryable=retryable)
        self.exc_type = exc_type


class TaskTimeoutError(TaskError):
    """A task ran longer than its ``timeout``. Counts as a retryable failure."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow of that name is known to the runner."""


class ExecutionNotFoundError(NotFoundError):
    """No workflow execution has that id."""


class TaskNotFoundError(NotFoundError):
    """A workflow execution has no task with that id."""


class AttemptNotFoundError(NotFoundError):
    """A task of a workflow execution has not run (or not yet run) that attempt."""


class BackfillNotFoundError(NotFoundError):
    """No backfill has this id (or id prefix)."""


class ExecutionTimeoutError(CloacinaError, TimeoutError):
    """Waiting for a workflow execution took longer than the caller allowed."""


class InvalidStateError(ConflictError):
    """An operation does not apply to an execution in its current state."""


class IdempotencyConflictError(ConflictError):
    """An idempotency key already names a run of another workflow or context (HTTP 409):
    use a new key for a new request."""


class StoreError(CloacinaError):
    """The database could not be opened, migrated or used."""


class StoreUnavailableError(StoreError, UnavailableError):
    """The database cannot be reached or used right now (connection lost or refused, server
    restarting, a lock held too long, no free pooled connection); retrying may succeed."""


class InvalidTenantNameError(StoreError, ValueError):
    """A tenant name that no backend accepts (it names a schema or a file)."""


class TenantNotFoundError(StoreError, NotFoundError):
    """No tenant of that name exists in the database."""


class SchemaError(StoreError):
    """A database opened for reading holds no Cloacina schema, or not this version's.

    ``revision`` is the schema revision found (None: no Cloacina schema at all).
    """

    def __init__(self, message: str, *, revision: str | None = None) -> None:
        super().__init__(message)
        self.revision = revision


class ReadOnlyDatabaseError(StoreError):
    """The database cannot be written from here (a read-only file or directory)."""


class SettingsError(CloacinaError, ValueError):
    """A setting has a value it cannot take (a wrong type, out of bounds, or at odds with
    another setting). A ValueError too: runners always refused bad settings with one."""


class RunnerClosedError(CloacinaError):
    """The runner was shut down; create a new one."""


class PackageError(CloacinaError):
    """A ``.cloacina`` package could not be built, read, verified or loaded."""


class UnsafePackageError(PackageError):
    """A package archive was refused for safety: traversal, links, sizes, a bad fingerprint."""


class SignatureError(PackageError):
    """A package signature is missing, does not verify, or comes from an untrusted key."""


class PackageNotFoundError(PackageError, NotFoundError):
    """No registered package has that name and version."""


class WorkflowNameConflictError(PackageError, ConflictError):
    """A package being registered has a workflow whose name another registered package
    already has: registering it would silently change what that name runs. Refused unless
    asked (``replace=True``, ``--replace``)."""

    def __init__(self, message: str, *, workflow: str, package: str, other_package: str) -> None:
        super().__init__(message)
        self.workflow = workflow
        self.package = package
        self.other_package = other_package


class AuthenticationError(CloacinaError):
    """No API key, or one that is unknown, revoked or expired (HTTP 401)."""


class PermissionDeniedError(CloacinaError, PermissionError):
    """The caller's role (or tenant) does not allow the operation (HTTP 403)."""


class ApiKeyNotFoundError(NotFoundError):
    """No API key has that id."""


class RequestError(CloacinaError, ValueError):
    """A request is malformed: not JSON, a missing or wrongly typed field (HTTP 400).
    ``field`` names the field when one is at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLargeError(CloacinaError):
    """A request body is larger than the server accepts (HTTP 413)."""


class RemoteError(CloacinaError):
    """A Cloacina server answered a :class:`cloacina.Client` request with an error it has no
    more specific class for; ``status`` and ``code`` are the HTTP status and error code."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class InvalidScheduleError(RequestError):
    """A cron expression, time zone or schedule option that cannot be used (HTTP 400).

    For a bad cron field: ``field`` (its name, e.g. ``"minute"``), ``field_index`` (1-based)
    and ``column`` (1-based character position in ``expression``) say where; ``timezone`` and
    ``suggestion`` (the nearest valid zone, if any) are set for an unknown time zone."""

    def __init__(
        self,
        message: str,
        *,
        expression: str | None = None,
        field: str | None = None,
        field_index: int | None = None,
        column: int | None = None,
        timezone: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.expression = expression
        self.field_index = field_index
        self.column = column
        self.timezone = timezone
        self.suggestion = suggestion
