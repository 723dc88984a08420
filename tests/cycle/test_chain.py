"""The chain engine: pure decisions about an ImprovementChain, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaizen.api.chain import ImprovementChain, parse_chain
from kaizen.api.lineage import LineageEntry
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import MergeDigest, PlanDigest, ScoreDigest, ValidationDigest
from kaizen.cycle.chain import (
    LABEL_CHAIN,
    LABEL_CHAIN_INDEX,
    ChainDecision,
    ObservedCycle,
    invalid_chain,
    reconcile_chain,
)
from kaizen.cycle.deferral import tried_since_promotion

T0 = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)


def chain(spec: dict[str, Any], *, generation: int = 1, created: datetime = T0) -> ImprovementChain:
    return parse_chain(
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementChain",
            "metadata": {
                "name": "nightly",
                "namespace": "ml",
                "generation": generation,
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": {
                "template": {"spec": {"model": {"name": "org/model", "adapters": ["/base"]}}},
                **spec,
            },
        }
    )


def finished(
    name: str,
    index: int,
    *,
    start: list[str],
    verdict: str | None = "Promote",
    before: float = 0.5,
    after: float = 0.6,
    failed: str | None = None,
    generation: int = 1,
    tested: tuple[float, float] | None = None,
    trained: list[str] | None = None,
    weak: list[str] | None = None,
) -> ObservedCycle:
    """A finished cycle as an executor would see it; `before` and `after` are the evaluations
    over all items, `tested` the validation gate's (baseline, candidate) on the test items."""
    merged = f"/artifacts/ml/{name}/merge/adapter"
    promote = failed is None and verdict == "Promote"
    status = ImprovementCycleStatus(
        phase=Phase.FAILED if failed else Phase.SUCCEEDED,
        failure_reason=failed,
        message="boom" if failed else "done",
        baseline=ScoreDigest(overall=before, domains={"geo": before}),
        candidate=None if failed else ScoreDigest(overall=after, domains={"geo": after}),
        merged=None if failed else MergeDigest(path=merged, combination="ties"),
        validation=(
            ValidationDigest(
                verdict=verdict,  # type: ignore[arg-type]
                overall_delta=after - before,
                p_value=0.01,
                baseline_score=tested[0] if tested else None,
                candidate_score=tested[1] if tested else None,
            )
            if verdict and not failed
            else None
        ),
        promoted_adapters=[*start, merged] if promote else list(start),
        start_time="2026-12-01T00:30:00Z",
        completion_time="2026-12-01T01:30:00Z",
        report_path=f"/artifacts/ml/{name}/report/index.html",
        plan=(
            PlanDigest(priority_domains=trained, weak_domains=weak) if trained is not None else None
        ),
    )
    return ObservedCycle(name, index, status, chain_generation=generation)


def running(name: str, index: int) -> ObservedCycle:
    return ObservedCycle(name, index, ImprovementCycleStatus(phase=Phase.TRAINING))


def step(
    c: ImprovementChain, cycles: list[ObservedCycle], now: datetime
) -> tuple[ImprovementChain, ChainDecision]:
    decision = reconcile_chain(c, cycles, now)
    return c.model_copy(update={"status": decision.status}), decision


def reasons(decision: ChainDecision) -> list[str]:
    return [e.reason for e in decision.events]


def test_after_previous_runs_back_to_back_from_the_last_promoted_adapters() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 3}})
    c, d = step(c, [], T0)
    assert d.create is not None and d.create.metadata.name == "nightly-1"
    assert d.create.spec.model.adapters == ["/base"]
    assert d.create.spec.model.name == "org/model"
    labels = d.create.metadata.model_extra["labels"]  # type: ignore[index]
    assert labels[LABEL_CHAIN] == "nightly" and labels[LABEL_CHAIN_INDEX] == "1"
    assert c.status is not None and c.status.current_cycle == "nightly-1"
    assert c.status.phase == "Running" and reasons(d) == ["CycleStarted"]

    one = finished("nightly-1", 1, start=["/base"])
    c, d = step(c, [one], T0 + timedelta(hours=1))
    assert d.create is not None and d.create.metadata.name == "nightly-2"
    promoted = one.status.promoted_adapters  # type: ignore[union-attr]
    assert (
        d.create.spec.model.adapters
        == promoted
        == ["/base", "/artifacts/ml/nightly-1/merge/adapter"]
    )
    assert c.status is not None and c.status.version == 1 and c.status.score == 0.6
    (record,) = d.recorded
    assert (record.cycle, record.from_version, record.version, record.promoted) == (
        "nightly-1",
        0,
        1,
        True,
    )
    assert record.baseline and record.baseline.domains == {"geo": 0.5}
    assert record.report_path == "/artifacts/ml/nightly-1/report/index.html"
    assert reasons(d) == ["VersionPromoted", "CycleStarted"]

    two = finished("nightly-2", 2, start=promoted, verdict="Reject", before=0.6, after=0.55)
    c, d = step(c, [one, two], T0 + timedelta(hours=2))
    assert d.create is not None and d.create.spec.model.adapters == promoted
    assert c.status is not None and c.status.version == 1 and c.status.last_verdict == "Rejected"
    assert c.status.cycles_without_promotion == 1 and c.status.best_score == 0.6

    three = finished("nightly-3", 3, start=promoted, before=0.6, after=0.7)
    c, d = step(c, [one, two, three], T0 + timedelta(hours=3))
    assert d.create is None
    assert (
        c.status is not None
        and c.status.phase == "Completed"
        and c.status.stop_reason == "MaxCycles"
    )
    assert c.status.version == 2 and [r.version for r in c.status.lineage] == [1, 1, 2]
    assert "ChainCompleted" in reasons(d)
    conditions = {x.type: x.status for x in c.status.conditions}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}


def test_the_same_inputs_decide_the_same_and_say_nothing_new() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 2}})
    c, _ = step(c, [], T0)
    one = finished("nightly-1", 1, start=["/base"])
    two = running("nightly-2", 2)
    c, first = step(c, [one, two], T0 + timedelta(hours=1))
    again = reconcile_chain(c, [one, two], T0 + timedelta(hours=1))
    assert again.status == c.status
    assert (
        again.create is None and again.recorded == [] and again.events == [] and again.delete == []
    )
    assert first.recorded and len(c.status.lineage) == 1  # type: ignore[union-attr]


def test_plateau_stops_after_k_cycles_without_promotion() -> None:
    c = chain({"afterPrevious": True, "stop": {"plateauCycles": 2}})
    c, _ = step(c, [], T0)
    seen = [finished("nightly-1", 1, start=["/base"], verdict="Reject")]
    c, d = step(c, seen, T0)
    assert d.create is not None
    seen.append(finished("nightly-2", 2, start=["/base"], verdict=None))
    c, d = step(c, seen, T0)
    assert d.create is None and c.status is not None
    assert (c.status.phase, c.status.stop_reason) == ("Completed", "Plateau")
    assert [r.reason for r in c.status.lineage] == ["Rejected", "NothingToImprove"]


def test_target_score_stops_the_chain_on_the_test_items_score() -> None:
    c = chain({"afterPrevious": True, "stop": {"targetScore": 0.6}})
    c, _ = step(c, [], T0)
    one = finished("nightly-1", 1, start=["/base"], after=0.65, tested=(0.5, 0.62))
    c, d = step(c, [one], T0)
    assert d.create is None and c.status is not None and c.status.stop_reason == "TargetScore"
    assert (c.status.score, c.status.test_score) == (0.65, 0.62)
    assert "score on the test items 0.620 reached targetScore 0.6" in (c.status.message or "")
    (record,) = d.recorded
    assert record.candidate is not None and record.baseline is not None
    assert (record.baseline.test, record.candidate.test, record.test_score) == (0.5, 0.62, 0.62)


def test_a_pooled_score_over_the_target_does_not_stop_the_chain() -> None:
    """The score over all items pools in the dev items the cycles trained towards and chose
    by; the target is a held-out figure, the validation gate's test items."""
    c = chain({"afterPrevious": True, "stop": {"targetScore": 0.6}})
    c, _ = step(c, [], T0)
    seen = [finished("nightly-1", 1, start=["/base"], after=0.65, tested=(0.5, 0.55))]
    c, d = step(c, seen, T0)
    assert d.create is not None and c.status is not None and c.status.stop_reason is None
    assert (c.status.score, c.status.test_score) == (0.65, 0.55)
    # A cycle that does not promote measures the current version again: its test score is
    # the version's latest; one that reached no validation leaves it as it was.
    promoted = seen[0].status.promoted_adapters  # type: ignore[union-attr]
    seen.append(finished("nightly-2", 2, start=promoted, verdict=None, before=0.66))
    c, d = step(c, seen, T0)
    assert c.status is not None and (c.status.score, c.status.test_score) == (0.66, 0.55)
    seen.append(
        finished("nightly-3", 3, start=promoted, verdict="Reject", before=0.64, tested=(0.6, 0.58))
    )
    c, d = step(c, seen, T0)
    assert d.create is None and c.status is not None and c.status.stop_reason == "TargetScore"
    assert (c.status.version, c.status.test_score) == (1, 0.6)


def test_history_limits_delete_only_folded_cycles_and_the_lineage_keeps_them() -> None:
    c = chain(
        {
            "afterPrevious": True,
            "successfulCyclesHistoryLimit": 1,
            "failedCyclesHistoryLimit": 0,
        }
    )
    c, _ = step(c, [], T0)
    seen = [finished("nightly-1", 1, start=["/base"])]
    c, d = step(c, seen, T0)
    assert d.delete == []
    seen.append(finished("nightly-2", 2, start=["/base"], failed="StepFailed"))
    c, d = step(c, seen, T0)
    assert d.delete == ["nightly-2"]
    seen = [seen[0], finished("nightly-3", 3, start=["/base"]), running("nightly-4", 4)]
    c, d = step(c, seen, T0)
    assert d.delete == ["nightly-1"]  # the running one is never touched
    assert c.status is not None and [r.cycle for r in c.status.lineage] == [
        "nightly-1",
        "nightly-2",
        "nightly-3",
    ]


def test_suspend_starts_nothing_and_leaves_a_running_cycle_alone() -> None:
    c = chain({"afterPrevious": True, "suspend": True})
    c, d = step(c, [], T0)
    assert d.create is None and c.status is not None and c.status.phase == "Suspended"
    c = chain({"afterPrevious": True})
    c, _ = step(c, [], T0)
    c = c.model_copy(update={"spec": c.spec.model_copy(update={"suspend": True})})
    c, d = step(c, [running("nightly-1", 1)], T0)
    assert d.create is None and d.delete == [] and c.status is not None
    assert c.status.phase == "Running" and "suspended" in (c.status.message or "")
    c, d = step(c, [finished("nightly-1", 1, start=["/base"])], T0)
    assert d.create is None and c.status is not None and c.status.phase == "Suspended"


def test_a_schedule_runs_at_its_times_in_its_time_zone() -> None:
    # 02:00 in Berlin is 01:00 UTC in winter.
    c = chain({"schedule": {"cron": "0 2 * * *", "timeZone": "Europe/Berlin"}})
    c, d = step(c, [], T0)
    assert d.create is None and c.status is not None
    assert c.status.next_run_time == "2026-12-01T01:00:00Z"
    assert d.wake_at == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert c.status.phase == "Waiting"
    c, d = step(c, [], datetime(2026, 12, 1, 1, 0, 5, tzinfo=UTC))
    assert d.create is not None and d.create.metadata.name == "nightly-1"
    assert c.status is not None and c.status.last_schedule_time == "2026-12-01T01:00:00Z"
    assert c.status.next_run_time == "2026-12-02T01:00:00Z"
    # The same time never runs twice.
    c, d = step(
        c, [finished("nightly-1", 1, start=["/base"])], datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    )
    assert d.create is None and c.status is not None and c.status.phase == "Waiting"


def test_forbid_skips_a_time_that_comes_while_a_cycle_runs() -> None:
    c = chain({"schedule": {"cron": "@hourly"}})
    c, d = step(c, [], T0 + timedelta(minutes=30))
    assert d.create is not None
    c, d = step(c, [running("nightly-1", 1)], T0 + timedelta(minutes=91))
    assert d.create is None and "ScheduleSkipped" in reasons(d)
    c, d = step(c, [finished("nightly-1", 1, start=["/base"])], T0 + timedelta(minutes=100))
    assert d.create is None  # the skipped time is gone; the next one is at 03:00


def test_after_previous_with_a_schedule_runs_a_deferred_time_when_the_cycle_ends() -> None:
    c = chain({"schedule": {"cron": "@hourly"}, "afterPrevious": True})
    c, d = step(c, [], T0 + timedelta(minutes=30))
    assert d.create is not None
    c, d = step(c, [running("nightly-1", 1)], T0 + timedelta(minutes=91))
    assert d.create is None and c.status is not None and c.status.deferred_schedule_time
    c, d = step(c, [finished("nightly-1", 1, start=["/base"])], T0 + timedelta(minutes=100))
    assert d.create is not None and d.create.metadata.name == "nightly-2"
    assert c.status is not None and c.status.deferred_schedule_time is None


def test_replace_deletes_the_running_cycle_and_starts_anew() -> None:
    c = chain({"schedule": {"cron": "@hourly"}, "concurrencyPolicy": "Replace"})
    c, _ = step(c, [], T0 + timedelta(minutes=30))
    c, d = step(c, [running("nightly-1", 1)], T0 + timedelta(minutes=91))
    assert (
        d.delete == ["nightly-1"] and d.create is not None and d.create.metadata.name == "nightly-2"
    )
    assert c.status is not None and c.status.lineage[-1].reason == "Replaced"
    assert "CycleReplaced" in reasons(d)


def test_a_time_missed_past_the_starting_deadline_is_skipped() -> None:
    c = chain({"schedule": {"cron": "@hourly", "startingDeadlineSeconds": 60}})
    c, d = step(c, [], T0 + timedelta(minutes=35))
    assert d.create is None and "MissedSchedule" in reasons(d)


def test_a_failure_that_would_repeat_stalls_the_chain_until_its_spec_changes() -> None:
    c = chain({"afterPrevious": True})
    c, _ = step(c, [], T0)
    bad = finished("nightly-1", 1, start=["/base"], failed="ConfigurationError")
    c, d = step(c, [bad], T0)
    assert d.create is None and c.status is not None and c.status.phase == "Stalled"
    assert {x.type: x.status for x in c.status.conditions}["Stalled"] == "True"
    assert "ChainStalled" in reasons(d)
    fixed = chain({"afterPrevious": True}, generation=2).model_copy(update={"status": c.status})
    _, d = step(fixed, [bad], T0)
    assert d.create is not None and d.create.metadata.name == "nightly-2"


def test_an_ordinary_failure_does_not_stall_the_chain() -> None:
    c = chain({"afterPrevious": True})
    c, _ = step(c, [], T0)
    c, d = step(c, [finished("nightly-1", 1, start=["/base"], failed="StepFailed")], T0)
    assert d.create is not None and "CycleFailed" in reasons(d)


def test_a_cycle_deleted_while_it_ran_is_recorded() -> None:
    c = chain({"afterPrevious": True})
    c, _ = step(c, [], T0)
    c, d = step(c, [], T0)
    assert c.status is not None and c.status.lineage[-1].reason == "CycleDeleted"
    assert d.create is not None and d.create.metadata.name == "nightly-2"


def test_an_invalid_chain_stalls_naming_the_field() -> None:
    d = invalid_chain(None, 3, "spec.stop.maxCycles: must be >= 1", T0)
    assert d.status.phase == "Stalled" and d.status.observed_generation == 3
    assert {x.type: x.reason for x in d.status.conditions}["Stalled"] == "InvalidSpec"
    assert reasons(d) == ["InvalidSpec"]
    assert invalid_chain(d.status, 3, "spec.stop.maxCycles: must be >= 1", T0).events == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec: "),
        ({"schedule": {"cron": "61 * * * *"}}, "spec.schedule.cron"),
        ({"schedule": {"cron": "0 2 * *"}}, "spec.schedule.cron"),
        ({"schedule": {"cron": "@daily", "timeZone": "Mars/Olympus"}}, "spec.schedule.timeZone"),
        ({"afterPrevious": True, "concurrencyPolicy": "Allow"}, "spec.concurrencyPolicy"),
        ({"afterPrevious": True, "stop": {"maxCycles": 0}}, "spec.stop.maxCycles"),
        (
            {"afterPrevious": True, "successfulCyclesHistoryLimit": -1},
            "spec.successfulCyclesHistoryLimit",
        ),
        (
            {"afterPrevious": True, "template": {"spec": {"evaluation": {"maxNewTokens": 0}}}},
            "spec.template.spec.evaluation.maxNewTokens",
        ),
        ({"afterPrevious": True, "sometimes": True}, "spec.sometimes"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    from kaizen.api.resource import SpecError

    with pytest.raises(SpecError) as error:
        chain(spec)
    assert field in str(error.value)


def test_the_next_cycle_is_also_compared_with_the_version_it_starts_from() -> None:
    c = chain({"afterPrevious": True})
    c, d = step(c, [], T0)
    assert d.create is not None and d.create.spec.validation.reference is None  # version 0
    made = d.create.spec
    one = finished("nightly-1", 1, start=["/base"])
    assert one.status is not None and one.status.candidate is not None
    one.status.candidate.results_path = "/a/nightly-1/evaluate-candidate/results.json"
    one = ObservedCycle(one.name, one.index, one.status, spec=made)
    c, d = step(c, [one], T0)
    assert d.create is not None
    reference = d.create.spec.validation.reference
    assert reference is not None and reference.name == "v1"
    assert reference.results == "/a/nightly-1/evaluate-candidate/results.json"
    # A rejected cycle keeps the version, and so the reference.
    two = finished("nightly-2", 2, start=one.status.promoted_adapters, verdict="Reject")
    c, d = step(c, [one, ObservedCycle(two.name, 2, two.status, spec=d.create.spec)], T0)
    assert d.create is not None and d.create.spec.validation.reference == reference
    # Other evaluation settings evaluate other items: no comparison with the old results.
    changed = c.spec.model_copy(deep=True)
    changed.template.spec.evaluation.limit = 5
    other = c.model_copy(update={"spec": changed})
    assert c.status is not None
    from kaizen.cycle.chain import next_cycle

    assert (
        next_cycle(other, 4, c.status.adapters, c.status.reference).spec.validation.reference
        is None
    )
    assert (
        next_cycle(c, 4, c.status.adapters, c.status.reference).spec.validation.reference
        == reference
    )


def test_a_deferred_run_past_its_starting_deadline_is_skipped() -> None:
    spec = {"schedule": {"cron": "@hourly", "startingDeadlineSeconds": 600}, "afterPrevious": True}
    c = chain(spec)
    c, _ = step(c, [], T0 + timedelta(minutes=30))  # 01:00: nightly-1 starts
    c, _ = step(c, [running("nightly-1", 1)], T0 + timedelta(minutes=91))  # 02:00 deferred
    assert c.status is not None and c.status.deferred_schedule_time == "2026-12-01T02:00:00Z"
    # nightly-1 ends at 02:20: twenty minutes late, past the ten-minute deadline.
    c, d = step(c, [finished("nightly-1", 1, start=["/base"])], T0 + timedelta(minutes=110))
    assert d.create is None and "MissedSchedule" in reasons(d)
    assert c.status is not None and c.status.deferred_schedule_time is None


def test_replace_does_not_start_past_a_plateau() -> None:
    spec = {
        "schedule": {"cron": "@hourly"},
        "concurrencyPolicy": "Replace",
        "stop": {"plateauCycles": 1},
    }
    c = chain(spec)
    c, _ = step(c, [], T0 + timedelta(minutes=30))
    c, d = step(c, [running("nightly-1", 1)], T0 + timedelta(minutes=91))
    assert d.delete == ["nightly-1"] and d.create is None
    assert c.status is not None and c.status.phase == "Completed"
    assert c.status.stop_reason == "Plateau"


def test_a_domain_that_did_not_pay_is_deferred_until_the_next_promotion() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 10}})
    c, d = step(c, [], T0)
    assert d.create is not None and d.create.spec.analysis.defer_domains == []
    seen = [finished("nightly-1", 1, start=["/base"], verdict="Inconclusive", trained=["quarry"])]
    c, d = step(c, seen, T0)
    # the next cycle starts from the same version and plans quarry after every other domain
    assert d.create is not None and d.create.spec.analysis.defer_domains == ["quarry"]
    assert c.status is not None and c.status.lineage[-1].trained == ["quarry"]
    seen.append(finished("nightly-2", 2, start=["/base"], verdict="Reject", trained=["tova"]))
    c, d = step(c, seen, T0)
    assert d.create is not None and d.create.spec.analysis.defer_domains == ["quarry", "tova"]
    # a promotion makes a new version: everything is worth trying again from it
    seen.append(finished("nightly-3", 3, start=["/base"], trained=["chem"]))
    c, d = step(c, seen, T0)
    assert d.create is not None and d.create.spec.analysis.defer_domains == []
    assert c.status is not None
    assert tried_since_promotion(c.status.lineage[:2]) == ["quarry", "tova"]
    assert tried_since_promotion(c.status.lineage) == []


def test_the_templates_own_deferred_domains_are_kept() -> None:
    template = {"model": {"name": "org/model"}, "analysis": {"deferDomains": ["geo"]}}
    c = chain({"afterPrevious": True, "template": {"spec": template}})
    c, _ = step(c, [], T0)
    seen = [finished("nightly-1", 1, start=[], verdict="Reject", trained=["geo", "chem"])]
    c, d = step(c, seen, T0)
    assert d.create is not None and d.create.spec.analysis.defer_domains == ["geo", "chem"]


def test_back_to_back_the_chain_stops_when_a_cycle_tried_nothing_new() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 10}})
    c, _ = step(c, [], T0)
    seen = [finished("nightly-1", 1, start=["/base"], verdict="Inconclusive", trained=["quarry"])]
    c, d = step(c, seen, T0)
    assert d.create is not None
    # every other domain tried: the cycle trained quarry again, and the next would repeat it
    seen.append(
        finished("nightly-2", 2, start=["/base"], verdict="Inconclusive", trained=["quarry"])
    )
    c, d = step(c, seen, T0)
    assert d.create is None and c.status is not None
    assert (c.status.phase, c.status.stop_reason) == ("Completed", "Exhausted")
    assert (
        "every domain below the threshold was tried since version 0 without a promotion "
        "(quarry)" in (c.status.message or "")
    )


def test_a_cycle_with_nothing_to_train_ends_a_back_to_back_chain() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 10}})
    c, _ = step(c, [], T0)
    c, d = step(c, [finished("nightly-1", 1, start=["/base"], verdict=None, trained=[])], T0)
    assert d.create is None and c.status is not None and c.status.stop_reason == "Exhausted"
    assert "the last cycle had nothing to train from version 0" in (c.status.message or "")


@pytest.mark.parametrize(
    "spec",
    [
        # the user's own stop rule
        {"afterPrevious": True, "stop": {"plateauCycles": 3}},
        # on a schedule the next run may find new data
        {"schedule": {"cron": "0 2 * * *"}, "stop": {"maxCycles": 10}},
    ],
)
def test_a_plateau_or_a_schedule_keeps_a_chain_going_past_a_repeat(spec: dict[str, Any]) -> None:
    c = chain(spec)
    c, _ = step(c, [], T0 + timedelta(days=1))
    seen = [
        finished("nightly-1", 1, start=["/base"], verdict="Inconclusive", trained=["quarry"]),
        finished("nightly-2", 2, start=["/base"], verdict="Inconclusive", trained=["quarry"]),
    ]
    c, d = step(c, seen, T0 + timedelta(days=3))
    assert c.status is not None and c.status.stop_reason is None
    assert d.create is not None and d.create.spec.analysis.defer_domains == ["quarry"]


def test_the_chain_stops_before_a_cycle_that_could_only_repeat_one() -> None:
    c = chain({"afterPrevious": True, "stop": {"maxCycles": 10}})
    c, _ = step(c, [], T0)
    weak = ["quarry", "tova"]  # what each cycle's analysis found below the threshold
    seen = [
        finished(
            "nightly-1", 1, start=["/base"], verdict="Inconclusive", trained=["quarry"], weak=weak
        )
    ]
    c, d = step(c, seen, T0)
    assert d.create is not None and d.create.spec.analysis.defer_domains == ["quarry"]
    # tova tried too: the next cycle would start from the same version, find the same two
    # weak domains and train one of them again, so the chain stops now
    seen.append(
        finished("nightly-2", 2, start=["/base"], verdict="Reject", trained=["tova"], weak=weak)
    )
    c, d = step(c, seen, T0)
    assert d.create is None and c.status is not None and c.status.stop_reason == "Exhausted"
    assert (
        "every domain below the threshold was tried since version 0 without a promotion (quarry, tova)"
        in (c.status.message or "")
    )
    # the lineage artifact keeps what the cycles trained, not what the chain decided by
    entry = LineageEntry.from_record(c.status.lineage[-1])
    assert entry.trained == ["tova"] and "weak" not in entry.model_dump()
