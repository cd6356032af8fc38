"""Observability: Prometheus metrics of a runner (:mod:`cloacina.observability.metrics`).

``prometheus-client`` is an optional dependency (the ``server`` extra): without it a runner
works as before and collects no metrics.
"""

from __future__ import annotations

from cloacina.observability.metrics import (
    SERVER_EXTRA,
    EngineMetrics,
    GaugeFamily,
    metrics_available,
)

__all__ = ["SERVER_EXTRA", "EngineMetrics", "GaugeFamily", "metrics_available"]
