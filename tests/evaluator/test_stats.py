"""Confidence intervals and paired tests against values computed by hand or by scipy."""

from __future__ import annotations

import math

import pytest

from kaizen.evaluator.evaluate import aggregate, overall_scores
from kaizen.evaluator.stats import (
    Z95,
    bootstrap_interval,
    holm,
    is_binary,
    macro_interval,
    mcnemar_exact,
    mean_interval,
    paired_bootstrap_interval,
    paired_permutation_test,
    wilson_interval,
)
from tests.evaluator.results_factory import domain_records


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # By hand: p = 0.5 is symmetric; at 0 successes the upper bound is z^2 / (n + z^2).
        (5, 10, 0.2365930, 0.7634070),
        (0, 10, 0.0, Z95**2 / (10 + Z95**2)),
        (10, 10, 10 / (10 + Z95**2), 1.0),
    ],
)
def test_wilson_interval_matches_closed_forms(
    successes: int, n: int, low: float, high: float
) -> None:
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize(("successes", "n"), [(1, 40), (81, 100), (17, 23), (399, 400)])
def test_wilson_bounds_are_where_the_score_test_is_exactly_z(successes: int, n: int) -> None:
    # The Wilson interval is {p0 : |p_hat - p0| <= z * sqrt(p0 (1 - p0) / n)}: each bound
    # inside (0, 1) solves the equality.
    p_hat = successes / n
    for bound in wilson_interval(successes, n):
        if 0.0 < bound < 1.0:
            assert abs(p_hat - bound) == pytest.approx(
                Z95 * math.sqrt(bound * (1 - bound) / n), rel=1e-9
            )
    low, high = wilson_interval(successes, n)
    assert low < p_hat < high


def test_wilson_interval_edge_cases() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_mean_interval_picks_wilson_for_binary_and_bootstrap_otherwise() -> None:
    assert mean_interval([1.0, 0.0, 1.0, 1.0])[1] == "wilson"
    interval, method = mean_interval([0.2, 0.5, 0.9, 0.4, 0.7])
    assert method == "bootstrap"
    assert 0.2 <= interval[0] < 0.54 < interval[1] <= 0.9
    assert is_binary([0, 1.0]) and not is_binary([0.5])


def test_bootstrap_is_seeded_and_degenerate_samples_have_zero_width() -> None:
    scores = [0.1 * i for i in range(11)]
    assert bootstrap_interval(scores, seed=1) == bootstrap_interval(scores, seed=1)
    assert bootstrap_interval(scores, seed=1) != bootstrap_interval(scores, seed=2)
    assert bootstrap_interval([0.4, 0.4, 0.4]) == (0.4, 0.4)
    # A bootstrap interval of a mean shrinks roughly with 1/sqrt(n).
    small = bootstrap_interval(scores)
    large = bootstrap_interval(scores * 16)
    assert (large[1] - large[0]) < 0.4 * (small[1] - small[0])


def test_macro_interval_covers_the_macro_average() -> None:
    groups = {"a": [1.0] * 10, "b": [0.0, 1.0] * 5}
    low, high = macro_interval(groups)
    assert low < 0.75 < high and low >= 0.5 and high <= 1.0


@pytest.mark.parametrize(
    ("improved", "regressed", "p"),
    [(9, 1, 0.021484375), (0, 0, 1.0), (5, 5, 1.0), (20, 0, 2 / 2**20)],
)
def test_mcnemar_exact(improved: int, regressed: int, p: float) -> None:
    assert mcnemar_exact(improved, regressed) == pytest.approx(p, rel=1e-12)


def test_paired_permutation_exact_small_case() -> None:
    # Differences +1, +1, +1: of 8 sign patterns, only all-plus and all-minus reach |3|.
    assert paired_permutation_test([0, 0, 0, 5], [1, 1, 1, 5]) == pytest.approx(2 / 8)
    # Identical scores: no evidence at all.
    assert paired_permutation_test([0.3, 0.4], [0.3, 0.4]) == 1.0
    # Partial credit: differences 0.5, 0.5, -0.25 -> sums with |s| >= 0.75: (+,+,-), (-,-,+),
    # (+,+,+), (-,-,-) -> 4 of 8.
    assert paired_permutation_test([0, 0, 0.75], [0.5, 0.5, 0.5]) == pytest.approx(0.5)


def test_paired_permutation_agrees_with_mcnemar_on_binary_data() -> None:
    before = [0.0] * 30 + [1.0] * 10
    after = [1.0] * 25 + [0.0] * 5 + [1.0] * 10
    p_perm = paired_permutation_test(before, after, resamples=20000)
    p_mcnemar = mcnemar_exact(25, 5)
    assert p_perm == pytest.approx(p_mcnemar, abs=0.002)
    assert p_perm > 0


def test_paired_bootstrap_interval() -> None:
    before = [0.0, 1.0] * 20
    after = [1.0, 1.0] * 20
    low, high = paired_bootstrap_interval(before, after)
    assert 0.3 < low < 0.5 < high < 0.7
    assert paired_bootstrap_interval([1.0, 0.0], [1.0, 0.0]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap_interval([1.0], [1.0, 0.0])


def test_holm_against_hand_computed_values() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # Sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5.
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert list(adjusted) == ["a", "b", "c", "d"]
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
    assert holm({}) == {}


def test_aggregate_and_overall_carry_intervals() -> None:
    records = domain_records("geo", [1.0, 1.0, 0.0, 1.0]) + domain_records("sci", [0.0, 0.0])
    table = aggregate(records, "domain")
    assert table["geo"]["ci95"] == pytest.approx(list(wilson_interval(3, 4)), abs=1e-6)
    assert table["geo"]["ci_method"] == "wilson" and table["sci"]["n"] == 2
    overall = overall_scores(records)
    assert overall["micro"] == pytest.approx(0.5)
    assert overall["macro"] == pytest.approx(0.375)
    assert overall["micro_ci95"][0] < 0.5 < overall["micro_ci95"][1]
    assert overall["macro_ci95"][0] <= 0.375 <= overall["macro_ci95"][1]
    assert not math.isnan(overall["macro_ci95"][0])
