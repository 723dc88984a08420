"""Prometheus metrics of the operator (kopf has none of its own).

Metrics are registered once per process in the default registry; `serve` starts the HTTP
endpoint once, when `KAIZEN_METRICS_PORT` is set. Without `prometheus_client` installed
every function here is a no-op. The chart's sample Grafana dashboard
(`charts/kaizen/dashboards/kaizen-operator.json`) plots them; a test checks that every
metric it queries is one defined here.

| metric | type | labels | what |
|---|---|---|---|
| `kaizen_reconcile_duration_seconds` | histogram | | one reconciliation of one cycle, end to end |
| `kaizen_reconcile_errors_total` | counter | | reconciliations that ended in an error (retried) |
| `kaizen_job_event_to_status_seconds` | histogram | `seen` | a step's Job ended, as this process first knew it → the status patch recording the step's outcome acknowledged |
| `kaizen_job_event_queue_seconds` | histogram | `job` | a Job watch event reaching this process → the start of the reconciliation that answers it (the cycle's lock, a free slot) |
| `kaizen_reconciliations_in_flight` | gauge | | reconciliations holding one of the `KAIZEN_MAX_RECONCILIATIONS` slots |
| `kaizen_reconciliations_waiting` | gauge | | reconciliations waiting for a slot (they hold no API objects yet) |

`seen` is `watch` when the Job's watch event told the operator first (the time counts from the
event's arrival in this process), `list` when a reconciliation's own listing of the cycle's Jobs
showed the end before its event arrived. `job` is `finished` for an event of a Job that has
ended (Complete or Failed), `running` for any other Job event.
| `kaizen_cycles` | gauge | `phase` | cycles this replica knows, by phase |
| `kaizen_cycle_phase_transitions_total` | counter | `phase` | cycles entering a phase |
| `kaizen_steps_started_total` | counter | `kind` | step Jobs created (`evaluator`, `trainer`) |
| `kaizen_step_outcomes_total` | counter | `step`, `outcome`, `reason` | steps recorded Succeeded or Failed |
| `kaizen_steps_failed_total` | counter | `reason` | steps recorded as failed |
| `kaizen_api_errors_total` | counter | `call`, `code` | Kubernetes API calls that failed (`code` is the HTTP status, or `connection`) |
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, NamedTuple

from kaizen.operator.slim import slim

logger = logging.getLogger(__name__)

try:
    import prometheus_client
except ImportError:  # pragma: no cover - the operator extra installs it
    prometheus_client = None  # type: ignore[assignment]

_server_port: int | None = None
#: The phase of each cycle this process has reconciled, by (namespace, name).
_phases: dict[tuple[str, str], str] = {}

#: Buckets of the reconcile histogram, in seconds (a reconciliation is a few API calls).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Buckets of the Job-event latency histograms, in seconds (fine around the goal of 2 s).
EVENT_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
#: The key under which each raw watch event carries the moment it reached this process
#: (`time.monotonic()`), set by `stamp_watch_arrivals`.
ARRIVED = "kaizen.dev/arrived"

if prometheus_client is not None:
    RECONCILE_SECONDS = prometheus_client.Histogram(
        "kaizen_reconcile_duration_seconds",
        "Time of one reconciliation of one cycle (read, observe its Jobs, decide, apply).",
        buckets=RECONCILE_BUCKETS,
    )
    JOB_EVENT_TO_STATUS = prometheus_client.Histogram(
        "kaizen_job_event_to_status_seconds",
        "From the operator first knowing that a step's Job ended (its watch event arriving, or "
        "its own listing) to the API server acknowledging the status patch with the outcome.",
        ["seen"],
        buckets=EVENT_BUCKETS,
    )
    JOB_EVENT_QUEUE = prometheus_client.Histogram(
        "kaizen_job_event_queue_seconds",
        "From a Job watch event reaching the operator to the start of the reconciliation that "
        "answers it: kopf's per-object queue, the wait for the cycle's lock and for a slot.",
        ["job"],
        buckets=EVENT_BUCKETS,
    )
    IN_FLIGHT = prometheus_client.Gauge(
        "kaizen_reconciliations_in_flight",
        "Reconciliations holding a slot (at most KAIZEN_MAX_RECONCILIATIONS at once).",
    )
    WAITING = prometheus_client.Gauge(
        "kaizen_reconciliations_waiting",
        "Reconciliations waiting for a slot, before they read their cycle.",
    )
    CYCLES = prometheus_client.Gauge(
        "kaizen_cycles", "ImprovementCycles this replica has seen, by phase.", ["phase"]
    )
    CYCLE_PHASES = prometheus_client.Counter(
        "kaizen_cycle_phase_transitions",
        "ImprovementCycles entering a phase (Pending, Evaluating, ..., Succeeded, Failed).",
        ["phase"],
    )
    STEPS_STARTED = prometheus_client.Counter(
        "kaizen_steps_started", "Step Jobs created, by kind of step.", ["kind"]
    )
    STEP_OUTCOMES = prometheus_client.Counter(
        "kaizen_step_outcomes",
        "Steps recorded as Succeeded or Failed, by step (train-<domain> counts as train).",
        ["step", "outcome", "reason"],
    )
    STEPS_FAILED = prometheus_client.Counter(
        "kaizen_steps_failed", "Steps recorded as failed, by reason.", ["reason"]
    )
    RECONCILE_ERRORS = prometheus_client.Counter(
        "kaizen_reconcile_errors", "Reconciliations that ended in an error (and are retried)."
    )
    API_ERRORS = prometheus_client.Counter(
        "kaizen_api_errors",
        "Kubernetes API calls that failed, by client call and HTTP status ('connection' when "
        "no answer came).",
        ["call", "code"],
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


@contextlib.contextmanager
def reconcile_timer() -> Iterator[None]:
    """Time one reconciliation (also when it fails)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if prometheus_client is not None:
            RECONCILE_SECONDS.observe(time.perf_counter() - start)


def stamp_watch_arrivals() -> bool:
    """Make kopf stamp every raw watch event with the moment it reached this process, and
    slim its object (`kaizen.operator.slim`: no `managedFields`) before kopf queues it.

    kopf hands `on.event` handlers the raw event, but only after its per-object queue; the
    stamp (`event[ARRIVED]`, `time.monotonic()`) is what the Job-event latency is measured
    from. kopf has no hook for this: its watch stream (`kopf._cogs.clients.watching.
    infinite_watch`, looked up by the watcher at each (re)start) is wrapped once per process.
    False when kopf no longer has that function: handlers then measure from their own start.
    """
    try:
        from kopf._cogs.clients import watching
    except ImportError:  # pragma: no cover - a kopf without the private module
        return False
    original = getattr(watching, "infinite_watch", None)
    if original is None:  # pragma: no cover - a kopf that moved it
        logger.warning("kopf has no infinite_watch: Job-event latency counts from the handler")
        return False
    if getattr(original, "_kaizen_stamped", False):
        return True
    setattr(watching, "infinite_watch", _stamped(original))  # noqa: B010 - a private module
    return True


def _stamped(
    original: Callable[..., AsyncGenerator[Any, None]],
) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(original)
    async def infinite_watch(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with contextlib.aclosing(original(*args, **kwargs)) as stream:
            async for event in stream:
                if isinstance(event, dict):
                    event[ARRIVED] = time.monotonic()
                    slim(event.get("object"))
                yield event

    infinite_watch._kaizen_stamped = True  # type: ignore[attr-defined]
    return infinite_watch


class JobEvent(NamedTuple):
    """A Job watch event as the latency metrics see it."""

    #: When it reached this process (`time.monotonic()`).
    arrived: float
    #: The `job` label: `finished` (the Job ended) or `running`.
    job: str
    #: The Job's name.
    name: str


def job_event(event: Mapping[str, Any] | None, name: str, finished: bool) -> JobEvent:
    """The event `event` of Job `name` (raw, as kopf hands it; now, if it has no stamp)."""
    stamped = (event or {}).get(ARRIVED)
    arrived = float(stamped) if isinstance(stamped, int | float) else time.monotonic()
    return JobEvent(arrived, "finished" if finished else "running", name)


def record_event_queue(events: Iterable[JobEvent], started: float) -> None:
    """Job events that a reconciliation starting at `started` (`time.monotonic()`) answers."""
    if prometheus_client is not None:
        for event in events:
            JOB_EVENT_QUEUE.labels(job=event.job).observe(max(0.0, started - event.arrived))


def record_outcome_recorded(seen: float, how: str, acknowledged: float) -> None:
    """A step's Job end, first known at `seen` (`how`: `watch` or `list`), is in the status
    since the patch acknowledged at `acknowledged` (both `time.monotonic()`)."""
    if prometheus_client is not None:
        JOB_EVENT_TO_STATUS.labels(seen=how).observe(max(0.0, acknowledged - seen))


def step_label(step: str) -> str:
    """The `step` label of a step name: `train-<domain>` is `train` and `score-<domain>` is
    `score` (domains are unbounded)."""
    for kind in ("train", "score"):
        if step.startswith(kind + "-"):
            return kind
    return step


def record_phase(namespace: str, name: str, phase: str | None) -> None:
    """The cycle is now in `phase` (None: it is gone); keeps the `kaizen_cycles` gauge."""
    key = (namespace, name)
    old = _phases.pop(key, None) if phase is None else _phases.get(key)
    if phase is not None:
        _phases[key] = phase
    if prometheus_client is None or old == phase:
        return
    if old is not None:
        CYCLES.labels(phase=old).dec()
    if phase is not None:
        CYCLES.labels(phase=phase).inc()


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
        state = step.get("state")
        if state not in ("Succeeded", "Failed"):
            continue
        if before.get((step.get("name"), step.get("attempt"))) == state:
            continue
        reason = step.get("reason") or "Unknown"
        STEP_OUTCOMES.labels(
            step=step_label(str(step.get("name") or "")), outcome=state, reason=reason
        ).inc()
        if state == "Failed":
            STEPS_FAILED.labels(reason=reason).inc()


def record_slots(in_flight: int, waiting: int) -> None:
    """Reconciliations holding a slot and waiting for one, now."""
    if prometheus_client is not None:
        IN_FLIGHT.set(in_flight)
        WAITING.set(waiting)


def record_error() -> None:
    """Count one failed reconciliation."""
    if prometheus_client is not None:
        RECONCILE_ERRORS.inc()


def record_api_error(call: str, code: int | str | None) -> None:
    """Count one failed API call (`code`: the HTTP status, or None when no answer came)."""
    if prometheus_client is not None:
        API_ERRORS.labels(call=call, code=str(code) if code else "connection").inc()
