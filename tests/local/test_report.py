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


def test_the_report_gives_each_capabilitys_item_count_when_the_evaluation_did() -> None:
    counts = {"counterfactual": 3, "factual_recall": 64}
    status = ImprovementCycleStatus(
        baseline=ScoreDigest(
            overall=0.4, capabilities={"counterfactual": 1 / 3, "factual_recall": 0.5},
            capability_items=counts,
        ),
        candidate=ScoreDigest(
            overall=0.6, capabilities={"counterfactual": 0.0, "factual_recall": 0.75},
            capability_items=counts,
        ),
    )  # fmt: skip
    lines = render_report(status).splitlines()
    assert "capability       items  before   after   change" in lines
    assert "counterfactual       3   33.3%    0.0%    -33.3" in lines
    assert "factual_recall      64   50.0%   75.0%    +25.0" in lines
    assert "(one item of n moves a capability by 100/n points)" in lines


def test_the_report_says_when_a_domain_was_analysed_on_test_items() -> None:
    status = ImprovementCycleStatus(
        baseline=ScoreDigest(overall=0.2, domains={"lone": 0.2}),
        plan=PlanDigest(priority_domains=[], fallback_domains=["lone"]),
    )
    assert "(no dev items in lone: analysed on the gate's test items there and not trained" in (
        render_report(status)
    )


def test_both_reports_say_where_a_routed_candidate_sent_the_dev_items(tmp_path) -> None:
    from pathlib import Path

    from kaizen.api import CombinationDigest
    from kaizen.api.artifacts import CombinationReport, write_artifact
    from kaizen.local.report import combination_table
    from kaizen.report.cycle import _combination
    from kaizen.report.inputs import CycleInputs
    from tests.api.artifact_samples import SAMPLES

    report = CombinationReport.model_validate(SAMPLES[CombinationReport]())
    path = write_artifact(Path(tmp_path) / "combination.json", report)
    status = ImprovementCycleStatus(
        phase=Phase.SUCCEEDED,
        combination=CombinationDigest(
            path="/a/combine/adapter", chosen="joint", candidates=4, report_path=str(path),
            retention={"zep": 1.0}, min_retention=1.0, target=0.9, target_met=True,
        ),
    )  # fmt: skip
    lines = combination_table(status)
    assert (
        "(routed: dev items through their own route: geo 100.0%, zep 40.0%; "
        "untrained domains' items through a route: sci 0.0%)"
    ) in lines
    assert not any(line.startswith("(ties") for line in lines)
    html = "".join(
        _combination(CycleInputs(directory=Path(tmp_path), name="c", combination=report))
    )
    assert "through their own domain's route: geo 100.0%, zep 40.0%" in html


def test_the_generation_line_says_when_the_candidate_is_routed() -> None:
    from kaizen.api import CombinationDigest

    def status(chosen: str) -> ImprovementCycleStatus:
        return ImprovementCycleStatus(
            phase=Phase.SUCCEEDED,
            baseline=ScoreDigest(overall=0.4, domains={"z": 0.0}, tokens_per_second=190.0,
                                 peak_memory_mb=1361.0),
            candidate=ScoreDigest(overall=0.8, domains={"z": 1.0}, tokens_per_second=63.0,
                                  peak_memory_mb=1260.0),
            combination=CombinationDigest(path="/a", chosen=chosen, candidates=2,
                                          retention={"z": 1.0}, min_retention=1.0, target=0.9,
                                          target_met=True),
        )  # fmt: skip

    routed = render_report(status("routed-ties"))
    assert "candidate 63.0 tokens/s, 1260 MiB (routed adapters, unmerged" in routed
    assert "(adapters merged into the weights)" in render_report(status("ties"))
