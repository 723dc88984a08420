"""Behaviour of the pure cycle engine: every phase, failures, idempotence, never re-running work."""

from __future__ import annotations

from typing import Any

import pytest

from kaizen.api import (
    AdapterDigest,
    CombinationDigest,
    ImprovementCycle,
    ImprovementCycleStatus,
    MergeDigest,
    Phase,
    PlanDigest,
    ScoreDigest,
    StepState,
    StepSummary,
    ValidationDigest,
    parse_cycle,
)
from kaizen.cycle import Decision, StepObservation, invalid_spec, reconcile
from kaizen.cycle.planner import job_name

ROOT = "/artifacts"
NOW = "2026-11-25T10:00:00Z"
LATER = "2026-11-25T10:05:00Z"


def make_cycle(
    spec: dict[str, Any] | None = None, status: ImprovementCycleStatus | None = None
) -> ImprovementCycle:
    cycle = parse_cycle(
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementCycle",
            "metadata": {"name": "demo", "namespace": "ml", "generation": 1, "uid": "u-1"},
            "spec": spec or {},
        }
    )
    return cycle.model_copy(update={"status": status})


def summary_for(step: str, **payload: Any) -> StepSummary:
    return StepSummary(step=step, ok=True, artifacts_dir=f"{ROOT}/ml/demo/{step}", **payload)


def ok_summary(
    step: str, domains: tuple[str, ...] = ("zephyria", "geography"), verdict: str = "Promote"
) -> StepSummary:
    if step == "evaluate-baseline":
        return summary_for(
            step,
            evaluation=ScoreDigest(
                overall=0.4,
                domains={"zephyria": 0.0},
                items=10,
                results_path=f"{ROOT}/ml/demo/{step}/results.json",
            ),
        )
    if step == "evaluate-candidate":
        return summary_for(
            step,
            evaluation=ScoreDigest(
                overall=0.7, items=10, results_path=f"{ROOT}/ml/demo/{step}/results.json"
            ),
        )
    if step == "analyze":
        return summary_for(
            step,
            plan=PlanDigest(
                priority_domains=list(domains),
                # Scores on the dev items; the baseline's (which include test items) differ.
                priority_scores=[0.0 if d == "zephyria" else 0.275 for d in domains],
                plan_path=f"{ROOT}/ml/demo/analyze/plan.json",
            ),
        )
    if step.startswith("train-"):
        domain = step.removeprefix("train-")
        return summary_for(
            step, adapter=AdapterDigest(domain=domain, path=f"{ROOT}/ml/demo/{step}/adapter")
        )
    if step == "merge":
        return summary_for(
            step,
            merge=MergeDigest(
                path=f"{ROOT}/ml/demo/merge/adapter", combination="ties", sources=list(domains)
            ),
        )
    if step == "joint":
        return summary_for(
            step,
            adapter=AdapterDigest(domain="+".join(domains), path=f"{ROOT}/ml/demo/joint/adapter"),
        )
    if step.startswith("score-"):
        domain = step.removeprefix("score-")
        return summary_for(
            step,
            evaluation=ScoreDigest(
                overall=0.8,
                domains={domain: 0.8},
                items=3,
                results_path=f"{ROOT}/ml/demo/{step}/results.json",
            ),
        )
    if step == "combine":
        return summary_for(
            step,
            combination=CombinationDigest(
                path=f"{ROOT}/ml/demo/combine/adapter",
                chosen="ties",
                candidates=1,
                retention=dict.fromkeys(domains, 0.95),
                min_retention=0.95,
                target=0.9,
                target_met=True,
            ),
        )
    if step == "validate":
        return summary_for(
            step,
            validation=ValidationDigest(
                verdict=verdict, overall_delta=0.3, p_value=0.01, reasons=["gate"]
            ),
        )
    raise AssertionError(step)


def done(step: str, **kw: Any) -> StepObservation:
    return StepObservation(
        name=step, state=StepState.SUCCEEDED, exit_code=0, summary=ok_summary(step, **kw)
    )


def step_of(decision: Decision, name: str) -> Any:
    return next(r for r in decision.status.steps if r.name == name)


def cond(decision: Decision, type_: str) -> tuple[str, str]:
    c = next(c for c in decision.status.conditions if c.type == type_)
    return c.status, c.reason


def drive(
    cycle: ImprovementCycle, finish: dict[str, StepObservation | None] | None = None, now: str = NOW
) -> list[Decision]:
    """Run the cycle to a terminal phase, completing each launched step as `finish` says."""
    finish = finish or {}
    observations: dict[str, StepObservation] = {}
    decisions = []
    for _ in range(20):
        decision = reconcile(cycle, observations, artifact_root=ROOT, now=now)
        decisions.append(decision)
        cycle = cycle.model_copy(update={"status": decision.status})
        if decision.finished:
            return decisions
        for invocation in decision.start:
            outcome = finish.get(invocation.name, done(invocation.name))
            if outcome is not None:
                observations[invocation.name] = outcome
    raise AssertionError("cycle did not finish")


def test_a_new_cycle_starts_the_baseline_evaluation() -> None:
    decision = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    assert [s.name for s in decision.start] == ["evaluate-baseline"]
    invocation = decision.start[0]
    assert invocation.kind == "evaluator"
    assert invocation.job_name == job_name("demo", "evaluate-baseline", 1, "u-1")
    assert invocation.job_name.startswith("demo-evaluate-baseline-")
    assert invocation.argv[:4] == ("python", "-m", "kaizen.evaluator", "evaluate")
    assert "--output" in invocation.argv and f"{ROOT}/ml/demo/evaluate-baseline" in invocation.argv
    assert decision.status.phase == Phase.EVALUATING
    assert decision.status.observed_generation == 1
    assert cond(decision, "Reconciling") == ("True", "Running")
    assert cond(decision, "Ready") == ("False", "Running")
    assert cond(decision, "BaselineEvaluated")[0] == "Unknown"


def test_a_whole_cycle_passes_through_every_phase_in_order() -> None:
    decisions = drive(make_cycle())
    phases = [d.status.phase for d in decisions]
    assert phases == [
        Phase.EVALUATING,
        Phase.ANALYZING,
        Phase.TRAINING,
        Phase.MERGING,
        Phase.MERGING,
        Phase.EVALUATING,
        Phase.VALIDATING,
        Phase.SUCCEEDED,
    ]
    started = [[s.name for s in d.start] for d in decisions]
    assert started[2] == ["train-zephyria", "train-geography"]  # parallel, in plan order
    # Each adapter alone on its dev items, beside the merge; then the choice.
    assert started[3] == ["score-zephyria", "score-geography", "merge"]
    assert started[4] == ["combine"]
    final = decisions[-1].status
    assert final.validation is not None and final.validation.verdict == "Promote"
    assert final.promoted_adapters == [f"{ROOT}/ml/demo/combine/adapter"]
    assert final.alone == {"zephyria": 0.8, "geography": 0.8}
    assert final.combination is not None and final.combination.min_retention == 0.95
    assert "ties: min retention 0.95 (target 0.90, met)" in (final.message or "")
    assert final.baseline is not None and final.candidate is not None
    assert [a.domain for a in final.adapters] == ["zephyria", "geography"]
    assert all(s.state == StepState.SUCCEEDED for s in final.steps)
    for type_ in (
        "BaselineEvaluated",
        "WeaknessAnalyzed",
        "AdaptersTrained",
        "AdaptersMerged",
        "CandidateEvaluated",
        "Validated",
        "Succeeded",
        "Ready",
    ):
        assert cond(decisions[-1], type_)[0] == "True", type_
    assert cond(decisions[-1], "Reconciling")[0] == "False"
    assert cond(decisions[-1], "Stalled")[0] == "False"


def test_later_steps_consume_the_paths_earlier_steps_reported() -> None:
    decisions = drive(make_cycle())
    by_name = {s.name: s for d in decisions for s in d.start}
    assert f"{ROOT}/ml/demo/evaluate-baseline/results.json" in by_name["analyze"].argv
    merge_argv = by_name["merge"].argv
    assert f"zephyria={ROOT}/ml/demo/train-zephyria/adapter" in merge_argv
    assert f"geography={ROOT}/ml/demo/train-geography/adapter" in merge_argv
    score = list(by_name["score-zephyria"].argv)
    assert score[score.index("--adapter") + 1] == f"{ROOT}/ml/demo/train-zephyria/adapter"
    assert score[score.index("--domains") + 1] == "zephyria"
    assert score[score.index("--split") + 1] == "dev"
    combine = list(by_name["combine"].argv)
    assert f"zephyria={ROOT}/ml/demo/score-zephyria/results.json" in combine
    assert f"ties={ROOT}/ml/demo/merge/adapter" in combine
    assert combine[combine.index("--baseline") + 1] == (
        f"{ROOT}/ml/demo/evaluate-baseline/results.json"
    )
    candidate = by_name["evaluate-candidate"].argv
    assert candidate[candidate.index("--adapter") + 1] == f"{ROOT}/ml/demo/combine/adapter"


@pytest.mark.parametrize("extra", [None, "/artifacts/data/feedback.jsonl"])
def test_extra_training_data_reaches_every_train_step_and_nothing_else(extra: str | None) -> None:
    spec = {"training": {"extraData": extra}} if extra else None
    decisions = drive(make_cycle(spec))
    by_name = {s.name: s for d in decisions for s in d.start}
    trains = [s for name, s in by_name.items() if name.startswith("train-")]
    assert len(trains) == 2
    for train in trains:
        argv = list(train.argv)
        if extra is None:
            assert "--extra-data" not in argv
        else:
            assert argv[argv.index("--extra-data") + 1] == extra
    others = [s for name, s in by_name.items() if not name.startswith("train-")]
    assert all("--extra-data" not in s.argv for s in others)


def test_a_starting_adapter_is_applied_everywhere_and_kept_on_promotion() -> None:
    decisions = drive(make_cycle({"model": {"adapters": ["/artifacts/ml/prev/merge/adapter"]}}))
    by_name = {s.name: s for d in decisions for s in d.start}
    for name in (
        "evaluate-baseline",
        "train-zephyria",
        "score-zephyria",
        "merge",
        "combine",
        "evaluate-candidate",
    ):
        assert "/artifacts/ml/prev/merge/adapter" in by_name[name].argv, name
    assert decisions[-1].status.promoted_adapters == [
        "/artifacts/ml/prev/merge/adapter",
        f"{ROOT}/ml/demo/combine/adapter",
    ]


def test_a_rejected_candidate_succeeds_without_promotion() -> None:
    decisions = drive(make_cycle(), {"validate": done("validate", verdict="Reject")})
    final = decisions[-1]
    assert final.status.phase == Phase.SUCCEEDED
    assert final.status.promoted_adapters == []
    assert cond(final, "Succeeded") == ("True", "Rejected")


def test_an_inconclusive_candidate_succeeds_without_promotion_and_says_why() -> None:
    validation = ValidationDigest(
        verdict="Inconclusive",
        overall_delta=0.04,
        p_value=1.7e-08,
        minimum_detectable_effect=0.154,
        reasons=["gate"],
    )
    summary = summary_for("validate", validation=validation)
    observation = StepObservation(
        name="validate", state=StepState.SUCCEEDED, exit_code=0, summary=summary
    )
    final = drive(make_cycle(), {"validate": observation})[-1]
    assert final.status.phase == Phase.SUCCEEDED
    assert final.status.promoted_adapters == []
    assert cond(final, "Succeeded") == ("True", "Inconclusive")
    assert cond(final, "Ready") == ("True", "Inconclusive")
    (event,) = [e for e in final.events if e.reason == "Inconclusive"]
    # A Normal Event: the cycle did its work; p keeps its significant digits.
    assert event.type == "Normal"
    assert "p=1.7e-08" in event.message and "only improvements of 0.154 or more" in event.message


def test_nothing_below_threshold_finishes_without_training() -> None:
    # The analyze step's message (each domain's score and item count) says why.
    why = "no domain below 0.5 (pell 0.67 on 6 dev items, geography 1.00 on 6 dev items)"
    summary = ok_summary("analyze", domains=()).model_copy(update={"message": why})
    analyzed = StepObservation(
        name="analyze", state=StepState.SUCCEEDED, exit_code=0, summary=summary
    )
    decisions = drive(make_cycle(), {"analyze": analyzed})
    final = decisions[-1]
    assert final.status.phase == Phase.SUCCEEDED
    assert not any(s.name.startswith("train-") for s in final.status.steps)
    assert cond(final, "Succeeded") == ("True", "NothingToImprove")
    (succeeded,) = [c for c in final.status.conditions if c.type == "Succeeded"]
    assert succeeded.message == why
    assert cond(final, "AdaptersTrained") == ("False", "NotRequired")


@pytest.mark.parametrize(
    ("observation", "reason", "cycle_reason"),
    [
        (
            StepObservation(
                "train-zephyria",
                StepState.FAILED,
                exit_code=1,
                summary=StepSummary(
                    step="train-zephyria", ok=False, reason="StepError", message="CUDA OOM"
                ),
            ),
            "StepError",
            "StepFailed",
        ),
        (
            StepObservation(
                "train-zephyria",
                StepState.FAILED,
                exit_code=3,
                summary=StepSummary(
                    step="train-zephyria",
                    ok=False,
                    reason="ConfigurationError",
                    message="no training pool for zephyria",
                ),
            ),
            "ConfigurationError",
            "ConfigurationError",
        ),
        (
            StepObservation("train-zephyria", StepState.FAILED, exit_code=137, message="OOMKilled"),
            "StepFailed",
            "StepFailed",
        ),
        (
            StepObservation(
                "train-zephyria",
                StepState.SUCCEEDED,
                exit_code=0,
                message="termination message empty",
            ),
            "SummaryMissing",
            "StepFailed",
        ),
        (
            StepObservation(
                "train-zephyria",
                StepState.SUCCEEDED,
                exit_code=0,
                summary=StepSummary(step="train-zephyria", ok=True),
            ),
            "SummaryIncomplete",
            "StepFailed",
        ),
    ],
)
def test_a_failed_step_fails_the_cycle_with_its_reason(
    observation: StepObservation, reason: str, cycle_reason: str
) -> None:
    decisions = drive(make_cycle(), {"train-zephyria": observation, "train-geography": None})
    final = decisions[-1]
    assert final.status.phase == Phase.FAILED
    assert final.status.failure_reason == cycle_reason
    assert step_of(final, "train-zephyria").reason == reason
    # The sibling still running is cancelled and its Job stopped (free the GPU).
    assert step_of(final, "train-geography").reason == "Cancelled"
    assert final.stop_running_steps
    assert cond(final, "Stalled") == ("True", cycle_reason)
    assert cond(final, "Ready")[0] == "False"
    assert cond(final, "AdaptersTrained")[0] == "False"
    assert any(e.type == "Warning" and "train-zephyria" in e.message for e in final.events)
    assert not any(s.name == "merge" for s in final.status.steps)


def test_the_same_observations_twice_change_nothing() -> None:
    cycle = make_cycle()
    observations: dict[str, StepObservation] = {}
    for _ in range(9):
        first = reconcile(cycle, observations, artifact_root=ROOT, now=NOW)
        cycle = cycle.model_copy(update={"status": first.status})
        again = reconcile(cycle, observations, artifact_root=ROOT, now=LATER)
        assert again.status == first.status
        assert again.events == ()
        # Only steps launched but not yet seen may be launched again (creation is idempotent).
        assert {s.job_name for s in again.start} <= {s.job_name for s in first.start}
        for invocation in first.start:
            observations[invocation.name] = done(invocation.name)
        if first.finished:
            break
    assert cycle.status is not None and cycle.status.phase == Phase.SUCCEEDED


def test_condition_transition_times_move_only_when_the_status_changes() -> None:
    first = reconcile(make_cycle(), {}, artifact_root=ROOT, now=NOW)
    running = reconcile(
        make_cycle(status=first.status),
        {"evaluate-baseline": StepObservation("evaluate-baseline", StepState.RUNNING)},
        artifact_root=ROOT,
        now=LATER,
    )
    ready = next(c for c in running.status.conditions if c.type == "Ready")
    assert ready.last_transition_time == NOW
    evaluated = reconcile(
        make_cycle(status=running.status),
        {"evaluate-baseline": done("evaluate-baseline")},
        artifact_root=ROOT,
        now=LATER,
    )
    baseline = next(c for c in evaluated.status.conditions if c.type == "BaselineEvaluated")
    assert (baseline.status, baseline.last_transition_time) == ("True", LATER)


def test_an_invalid_spec_fails_at_once_and_only_once() -> None:
    decision = invalid_spec(
        None, generation=2, message="spec.training.lerningRate: unknown field", now=NOW
    )
    assert decision.status.phase == Phase.FAILED
    assert decision.status.failure_reason == "InvalidSpec"
    assert "lerningRate" in (decision.status.message or "")
    assert [e.reason for e in decision.events] == ["InvalidSpec"]
    again = invalid_spec(
        decision.status, generation=2, message="spec.training.lerningRate: unknown field", now=LATER
    )
    assert again.status == decision.status and again.events == ()


def test_lm_eval_tasks_reach_both_evaluations() -> None:
    decisions = drive(
        make_cycle({"evaluation": {"lmEvalTasks": ["arc_easy", "/suites/my_task.yaml"]}})
    )
    by_name = {s.name: s for d in decisions for s in d.start}
    for name in ("evaluate-baseline", "evaluate-candidate"):
        argv = by_name[name].argv
        assert argv.count("--lm-eval-task") == 2 and "/suites/my_task.yaml" in argv, name
    assert "--lm-eval-task" not in by_name["train-zephyria"].argv


def test_a_combination_below_its_retention_target_says_so_in_status_and_events() -> None:
    missed = summary_for(
        "combine",
        combination=CombinationDigest(
            path=f"{ROOT}/ml/demo/combine/adapter",
            chosen="ties",
            candidates=3,
            retention={"zephyria": 0.56, "geography": None},
            min_retention=0.56,
            target=0.9,
            target_met=False,
        ),
    )
    ok = StepObservation(name="combine", state=StepState.SUCCEEDED, exit_code=0, summary=missed)
    decisions = drive(make_cycle(), {"combine": ok})
    final = decisions[-1]
    assert final.status.phase == Phase.SUCCEEDED
    assert "ties: min retention 0.56 (target 0.90, MISSED)" in (final.status.message or "")
    warnings = [e for d in decisions for e in d.events if e.reason == "RetentionBelowTarget"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert "kept 0.56" in warnings[0].message
    record = step_of(final, "combine")
    assert record.message.startswith("chose ties of 3: min retention 0.56 (target 0.90, MISSED)")
    assert "geography n/a" in record.message


@pytest.mark.parametrize(
    ("candidates", "scored"),
    [
        (
            ["ties", "routed"],
            ["ties", "ties-winvn", "ties-d1", "ties-d1-winvn", "routed", "routed-ties"],
        ),
        # The merge step always makes one merge (ties), which nobody asked to score alone:
        # it is only the fallback of `routed-ties`.
        (["joint", "routed"], ["joint", "routed", "routed-ties"]),
    ],
)
def test_a_routed_candidate_is_made_by_the_merge_step_and_scored_by_combine(
    candidates: list[str], scored: list[str]
) -> None:
    decisions = drive(make_cycle({"merge": {"combination": "auto", "candidates": candidates}}))
    by_name = {s.name: s for d in decisions for s in d.start}
    merge, combine = by_name["merge"].argv, by_name["combine"].argv
    assert "--routed" in merge and merge[merge.index("--suite") + 1] == "demo"
    for name in ("routed", "routed-ties"):
        assert f"{name}={ROOT}/ml/demo/merge/candidates/{name}/adapter" in combine
    named = [combine[i + 1].partition("=")[0] for i, a in enumerate(combine) if a == "--candidate"]
    assert named == scored


def test_without_routed_the_merge_step_is_not_asked_for_it() -> None:
    decisions = drive(make_cycle({"merge": {"combination": "auto"}}))
    by_name = {s.name: s for d in decisions for s in d.start}
    assert "--routed" not in by_name["merge"].argv
    assert not any("routed=" in a for a in by_name["combine"].argv)
