"""Prometheus metrics of the operator (kopf has none of its own).

Counters are registered once per process in the default registry; `serve` starts the HTTP
endpoint once, when `KAIZEN_METRICS_PORT` is set. Without `prometheus_client` installed
every function here is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

try:
    import prometheus_client
except ImportError:  # pragma: no cover - the operator extra installs it
    prometheus_client = None  # type: ignore[assignment]

_server_port: int | None = None

if prometheus_client is not None:
    CYCLE_PHASES = prometheus_client.Counter(
        "kaizen_cycle_phase_transitions",
        "ImprovementCycles entering a phase (Pending, Evaluating, ..., Succeeded, Failed).",
        ["phase"],
    )
    STEPS_STARTED = prometheus_client.Counter(
        "kaizen_steps_started", "Step Jobs created, by kind of step.", ["kind"]
    )
    STEPS_FAILED = prometheus_client.Counter(
        "kaizen_steps_failed", "Steps recorded as failed, by reason.", ["reason"]
    )
    RECONCILE_ERRORS = prometheus_client.Counter(
        "kaizen_reconcile_errors", "Reconciliations that ended in an error (and are retried)."
    )


def serve(port: int) -> None:
    """Start the metrics HTTP server (once per process)."""
    global _server_port
    if prometheus_client is None:
        logger.warning("KAIZEN_METRICS_PORT is set but prometheus_client is not installed")
        return
    if _server_port is not None:
        return
    prometheus_client.start_http_server(port)
    _server_port = port
    logger.info("Serving Prometheus metrics on port %d", port)


def record_transition(
    old: Mapping[str, Any], new: Mapping[str, Any], started_kinds: Sequence[str]
) -> None:
    """Count what changed between two status dicts (wire form) and the Jobs just created."""
    if prometheus_client is None:
        return
    if new.get("phase") and new.get("phase") != old.get("phase"):
        CYCLE_PHASES.labels(phase=new["phase"]).inc()
    for kind in started_kinds:
        STEPS_STARTED.labels(kind=kind).inc()
    before = {(s.get("name"), s.get("attempt")): s.get("state") for s in old.get("steps") or []}
    for step in new.get("steps") or []:
        key = (step.get("name"), step.get("attempt"))
        if step.get("state") == "Failed" and before.get(key) != "Failed":
            STEPS_FAILED.labels(reason=step.get("reason") or "Unknown").inc()


def record_error() -> None:
    """Count one failed reconciliation."""
    if prometheus_client is not None:
        RECONCILE_ERRORS.inc()
