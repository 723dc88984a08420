"""What a step's Job and its pods show, read back by `kaizen.operator.observe` (`observe_job`).

The Jobs and pods here are shaped as the API server returns them; the manifests themselves
are tested in `test_jobs.py`.
"""

from __future__ import annotations

from typing import Any

import pytest

from kaizen.api import EXIT_CONFIG_ERROR, StepState, StepSummary
from kaizen.operator.observe import observe_job

SUMMARY_OK = StepSummary(step="evaluate-baseline", ok=True, message="fine")
SUMMARY_CONFIG = StepSummary(
    step="evaluate-baseline", ok=False, reason="ConfigurationError", message="no suite 'x'"
)


def _job(
    *,
    conditions: list[tuple[str, str, str]] = (),
    active: int = 0,
    suspend: bool = False,
    queue: str = "",
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if active:
        status["active"] = active
    if conditions:
        status["conditions"] = [
            {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions
        ]
    labels = {"kaizen.dev/step": "evaluate-baseline"}
    if queue:
        labels["kueue.x-k8s.io/queue-name"] = queue
    return {
        "metadata": {"name": "demo-evaluate-baseline", "labels": labels},
        "spec": {"suspend": suspend},
        "status": status,
    }


def _pod(
    name: str, created: str, exit_code: int | None, message: str | None = None
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if exit_code is not None:
        state = {
            "terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}
        }
        if message is not None:
            state["terminated"]["message"] = message
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "step", "state": state}]},
    }


def _pending_pod(
    *, unschedulable: str | None = None, waiting: tuple[str, str] | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if unschedulable is not None:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        ]
    if waiting is not None:
        reason, message = waiting
        status["containerStatuses"] = [
            {"name": "step", "state": {"waiting": {"reason": reason, "message": message}}}
        ]
    return {
        "metadata": {"name": "p1", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "status": status,
    }


COMPLETE = ("Complete", "", "")
OK_JSON = SUMMARY_OK.model_dump_json(by_alias=True)
CONFIG_JSON = SUMMARY_CONFIG.model_dump_json(by_alias=True)

CASES = [
    # (id, job, pods, state, exit code, summary, message contains)
    (
        "not admitted by Kueue yet",
        _job(suspend=True, queue="team-a"),
        [],
        StepState.QUEUED,
        None,
        None,
        "waiting for quota: Kueue has not admitted the Job (queue team-a)",
    ),
    ("suspended by hand", _job(suspend=True), [], StepState.QUEUED, None, None, "no Kueue"),
    # Not a quota wait (GitOps tools showed every step as held by a queue).
    ("created, no pods yet", _job(), [], StepState.RUNNING, None, None, "no pod yet"),
    ("active", _job(active=1), [], StepState.RUNNING, None, None, None),
    (
        "no node has a free GPU",
        _job(active=1),
        [_pending_pod(unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")],
        StepState.QUEUED,
        None,
        None,
        "waiting for a node: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    ),
    (
        "the artifact claim is missing in this namespace",
        _job(active=1),
        [_pending_pod(unschedulable='persistentvolumeclaim "kaizen-artifacts" not found')],
        StepState.QUEUED,
        None,
        None,
        'persistentvolumeclaim "kaizen-artifacts" not found',
    ),
    (
        "the image cannot be pulled",
        _job(active=1),
        [_pending_pod(waiting=("ImagePullBackOff", 'Back-off pulling image "kaizen:nope"'))],
        StepState.RUNNING,
        None,
        None,
        'container step: ImagePullBackOff: Back-off pulling image "kaizen:nope"',
    ),
    (
        "a pod still creating its container is just running",
        _job(active=1),
        [_pending_pod(waiting=("ContainerCreating", ""))],
        StepState.RUNNING,
        None,
        None,
        None,
    ),
    (
        "complete with summary",
        _job(conditions=[COMPLETE]),
        [_pod("p1", "2025-01-01T00:00:00Z", 0, OK_JSON)],
        StepState.SUCCEEDED,
        0,
        SUMMARY_OK,
        None,
    ),
    (
        "complete after a failed retry: the succeeded pod counts",
        _job(conditions=[COMPLETE]),
        [
            _pod("p2", "2025-01-01T00:05:00Z", 0, OK_JSON),
            _pod("p1", "2025-01-01T00:00:00Z", 1, "Traceback ..."),
        ],
        StepState.SUCCEEDED,
        0,
        SUMMARY_OK,
        None,
    ),
    (
        "complete but the message is logs, not a summary",
        _job(conditions=[COMPLETE]),
        [_pod("p1", "2025-01-01T00:00:00Z", 0, "done, no json here")],
        StepState.SUCCEEDED,
        0,
        None,
        "unreadable",
    ),
    (
        "complete with an empty message",
        _job(conditions=[COMPLETE]),
        [_pod("p1", "2025-01-01T00:00:00Z", 0, "")],
        StepState.SUCCEEDED,
        0,
        None,
        "no summary",
    ),
    (
        "complete but the pods are gone",
        _job(conditions=[COMPLETE]),
        [],
        StepState.SUCCEEDED,
        None,
        None,
        "no terminated container",
    ),
    (
        "configuration error stops the Job at once",
        _job(
            conditions=[
                (
                    "Failed",
                    "PodFailurePolicy",
                    "Container step ... matching FailJob rule at index 0",
                )
            ]
        ),
        [_pod("p1", "2025-01-01T00:00:00Z", EXIT_CONFIG_ERROR, CONFIG_JSON)],
        StepState.FAILED,
        EXIT_CONFIG_ERROR,
        SUMMARY_CONFIG,
        "PodFailurePolicy",
    ),
    (
        "retries used up: the newest pod speaks",
        _job(
            conditions=[
                ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            ]
        ),
        [
            _pod("p1", "2025-01-01T00:00:00Z", 1, "first"),
            _pod("p2", "2025-01-01T00:01:00Z", 137, "OOMKilled tail of logs"),
        ],
        StepState.FAILED,
        137,
        None,
        "BackoffLimitExceeded",
    ),
    (
        "deadline exceeded while running",
        _job(
            conditions=[
                ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            ]
        ),
        [_pod("p1", "2025-01-01T00:00:00Z", None)],
        StepState.FAILED,
        None,
        None,
        "DeadlineExceeded",
    ),
]


@pytest.mark.parametrize(
    ("job", "pods", "state", "exit_code", "summary", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_observe_job(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    state: StepState,
    exit_code: int | None,
    summary: StepSummary | None,
    message: str | None,
) -> None:
    seen = observe_job(job, pods)
    assert seen.name == "evaluate-baseline"
    assert seen.state == state
    assert seen.exit_code == exit_code
    assert seen.summary == summary
    if message is None:
        assert seen.message is None or state != StepState.SUCCEEDED
    else:
        assert seen.message is not None and message in seen.message


def test_failed_message_keeps_the_summary_and_exit_code() -> None:
    job = _job(conditions=[("Failed", "BackoffLimitExceeded", "backoff")])
    seen = observe_job(job, [_pod("p1", "2025-01-01T00:00:00Z", 1, "Traceback: boom")])
    assert seen.message is not None
    assert "exit code 1" in seen.message and "unreadable" in seen.message and "boom" in seen.message


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        (_pending_pod(unschedulable="0/1 nodes are available"), "Unschedulable"),
        (_pending_pod(waiting=("ErrImagePull", "not found")), "ErrImagePull"),
        (_pending_pod(waiting=("CreateContainerConfigError", 'secret "wandb" not found')),
         "CreateContainerConfigError"),
        (_pending_pod(waiting=("ContainerCreating", "")), None),
    ],
)  # fmt: skip
def test_a_stuck_pod_names_its_reason(pod: dict[str, Any], reason: str | None) -> None:
    assert observe_job(_job(active=1), [pod]).reason == reason
