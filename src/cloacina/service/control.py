"""The control store: the default tenant's database, where API keys and the audit log live
whichever tenant a runner serves (a key may serve every tenant; one audit trail)."""

from __future__ import annotations

import threading

from cloacina.model.namespace import DEFAULT_TENANT
from cloacina.settings import Settings
from cloacina.store import Store, open_store


class ControlStoreMixin:
    """``control_store`` on :class:`~cloacina.runner.DefaultRunner`: its own store when it
    serves the default tenant, else a store of the default tenant on the same database,
    opened on first use and closed by :meth:`close_control_store` (at shutdown)."""

    url: str
    tenant: str
    store: Store
    settings: Settings
    _control: Store | None = None
    _control_lock = threading.Lock()  # opening it is rare; one lock for every runner will do

    @property
    def control_store(self) -> Store:
        if self.tenant == DEFAULT_TENANT:
            return self.store
        control = self._control
        if control is None:
            with self._control_lock:
                control = self._control
                if control is None:
                    control = self._control = open_store(
                        self.url,
                        tenant=DEFAULT_TENANT,
                        busy_timeout=self.settings.busy_timeout,
                        # Keys and audit rows are rare next to task traffic: a small pool.
                        pool_size=1,
                        max_overflow=max(1, self.settings.max_overflow),
                        pool_timeout=self.settings.pool_timeout,
                        connect_timeout=self.settings.connect_timeout,
                    )
        return control

    def close_control_store(self) -> None:
        """Close the default tenant's store if this runner opened one of its own."""
        with self._control_lock:
            control, self._control = self._control, None
        if control is not None:
            control.close()
