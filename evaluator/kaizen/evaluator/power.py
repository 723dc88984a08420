"""Power of the paired design: how large an overall improvement a suite can detect.

The promotion gate tests the overall change with the exact two-sided McNemar test on
per-item correctness (`stats.mcnemar_exact`). For n paired items, a discordance rate psi (the
share of items whose correctness changes) and an improvement delta = p01 - p10 (wrong->right
minus right->wrong), the number of discordant items is Binomial(n, psi) and, given m of them,
the improvements are Binomial(m, (psi + delta) / (2 psi)). The power is the probability that
the test rejects at level alpha *in the direction of improvement*:

- **exact** (n <= `EXACT_MAX_ITEMS`): the sum over m of P(m) times the upper-tail probability
  beyond the test's critical count at m (the unconditional power of the exact conditional
  test, as in Lachenbruch 1992, Stat Med 11:1521-1525);
- **normal** (larger suites): Connor's approximation (Connor 1987, Biometrics 43:207-211),
  power = Phi((sqrt(n) delta - z_{1-alpha/2} sqrt(psi)) / sqrt(psi - delta^2)).

The minimum detectable effect (MDE) is the smallest delta whose power reaches the target.
psi is a nuisance parameter: the observed discordance of the candidate is used, but never
less than delta itself (an improvement of delta flips at least a share delta of the items),
which also gives the suite's best case: the MDE when the candidate breaks nothing (`floor`).
The observed *effect* is never used, so this is not "observed power".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

#: Up to this many paired items the power is computed exactly; above, Connor's approximation.
EXACT_MAX_ITEMS = 2000
#: The MDE is found to this precision (a score difference on the 0-1 scale).
MDE_TOLERANCE = 1e-4

_NORMAL = NormalDist()


@dataclass(frozen=True)
class PowerAnalysis:
    """How large an overall improvement the suite can detect, and how that was computed."""

    n: int
    """Paired items."""
    alpha: float
    """Two-sided level of the test."""
    power: float
    """Target power."""
    discordance: float
    """Observed share of items whose correctness changed (the nuisance parameter psi)."""
    method: str
    """`exact` or `normal` (Connor 1987)."""
    mde: float | None
    """Smallest overall improvement detected with `power` at the observed discordance (None:
    no improvement can be, at this n and alpha)."""
    floor: float | None
    """The same if the candidate broke no item (discordance = delta): the suite's best case."""
    min_significant_items: int | None
    """Fewest discordant items, all improvements, that can be significant at `alpha`."""


def critical_count(m: int, alpha: float) -> int:
    """Largest c with mcnemar_exact(c, m - c) < alpha (reject when the smaller count <= c), or -1.

    The two-sided exact p-value of a smaller count c is min(1, 2 * P(Binomial(m, 1/2) <= c)).
    """
    if m <= 0:
        return -1
    log_half = m * math.log(0.5)
    cumulative = 0.0
    c = -1
    for i in range(m // 2 + 1):
        cumulative += math.exp(_log_comb(m, i) + log_half)
        if 2 * cumulative < alpha:
            c = i
        else:
            break
    return c


def min_significant_items(alpha: float, limit: int = 64) -> int | None:
    """Fewest discordant items, all going one way, that the exact test calls significant."""
    for m in range(1, limit + 1):
        if critical_count(m, alpha) >= 0:
            return m
    return None


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return _log_comb(n, k) + k * math.log(p) + (n - k) * math.log1p(-p)


def _upper_tail(start: int, m: int, p: float) -> float:
    """P(Binomial(m, p) >= start)."""
    if start <= 0:
        return 1.0
    if start > m:
        return 0.0
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    total, log_term = 0.0, _log_pmf(start, m, p)
    term = math.exp(log_term)
    ratio = p / (1.0 - p)
    for k in range(start, m + 1):
        total += term
        term *= (m - k) / (k + 1) * ratio
        if term < 1e-18 * max(total, 1e-300) and k > m * p:
            break
    return min(1.0, total)


def exact_power(n: int, discordance: float, delta: float, alpha: float) -> float:
    """Power of the exact two-sided McNemar test to detect an improvement `delta` (one direction)."""
    psi = discordance
    if n <= 0 or delta <= 0.0 or psi <= 0.0:
        return 0.0
    if delta > psi:
        raise ValueError(f"an improvement of {delta} needs a discordance of at least {delta}")
    p_improve = min(1.0, (psi + delta) / (2 * psi))
    mean, sd = n * psi, math.sqrt(n * psi * (1 - psi))
    low, high = max(0, int(mean - 12 * sd - 2)), min(n, int(mean + 12 * sd + 2))
    power = 0.0
    for m in range(max(low, 1), high + 1):
        weight = math.exp(_log_pmf(m, n, psi))
        if weight < 1e-15:
            continue
        c = critical_count(m, alpha)
        if c >= 0:
            power += weight * _upper_tail(m - c, m, p_improve)
    return min(1.0, power)


def normal_power(n: int, discordance: float, delta: float, alpha: float) -> float:
    """Connor's (1987) normal approximation of the same power."""
    psi = discordance
    if n <= 0 or delta <= 0.0 or psi <= 0.0:
        return 0.0
    z = _NORMAL.inv_cdf(1 - alpha / 2)
    spread = math.sqrt(max(psi - delta * delta, 1e-12))
    return _NORMAL.cdf((math.sqrt(n) * delta - z * math.sqrt(psi)) / spread)


def power_at(n: int, discordance: float, delta: float, alpha: float) -> tuple[float, str]:
    """(power, method) to detect `delta` when the discordance is max(`discordance`, delta)."""
    psi = min(1.0, max(discordance, delta))
    if n <= EXACT_MAX_ITEMS:
        return exact_power(n, psi, delta, alpha), "exact"
    return normal_power(n, psi, delta, alpha), "normal"


def minimum_detectable_effect(
    n: int, discordance: float, *, alpha: float, power: float
) -> float | None:
    """Smallest delta in (0, 1] whose power reaches `power` (None when even 1 does not)."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be strictly between 0 and 1, got {power}")
    if power_at(n, discordance, 1.0, alpha)[0] < power:
        return None
    low, high = 0.0, 1.0
    while high - low > MDE_TOLERANCE:
        middle = (low + high) / 2
        if power_at(n, discordance, middle, alpha)[0] >= power:
            high = middle
        else:
            low = middle
    # Rounded up, so that the reported MDE still reaches the power.
    return math.ceil(high * 1e4) / 1e4


def analyse_power(n: int, discordant: int, *, alpha: float, power: float) -> PowerAnalysis:
    """The power analysis of a comparison of `n` paired items, `discordant` of which flipped."""
    discordance = discordant / n if n else 0.0
    return PowerAnalysis(
        n=n,
        alpha=alpha,
        power=power,
        discordance=round(discordance, 6),
        method="exact" if n <= EXACT_MAX_ITEMS else "normal",
        mde=minimum_detectable_effect(n, discordance, alpha=alpha, power=power),
        floor=minimum_detectable_effect(n, 0.0, alpha=alpha, power=power),
        min_significant_items=min_significant_items(alpha),
    )
