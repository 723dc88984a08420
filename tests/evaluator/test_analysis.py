"""The improvement plan built from hand-made baseline results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.evaluator.analysis import (
    analyze_step,
    build_plan,
    classify_failure,
    is_repetitive,
    knowledge_or_reasoning,
)
from kaizen.runtime.tracking import TrackingOptions
from tests.evaluator.results_factory import domain_records, record
from tests.evaluator.results_factory import results as results_of

FR, XR = "factual_recall", "cross_referencing"


def results(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Results whose items are dev items (what a plan reads; test_analysis_split.py has the
    test items and the domains without dev items)."""
    return results_of([{"split": "dev"} | r for r in records])


def test_priority_domains_are_the_weakest_below_threshold_ties_by_name() -> None:
    data = results(
        domain_records("geo", [1, 1, 1, 0])  # 0.75, above 0.7
        + domain_records("zeta", [0, 0, 0, 1])  # 0.25
        + domain_records("alpha", [0, 0, 0, 1])  # 0.25, ties with zeta: name decides
        + domain_records("math", [1, 0, 1, 0])  # 0.5
    )
    plan = build_plan(data, threshold=0.7, max_domains=2)
    assert plan["priority_domains"] == ["alpha", "zeta"]
    assert [d["name"] for d in plan["domains"]] == ["alpha", "zeta", "math", "geo"]
    assert [r["domain"] for r in plan["recommendations"]] == ["alpha", "zeta"]
    assert build_plan(data, threshold=0.7, max_domains=5)["priority_domains"] == [
        "alpha",
        "zeta",
        "math",
    ]


def test_nothing_below_threshold_is_an_empty_but_valid_plan() -> None:
    plan = build_plan(results(domain_records("geo", [1, 1, 0.0, 1])), threshold=0.7, max_domains=2)
    assert plan["priority_domains"] == [] and plan["recommendations"] == []
    assert plan["failure_kinds"] == {"wrong_answer": 1}


def test_a_domain_exactly_at_threshold_is_not_a_priority() -> None:
    plan = build_plan(results(domain_records("geo", [1, 0])), threshold=0.5, max_domains=2)
    assert plan["priority_domains"] == []


def test_weakest_capabilities_are_targeted_weakest_first() -> None:
    data = results(domain_records("geo", [1, 1, 0, 1, 0, 0], [FR, FR, FR, XR, XR, "multi_step"]))
    plan = build_plan(data, threshold=0.7, max_domains=2)
    assert plan["targeted_capabilities"] == ["multi_step", "cross_referencing", "factual_recall"]
    assert plan["capabilities"] == {
        "cross_referencing": 0.5,
        "factual_recall": 0.6667,
        "multi_step": 0.0,
    }


@pytest.mark.parametrize(
    ("scores", "capabilities", "hint"),
    [
        ([1, 1, 0, 0], [FR, FR, XR, XR], "reasoning"),  # facts right, combining them wrong
        ([0, 0, 1, 0], [FR, FR, XR, XR], "knowledge"),  # facts missing
        ([0, 0], [FR, FR], "knowledge"),
        ([0, 1], [XR, "counterfactual"], "reasoning"),
        ([1, 1, 1], [FR, FR, XR], "none"),
    ],
)
def test_knowledge_or_reasoning(scores: list[float], capabilities: list[str], hint: str) -> None:
    assert knowledge_or_reasoning(domain_records("d", scores, capabilities), 0.7) == hint


def test_recommendations_follow_the_hint() -> None:
    data = results(
        domain_records("geo", [1, 1, 0, 0], [FR, FR, XR, XR]) + domain_records("zep", [0, 0, 0, 0])
    )
    plan = build_plan(data, threshold=0.7, max_domains=2)
    geo = next(r for r in plan["recommendations"] if r["domain"] == "geo")
    zep = next(r for r in plan["recommendations"] if r["domain"] == "zep")
    assert (geo["hint"], geo["focus_capabilities"]) == ("reasoning", ["cross_referencing"])
    assert (zep["hint"], zep["focus_capabilities"][0], zep["failed_items"]) == (
        "knowledge",
        "factual_recall",
        4,
    )
    assert zep["gap"] == 0.7


@pytest.mark.parametrize(
    ("response", "truncated", "kind"),
    [
        ("", False, "empty"),
        ("   ", True, "empty"),
        ("I'm sorry, I cannot answer that.", False, "refusal"),
        ("The founder of Zephyria is unknown.", False, "refusal"),
        ("I don't know.", False, "refusal"),
        ("Africa, East Africa and East Africa and East Africa", False, "repetition"),
        ("ha ha ha", False, "repetition"),
        ("To solve this problem, we need to consider the scenario where", True, "truncated"),
        ("The capital is Lyon.", False, "wrong_answer"),
    ],
)
def test_failure_classification(response: str, truncated: bool, kind: str) -> None:
    assert classify_failure(record("x", "d", 0.0, response=response, truncated=truncated)) == kind


@pytest.mark.parametrize(
    ("scorer", "response", "extracted", "truncated", "kind"),
    [
        # A numeric item answered without any number: the form is wrong, not just the value.
        ("numeric", "It is a large amount.", "", False, "wrong_format"),
        ("regex", "Paris", "", False, "wrong_format"),
        ("numeric", "It is 12.", "12", False, "wrong_answer"),
        # Cut off before reaching a number: the token limit is the cause.
        ("numeric", "Let us first work out how many", "", True, "truncated"),
        # Contains has nothing to extract by design: a miss is a wrong answer.
        ("contains", "Lyon", "", False, "wrong_answer"),
        ("numeric", "", "", False, "empty"),
    ],
)
def test_wrong_format_is_a_scorer_that_found_nothing_to_read(
    scorer: str, response: str, extracted: str, truncated: bool, kind: str
) -> None:
    row = record("x", "d", 0.0, response=response, truncated=truncated)
    row.update(scorer=scorer, extracted=extracted)
    assert classify_failure(row) == kind


def test_failures_are_typed_and_weakest_groups_and_knowledge_vs_reasoning_reported() -> None:
    data = results(
        domain_records("geo", [1, 1, 0, 0], [FR, FR, XR, XR])  # facts known, combining fails
        + domain_records("zep", [0, 0, 1, 0], [FR, FR, XR, "multi_step"])  # facts missing
        + domain_records("sci", [1, 1, 1, 1], [FR, FR, XR, XR])
    )
    plan = build_plan(data, threshold=0.7, max_domains=2)
    types = {f["id"]: f["type"] for f in plan["failures"]}
    assert types == {
        "geo-2": "reasoning",
        "geo-3": "reasoning",
        "zep-0": "knowledge",
        "zep-1": "knowledge",
        "zep-3": "reasoning",
    }
    assert [w["name"] for w in plan["weakest_domains"]] == ["zep", "geo", "sci"]
    assert plan["weakest_domains"][0]["ci95"] == data["domains"]["zep"]["ci95"]
    assert plan["weakest_domains"][0]["n"] == 4
    assert [w["name"] for w in plan["weakest_capabilities"]] == [
        "multi_step",
        "cross_referencing",
        "factual_recall",
    ]
    split = plan["knowledge_vs_reasoning"]
    assert (split["knowledge_failures"], split["reasoning_failures"]) == (2, 3)
    # Only geo's two failures are reasoning failures where the domain's facts are known.
    assert split["reasoning_failures_with_facts_known"] == 2
    assert split["factual_score"] == pytest.approx(4 / 6, abs=1e-4)
    assert split["reasoning_score"] == pytest.approx(3 / 6, abs=1e-4)
    assert split["domains"] == {"knowledge": ["zep"], "reasoning": ["geo"], "none": ["sci"]}
    geo = next(d for d in plan["domains"] if d["name"] == "geo")
    assert (geo["factual_score"], geo["reasoning_score"]) == (1.0, 0.0)
    assert geo["failure_types"] == {"reasoning": 2}


def test_correct_items_are_not_failures() -> None:
    assert classify_failure(record("x", "d", 1.0, response="", truncated=True)) is None


def test_repetition_needs_a_real_loop() -> None:
    assert not is_repetitive("The capital of France is Paris, and Paris is lovely.")
    assert not is_repetitive("One of the rivers of the north flows out of the hills of the east.")
    assert is_repetitive("the ship the ship the ship sails")


def test_bad_settings_are_configuration_errors() -> None:
    data = results(domain_records("geo", [1]))
    with pytest.raises(ConfigurationError, match="threshold"):
        build_plan(data, threshold=1.5, max_domains=2)
    with pytest.raises(ConfigurationError, match="max domains"):
        build_plan(data, threshold=0.5, max_domains=0)


def _analyze_step(
    folder: Path,
    records: list[dict[str, Any]],
    threshold: float,
    *,
    max_domains: int = 2,
    defer: tuple[str, ...] | list[str] = (),
) -> Any:
    """The analyze step on a baseline of `records`: (its summary, plan.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    baseline = folder / "results.json"
    baseline.write_text(json.dumps(results(records)))
    summary = analyze_step(
        baseline,
        folder / "out",
        step="analyze",
        threshold=threshold,
        max_domains=max_domains,
        tracking=TrackingOptions(mode="disabled"),
        defer=defer,
    )
    return summary, json.loads((folder / "out" / "plan.json").read_text())


def test_analyze_step_writes_the_plan_and_a_small_summary(tmp_path: Path) -> None:
    records = domain_records("geo", [1, 1]) + domain_records("zep", [0, 0])
    summary, plan = _analyze_step(tmp_path, records, threshold=0.7)
    assert (
        summary.plan is not None
        and summary.plan.priority_domains == ["zep"] == plan["priority_domains"]
    )
    assert summary.plan.failure_kinds == {"wrong_answer": 2}
    assert plan["baseline"] == str(tmp_path / "results.json")
    assert summary.digest and summary.digest.startswith("sha256:")


def test_nothing_to_train_names_each_domains_score_and_its_items(tmp_path: Path) -> None:
    # "Nothing to train" on 3 items is not "nothing to train" on 300: the message says which
    # (weakest first).
    records = domain_records("geo", [1, 1]) + domain_records("zep", [1, 0, 1])
    summary, _ = _analyze_step(tmp_path, records, threshold=0.5)
    assert summary.plan is not None and summary.plan.priority_domains == []
    assert summary.message.startswith(
        "no domain below 0.5 (zep 0.67 on 3 dev items, geo 1.00 on 2 dev items): nothing to train"
    )


def test_unreadable_baseline_is_a_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "results.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "missing.json"):
        with pytest.raises(ConfigurationError, match=str(path)):
            analyze_step(
                path,
                tmp_path / "out",
                step="analyze",
                threshold=0.7,
                max_domains=2,
                tracking=TrackingOptions(mode="disabled"),
            )


def test_lm_eval_tasks_below_the_threshold_are_excluded_not_prioritised() -> None:
    # An lm-eval task is a domain of the results without items: the trainer has no pool for
    # it, so a weak task must never become a priority domain (that failed the cycle).
    from kaizen.api.artifacts import ImprovementPlan
    from kaizen.evaluator.analysis import UNTRAINABLE_REASON

    data = results(domain_records("geo", [1, 0, 0, 0]) + domain_records("zep", [1, 1, 1, 0]))
    data["domains"]["lmeval:arc_easy"] = {
        "score": 0.1,
        "n": 100,
        "metric": "acc",
        "stderr": 0.03,
        "source": "lm-eval",
    }
    plan = build_plan(data, threshold=0.8, max_domains=3)
    assert plan["priority_domains"] == ["geo", "zep"]
    assert [d["name"] for d in plan["domains"]] == ["geo", "zep"]
    assert plan["excluded"] == [
        {"name": "lmeval:arc_easy", "score": 0.1, "reason": UNTRAINABLE_REASON}
    ]
    assert "lm-evaluation-harness task" in UNTRAINABLE_REASON
    assert ImprovementPlan.model_validate(plan).excluded[0].name == "lmeval:arc_easy"


def test_deferred_domains_come_after_every_other_weak_domain() -> None:
    data = results(
        domain_records("alpha", [0, 0, 0, 1])  # 0.25: the weakest, but deferred
        + domain_records("zeta", [0, 0, 1, 1])  # 0.5
        + domain_records("math", [0, 1, 1, 1])  # 0.75
        + domain_records("geo", [1, 1, 1, 1])  # above the threshold: deferring it changes nothing
    )
    plan = build_plan(data, threshold=0.8, max_domains=1, defer=["alpha", "geo"])
    assert plan["priority_domains"] == ["zeta"] and plan["deferred"] == ["alpha", "geo"]
    # every domain still analysed, weakest first: deferring reorders only the choice
    assert [d["name"] for d in plan["domains"]] == ["alpha", "zeta", "math", "geo"]
    assert build_plan(data, threshold=0.8, max_domains=3, defer=["alpha"])["priority_domains"] == [
        "zeta",
        "math",
        "alpha",
    ]
    # when every weak domain was deferred, the weakest of them is planned again
    again = build_plan(data, threshold=0.8, max_domains=1, defer=["alpha", "zeta", "math"])
    assert again["priority_domains"] == ["alpha"]
    # no deferral: no key, the plan as before
    assert "deferred" not in build_plan(data, threshold=0.8, max_domains=1)


def test_the_analyze_step_says_which_domains_it_deferred(tmp_path: Path) -> None:
    records = domain_records("alpha", [0, 0]) + domain_records("zeta", [0, 1])
    summary, plan = _analyze_step(
        tmp_path / "a", records, threshold=0.7, max_domains=1, defer=["alpha"]
    )
    assert summary.plan is not None and summary.plan.priority_domains == ["zeta"]
    assert summary.plan.weak_domains == ["alpha", "zeta"]  # what the cycle could have trained
    assert plan["deferred"] == ["alpha"]
    assert summary.message == (
        "train zeta (below 0.7 on their dev items); alpha deferred (tried since the last promotion)"
    )
    summary, _ = _analyze_step(
        tmp_path / "b", records, threshold=0.7, max_domains=1, defer=["alpha", "zeta"]
    )
    assert summary.plan is not None and summary.plan.priority_domains == ["alpha"]
    assert summary.message == (
        "train alpha (below 0.7 on their dev items); zeta deferred (tried since the last "
        "promotion); alpha again: no domain below the threshold is left untried since the last "
        "promotion"
    )
