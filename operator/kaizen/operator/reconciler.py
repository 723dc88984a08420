"""One reconciliation of one cycle: read, observe its Jobs, ask the engine, apply the decision.

The order of effects matters: the new status is written first, so every recorded outcome
survives anything that later deletes a Job; then Jobs are created, unfinished Jobs are
deleted when the cycle failed, and finally Events are posted. Reconciliations of the same
cycle never overlap (one `asyncio.Lock` per cycle), at most `settings.max_reconciliations` are
in flight (`Slots`, taken after the lock and before anything is read), and a request that
arrives while a run has not read the cycle yet is folded into it: that run reads the newer
state anyway. Job events `request` a run and return; the other triggers await theirs. A run
that answers Job events reads the cycle, its Jobs and the pods it will need at the same time
(`_read`); the others read the cycle first, and its Jobs only when it is not settled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from kaizen.api.resource import ImprovementCycle, SpecError, parse_cycle
from kaizen.api.status import ImprovementCycleStatus, Phase, StepState
from kaizen.cycle.engine import INVALID_SPEC, JOB_REJECTED, invalid_spec, reconcile
from kaizen.cycle.types import CycleEvent, Decision, StepObservation
from kaizen.operator import metrics
from kaizen.operator.jobs import CycleRef, build_step_job, job_selector
from kaizen.operator.kube import JobOwnedByAnother
from kaizen.operator.observe import (
    ORPHANED_POD,
    job_finished,
    observe_job,
    observe_orphaned_pods,
    pod_ready,
)
from kaizen.operator.runs import CycleRuns
from kaizen.operator.settings import OperatorSettings
from kaizen.operator.trainjobs import KIND as TRAINJOB_KIND
from kaizen.operator.trainjobs import (
    TrainJobDisabled,
    build_step_trainjob,
    observe_trainjob,
    pod_selector,
    uses_trainjob,
)

logger = logging.getLogger(__name__)

#: A Job with the step's name exists and belongs to something else (retried, and shown).
JOB_NAME_TAKEN = "JobNameTaken"

#: Seconds between two looks at a pod left running by a deleted Job (no event announces its end).
ORPHAN_RECHECK_SECONDS = 5.0

#: Posts one Event about the cycle: (cycle body, type, reason, message).
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


class KubeCalls(Protocol):
    """The API calls a reconciliation needs (`kaizen.operator.kube.Kube`, or a fake in tests)."""

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_cycle_status(
        self, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> Any: ...

    async def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    async def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]: ...

    async def create_job(self, manifest: dict[str, Any], owner_uid: str) -> Any: ...

    async def delete_jobs(self, namespace: str, names: Any) -> list[str]: ...

    # Only called when the operator runs with TrainJob support (`settings.trainjob`).

    async def list_trainjobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    async def delete_trainjobs(self, namespace: str, names: Any) -> list[str]: ...


def utc_now() -> str:
    """The current time as RFC 3339 UTC with seconds precision (as Kubernetes writes it)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`.

    Keys gone from `new` become `null` (so stale fields are removed), nested objects are
    patched key by key, and lists are sent whole: merge patches replace lists wholesale.
    """
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


def owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    """Whether `obj` has an ownerReference to `uid`."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(owner.get("uid") == uid for owner in owners)


def _loose_status(raw: Any) -> ImprovementCycleStatus | None:
    """The stored status when it parses; a spec error must not hide behind a status error."""
    if not raw:
        return None
    try:
        return ImprovementCycleStatus.model_validate(raw)
    except ValueError:
        return None


@dataclasses.dataclass
class Outcome:
    """What one reconciliation did (for logs and tests)."""

    decision: Decision
    status_patched: bool = False
    #: When the API server acknowledged the status patch (`time.monotonic()`), if one was sent.
    status_patched_at: float | None = None
    created: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)


class CycleReconciler(CycleRuns["Outcome"]):
    """Reconciles cycles one at a time per cycle; shared by every trigger (handlers, Job events, timer)."""

    def __init__(
        self,
        kube: KubeCalls,
        settings: OperatorSettings,
        *,
        post_event: EventPoster,
        clock: Callable[[], str] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.post_event = post_event
        self.clock = clock
        super().__init__(settings.max_reconciliations, monotonic)
        # The last refusal of each Job the API would not create, by (namespace, Job name):
        # (owner uid, HTTP status, message, reason). The next reconcile tells the engine.
        self._refusals: dict[tuple[str, str], tuple[str, int, str, str]] = {}

    async def _read(
        self, namespace: str, name: str
    ) -> tuple[
        dict[str, Any] | None, list[dict[str, Any]] | None, dict[str, list[dict[str, Any]]] | None
    ]:
        """The cycle; and, for a run that answers a Job's change, its Jobs and, when a changed
        Job ended or counts no ready pod, all its Jobs' pods, read at the same time (the answer
        to a Job's end waits for one round trip to the API server instead of three). Without
        such events (a resume, an edit, the timer, Jobs listed at start-up), or for a cycle
        settled when last read (its Jobs' events are late, or those of a cycle recreated under
        its name), only the cycle: a finished cycle then costs one read, as at a restart."""
        news = self.job_news(namespace, name)
        if news is None or (namespace, name) in self.settled:
            return await self.kube.get_cycle(namespace, name), None, None
        reads: list[Awaitable[Any]] = [
            self.kube.get_cycle(namespace, name),
            self._list_workloads(namespace, name),
        ]
        if news:
            reads.append(self._cycle_pods(namespace, name))
        results = await asyncio.gather(*reads, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return (
            cast(dict[str, Any] | None, results[0]),
            cast(list[dict[str, Any]], results[1]),
            cast(dict[str, list[dict[str, Any]]], results[2]) if news else None,
        )

    async def _reconcile(self, namespace: str, name: str) -> Outcome | None:
        body, listed, pods_read = await self._read(namespace, name)
        if body is None:
            self._reconciled_at.pop((namespace, name), None)
            self.settled.forget(namespace, name)
            self._arrivals.pop((namespace, name), None)
            self._ended.pop((namespace, name), None)
            metrics.record_phase(namespace, name, None)
            return None
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            # Garbage collection (and the delete handler) take the Jobs away; start nothing.
            return None
        if self.settled.note(namespace, name, body):
            # Ended, and its status answers the current spec: its Jobs cannot change anything.
            self._ended.pop((namespace, name), None)
            self._reconciled_at.pop((namespace, name), None)
            metrics.record_phase(namespace, name, (body.get("status") or {}).get("phase"))
            return None
        uid = meta.get("uid")
        now = self.clock()
        old_status: dict[str, Any] = dict(body.get("status") or {})

        spec_error: str | None = None
        cycle: ImprovementCycle | None
        try:
            cycle = parse_cycle(body)
        except SpecError as error:
            # A cycle that started runs the spec it started with: an invalid edit is answered,
            # not run (kaizen.cycle.edits). One that never started fails until it is fixed.
            started = _loose_status(old_status)
            if started is None or started.run_spec is None:
                cycle = None
                decision = invalid_spec(
                    started, generation=meta.get("generation"), message=str(error), now=now
                )
            else:
                spec_error = str(error)
                cycle = _with_run_spec(body, started)
        if cycle is not None:
            if _restartable(cycle.status, cycle.metadata.generation):
                # The spec was invalid before any step ran and has been fixed since: start afresh.
                cycle = cycle.model_copy(update={"status": None})
            jobs = listed if listed is not None else await self._list_workloads(namespace, name)
            observations = await self._observe(namespace, name, cycle.status, jobs, uid, pods_read)
            if any(seen.reason == ORPHANED_POD for seen in observations.values()):
                # The operator watches Jobs, not pods: no event announces the pod's end.
                self.retries.later(namespace, name, ORPHAN_RECHECK_SECONDS)
            decision = reconcile(
                cycle,
                observations,
                artifact_root=self.settings.artifact_root,
                now=now,
                spec_error=spec_error,
            )
        # Steps are built from the spec the cycle started with, never from a later edit.
        spec = decision.status.run_spec

        outcome = Outcome(decision=decision)
        new_status = decision.status.to_wire()
        if new_status != old_status:
            await self.kube.patch_cycle_status(namespace, name, merge_patch(old_status, new_status))
            outcome.status_patched = True
            outcome.status_patched_at = time.monotonic()
        self._record_ended(namespace, name, old_status, new_status, outcome.status_patched_at)

        started_kinds: list[str] = []
        errors: list[BaseException] = []
        if decision.start and spec is not None and uid:
            owner = CycleRef(name=name, namespace=namespace, uid=uid)
            for invocation in decision.start:
                try:
                    if uses_trainjob(invocation, spec):
                        manifest = build_step_trainjob(owner, invocation, spec, self.settings)
                    else:
                        manifest = build_step_job(owner, invocation, spec, self.settings)
                except TrainJobDisabled as error:
                    # Retrying cannot help until the operator is redeployed: fail the step.
                    message = str(error)
                    self._refusals[(namespace, invocation.job_name)] = (
                        uid,
                        422,
                        message,
                        JOB_REJECTED,
                    )
                    self._post(body, CycleEvent("Warning", JOB_REJECTED, message))
                    continue
                try:
                    await self.kube.create_job(manifest, uid)
                except Exception as error:  # noqa: BLE001 - the other steps still get their Jobs
                    logger.warning(
                        "Creating Job %s/%s failed: %s", namespace, invocation.job_name, error
                    )
                    errors.append(error)
                    if isinstance(error, JobOwnedByAnother):
                        # Retried (the other Job may go), but someone has to look: say so.
                        message = f"{error}; delete or rename it, or recreate this cycle"
                        self._refusals[(namespace, invocation.job_name)] = (
                            uid,
                            409,
                            message,
                            JOB_NAME_TAKEN,
                        )
                        self._post(body, CycleEvent("Warning", JOB_NAME_TAKEN, message))
                    elif _rejected(error):
                        # Retried, but a human probably has to act (quota, admission, bad value);
                        # the step's status says why from the next reconcile on.
                        message = _rejection(invocation.job_name, error)
                        self._refusals[(namespace, invocation.job_name)] = (
                            uid,
                            int(getattr(error, "status", 0)),
                            message,
                            JOB_REJECTED,
                        )
                        self._post(body, CycleEvent("Warning", JOB_REJECTED, message))
                else:
                    self._refusals.pop((namespace, invocation.job_name), None)
                    outcome.created.append(invocation.job_name)
                    started_kinds.append(invocation.kind)

        if decision.stop_running_steps:
            jobs = await self._list_workloads(namespace, name)
            running = [job for job in jobs if owned_by(job, uid) and not job_finished(job)]
            plain = [job["metadata"]["name"] for job in running if not _is_trainjob(job)]
            trainjobs = [job["metadata"]["name"] for job in running if _is_trainjob(job)]
            if plain:
                outcome.deleted += await self.kube.delete_jobs(namespace, plain)
            if trainjobs:
                outcome.deleted += await self.kube.delete_trainjobs(namespace, trainjobs)

        for event in decision.events:
            self._post(body, event)
        metrics.record_transition(old_status, new_status, started_kinds)
        metrics.record_phase(namespace, name, decision.status.phase.value)
        if errors:
            raise errors[0]
        return outcome

    def _record_ended(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        acknowledged: float | None,
    ) -> None:
        """Record how long the operator took to write the outcomes that `new` adds (metrics);
        forget the Jobs of steps that are no longer unfinished."""
        ended = self._ended.get((namespace, name))
        if not ended:
            return
        done = (StepState.SUCCEEDED.value, StepState.FAILED.value)
        before = {step.get("jobName"): step.get("state") for step in old.get("steps") or []}
        unfinished = set()
        for step in new.get("steps") or []:
            job = step.get("jobName")
            if step.get("state") not in done:
                unfinished.add(job)
                continue
            seen = ended.pop(job, None)
            if seen is not None and acknowledged is not None and before.get(job) not in done:
                metrics.record_outcome_recorded(seen[0], seen[1], acknowledged)
        for job in [job for job in ended if job not in unfinished]:
            del ended[job]
        if not ended:
            del self._ended[(namespace, name)]

    async def _observe(
        self,
        namespace: str,
        cycle: str,
        status: ImprovementCycleStatus | None,
        jobs: list[dict[str, Any]],
        uid: str | None,
        pods_read: Mapping[str, list[dict[str, Any]]] | None,
    ) -> dict[str, StepObservation]:
        """Observations of the unfinished steps the status lists, from their current Jobs
        (and their pods: `pods_read`, all the cycle's by Job, when they were read already)."""
        if status is None:
            return {}
        by_name = {job["metadata"]["name"]: job for job in jobs if owned_by(job, uid)}
        unfinished = [
            record
            for record in status.steps
            if record.state not in (StepState.SUCCEEDED, StepState.FAILED)
        ]
        refusals = {
            record.name: self._refusal(namespace, record.name, record.job_name, uid)
            for record in unfinished
            if record.job_name not in by_name
        }
        # The pods to read, of plain Jobs: a finished Job's carry the termination message;
        # an unfinished one's say why they are not running (no node for them, an image that
        # cannot be pulled) unless the Job counts a ready pod; a vanished Job's may outlive it
        # (orphan propagation).
        wanted = [
            record.job_name
            for record in unfinished
            if (
                (job := by_name.get(record.job_name)) is not None
                and not _is_trainjob(job)
                and (job_finished(job) or not pod_ready(job))
            )
            or (
                record.job_name not in by_name
                and refusals.get(record.name) is None
                and record.state in (StepState.QUEUED, StepState.RUNNING)
            )
        ]
        pods_of = (
            {job: pods_read.get(job, []) for job in wanted}
            if pods_read is not None
            else await self._job_pods(namespace, cycle, wanted)
        )
        observations: dict[str, StepObservation] = {}
        for record in unfinished:
            job = by_name.get(record.job_name)
            if job is None:
                refusal = refusals.get(record.name)
                if refusal is not None:
                    observations[record.name] = refusal
                elif record.job_name in pods_of:
                    left = observe_orphaned_pods(
                        record.name, record.job_name, pods_of[record.job_name]
                    )
                    if left is not None:
                        observations[record.name] = left
                continue
            if job_finished(job):  # (metrics) known now, if its watch event did not say so yet
                ended = self._ended.setdefault((namespace, cycle), {})
                ended.setdefault(record.job_name, (time.monotonic(), "list"))
            if _is_trainjob(job):
                pods = await self.kube.list_pods(namespace, pod_selector(record.job_name))
                observation = observe_trainjob(job, pods)
            else:
                observation = observe_job(job, pods_of.get(record.job_name, []))
            observations[record.name] = dataclasses.replace(observation, name=record.name)
        return observations

    async def _job_pods(
        self, namespace: str, cycle: str, job_names: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The pods of these Jobs of the cycle, by Job name: one request however many Jobs
        (the Jobs' pods by their `job-name` label for one; the cycle's pods for several)."""
        if not job_names:
            return {}
        if len(job_names) == 1:
            return {job_names[0]: await self.kube.list_job_pods(namespace, job_names[0])}
        everyone = await self._cycle_pods(namespace, cycle)
        return {name: everyone.get(name, []) for name in job_names}

    async def _cycle_pods(self, namespace: str, cycle: str) -> dict[str, list[dict[str, Any]]]:
        """Every pod of the cycle's Jobs, by Job name (one request)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for pod in await self.kube.list_pods(namespace, job_selector(cycle)):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            owner = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
            if owner:
                found.setdefault(owner, []).append(pod)
        return found

    async def _list_workloads(self, namespace: str, cycle: str) -> list[dict[str, Any]]:
        """The cycle's Jobs, and its TrainJobs when the operator runs with TrainJob support."""
        jobs = await self.kube.list_jobs(namespace, job_selector(cycle))
        if self.settings.trainjob:
            # List items need not carry their kind (built-in kinds' do not): mark them.
            trainjobs = await self.kube.list_trainjobs(namespace, job_selector(cycle))
            jobs += [{**trainjob, "kind": TRAINJOB_KIND} for trainjob in trainjobs]
        return jobs

    def _post(self, body: Mapping[str, Any], event: CycleEvent) -> None:
        try:
            self.post_event(body, event.type, event.reason, event.message[:1024])
        except Exception as error:  # noqa: BLE001 - an Event is news, not state
            logger.warning("Posting event %s failed: %s", event.reason, error)

    def _refusal(
        self, namespace: str, step: str, job_name: str, uid: str | None
    ) -> StepObservation | None:
        """What the engine should know of a Job the API refused to create, if it did.

        422 Invalid cannot change by retrying the same manifest: the step fails (and so the
        cycle, with reason JobRejected). Anything else (quota, an admission webhook, a missing
        namespace) may clear: the step stays pending, is retried, and its status says why.
        """
        refused = self._refusals.get((namespace, job_name))
        if refused is None or refused[0] != uid:
            return None
        _, status, message, reason = refused
        if status == 422:
            del self._refusals[(namespace, job_name)]
        state = StepState.FAILED if status == 422 else StepState.PENDING
        return StepObservation(name=step, state=state, reason=reason, message=message)


def _is_trainjob(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == TRAINJOB_KIND


def _rejected(error: BaseException) -> bool:
    """An API refusal that retrying will not fix by itself (not a conflict, throttle or outage)."""
    status = getattr(error, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in (409, 429)


def _rejection(job_name: str, error: BaseException) -> str:
    reason = getattr(error, "reason", "") or type(error).__name__
    body = " ".join(str(getattr(error, "body", "") or "").split())[:500]
    return f"the API refused Job {job_name} ({getattr(error, 'status', '?')} {reason}): {body}"


def _with_run_spec(body: Mapping[str, Any], status: ImprovementCycleStatus) -> ImprovementCycle:
    """The cycle with the spec it runs in place of a stored spec that does not validate."""
    assert status.run_spec is not None
    return ImprovementCycle.model_validate(
        {"metadata": body.get("metadata") or {}, "spec": status.run_spec, "status": status}
    )


def _restartable(status: ImprovementCycleStatus | None, generation: int | None) -> bool:
    return (
        status is not None
        and status.phase == Phase.FAILED
        and status.failure_reason == INVALID_SPEC
        and not status.steps
        and generation is not None
        and status.observed_generation != generation
    )
