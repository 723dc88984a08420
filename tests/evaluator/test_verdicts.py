"""Honest verdicts: the minimum detectable effect, Holm's correction and the decision table."""

from __future__ import annotations

import math

import pytest

from kaizen.evaluator.gates import Gates, decide, lm_eval_gate, performance_gate
from kaizen.evaluator.power import (
    EXACT_MAX_ITEMS,
    PowerAnalysis,
    analyse_power,
    critical_count,
    exact_power,
    min_significant_items,
    minimum_detectable_effect,
    normal_power,
    power_at,
)
from kaizen.evaluator.stats import holm, mcnemar_exact
from kaizen.evaluator.validate import compare
from tests.evaluator.results_factory import domain_records, results

# -- the exact test's critical counts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("m", "alpha", "c"),
    [
        (5, 0.05, -1),  # 5 flips all one way: p = 2/32 = 0.0625, never significant
        (6, 0.05, 0),  # 2/64 = 0.03125
        (10, 0.05, 1),  # min count 1: 2 * 11/1024 = 0.0215; 2: 2 * 56/1024 = 0.109
        (20, 0.05, 5),  # 2 * P(Bin(20, 1/2) <= 5) = 0.0414; <= 6: 0.115
        (9, 0.01, 0),  # 2/512 = 0.0039; 1: 2 * 10/512 = 0.039
    ],
)
def test_critical_count_is_where_the_exact_test_starts_to_reject(
    m: int, alpha: float, c: int
) -> None:
    assert critical_count(m, alpha) == c
    if c >= 0:
        assert mcnemar_exact(m - c, c) < alpha <= mcnemar_exact(m - c - 1, c + 1)


@pytest.mark.parametrize(("alpha", "m"), [(0.05, 6), (0.01, 8), (0.1, 5), (0.001, 11)])
def test_fewest_significant_items(alpha: float, m: int) -> None:
    assert min_significant_items(alpha) == m
    assert mcnemar_exact(m, 0) < alpha <= mcnemar_exact(m - 1, 0)


# -- power and the minimum detectable effect --------------------------------------------------


def test_exact_power_when_nothing_can_break_is_the_chance_of_enough_flips() -> None:
    # psi = delta: every discordant item is an improvement, so the test rejects exactly when at
    # least 6 items flip (alpha 0.05): P(Binomial(50, 0.1) >= 6).
    n, delta = 50, 0.1
    expected = sum(math.comb(n, k) * delta**k * (1 - delta) ** (n - k) for k in range(6, n + 1))
    assert exact_power(n, delta, delta, 0.05) == pytest.approx(expected, rel=1e-9)


def test_exact_power_by_brute_force_on_a_small_suite() -> None:
    # Enumerate every (improved, regressed) count of a 12-item suite under the trinomial.
    n, psi, delta, alpha = 12, 0.5, 0.3, 0.05
    p01, p10 = (psi + delta) / 2, (psi - delta) / 2
    brute = 0.0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            if b > c and mcnemar_exact(b, c) < alpha:
                weight = math.factorial(n) / (
                    math.factorial(b) * math.factorial(c) * math.factorial(n - b - c)
                )
                brute += weight * p01**b * p10**c * (1 - psi) ** (n - b - c)
    assert exact_power(n, psi, delta, alpha) == pytest.approx(brute, rel=1e-9)


@pytest.mark.parametrize(
    ("n", "psi", "delta"), [(2000, 0.2, 0.03), (2000, 0.2, 0.04), (1500, 0.1, 0.025)]
)
def test_connor_agrees_with_the_exact_power_on_large_suites(
    n: int, psi: float, delta: float
) -> None:
    assert normal_power(n, psi, delta, 0.05) == pytest.approx(
        exact_power(n, psi, delta, 0.05), abs=0.015
    )


def test_connor_closed_form_sample_size() -> None:
    # Connor (1987): n = (z_{a/2} sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2 gives power
    # 1 - beta exactly under the approximation.
    z_a, z_b, psi, delta = 1.959963984540054, 0.8416212335729143, 0.2, 0.05
    n = (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - delta**2)) ** 2 / delta**2
    assert normal_power(round(n), psi, delta, 0.05) == pytest.approx(0.8, abs=0.002)


@pytest.mark.parametrize(
    ("n", "discordant", "mde", "floor"),
    [
        # A 50-item suite: even if nothing breaks, 15 points are needed at 80% power.
        (50, 0, 0.1536, 0.1536),
        (50, 10, 0.1758, 0.1536),
        (100, 10, 0.0884, 0.0779),
        (500, 100, 0.0575, 0.0158),
        (1000, 100, 0.0287, 0.0079),
        (2000, 400, 0.0284, 0.0040),
        (10000, 3000, 0.0154, 0.0008),  # Connor's approximation above 2,000 items
    ],
)
def test_minimum_detectable_effect_table(n: int, discordant: int, mde: float, floor: float) -> None:
    analysis = analyse_power(n, discordant, alpha=0.05, power=0.8)
    assert (analysis.mde, analysis.floor) == (
        pytest.approx(mde, abs=2e-4),
        pytest.approx(floor, abs=2e-4),
    )
    assert analysis.method == ("exact" if n <= EXACT_MAX_ITEMS else "normal")
    # The MDE is where the power crosses 80%.
    assert power_at(n, discordant / n, analysis.mde, 0.05)[0] >= 0.8
    assert power_at(n, discordant / n, analysis.mde - 0.002, 0.05)[0] < 0.8


def test_the_mde_shrinks_with_items_and_grows_with_power_and_strictness() -> None:
    base = minimum_detectable_effect(400, 0.1, alpha=0.05, power=0.8)
    assert base is not None
    assert minimum_detectable_effect(1600, 0.1, alpha=0.05, power=0.8) < base  # type: ignore[operator]
    assert minimum_detectable_effect(400, 0.1, alpha=0.05, power=0.95) > base  # type: ignore[operator]
    assert minimum_detectable_effect(400, 0.1, alpha=0.01, power=0.8) > base  # type: ignore[operator]


def test_a_suite_too_small_for_any_significance_has_no_mde() -> None:
    analysis = analyse_power(5, 5, alpha=0.05, power=0.8)
    assert analysis.mde is None and analysis.floor is None
    assert analysis.min_significant_items == 6


def test_power_needs_a_power_strictly_between_0_and_1() -> None:
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(100, 0.1, alpha=0.05, power=1.0)


# -- Holm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_values", "adjusted"),
    [
        ({"a": 0.01, "b": 0.04, "c": 0.03}, {"a": 0.03, "b": 0.06, "c": 0.06}),
        ({"a": 0.5}, {"a": 0.5}),
        ({"a": 0.2, "b": 0.9}, {"a": 0.4, "b": 0.9}),
        ({"a": 0.6, "b": 0.7}, {"a": 1.0, "b": 1.0}),
        ({"x": 0.001, "y": 0.001}, {"x": 0.002, "y": 0.002}),
    ],
)
def test_holm_table(p_values: dict[str, float], adjusted: dict[str, float]) -> None:
    assert holm(p_values) == pytest.approx(adjusted)


# -- the decision table -----------------------------------------------------------------------


def _power(mde: float | None, n: int = 100) -> PowerAnalysis:
    return PowerAnalysis(
        n=n,
        alpha=0.05,
        power=0.8,
        discordance=0.1,
        method="exact",
        mde=mde,
        floor=mde,
        min_significant_items=6,
    )


SMALL, LARGE = _power(0.2, n=50), _power(0.03, n=2000)
STRICT, LOOSE = Gates(), Gates(require_significance=False)


@pytest.mark.parametrize(
    ("delta", "p", "regressions", "power", "gates", "blockers", "verdict"),
    [
        (0.2, 0.01, [], SMALL, STRICT, [], "Promote"),  # significant gain, whatever the MDE
        (0.2, 0.2, [], SMALL, STRICT, [], "Inconclusive"),  # not significant, suite too small
        (0.2, 0.2, [], LARGE, STRICT, [], "Reject"),  # not significant, suite big enough
        (-0.1, 0.3, [], SMALL, STRICT, [], "Inconclusive"),  # a small suite cannot tell either way
        (-0.1, 0.01, [], SMALL, STRICT, [], "Reject"),  # significantly worse
        (0.2, 0.2, [], SMALL, LOOSE, [], "Promote"),  # significance not required: no Inconclusive
        (0.0, 0.2, [], SMALL, LOOSE, [], "Reject"),  # must exceed the minimum, not equal it
        (0.2, 0.01, ["geo"], SMALL, STRICT, [], "Reject"),  # a significant regression blocks
        (0.2, 0.2, ["geo"], SMALL, STRICT, [], "Reject"),  # ... before Inconclusive is considered
        (0.2, 0.01, [], LARGE, STRICT, ["slower"], "Reject"),  # any other failed gate blocks
        (0.2, 0.01, [], _power(None, n=5), STRICT, [], "Promote"),
        (0.2, 0.5, [], _power(None, n=5), STRICT, [], "Inconclusive"),  # no MDE at all
        (0.04, 0.01, [], LARGE, Gates(min_improvement=0.05), [], "Reject"),
        (0.06, 0.01, [], LARGE, Gates(min_improvement=0.05), [], "Promote"),
        (0.2, 0.05, [], LARGE, STRICT, [], "Reject"),  # p must be strictly below the level
        # The target is the larger of targetImprovement and minImprovement: an MDE of 0.03
        # cannot back a 0.02 target, so the null result is Inconclusive.
        (0.01, 0.3, [], LARGE, Gates(target_improvement=0.02), [], "Inconclusive"),
        (0.01, 0.3, [], LARGE, Gates(target_improvement=0.02, min_improvement=0.04), [], "Reject"),
    ],
)
def test_verdict_table(
    delta: float,
    p: float,
    regressions: list[str],
    power: PowerAnalysis,
    gates: Gates,
    blockers: list[str],
    verdict: str,
) -> None:
    decided, reasons = decide(delta, p, regressions, gates, power=power, blockers=blockers)
    assert decided == verdict
    assert len(reasons) == 4 + len(blockers)


def test_reasons_explain_each_gate_with_significant_digits() -> None:
    _, reasons = decide(0.2, 1.7e-08, ["geo"], STRICT, power=LARGE)
    assert "exceeds the minimum improvement" in reasons[0]
    assert "significant regressions beyond 0.1000 (Holm-adjusted) in: geo" in reasons[1]
    assert "p=1.7e-08 is significant at 0.05 (required)" in reasons[2]
    assert "can detect +0.0500 with 80% power: minimum detectable effect 0.0300" in reasons[3]
    _, reasons = decide(0.02, 0.5, [], STRICT, power=SMALL, unconfirmed=["zep"])
    assert "(not significant: zep)" in reasons[1]
    assert "cannot detect +0.0500" in reasons[3]


# -- speed, memory and lm-eval gates -----------------------------------------------------------


def _perf(speed: float, memory: float) -> dict[str, float]:
    return {"tokens_per_second": speed, "peak_memory_mib": memory}


@pytest.mark.parametrize(
    ("gates", "after", "blocked"),
    [
        (Gates(), _perf(50, 4000), 0),  # no gate configured: measured, never blocking
        (Gates(max_slowdown=0.2), _perf(85, 1000), 0),  # 15% slower, 20% allowed
        (Gates(max_slowdown=0.2), _perf(70, 1000), 1),  # 30% slower
        (Gates(max_memory_increase=0.1), _perf(100, 1050), 0),
        (Gates(max_memory_increase=0.1), _perf(100, 1200), 1),
        (Gates(max_slowdown=0.1, max_memory_increase=0.1), _perf(50, 2000), 2),
    ],
)
def test_performance_gate(gates: Gates, after: dict[str, float], blocked: int) -> None:
    record, blockers, _ = performance_gate(_perf(100, 1000), after, gates)
    assert record is not None and len(blockers) == blocked and record["passed"] == (blocked == 0)
    assert record["slowdown"] == pytest.approx(1 - after["tokens_per_second"] / 100)


def _task(score: float, stderr: float | None) -> dict[str, object]:
    return {"score": score, "n": 100, "metric": "acc", "stderr": stderr, "source": "lm-eval"}


@pytest.mark.parametrize(
    ("gates", "before", "after", "blocked"),
    [
        (Gates(), _task(0.5, 0.05), _task(0.2, 0.05), False),  # report-only without gates
        # A 0.1 drop against errors of 0.05 each (z = 1.41, p = 0.16): not significant.
        (Gates(lm_eval_max_drop=0.05), _task(0.5, 0.05), _task(0.4, 0.05), False),
        (Gates(lm_eval_max_drop=0.05), _task(0.5, 0.01), _task(0.4, 0.01), True),
        (Gates(lm_eval_max_drop=0.05), _task(0.5, None), _task(0.4, None), True),  # no error
        (Gates(lm_eval_min_scores={"arc": 0.45}), _task(0.5, 0.01), _task(0.44, 0.01), True),
        (Gates(lm_eval_min_scores={"arc": 0.45}), _task(0.4, 0.01), _task(0.46, 0.01), False),
    ],
)
def test_lm_eval_gate(
    gates: Gates, before: dict[str, object], after: dict[str, object], blocked: bool
) -> None:
    table, blockers, _ = lm_eval_gate({"lmeval:arc": before}, {"lmeval:arc": after}, gates)
    assert bool(blockers) == blocked and table["arc"]["passed"] == (not blocked)


def test_a_floor_on_a_task_that_was_not_run_is_a_configuration_error() -> None:
    from kaizen.api.runner import ConfigurationError

    with pytest.raises(ConfigurationError, match="--lm-eval-min-score: task.*hellaswag"):
        lm_eval_gate(
            {}, {"lmeval:arc": _task(0.5, None)}, Gates(lm_eval_min_scores={"hellaswag": 0.3})
        )


# -- the reference model ------------------------------------------------------------------------


def test_the_candidate_must_not_be_worse_than_the_reference() -> None:
    # Against its own baseline the candidate gained a lot, but a reference (an earlier
    # promoted version) knew geo, which the candidate lost.
    from pathlib import Path

    paths = (Path("b/results.json"), Path("c/results.json"))
    baseline = results(domain_records("geo", [0] * 12) + domain_records("zep", [0] * 12))
    candidate = results(domain_records("geo", [0] * 12) + domain_records("zep", [1] * 12))
    reference = results(domain_records("geo", [1] * 12) + domain_records("zep", [0] * 12))
    alone = compare(baseline, candidate, STRICT, paths)
    assert alone["verdict"] == "Promote" and alone["reference"] is None
    report = compare(
        baseline, candidate, STRICT, paths, reference=(reference, Path("r.json"), "v3")
    )
    assert report["reference"]["name"] == "v3"
    assert report["reference"]["regressions"] == ["geo"]
    assert report["reference"]["overall"]["delta"] == 0.0
    assert report["verdict"] == "Reject"
    assert any("against v3: significant regressions" in r for r in report["reasons"])


@pytest.mark.parametrize("entry", ["arc", "arc=", "=0.5", "arc=1.5", "arc=high"])
def test_a_malformed_lm_eval_floor_names_the_flag(entry: str) -> None:
    from kaizen.api.args import StepUsageError, ValidateArgs

    argv = ["validate", "--baseline", "b", "--candidate", "c", "--output", "o"]
    with pytest.raises(StepUsageError, match="--lm-eval-min-score: .*expected TASK=SCORE"):
        ValidateArgs.from_argv([*argv, "--lm-eval-min-score", entry])
    ok = ValidateArgs.from_argv([*argv, "--lm-eval-min-score", "arc_easy=0.4"])
    assert ok.min_scores() == {"arc_easy": 0.4}
