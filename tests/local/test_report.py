"""The end-of-cycle report: domains and capabilities before and after, what each adapter learned."""

from __future__ import annotations

from kaizen.api import (
    AdapterDigest,
    ImprovementCycleStatus,
    Phase,
    PlanDigest,
    ScoreDigest,
    ValidationDigest,
)
from kaizen.local.report import render_report


def test_the_report_shows_capabilities_and_the_adapters_data() -> None:
    status = ImprovementCycleStatus(
        phase=Phase.SUCCEEDED,
        baseline=ScoreDigest(
            overall=0.4, domains={"zephyria": 0.0, "geography": 0.9},
            capabilities={"factual_recall": 0.5, "cross_referencing": 0.1},
        ),
        candidate=ScoreDigest(
            overall=0.7, domains={"zephyria": 0.8, "geography": 0.9},
            capabilities={"factual_recall": 0.8, "cross_referencing": 0.6},
        ),
        plan=PlanDigest(priority_domains=["zephyria"], priority_scores=[0.125]),
        adapters=[
            AdapterDigest(domain="zephyria", path="/a", examples=120, steps=80,
                          learning_rate=0.001, synthesized=90),
        ],
        validation=ValidationDigest(verdict="Promote", overall_delta=0.3, p_value=0.001),
    )  # fmt: skip
    text = render_report(status)
    assert "zephyria       0.0%   80.0%    +80.0 *" in text
    assert "cross_referencing     10.0%   60.0%    +50.0" in text
    assert (
        "adapter zephyria: 120 examples (90 synthesised from knowledge), 80 steps at lr 0.001"
        in text
    )
    assert "verdict: PROMOTE" in text
    # The table covers both splits; the plan chose on the dev items, and says so.
    assert "(planned on the baseline's dev items: zephyria 12.5%)" in text
    assert "no dev items" not in text


def test_the_report_says_when_a_domain_was_planned_on_test_items() -> None:
    status = ImprovementCycleStatus(
        baseline=ScoreDigest(overall=0.2, domains={"lone": 0.2}),
        plan=PlanDigest(
            priority_domains=["lone"], priority_scores=[0.2], fallback_domains=["lone"]
        ),
    )
    assert "(no dev items in lone: planned on the gate's test items there" in render_report(status)
