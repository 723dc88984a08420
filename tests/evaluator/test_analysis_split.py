"""The plan is made on dev items only: the gate's test items never choose what to train.

The analyze step reads a real results file and writes plan.json; the planner then builds
each adapter's training arguments from the plan's digest. Rewriting every *test* item of
the baseline (scores, responses, the aggregates recomputed as evaluate would) must leave
the plan, the digest and the training arguments exactly as they were; rewriting the dev
items must not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.artifacts import ImprovementPlan, read_artifact
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.status import ImprovementCycleStatus
from kaizen.api.summary import ScoreDigest, StepSummary
from kaizen.cycle.catalog import kind_named
from kaizen.cycle.planner import StepPlanner
from kaizen.evaluator.analysis import analyze_step, build_plan
from kaizen.runtime.tracking import TrackingOptions
from tests.evaluator.results_factory import record, results

REASONING = "multi_step"


def _baseline() -> list[dict[str, Any]]:
    """Three domains, each with dev and test items of both capabilities and of mixed scores.

    On the dev items zep is weakest, then geo; sci is above the threshold. The test items
    say otherwise (sci weakest), so a plan that read them would differ.
    """
    dev_scores = {"zep": [0, 0, 1, 0], "geo": [1, 0, 1, 0], "sci": [1, 1, 1, 0]}
    test_scores = {"zep": [1, 1, 1, 1, 0, 1], "geo": [1, 1, 0, 1, 1, 1], "sci": [0, 0, 0, 0, 1, 0]}
    records = []
    for domain in dev_scores:
        for split, scores in (("dev", dev_scores[domain]), ("test", test_scores[domain])):
            for n, score in enumerate(scores):
                capability = REASONING if n % 2 else "factual_recall"
                item = record(f"{domain}-{split}-{n}", domain, float(score), capability=capability)
                records.append(item | {"split": split})
    return records


def _rewrite_tests(records: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    """Every test item changed: scores flipped, and failures of another kind."""
    changed = []
    for item in records:
        item = dict(item)
        if item["split"] == "test":
            if how == "flip":
                score = 1.0 - item["score"]
                item |= {"score": score, "correct": score >= 1.0}
                item["response"] = "ref" if score else "I'm sorry, I cannot say"
            else:  # every test item wrong and looping, of the other capability
                item |= {"score": 0.0, "correct": False, "response": "the the the the"}
                item["capability"] = (
                    "factual_recall" if item["capability"] == REASONING else REASONING
                )
        changed.append(item)
    return changed


def _analyze(records: list[dict[str, Any]], folder: Path) -> tuple[dict[str, Any], StepSummary]:
    """The real analyze step on a baseline file of `records`: (plan.json, summary)."""
    baseline = folder / "results.json"
    folder.mkdir()
    baseline.write_text(json.dumps(results(records)))
    summary = analyze_step(
        baseline,
        folder / "analyze",
        step="analyze",
        threshold=0.7,
        max_domains=2,
        tracking=TrackingOptions(mode="disabled"),
    )
    plan = json.loads((folder / "analyze" / "plan.json").read_text())
    read_artifact(folder / "analyze" / "plan.json", ImprovementPlan)
    return plan, summary


def _training_args(summary: StepSummary, baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """Each planned adapter's (and the joint adapter's) arguments as the cycle builds them,
    with the status holding this baseline's overall scores (test items included)."""
    assert summary.plan is not None
    spec = ImprovementCycleSpec.model_validate(
        {"training": {"steps": 40}, "analysis": {"scoreThreshold": 0.7}}
    )
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/r")
    overall = results(baseline)["domains"]
    status = ImprovementCycleStatus(
        baseline=ScoreDigest(overall=0.5, domains={d: s["score"] for d, s in overall.items()}),
        plan=summary.plan.model_copy(update={"plan_path": "/r/plan.json"}),
    )
    assert status.plan is not None
    built = {
        domain: kind_named("train").build(planner, status, domain).model_dump()
        for domain in status.plan.priority_domains
    }
    return built | {"joint": kind_named("joint").build(planner, status, None).model_dump()}


def _same_digest(summary: StepSummary) -> dict[str, Any]:
    assert summary.plan is not None
    return summary.plan.model_dump(exclude={"plan_path"})


@pytest.mark.parametrize("how", ["flip", "loop"])
def test_the_gates_test_items_never_choose_the_plan(tmp_path: Path, how: str) -> None:
    baseline = _baseline()
    plan, summary = _analyze(baseline, tmp_path / "original")
    assert plan["priority_domains"] == ["zep", "geo"]
    assert summary.plan is not None and summary.plan.priority_scores == [0.25, 0.5]
    assert plan["split"]["dev_items"] == 12 and plan["split"]["test_items_read"] == 0
    assert plan["split"]["test_items_unread"] == 18 and plan["split"]["fallback_domains"] == []
    assert {d["name"]: d["split"] for d in plan["domains"]} == dict.fromkeys(
        ("zep", "geo", "sci"), "dev"
    )
    failed = {f["id"] for f in plan["failures"]}
    assert failed and all("-dev-" in i for i in failed)

    rewritten = _rewrite_tests(baseline, how)
    assert results(rewritten)["domains"] != results(baseline)["domains"]
    other, other_summary = _analyze(rewritten, tmp_path / "rewritten")
    # Every choice in the plan: priority domains, their order, the failed items that steer
    # synthesis, the targeted capabilities, the hints, the recommendations.
    del plan["baseline"], other["baseline"]
    assert other == plan
    assert _same_digest(other_summary) == _same_digest(summary)
    # And the training settings the cycle derives from it: steps and learning rate per
    # domain and for the joint adapter, though the status' baseline scores differ.
    assert _training_args(other_summary, rewritten) == _training_args(summary, baseline)


def test_the_dev_items_do_choose(tmp_path: Path) -> None:
    """The converse, so the test above can fail: rewriting the dev items changes the plan."""
    baseline = _baseline()
    plan, summary = _analyze(baseline, tmp_path / "original")
    flipped = [
        item | {"score": 1.0 - item["score"], "correct": not item["correct"]}
        if item["split"] == "dev"
        else item
        for item in baseline
    ]
    other, other_summary = _analyze(flipped, tmp_path / "dev-flipped")
    assert other["priority_domains"] != plan["priority_domains"]
    assert _training_args(other_summary, flipped) != _training_args(summary, baseline)


def test_a_domain_without_dev_items_falls_back_to_its_test_items_and_says_so(
    tmp_path: Path,
) -> None:
    # lone's items are all test items: it is analysed on them, and the plan says so.
    records = _baseline() + [record(f"lone-{n}", "lone", 0.0) | {"split": "test"} for n in range(3)]
    plan, summary = _analyze(records, tmp_path / "fallback")
    lone = next(d for d in plan["domains"] if d["name"] == "lone")
    assert (lone["split"], lone["n"], lone["score"]) == ("test", 3, 0.0)
    assert plan["split"]["fallback_domains"] == ["lone"]
    assert plan["split"]["test_items_read"] == 3 and plan["split"]["dev_items"] == 12
    assert "lone had no dev items" in plan["split"]["note"]
    assert "validation gate also reads" in plan["split"]["note"]
    assert summary.plan is not None and summary.plan.fallback_domains == ["lone"]
    assert "lone had no dev items" in summary.message
    # It is the weakest, but not planned: its adapter would be scored and chosen on dev items
    # it does not have (the cycle failed at score-lone after training it). The other domains
    # still read their dev items.
    assert lone["below_threshold"] and plan["priority_domains"] == ["zep", "geo"]
    assert "lone below 0.7 but not trained" in summary.message
    assert {d["name"]: d["split"] for d in plan["domains"]}["zep"] == "dev"


def test_a_suite_without_dev_items_plans_nothing_and_says_why(tmp_path: Path) -> None:
    records = [r | {"split": "test"} for r in _baseline()]
    plan, summary = _analyze(records, tmp_path / "nodev")
    assert plan["priority_domains"] == [] and plan["recommendations"] == []
    assert any(d["below_threshold"] for d in plan["domains"])
    assert summary.message.startswith("nothing to train (")
    assert "below 0.7 but not trained" in summary.message
    assert "dev.jsonl" in summary.message


def test_results_from_before_the_split_are_all_test_items() -> None:
    # Items without `split` (results of version 1) are test items: every domain falls back.
    data = results([record(f"g{n}", "geo", float(n % 2)) for n in range(4)])
    plan = build_plan(data, threshold=0.7, max_domains=1)
    assert plan["split"]["fallback_domains"] == ["geo"] and plan["split"]["dev_items"] == 0
    assert plan["domains"][0]["split"] == "test" and plan["domains"][0]["n"] == 4
