"""Validation: the exact McNemar test, the verdict table and the pairing of identical items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import encode_summary
from kaizen.evaluator.validate import Gates, compare, mcnemar_exact, validate_step
from kaizen.runtime.tracking import TrackingOptions
from tests.evaluator.results_factory import domain_records, results

PATHS = (Path("b/results.json"), Path("c/results.json"))


@pytest.mark.parametrize(
    ("improved", "regressed", "p"),
    [
        (9, 1, 0.021484375),  # 2 * (1 + 10) / 1024
        (1, 9, 0.021484375),  # symmetric
        (0, 0, 1.0),  # no discordant pairs: no evidence either way
        (5, 5, 1.0),  # the doubled tail exceeds 1 and is capped
        (6, 0, 0.03125),  # 2 / 64
        (5, 0, 0.0625),
        (10, 2, 0.0385742188),  # 2 * (1 + 12 + 66) / 4096
        (20, 0, 2 / 2**20),
    ],
)
def test_mcnemar_exact_against_known_values(improved: int, regressed: int, p: float) -> None:
    assert mcnemar_exact(improved, regressed) == pytest.approx(p, rel=1e-8)


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


STRICT = Gates(
    min_improvement=0.0, max_regression=0.1, significance=0.05, require_significance=True
)
LOOSE = Gates(
    min_improvement=0.0, max_regression=0.1, significance=0.05, require_significance=False
)


def test_compare_pairs_items_and_lists_flips() -> None:
    baseline = results(domain_records("geo", [1, 1, 1, 1]) + domain_records("zep", [0] * 10))
    candidate = results(domain_records("geo", [1, 1, 1, 0]) + domain_records("zep", [1] * 9 + [0]))
    report = compare(baseline, candidate, STRICT, PATHS)
    assert report["improved_items"] == [f"zep-{i}" for i in range(9)]
    assert report["regressed_items"] == ["geo-3"]
    assert report["mcnemar"] == {
        "improved": 9,
        "regressed": 1,
        "p_value": pytest.approx(0.021484375),
    }
    assert report["overall_delta"] == pytest.approx(8 / 14)
    assert report["domains"]["geo"]["delta"] == -0.25
    assert report["domains"]["zep"]["delta"] == pytest.approx(0.9)
    # geo dropped by 0.25 > 0.1, but that is one item of four (Holm p = 1): noise, reported
    # as an unconfirmed drop, not a regression; the significant gain is promoted.
    assert (report["regressions"], report["unconfirmed_drops"]) == ([], ["geo"])
    assert report["verdict"] == "Promote"
    assert "not significant: geo" in report["reasons"][1]
    tolerant = compare(baseline, candidate, Gates(max_regression=0.3), PATHS)
    assert (tolerant["regressions"], tolerant["unconfirmed_drops"]) == ([], [])


def test_a_significant_drop_beyond_the_limit_is_a_regression_and_rejects() -> None:
    # geo: all 10 right items go wrong (McNemar p = 2/1024); Holm over two domains keeps the
    # larger p as it is, so the drop is significant, and it blocks the significant gain.
    baseline = results(domain_records("geo", [1] * 10) + domain_records("zep", [0] * 40))
    candidate = results(domain_records("geo", [0] * 10) + domain_records("zep", [1] * 40))
    report = compare(baseline, candidate, STRICT, PATHS)
    geo = report["domains"]["geo"]
    assert geo["p_value"] == pytest.approx(mcnemar_exact(0, 10))
    assert geo["p_holm"] < 0.05 and geo["delta"] == -1.0
    assert report["regressions"] == ["geo"] and report["unconfirmed_drops"] == []
    assert report["mcnemar"]["p_value"] < 0.05 and report["overall_delta"] > 0
    assert report["verdict"] == "Reject"


def test_different_suites_cannot_be_compared() -> None:
    baseline = results(domain_records("geo", [1, 0]), digest="sha256:one")
    candidate = results(domain_records("geo", [1, 1]), digest="sha256:two")
    with pytest.raises(ConfigurationError, match="did not use identical items"):
        compare(baseline, candidate, STRICT, PATHS)


def test_different_items_cannot_be_compared() -> None:
    baseline = results(domain_records("geo", [1, 0, 1]))
    candidate = results(domain_records("geo", [1, 1]))
    with pytest.raises(ConfigurationError, match=r"missing \['geo-2'\]"):
        compare(baseline, candidate, STRICT, PATHS)


def test_bad_gates_are_configuration_errors() -> None:
    data = results(domain_records("geo", [1]))
    with pytest.raises(ConfigurationError, match="significance"):
        compare(data, data, Gates(significance=0.0), PATHS)


def test_validate_step_writes_report_and_a_summary_under_4k(tmp_path: Path) -> None:
    many = [f"a_rather_long_domain_name_{i:03d}" for i in range(200)]
    base = results([r for d in many for r in domain_records(d, [0, 1])])
    cand = results([r for d in many for r in domain_records(d, [1, 1])])
    (tmp_path / "b.json").write_text(json.dumps(base))
    (tmp_path / "c.json").write_text(json.dumps(cand))
    summary = validate_step(
        tmp_path / "b.json",
        tmp_path / "c.json",
        tmp_path / "out",
        step="validate",
        gates=STRICT,
        tracking=TrackingOptions(mode="disabled"),
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary.validation is not None
    assert summary.validation.verdict == "Promote" == report["verdict"]
    assert summary.validation.improved_items == 200 and summary.validation.p_value < 1e-6
    assert len(encode_summary(summary)) < 4096
    # 200 domains do not fit a termination message; report.json keeps them all.
    assert 0 < len(summary.validation.domain_deltas) < 200 == len(report["domains"])


def test_report_has_per_domain_intervals_tests_holm_and_flips() -> None:
    baseline = results(domain_records("geo", [1, 1, 1, 1]) + domain_records("zep", [0] * 10))
    candidate = results(domain_records("geo", [1, 1, 1, 0]) + domain_records("zep", [1] * 9 + [0]))
    report = compare(baseline, candidate, STRICT, PATHS)
    zep, geo = report["domains"]["zep"], report["domains"]["geo"]
    assert zep["test"] == geo["test"] == "mcnemar_exact"
    assert zep["p_value"] == pytest.approx(mcnemar_exact(9, 0))
    assert geo["p_value"] == 1.0
    # Holm over two domains: the smaller p doubles, the larger stays (capped at 1).
    assert zep["p_holm"] == pytest.approx(2 * zep["p_value"]) and geo["p_holm"] == 1.0
    assert zep["delta_ci95"][0] > 0.6 and zep["delta_ci95"][1] <= 1.0
    assert geo["delta_ci95"][0] < 0 <= geo["delta_ci95"][1] + 1e-12
    assert zep["improved_items"] == [f"zep-{i}" for i in range(9)] and zep["regressed_items"] == []
    assert geo["regressed_items"] == ["geo-3"]
    assert report["overall"]["test"] == "mcnemar_exact"
    assert report["capabilities"]["factual_recall"]["n"] == 14
    # Seeded: the same inputs give the same report.
    assert compare(baseline, candidate, STRICT, PATHS) == report


def test_non_binary_scores_use_the_paired_permutation_test() -> None:
    baseline = results(domain_records("qa", [0.2, 0.4, 0.5, 0.0, 0.6, 0.3]))
    candidate = results(domain_records("qa", [0.6, 0.9, 0.5, 0.5, 0.7, 0.8]))
    report = compare(baseline, candidate, LOOSE, PATHS)
    qa = report["domains"]["qa"]
    assert qa["test"] == "paired_permutation" == report["overall"]["test"]
    # Five positive non-zero differences: only the all-plus and all-minus patterns reach the
    # observed sum, 2 of 32.
    assert qa["p_value"] == pytest.approx(2 / 32)
    assert qa["delta"] == pytest.approx(2.0 / 6)
    assert 0 < qa["delta_ci95"][0] < qa["delta"] < qa["delta_ci95"][1]
