"""What a step's Job (or TrainJob) and its pods show, in the engine's terms.

Nothing here talks to the API: `observe_job` and the others read dicts and return
`StepObservation`s. The Job manifests themselves are built by `kaizen.operator.jobs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from kaizen.api.status import StepState
from kaizen.api.summary import StepSummary, parse_summary
from kaizen.cycle.types import StepObservation
from kaizen.operator.jobs import CONTAINER, LABEL_QUEUE, LABEL_STEP


def true_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of `type_` whose status is True, if there is one."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cast(Mapping[str, Any], cond)
    return None


def terminated_state(
    pod: Mapping[str, Any], container: str = CONTAINER
) -> Mapping[str, Any] | None:
    """The step container's `terminated` state (current, else the last one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name", container) != container and len(statuses) > 1:
            continue
        for key in ("state", "lastState"):
            state = (status.get(key) or {}).get("terminated")
            if state:
                return cast(Mapping[str, Any], state)
    return None


def newest_first(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(pod: Mapping[str, Any]) -> tuple[str, str]:
        meta = pod.get("metadata") or {}
        return (meta.get("creationTimestamp") or "", meta.get("name") or "")

    return sorted(pods, key=key, reverse=True)


def read_summary(state: Mapping[str, Any] | None) -> tuple[StepSummary | None, str | None]:
    """The summary in a termination message, or None and why not."""
    if state is None:
        return None, "no terminated container found for the Job"
    text = state.get("message")
    if not text or not str(text).strip():
        return None, "the step left no summary (empty termination message)"
    try:
        return parse_summary(text), None
    except ValueError:
        excerpt = " ".join(str(text).split())[-200:]
        return None, f"the step's summary is unreadable: {excerpt}"


def observe_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> StepObservation:
    """What a Job and its pods say about a step: Queued, Running, Succeeded or Failed."""
    name = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_STEP) or (
        job.get("metadata") or {}
    ).get("name", "")
    status = job.get("status") or {}
    newest = newest_first(pods)

    if true_condition(job, "Complete") is not None:
        # Prefer the pod that succeeded; earlier attempts may have failed before it.
        terminated = next(
            (t for t in map(terminated_state, newest) if t is not None and t.get("exitCode") == 0),
            next((t for t in map(terminated_state, newest) if t is not None), None),
        )
        summary, problem = read_summary(terminated)
        exit_code = terminated.get("exitCode") if terminated else None
        return StepObservation(
            name=name,
            state=StepState.SUCCEEDED,
            exit_code=exit_code,
            summary=summary,
            message=problem,
        )

    failed = true_condition(job, "Failed")
    if failed is not None:
        terminated = next((t for t in map(terminated_state, newest) if t is not None), None)
        return failed_step(name, "Job", failed, terminated)

    if (job.get("spec") or {}).get("suspend"):
        return suspended(name, job, "Job")
    waiting = stuck_pod(name, newest[0]) if newest else None
    if waiting is not None:
        return waiting
    if status.get("active") or pods:
        return StepObservation(name=name, state=StepState.RUNNING)
    return starting(name, "Job")


#: Reason of a step whose Job was deleted while its pod still runs.
ORPHANED_POD = "OrphanedPod"


def observe_orphaned_pods(
    name: str, job_name: str, pods: Sequence[Mapping[str, Any]]
) -> StepObservation | None:
    """What the pods left by a step's vanished Job say; None when nothing is left of it.

    A Job deleted with `propagationPolicy: Orphan` (the API's default for Jobs) leaves its pods
    running: relaunching then would run the step twice at once in the same folder. While a pod
    runs (or terminates) the step waits; a pod that succeeded with a readable summary is the
    step's result, adopted as is; otherwise the step is relaunched.
    """
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    if live:
        pod = (live[0].get("metadata") or {}).get("name", "?")
        message = (
            f"Job {job_name} was deleted but its pod {pod} still runs; relaunching after it ends"
        )
        return StepObservation(name, StepState.RUNNING, reason=ORPHANED_POD, message=message)
    for pod in newest_first(pods):
        state = terminated_state(pod)
        summary, _ = read_summary(state)
        if state is not None and state.get("exitCode") == 0 and summary is not None and summary.ok:
            return StepObservation(name, StepState.SUCCEEDED, exit_code=0, summary=summary)
    return None


def failed_step(
    name: str, kind: str, failed: Mapping[str, Any], terminated: Mapping[str, Any] | None
) -> StepObservation:
    """A Job or TrainJob whose `Failed` condition is true: its reason and message, the
    container's exit code, and the step's summary when it wrote one (else why not)."""
    summary, problem = read_summary(terminated)
    exit_code = terminated.get("exitCode") if terminated else None
    reason = failed.get("reason") or "Failed"
    detail = failed.get("message") or ""
    parts = [f"{kind} failed ({reason})" + (f": {detail}" if detail else "")]
    if exit_code is not None:
        parts.append(f"exit code {exit_code}")
    if summary is None and problem:
        parts.append(problem)
    return StepObservation(
        name=name,
        state=StepState.FAILED,
        exit_code=exit_code,
        summary=summary,
        message="; ".join(parts),
    )


def starting(name: str, kind: str) -> StepObservation:
    """A workload created but without a pod yet: starting, not waiting for quota.

    Only a suspended workload waits for quota; a step shown as Queued in this short gap made
    Argo CD show every step as "Suspended: waiting for quota".
    """
    return StepObservation(
        name=name, state=StepState.RUNNING, message=f"starting: the {kind} has no pod yet"
    )


def suspended(name: str, workload: Mapping[str, Any], kind: str) -> StepObservation:
    """A suspended Job or TrainJob: queued when Kueue holds it (not admitted yet, so waiting
    for quota), else suspended by hand (reason `Suspended`, not a quota wait)."""
    queue = ((workload.get("metadata") or {}).get("labels") or {}).get(LABEL_QUEUE)
    if queue:
        return StepObservation(
            name=name,
            state=StepState.QUEUED,
            message=f"waiting for quota: Kueue has not admitted the {kind} (queue {queue})",
        )
    return StepObservation(
        name=name,
        state=StepState.QUEUED,
        reason="Suspended",
        message=f"the {kind} is suspended and no Kueue queue holds it",
    )


#: Container waiting reasons that do not clear by themselves: someone has to act.
STUCK_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _one_line(text: Any, limit: int = 500) -> str:
    return " ".join(str(text or "").split())[:limit]


def stuck_pod(name: str, pod: Mapping[str, Any]) -> StepObservation | None:
    """Why the step's newest pod is not running, when it says.

    A pod the scheduler cannot place (no GPU node free, a missing volume claim, a taint) is
    Queued with the scheduler's reason; a container that cannot start (an image that cannot
    be pulled, a missing Secret) is reported with the kubelet's reason. The Job itself only
    shows such a pod as active, so without this a cycle would look Running for ever.
    """
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            detail = _one_line(condition.get("message")) or reason
            return StepObservation(
                name, StepState.QUEUED, reason=reason, message=f"waiting for a node: {detail}"
            )
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in STUCK_WAITING_REASONS:
            detail = _one_line(waiting.get("message"))
            message = f"container {container.get('name', CONTAINER)}: {reason}"
            return StepObservation(
                name,
                StepState.RUNNING,
                reason=reason,
                message=message + (f": {detail}" if detail else ""),
            )
    return None


def job_finished(job: Mapping[str, Any]) -> bool:
    """Whether a Job has reached Complete or Failed."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions
    )


def pod_ready(job: Mapping[str, Any]) -> bool:
    """Whether an unfinished Job counts a ready pod (`status.ready`, Kubernetes ≥ 1.24): its
    pod runs, so the pods cannot say it is stuck."""
    status = job.get("status") or {}
    return bool(status.get("active")) and int(status.get("ready") or 0) >= 1


def pods_wanted(job: Mapping[str, Any]) -> bool:
    """Whether reconciling a plain Job's step reads the Job's pods: once it has ended (the
    termination message), or while it counts no ready pod (why it is not running)."""
    return job.get("kind", "Job") == "Job" and (job_finished(job) or not pod_ready(job))
