"""kopf handlers: thin triggers that all funnel into one `CycleReconciler.reconcile(namespace, name)`
(cycles) or `ChainReconciler.reconcile(namespace, name)` (chains).

Cycle triggers: a cycle is created, resumed (operator restart) or its spec changes; one of its
Jobs changes (`on.event` on Jobs labelled `kaizen.dev/cycle`); and a safety-net timer on
unfinished cycles. Chain triggers: a chain is created, resumed or its spec changes; one of its
cycles ends or vanishes; and a daemon per chain that wakes when the next scheduled run is due.
Handlers return None, so kopf writes nothing into `status`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import kopf

from kaizen.api.chain import CHAIN_PLURAL
from kaizen.api.resource import GROUP, PLURAL, VERSION
from kaizen.cycle.chain import LABEL_CHAIN
from kaizen.operator import diagnostics, metrics, unserved
from kaizen.operator.chain import ChainReconciler, seconds_until
from kaizen.operator.jobs import LABEL_CYCLE, LABEL_MANAGED_BY, MANAGED_BY, job_selector
from kaizen.operator.kube import ApiException, CycleOwnedByAnother, JobOwnedByAnother, Kube
from kaizen.operator.observe import job_finished
from kaizen.operator.pacing import backoff, controller_uid, job_ending, job_fresh
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from kaizen.operator.trainjobs import GROUP as TRAINJOB_GROUP
from kaizen.operator.trainjobs import PLURAL as TRAINJOB_PLURAL
from kaizen.operator.trainjobs import VERSION as TRAINJOB_VERSION

#: Prefix of kopf's annotations (progress, diff-base) and its finalizer on cycles.
ANNOTATION_PREFIX = "kaizen.dev"
FINALIZER = "kaizen.dev/finalizer"
#: The longest wait before kopf retries a cycle handler after an API error (the first is 0.2 s,
#: doubled after each failure in a row).
RETRY_DELAY = 15.0
#: The timer's interval is fixed when this module is imported (kopf registers it then).
_IMPORT_SETTINGS = OperatorSettings.from_env()
# A 404 of a watch (a CRD not served yet after an API server restart) is retried, not fatal.
unserved.retry_unserved_watches()
# A scan of the group made while discovery lags a CRD created again is made again.
unserved.rescan_lagging_discovery(GROUP, VERSION, (PLURAL, CHAIN_PLURAL))
# Watch events carry their arrival time, for the Job-event latency metrics.
metrics.stamp_watch_arrivals()


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about the cycle through kopf's poster (not limited by posting.level)."""
    kopf.event(cast(kopf.Body, dict(body)), type=type_, reason=reason, message=message)


def replica_priority(pod_name: str) -> int:
    """A kopf peering priority in 1..2**31-1 derived from the pod name, distinct between replicas.

    Only the live peer with the highest priority works, and peers that share the highest
    priority all pause. The replicas of a Deployment share one command line, so a fixed
    `--priority` would freeze them all; their pod names differ.
    """
    return 1 + zlib.crc32(pod_name.encode()) % (2**31 - 1)


def configure_kopf(
    settings: kopf.OperatorSettings, operator: OperatorSettings, pod_name: str = ""
) -> None:
    """kopf settings the operator relies on (pure but for the host name: also used by tests)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Only warnings from handler logs become Events; the cycle's own Events are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "kaizen-operator"
    # Short watches: a silently dropped connection is noticed within a minute.
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 60
    # The first list of each resource (at start-up, after a watch expires) in chunks: one
    # response of 5,000 Jobs was ~37 MB of JSON and ~210 MB parsed, before anything is slimmed.
    settings.watching.chunk_size = operator.list_chunk_size or None
    # Server-side filtering: the operator never sees Jobs that are not its own.
    settings.watching.label_selectors["batch", "v1", "jobs"] = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    if operator.trainjob:
        settings.watching.label_selectors[TRAINJOB_GROUP, TRAINJOB_VERSION, TRAINJOB_PLURAL] = (
            f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        )
    # A named peering (`--peering`, as the Helm chart runs replicas) left at kopf's default
    # priority: give this replica its own, so that one replica works and the others wait.
    peering = settings.peering
    if peering.mandatory and not peering.standalone and peering.priority == 0:
        peering.priority = replica_priority(pod_name or socket.gethostname())
    if not operator.scanning:
        # Only ever switched off here: a harness that disabled scanning keeps it disabled.
        settings.scanning.disabled = True


def _reconciler(memo: Any) -> CycleReconciler:
    reconciler = getattr(memo, "kaizen", None)
    if reconciler is None:
        raise kopf.TemporaryError("the operator has not finished starting", delay=5)
    return cast(CycleReconciler, reconciler)


def _namespace(namespace: str | None) -> str:
    # Cycles and Jobs are namespaced: kopf always passes one.
    if not namespace:
        raise kopf.PermanentError("a namespaced object came without a namespace")
    return namespace


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Read `KAIZEN_*` settings, configure kopf, connect the API client, start metrics; then
    wait until the API server serves the cycles."""
    operator = OperatorSettings.from_env()
    configure_kopf(settings, operator)
    kube = Kube.from_environment()
    memo.kaizen = CycleReconciler(kube, operator, post_event=post_event)
    memo.kaizen_chains = ChainReconciler(kube, post_event=post_event)
    if operator.metrics_port is not None:
        metrics.serve(operator.metrics_port)
    if operator.memory_reports_dir:
        memo.kaizen_tracer = report_memory(
            Path(operator.memory_reports_dir), operator.tracemalloc_frames
        )
    logger.info("Kaizen operator settings: %s", operator)
    if settings.peering.mandatory and not settings.peering.standalone:
        logger.info("Peering %r with priority %d", settings.peering.name, settings.peering.priority)
    # kopf reads the served resources once, after this handler: cycles not served yet (an API
    # server restarting, a CRD not Established yet) would then never be served.
    await unserved.wait_until_served(kube, GROUP, VERSION, PLURAL)


def report_memory(folder: Path, frames: int = 0) -> diagnostics.MemoryTracer:
    """Each SIGUSR2 writes a memory report into `folder` (`kaizen.operator.diagnostics`); with
    `frames` > 0, allocations are traced and each report comes with a tracemalloc snapshot."""
    tracer = diagnostics.MemoryTracer(folder, frames)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR2, lambda: tracer.dump(f"SIGUSR2 {tracer.dumps}"))
    return tracer


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    tracer = getattr(memo, "kaizen_tracer", None)
    if tracer is not None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR2)
        tracer.dump("at exit")
        tracer.stop()
    reconciler = getattr(memo, "kaizen", None)
    if reconciler is not None:
        await reconciler.close()
    if reconciler is not None and hasattr(reconciler.kube, "close"):
        reconciler.kube.close()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster credentials, else `$KUBECONFIG` read now (not when a library was imported)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.probe(id="reconciling")
async def probe(memo: Any, **_: Any) -> int:
    """Liveness: the operator started and its reconciler exists; reports cycles in progress."""
    return _reconciler(memo).busy


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def cycle_changed(
    namespace: str | None,
    name: str,
    memo: Any,
    reason: str | None = None,
    body: Mapping[str, Any] | None = None,
    retry: int = 0,
    **_: Any,
) -> None:
    """A cycle appeared, the operator restarted, or the spec changed (a new generation is recorded).

    On an operator restart, a finished cycle whose status answers its spec costs no API call.
    A failed attempt is retried by kopf after 0.2 s, doubling up to `RETRY_DELAY`.
    """
    reconciler = _reconciler(memo)
    ns = _namespace(namespace)
    if reason == "resume" and body is not None and reconciler.settled.note(ns, name, body):
        metrics.record_phase(ns, name, (body.get("status") or {}).get("phase"))
        return
    try:
        await reconciler.reconcile(ns, name)
    except (ApiException, JobOwnedByAnother) as error:
        delay = backoff(retry + 1, maximum=RETRY_DELAY)
        raise kopf.TemporaryError(f"{type(error).__name__}: {error}", delay=delay) from error


@kopf.on.event(
    "batch", "v1", "jobs", labels={LABEL_CYCLE: kopf.PRESENT, LABEL_MANAGED_BY: MANAGED_BY}
)
async def job_event(
    namespace: str | None,
    labels: Mapping[str, str],
    memo: Any,
    logger: kopf.Logger,
    body: Mapping[str, Any] | None = None,
    type: str | None = None,  # noqa: A002 - kopf's name for the watch event's type
    event: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    """A step Job changed (created, progressed, finished, deleted): reconcile its cycle.

    Not for a cycle known to be finished and settled (a TTL deletion, a stopped sibling), nor
    for a Job write that changes nothing the engine acts on (`JobSignatures`), nor for a Job
    as created (`job_fresh`: its ADDED event, no status yet, not suspended), nor for the
    write that only announces the Job's end (`job_ending`: SuccessCriteriaMet or
    FailureTarget before Complete or Failed). The reconciliation is requested, not awaited
    (`CycleRuns.request`: at most one waits per cycle, and it reads the cycle when it runs), so
    kopf holds no event while it waits. kopf does not retry event handlers: a failed run is
    retried by the reconciler, soon (0.2 s, doubling up to 30 s), not only by the safety-net
    timer a minute later. The event's arrival (stamped by
    the watch stream) starts the latency metrics: `kaizen_job_event_queue_seconds` until the
    reconciliation answering it starts, `kaizen_job_event_to_status_seconds` (for a Job that
    ended) until the status patch with its step's outcome is acknowledged.
    """
    arrived = metrics.job_event(  # for the latency metrics
        event,
        str(((body or {}).get("metadata") or {}).get("name") or ""),
        body is not None and type != "DELETED" and job_finished(body),
    )
    reconciler = _reconciler(memo)
    ns, cycle = _namespace(namespace), labels[LABEL_CYCLE]
    if body is not None and reconciler.settled.covers(ns, cycle, controller_uid(body)):
        return
    signatures = reconciler.job_signatures
    if body is not None:
        if type == "DELETED":
            reconciler.forget_job(ns, cycle, body)
        elif signatures.unchanged(ns, body) or job_fresh(body) or job_ending(body):
            # Nothing the engine acts on changed (a write of fields it does not read), the Job
            # is as created (its ADDED event), or its end is decided and not yet written.
            return
    # Not awaited: kopf lets go of this event (and hands over the Job's next one) at once.
    reconciler.request(
        ns,
        cycle,
        job_event=arrived,
        job=body if body is not None and type != "DELETED" else None,
        changed=type == "MODIFIED",
    )


if _IMPORT_SETTINGS.trainjob:
    # Registered only with TrainJob support: without Kubeflow Trainer (or RBAC for it) the
    # watch would fail for ever. The setting is read when this module is imported. A train
    # step's TrainJob is handled as its Job would be, by the same function (kopf's arguments,
    # the event's type included, reach it unchanged).
    kopf.on.event(
        TRAINJOB_GROUP,
        TRAINJOB_VERSION,
        TRAINJOB_PLURAL,
        id="trainjob_event",
        labels={LABEL_CYCLE: kopf.PRESENT, LABEL_MANAGED_BY: MANAGED_BY},
    )(cast(Any, job_event))


def _unfinished(status: Mapping[str, Any], **_: Any) -> bool:
    return (status or {}).get("phase") not in ("Succeeded", "Failed")


@kopf.timer(
    GROUP,
    VERSION,
    PLURAL,
    interval=_IMPORT_SETTINGS.reconcile_interval,
    idle=_IMPORT_SETTINGS.reconcile_interval,
    when=_unfinished,
)
async def safety_net(
    namespace: str | None, name: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Reconcile an unfinished cycle that has been quiet for a while (a missed watch event, a
    pod stuck without a Job event to say so).

    kopf's `idle` counts only changes of the cycle's spec and metadata, not of its status: the
    timer fires every interval while a cycle runs, however busy it is. A cycle reconciled
    within the interval (by its Jobs' events) is not quiet: skipped, at no API cost. At 500
    running cycles the timer alone was 8 reconciliations a second.
    """
    reconciler = _reconciler(memo)
    if reconciler.reconciled_within(
        _namespace(namespace), name, reconciler.settings.reconcile_interval
    ):
        return
    try:
        await reconciler.reconcile(_namespace(namespace), name)
    except Exception as error:  # noqa: BLE001 - retried soon, and at the next tick
        reconciler.retries.failed(_namespace(namespace), name)
        logger.warning("Safety-net reconciliation of %s/%s failed: %s", namespace, name, error)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
async def cycle_deleted(
    namespace: str | None, name: str, uid: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Free the GPUs now: delete the cycle's Jobs (garbage collection would, later). Never blocks."""
    reconciler = getattr(memo, "kaizen", None)
    if reconciler is None:
        return
    reconciler.settled.forget(_namespace(namespace), name)
    metrics.record_phase(_namespace(namespace), name, None)
    try:
        jobs = await reconciler.kube.list_jobs(_namespace(namespace), job_selector(name))
        names = [
            job["metadata"]["name"]
            for job in jobs
            if any(o.get("uid") == uid for o in job["metadata"].get("ownerReferences") or [])
        ]
        if names:
            deleted = await reconciler.kube.delete_jobs(_namespace(namespace), names)
            logger.info("Deleted Jobs of cycle %s/%s: %s", namespace, name, ", ".join(deleted))
        if reconciler.settings.trainjob:
            trainjobs = await reconciler.kube.list_trainjobs(
                _namespace(namespace), job_selector(name)
            )
            owned = [
                tj["metadata"]["name"]
                for tj in trainjobs
                if any(o.get("uid") == uid for o in tj["metadata"].get("ownerReferences") or [])
            ]
            if owned:
                deleted = await reconciler.kube.delete_trainjobs(_namespace(namespace), owned)
                logger.info(
                    "Deleted TrainJobs of cycle %s/%s: %s", namespace, name, ", ".join(deleted)
                )
    except Exception as error:  # noqa: BLE001 - garbage collection removes the Jobs anyway
        logger.warning("Deleting the Jobs of cycle %s/%s failed: %s", namespace, name, error)


# --- ImprovementChains ---------------------------------------------------------------------


def _chains(memo: Any) -> ChainReconciler:
    reconciler = getattr(memo, "kaizen_chains", None)
    if reconciler is None:
        raise kopf.TemporaryError("the operator has not finished starting", delay=5)
    return cast(ChainReconciler, reconciler)


@kopf.on.resume(GROUP, VERSION, CHAIN_PLURAL)
@kopf.on.create(GROUP, VERSION, CHAIN_PLURAL)
@kopf.on.update(GROUP, VERSION, CHAIN_PLURAL, field="spec")
async def chain_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A chain appeared, the operator restarted, or the chain's spec changed."""
    try:
        await _chains(memo).reconcile(_namespace(namespace), name)
    except (ApiException, CycleOwnedByAnother) as error:
        raise kopf.TemporaryError(f"{type(error).__name__}: {error}", delay=RETRY_DELAY) from error


def _cycle_ended(type: str | None, status: Mapping[str, Any], **_: Any) -> bool:
    return type == "DELETED" or (status or {}).get("phase") in ("Succeeded", "Failed")


@kopf.on.event(GROUP, VERSION, PLURAL, labels={LABEL_CHAIN: kopf.PRESENT}, when=_cycle_ended)
async def chain_cycle_event(
    namespace: str | None, labels: Mapping[str, str], memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """A chain's cycle ended or vanished: the chain records it and may start the next one."""
    try:
        await _chains(memo).reconcile(_namespace(namespace), labels[LABEL_CHAIN])
    except Exception as error:  # noqa: BLE001 - event handlers are not retried; the daemon is the net
        logger.warning(
            "Reconciling chain %s/%s after a cycle event failed: %s",
            namespace,
            labels[LABEL_CHAIN],
            error,
        )


@kopf.daemon(GROUP, VERSION, CHAIN_PLURAL, cancellation_timeout=1.0)
async def chain_clock(
    namespace: str | None, name: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    """Wake each chain when its next scheduled run is due (and at least every reconcile interval,
    the safety net for a missed cycle event); kopf cancels it when the chain goes."""
    chains = _chains(memo)
    interval = _IMPORT_SETTINGS.reconcile_interval
    key = (_namespace(namespace), name)
    while True:
        await asyncio.sleep(seconds_until(chains.wake_at.get(key), chains.clock(), interval))
        try:
            outcome = await chains.reconcile(*key)
        except Exception as error:  # noqa: BLE001 - the next wake tries again
            logger.warning("Reconciling chain %s/%s on schedule failed: %s", *key, error)
            continue
        if outcome is None:
            return
