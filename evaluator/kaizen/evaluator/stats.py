"""Confidence intervals and paired tests for evaluation scores, in pure Python.

Binary scores (every item 0 or 1) get closed-form or exact methods: the Wilson interval
for a proportion and the exact McNemar test for paired right/wrong outcomes. Other scores
(token-F1, partial credit) get the percentile bootstrap and a paired sign-flip permutation
test. Every resampling method takes a seed, so the same results always give the same
report; `holm` adjusts a family of p-values (one per domain) for multiple comparisons.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

#: Resamples for bootstrap intervals and random permutations (Monte Carlo error of a 95%
#: bound is about ±0.005 on a [0, 1] score at this count).
RESAMPLES = 2000
#: Seed of every resampling method unless the caller gives one.
SEED = 20240611
#: z for a two-sided 95% interval.
Z95 = 1.959963984540054
#: Up to this many non-zero paired differences, the permutation test enumerates every sign.
EXACT_PERMUTATION_MAX = 16


def is_binary(scores: Sequence[float]) -> bool:
    """True when every score is exactly 0 or 1."""
    return all(s in (0.0, 1.0) for s in scores)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (good at small n and near 0 or 1)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 1]) of already sorted values."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def bootstrap_interval(
    scores: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of `scores`."""
    n = len(scores)
    if n == 0:
        return (0.0, 1.0)
    if len(set(scores)) == 1:
        return (scores[0], scores[0])
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(resamples))
    return (_percentile(means, 0.025), _percentile(means, 0.975))


def mean_interval(scores: Sequence[float], *, seed: int = SEED) -> tuple[tuple[float, float], str]:
    """(95% interval of the mean, method): Wilson for binary scores, bootstrap otherwise."""
    if is_binary(scores):
        return wilson_interval(sum(1 for s in scores if s == 1.0), len(scores)), "wilson"
    return bootstrap_interval(scores, seed=seed), "bootstrap"


def macro_interval(
    groups: Mapping[str, Sequence[float]], *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Stratified bootstrap 95% interval of the macro average (the mean of group means).

    Each group is resampled within itself, so every resample has every group at its size.
    """
    lists = [list(v) for v in groups.values() if v]
    if not lists:
        return (0.0, 1.0)
    rng = random.Random(seed)
    macros = []
    for _ in range(resamples):
        macros.append(sum(sum(rng.choices(v, k=len(v))) / len(v) for v in lists) / len(lists))
    macros.sort()
    return (_percentile(macros, 0.025), _percentile(macros, 0.975))


def paired_bootstrap_interval(
    before: Sequence[float],
    after: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Paired percentile bootstrap 95% interval of mean(after) - mean(before).

    Items are resampled as pairs, so the interval reflects that both models answered the
    same questions (much narrower than two independent intervals when the models agree).
    """
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    differences = [a - b for b, a in zip(before, after, strict=True)]
    n = len(differences)
    if n == 0:
        return (0.0, 0.0)
    if len(set(differences)) == 1:
        return (differences[0], differences[0])
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(differences, k=n)) / n for _ in range(resamples))
    return (_percentile(means, 0.025), _percentile(means, 0.975))


def mcnemar_exact(improved: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts (1.0 when there are none).

    Under the null hypothesis each discordant pair is equally likely to go either way, so the
    smaller count is Binomial(n, 1/2); the two-sided p-value doubles its lower tail.
    """
    if improved < 0 or regressed < 0:
        raise ValueError("discordant counts cannot be negative")
    n = improved + regressed
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(improved, regressed) + 1))
    return min(1.0, float(2 * tail / 2**n))


def sign_test_worse(improved: int, regressed: int) -> float:
    """One-sided exact p-value that a candidate is worse, from the items it improved and the
    items it regressed (1.0 when there are none): under the null hypothesis each changed item
    is equally likely to go either way, so this is P(Binomial(n, 1/2) <= improved)."""
    if improved < 0 or regressed < 0:
        raise ValueError("discordant counts cannot be negative")
    n = improved + regressed
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, i) for i in range(improved + 1)) / 2**n)


def paired_permutation_test(
    before: Sequence[float],
    after: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> float:
    """Two-sided paired sign-flip permutation p-value for mean(after) - mean(before).

    Under the null hypothesis the two scores of an item are exchangeable, so each
    difference is equally likely to have either sign. With few non-zero differences every
    sign pattern is enumerated (exact); otherwise `resamples` random patterns are drawn and
    the p-value is (hits + 1) / (resamples + 1), which is never 0.
    """
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    differences = [a - b for b, a in zip(before, after, strict=True) if a != b]
    if not differences:
        return 1.0
    observed = abs(sum(differences))
    # A small tolerance so that patterns equal to the observed sum count despite float noise.
    tolerance = 1e-9 * max(1.0, observed)
    if len(differences) <= EXACT_PERMUTATION_MAX:
        hits = 0
        total = 1 << len(differences)
        for mask in range(total):
            flipped = sum(-d if mask >> i & 1 else d for i, d in enumerate(differences))
            hits += abs(flipped) >= observed - tolerance
        return hits / total
    rng = random.Random(seed)
    hits = 0
    for _ in range(resamples):
        flipped = sum(d if rng.random() < 0.5 else -d for d in differences)
        hits += abs(flipped) >= observed - tolerance
    return (hits + 1) / (resamples + 1)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (controls the family-wise error rate), same keys.

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by m - i, and adjusted
    values are made non-decreasing in that order and capped at 1.
    """
    ordered = sorted(p_values.items(), key=lambda kv: (kv[1], kv[0]))
    m = len(ordered)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * p))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}
