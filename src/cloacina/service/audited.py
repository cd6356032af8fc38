"""The audited changes of :class:`~cloacina.runner.DefaultRunner`: one decorator per kind,
saying the action and what its target is (see :func:`cloacina.service.audit.audited`).

Actions: ``run.start``, ``run.cancel``, ``run.pause``, ``run.resume``, ``run.rerun``,
``package.register``, ``package.delete``, ``package.promote``, ``runs.prune``,
``key.create``, ``key.revoke``, ``tenant.create``, ``tenant.remove``, ``backfill.create``,
``backfill.pause``, ``backfill.resume``, ``backfill.cancel``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from cloacina.service.audit import Described, F, audited


def _workflow_label(name: Any) -> str:
    if isinstance(name, str):
        return name
    return str(getattr(name, "name", None) or getattr(name, "__name__", None) or name)


def _run_start(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    workflow = _workflow_label(args.get("name"))
    detail: dict[str, Any] = {"workflow": workflow}
    if isinstance(result, tuple):  # start_run: (id, whether the run is new)
        result, created = result
        if not created:  # an idempotency key named a run made before
            detail["existing"] = True
    if args.get("idempotency_key"):
        detail["idempotency_key"] = args["idempotency_key"]
    return (str(result) if result else workflow), detail


def _run(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    extra = {k: v for k, v in args.items() if k not in ("self", "execution_id") and v}
    return str(args.get("execution_id", "")), (extra or None)


def _register(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    data = args.get("package_bytes") or b""
    sha256 = hashlib.sha256(data).hexdigest() if isinstance(data, bytes | bytearray) else ""
    detail: dict[str, Any] = {"sha256": sha256}
    if result:
        detail["package_id"] = result
        row = runner.store.find_package(runner.tenant, package_id=str(result))
        if row is not None:
            return f"{row.package}@{row.version}", detail
        return str(result), detail
    return f"sha256:{sha256[:16]}", detail


def _package_version(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    version = args.get("version")
    return f"{args.get('name')}@{version if version is not None else 'highest'}", None


def _prune(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    older_than = args.get("older_than")
    detail = {"older_than_seconds": older_than}
    if result is not None:
        detail["removed"] = result
    return f"finished runs older than {older_than}s", detail


def audit_run_start() -> Callable[[F], F]:
    """``run.start``: the target is the new run's id (the workflow asked for on failure)."""
    return audited("run.start", _run_start)


def audit_run(action: str) -> Callable[[F], F]:
    """``run.<verb>`` of a method whose first argument is ``execution_id``."""
    return audited(action, _run)


def audit_package_register() -> Callable[[F], F]:
    """``package.register``: the target is ``package@version`` (the archive's SHA-256 when
    it was refused)."""
    return audited("package.register", _register)


def audit_package_version(action: str) -> Callable[[F], F]:
    """``package.delete`` / ``package.promote`` of a method taking ``name, version``."""
    return audited(action, _package_version)


def audit_prune() -> Callable[[F], F]:
    """``runs.prune`` of a method taking ``older_than`` (seconds); the detail says how many
    runs went."""
    return audited("runs.prune", _prune)


def _backfill_create(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    workflow = _workflow_label(args.get("workflow"))
    detail = {
        "workflow": workflow,
        "start": str(args.get("start")),
        "end": str(args.get("end")),
        "cron": args.get("cron"),
        "timezone": args.get("timezone"),
        "only_missing": args.get("only_missing"),
        "max_parallel": args.get("max_parallel"),
    }
    return (str(result) if result else workflow), detail


def _backfill(runner: Any, result: Any, args: dict[str, Any]) -> Described:
    detail = {"cancelled_runs": result} if isinstance(result, int) else None
    return str(args.get("backfill_id", "")), detail


def audit_backfill_create() -> Callable[[F], F]:
    """``backfill.create``: the target is the new backfill's id (the workflow asked for on
    failure); the detail holds the range, the cron and the options (never the context)."""
    return audited("backfill.create", _backfill_create)


def audit_backfill(action: str) -> Callable[[F], F]:
    """``backfill.<verb>`` of a method whose first argument is ``backfill_id``."""
    return audited(action, _backfill)
