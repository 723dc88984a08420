"""The pure cycle engine and its steps' Jobs: launched once, relaunched when lost, refused,
stuck, queued, and named so that no two steps or cycles ever share one."""

from __future__ import annotations

import re
from typing import Any

from kaizen.api import ImprovementCycleStatus, Phase, StepState, parse_cycle
from kaizen.cycle import MAX_ATTEMPTS, Decision, StepObservation, reconcile
from kaizen.cycle.planner import job_name
from tests.cycle.test_engine import (
    LATER,
    NOW,
    ROOT,
    cond,
    drive,
    make_cycle,
    step_of,
)


def test_a_finished_step_is_never_started_again_even_when_its_job_is_gone() -> None:
    decisions = drive(make_cycle())
    cycle = make_cycle(status=decisions[2].status)  # baseline + analyze done, training launched
    # Jobs of finished steps are gone (TTL); only training is observed.
    observations = {
        n: StepObservation(n, StepState.RUNNING) for n in ("train-zephyria", "train-geography")
    }
    decision = reconcile(cycle, observations, artifact_root=ROOT, now=LATER)
    assert decision.start == ()
    assert step_of(decision, "evaluate-baseline").state == StepState.SUCCEEDED
    finished = make_cycle(status=decisions[-1].status)
    assert reconcile(finished, {}, artifact_root=ROOT, now=LATER).start == ()


def test_a_launched_step_not_yet_seen_is_launched_again_under_the_same_name() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    again = reconcile(make_cycle(status=first.status), {}, artifact_root=ROOT, now=LATER)
    assert [s.job_name for s in again.start] == [first.start[0].job_name]
    assert again.status == first.status


def test_a_job_that_vanishes_while_running_is_relaunched_then_given_up() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    status = reconcile(
        make_cycle(status=first.status),
        {"evaluate-baseline": StepObservation("evaluate-baseline", StepState.RUNNING)},
        artifact_root=ROOT,
        now=NOW,
    ).status
    for attempt in range(2, MAX_ATTEMPTS + 1):
        lost = reconcile(make_cycle(status=status), {}, artifact_root=ROOT, now=LATER)
        (relaunch,) = lost.start
        assert relaunch.job_name == job_name("demo", "evaluate-baseline", attempt, "u-1")
        assert relaunch.job_name.startswith(f"demo-evaluate-baseline-a{attempt}-")
        assert any(e.reason == "JobLost" for e in lost.events)
        status = reconcile(
            make_cycle(status=lost.status),
            {"evaluate-baseline": StepObservation("evaluate-baseline", StepState.RUNNING)},
            artifact_root=ROOT,
            now=LATER,
        ).status
    final = reconcile(make_cycle(status=status), {}, artifact_root=ROOT, now=LATER)
    assert final.status.phase == Phase.FAILED
    assert step_of(final, "evaluate-baseline").reason == "JobLost"


def baseline_seen(
    status: ImprovementCycleStatus, state: StepState, now: str = LATER, **seen: Any
) -> Decision:
    """Reconcile after observing the baseline evaluation's Job in `state`."""
    observation = StepObservation("evaluate-baseline", state, **seen)
    return reconcile(
        make_cycle(status=status), {"evaluate-baseline": observation}, artifact_root=ROOT, now=now
    )


def test_a_refused_job_keeps_its_step_pending_and_says_why() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    decision = baseline_seen(
        first.status,
        StepState.PENDING,
        reason="JobRejected",
        message="the API refused Job demo-evaluate-baseline (403 Forbidden): exceeded quota",
    )
    record = step_of(decision, "evaluate-baseline")
    assert (record.state, record.reason) == (StepState.PENDING, "JobRejected")
    assert "exceeded quota" in (record.message or "")
    assert [s.job_name for s in decision.start] == [first.start[0].job_name]  # retried
    assert cond(decision, "Reconciling") == ("True", "JobRejected")
    assert decision.status.phase == Phase.EVALUATING
    # Once the Job exists, the step runs and the reason goes with it.
    running = baseline_seen(decision.status, StepState.RUNNING)
    assert step_of(running, "evaluate-baseline").reason == "Running"
    assert cond(running, "Reconciling") == ("True", "Running")


def test_a_stuck_pod_is_named_in_the_step_and_the_reconciling_condition() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    pulling = {
        "reason": "ImagePullBackOff",
        "message": 'container step: ImagePullBackOff: Back-off pulling image "kaizen:nope"',
    }
    stuck = baseline_seen(first.status, StepState.RUNNING, now=NOW, **pulling)
    record = step_of(stuck, "evaluate-baseline")
    assert (record.state, record.reason) == (StepState.RUNNING, "ImagePullBackOff")
    assert cond(stuck, "Reconciling") == ("True", "ImagePullBackOff")
    assert stuck.status.phase == Phase.EVALUATING  # not failed: fixing the image is enough
    again = baseline_seen(stuck.status, StepState.RUNNING, **pulling)
    assert again.status == stuck.status and again.events == ()
    moving = baseline_seen(stuck.status, StepState.RUNNING)
    assert step_of(moving, "evaluate-baseline").reason == "Running"
    assert cond(moving, "Reconciling") == ("True", "Running")


def test_a_job_refused_for_good_fails_the_cycle_with_the_refusal() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    decision = baseline_seen(
        first.status,
        StepState.FAILED,
        reason="JobRejected",
        message="the API refused Job demo-evaluate-baseline (422 Invalid): spec.template...",
    )
    assert decision.status.phase == Phase.FAILED
    assert decision.status.failure_reason == "JobRejected"
    assert "422 Invalid" in (decision.status.message or "")
    assert decision.start == ()
    assert cond(decision, "Stalled") == ("True", "JobRejected")


def test_a_queued_step_is_reported_as_queued_not_failed() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    queued = reconcile(
        make_cycle(status=first.status),
        {"evaluate-baseline": StepObservation("evaluate-baseline", StepState.QUEUED)},
        artifact_root=ROOT,
        now=NOW,
    )
    assert step_of(queued, "evaluate-baseline").state == StepState.QUEUED
    assert queued.status.phase == Phase.EVALUATING
    assert cond(queued, "Reconciling") == ("True", "Queued")
    assert "quota" in (queued.status.message or "")


def test_long_names_give_valid_job_names() -> None:
    cycle = parse_cycle(
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementCycle",
            "metadata": {"name": "a" * 60, "namespace": "ml"},
            "spec": {},
        }
    )
    decision = reconcile(cycle, {}, artifact_root=ROOT, now=NOW)
    name = decision.start[0].job_name
    assert len(name) <= 63 and name[-1].isalnum()


def test_job_names_of_different_cycles_never_clash() -> None:
    # Cycle `demo` with a domain `merge` and cycle `demo-train` both used `demo-train-merge`.
    assert job_name("demo", "train-merge", 1, "u-1") != job_name("demo-train", "merge", 1, "u-2")
    assert job_name("demo", "train-merge") != job_name("demo-train", "merge")
    # A cycle re-created under the same name gets Jobs of its own.
    assert job_name("demo", "merge", 1, "u-1") != job_name("demo", "merge", 1, "u-3")
    # Names are stable, valid labels, whatever the length.
    for cycle, step in (("demo", "merge"), ("c" * 63, "train-" + "d" * 57)):
        for attempt in (1, 2):
            name = job_name(cycle, step, attempt, "u-1")
            assert name == job_name(cycle, step, attempt, "u-1")
            assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
