"""Spec edits: a cycle runs the spec it started with; an edit is answered, never half-applied.

Before the rule, the baseline ran with `--max-new-tokens 32` and the candidate with 16; an
invalid edit failed the cycle for good (reverting did not recover it, the message stayed); a
finished cycle moved `status.observedGeneration` while its conditions stayed behind.
"""

from __future__ import annotations

from typing import Any

from kaizen.api import ImprovementCycle, ImprovementCycleStatus, Phase, StepState, parse_cycle
from kaizen.cycle import Decision, StepObservation, invalid_spec, reconcile
from kaizen.cycle.edits import changed_fields
from tests.cycle.test_engine import ROOT, done

NOW = "2026-11-25T10:00:00Z"
LATER = "2026-11-25T10:05:00Z"
BASE = {"evaluation": {"maxNewTokens": 32, "limit": 2}}
EDITED = {"evaluation": {"maxNewTokens": 16, "limit": 2}}


def cycle_at(
    spec: dict[str, Any], generation: int, status: ImprovementCycleStatus | None
) -> ImprovementCycle:
    cycle = parse_cycle(
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementCycle",
            "metadata": {"name": "demo", "namespace": "ml", "generation": generation, "uid": "u-1"},
            "spec": spec,
        }
    )
    return cycle.model_copy(update={"status": status})


def step_again(decision: Decision, spec: dict[str, Any], generation: int, **kw: Any) -> Decision:
    """Reconcile once more, every launched step having succeeded."""
    observations = {s.name: done(s.name) for s in decision.start}
    return reconcile(
        cycle_at(spec, generation, decision.status),
        observations,
        artifact_root=ROOT,
        now=LATER,
        **kw,
    )


def conditions(decision: Decision) -> dict[str, Any]:
    return {c.type: c for c in decision.status.conditions}


def argv_value(decision: Decision, step: str, flag: str) -> str:
    invocation = next(s for s in decision.start if s.name == step)
    argv = list(invocation.argv)
    return argv[argv.index(flag) + 1]


def run_to_end(decision: Decision, spec: dict[str, Any], generation: int) -> list[Decision]:
    seen = [decision]
    while not seen[-1].finished:
        seen.append(step_again(seen[-1], spec, generation))
        assert len(seen) < 20
    return seen


def test_an_edit_while_running_is_not_run_and_the_candidate_uses_the_baselines_settings() -> None:
    first = reconcile(cycle_at(BASE, 1, None), {}, artifact_root=ROOT, now=NOW)
    assert argv_value(first, "evaluate-baseline", "--max-new-tokens") == "32"
    assert first.status.run_generation == 1 and first.status.run_spec is not None
    assert conditions(first)["SpecApplied"].status == "True"

    # The user edits maxNewTokens while the baseline runs (generation 2).
    edited = step_again(first, EDITED, 2)
    applied = conditions(edited)["SpecApplied"]
    assert (applied.status, applied.reason) == ("False", "EditNotRun")
    assert "spec.evaluation.maxNewTokens" in applied.message and "generation 1" in applied.message
    warnings = [e for e in edited.events if e.reason == "EditNotRun"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert all(c.observed_generation == 2 for c in edited.status.conditions)
    assert edited.status.observed_generation == 2

    decisions = run_to_end(edited, EDITED, 2)
    candidate = next(d for d in decisions if any(s.name == "evaluate-candidate" for s in d.start))
    assert argv_value(candidate, "evaluate-candidate", "--max-new-tokens") == "32"
    # One Warning per edit, not one per reconciliation.
    assert sum(e.reason == "EditNotRun" for d in decisions for e in d.events) == 1
    final = decisions[-1]
    assert final.status.phase == Phase.SUCCEEDED
    # Finished with an edit that never ran: not Ready (Argo CD Degraded), the run Succeeded.
    c = conditions(final)
    assert (c["Ready"].status, c["Ready"].reason) == ("False", "EditNotRun")
    assert (c["Stalled"].status, c["Succeeded"].status) == ("True", "True")


def test_an_invalid_edit_does_not_fail_the_cycle_and_reverting_recovers() -> None:
    first = reconcile(cycle_at(BASE, 1, None), {}, artifact_root=ROOT, now=NOW)
    # An edit that does not validate: the reconciler passes the run spec and the error.
    invalid = step_again(first, BASE, 2, spec_error="spec.evaluation.maxNewTokens: must be ≥ 1")
    assert invalid.status.phase == Phase.ANALYZING
    assert [s.name for s in invalid.start] == ["analyze"]
    applied = conditions(invalid)["SpecApplied"]
    assert (applied.status, applied.reason) == ("False", "InvalidEdit")
    assert "must be ≥ 1" in applied.message
    assert [e.reason for e in invalid.events if e.type == "Warning"] == ["InvalidEdit"]

    # Reverted (generation 3 equals the run spec): applied again, and the message is current.
    reverted = step_again(invalid, BASE, 3)
    assert conditions(reverted)["SpecApplied"].status == "True"
    assert any(e.reason == "EditReverted" for e in reverted.events)
    assert reverted.status.message and "maxNewTokens" not in reverted.status.message
    assert reverted.status.phase not in (Phase.FAILED,)


def test_an_edit_to_a_finished_cycle_is_answered_once_and_reverting_restores_ready() -> None:
    decisions = run_to_end(
        reconcile(cycle_at(BASE, 1, None), {}, artifact_root=ROOT, now=NOW), BASE, 1
    )
    finished = decisions[-1].status
    assert conditions(decisions[-1])["Ready"].status == "True"

    edit = reconcile(cycle_at(EDITED, 2, finished), {}, artifact_root=ROOT, now=LATER)
    assert edit.start == () and edit.status.phase == Phase.SUCCEEDED
    # kubectl wait and Argo CD read the conditions of the current generation: all of them.
    assert edit.status.observed_generation == 2
    assert {c.observed_generation for c in edit.status.conditions} == {2}
    c = conditions(edit)
    assert (c["Ready"].status, c["Stalled"].status) == ("False", "True")
    assert c["Succeeded"].status == "True" and c["SpecApplied"].reason == "EditNotRun"
    assert "was not run" in c["Ready"].message
    (event,) = edit.events
    assert (event.type, event.reason) == ("Warning", "EditNotRun")
    assert "was not run" in event.message

    # Answering again changes nothing and says nothing.
    again = reconcile(cycle_at(EDITED, 2, edit.status), {}, artifact_root=ROOT, now=LATER)
    assert again.status == edit.status and again.events == ()

    reverted = reconcile(cycle_at(BASE, 3, edit.status), {}, artifact_root=ROOT, now=LATER)
    c = conditions(reverted)
    assert (c["Ready"].status, c["Stalled"].status, c["SpecApplied"].status) == (
        "True",
        "False",
        "True",
    )
    assert {cd.observed_generation for cd in reverted.status.conditions} == {3}


def test_an_invalid_spec_never_leaves_a_step_running() -> None:
    first = reconcile(cycle_at(BASE, 1, None), {}, artifact_root=ROOT, now=NOW)
    running = reconcile(
        cycle_at(BASE, 1, first.status),
        {"evaluate-baseline": StepObservation("evaluate-baseline", StepState.RUNNING)},
        artifact_root=ROOT,
        now=NOW,
    )
    failed = invalid_spec(running.status, generation=2, message="spec.x: bad", now=LATER)
    assert failed.stop_running_steps
    (record,) = failed.status.steps
    assert (record.state, record.reason) == (StepState.FAILED, "Cancelled")


def test_changed_fields_name_the_yaml_paths() -> None:
    assert changed_fields({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 1}) == [
        "spec.a.c",
        "spec.d",
    ]
