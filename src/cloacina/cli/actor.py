"""Who a changing command acts as: the local OS user, for the audit log.

Every command that changes something (runs, packages, keys, tenants, prunes) is decorated
with :func:`acts_locally`: the changes it makes through the service layer are recorded as
``local:<os user>`` from this host. Read-only commands are not, so they record nothing.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any, TypeVar, cast

from cloacina.service.audit import Actor, acting_as

F = TypeVar("F", bound=Callable[..., Any])


def local_actor() -> Actor:
    """The user running this command, on this host."""
    return Actor.local(client=socket.gethostname()[:128] or None)


def acts_locally(command: F) -> F:
    """Run a command's body as :func:`local_actor` (put it right above the ``def``, below
    the click decorators)."""

    @functools.wraps(command)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with acting_as(local_actor()):
            return command(*args, **kwargs)

    return cast(F, inner)
