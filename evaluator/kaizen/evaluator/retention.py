"""How much of what each domain adapter learned survives its combination, and the choice rule.

All figures are on dev items (`kaizen.runtime.suites.split`); the gate never sees them.

For a trained domain i, with scores on i's dev items of the base model B, of i's adapter
alone A and of the combination C:

    Rᵢ = (C − B) / (A − B)

1 means the combination kept all of the adapter's own gain, 0 none of it, below 0 that the
combination is worse than the base; above 1, that it gained more than the adapter alone
(another domain's data helped). When A ≤ B the adapter gained nothing on its own dev
items, so there is nothing to retain: Rᵢ is *undefined* (None), reported as such, and left
out of the worst-domain figure rather than counted as a success or a failure.

Candidates are ranked by, in order: whether they keep every untrained domain within the
tolerance, when one is given (a cycle gives `validation.maxRegression` and
`validation.significance`: a candidate that costs some untrained domain more than the
tolerance, by a drop that a one-sided exact sign test on that domain's dev items finds
significant, ranks after every one that does not, whatever it retains);
the worst defined retention (higher first; a candidate with none defined ranks below any
with one), the mean gain over the trained domains (C − B), the worst change on the untrained
domains, and finally their order in `merge.candidates` (the first listed wins a full tie).

The tolerance is there because retention reads only the trained domains: an adapter that
answers every question in its own domain's words keeps all of its gain and can cost an
untrained domain most of its items (measured: a copied adapter at retention 1.00 took a
geography domain's dev items from 100% to 0%, beside routed adapters at 0.50 that left them
untouched; docs/training-data.md, "When nothing else rehearses"). The test is one-sided
because only a drop demotes; it keeps a few flipped items of a small dev set (two of six)
from demoting an adapter that costs the domain little on the test items.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaizen.api.fields import ROUTED
from kaizen.evaluator.stats import sign_test_worse

RULE = (
    "worst-domain retention, then mean gain over the trained domains, then the worst "
    "change on the untrained domains, then routed (it changes no prompt outside the trained "
    "domains' names), then the order of merge.candidates"
)
#: The rule with a tolerance for the untrained domains.
TOLERANT_RULE = (
    "untrained domains within {drop:g} (or a drop not significant at {alpha:g}, one-sided "
    "sign test) first, then " + RULE
)


#: Why a trained domain's retention is undefined, in reports.
UNDEFINED = (
    "the adapter alone did not beat the base on its dev items (alone <= base): "
    "there is no gain to retain"
)


def retention(base: float, alone: float, combined: float) -> float | None:
    """(combined − base) / (alone − base); None when the adapter alone did not beat the base."""
    gain = alone - base
    if gain <= 1e-12:
        return None
    return round((combined - base) / gain, 6)


def mean_scores(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """(mean score, items) per domain of item records."""
    sums: dict[str, list[float]] = {}
    for record in records:
        sums.setdefault(record["domain"], []).append(float(record["score"]))
    return {domain: (sum(v) / len(v), len(v)) for domain, v in sums.items()}


@dataclass
class Candidate:
    """One candidate's figures on the dev items."""

    name: str
    order: int
    domains: dict[str, float]
    """Score per domain."""
    trained: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per trained domain: base, alone, combined, retention, items."""
    untrained_change: dict[str, float] = field(default_factory=dict)
    untrained_p: dict[str, float] = field(default_factory=dict)
    """Each untrained domain's one-sided exact p that the candidate is worse on its dev items
    (`stats.sign_test_worse`; where `measure` was given the items)."""

    @property
    def retentions(self) -> dict[str, float | None]:
        return {domain: row["retention"] for domain, row in self.trained.items()}

    @property
    def min_retention(self) -> float | None:
        defined = [r for r in self.retentions.values() if r is not None]
        return min(defined) if defined else None

    @property
    def mean_gain(self) -> float:
        gains = [row["combined"] - row["base"] for row in self.trained.values()]
        return round(sum(gains) / len(gains), 6) if gains else 0.0

    @property
    def worst_untrained_change(self) -> float | None:
        return min(self.untrained_change.values()) if self.untrained_change else None

    def excess(self, drop: float | None, alpha: float | None = None) -> list[str]:
        """The untrained domains that lost more than `drop` (None: no tolerance: none), worst
        first; with `alpha`, only those whose one-sided p (`untrained_p`) is below it."""
        if drop is None:
            return []
        return sorted(
            (
                domain
                for domain, change in self.untrained_change.items()
                if change < -drop - 1e-9
                and (alpha is None or self.untrained_p.get(domain, 0.0) < alpha)
            ),
            key=lambda domain: (self.untrained_change[domain], domain),
        )

    def within(self, drop: float | None, alpha: float | None = None) -> bool:
        """Whether no untrained domain lost more than `drop` (None: no tolerance: True); with
        `alpha`, a larger loss whose one-sided p (`untrained_p`) is not below it is within."""
        return not self.excess(drop, alpha)

    def target_met(self, target: float) -> bool | None:
        worst = self.min_retention
        return None if worst is None else worst >= target - 1e-9

    def sort_key(self) -> tuple[float, float, float, bool, int]:
        worst = self.min_retention
        untrained = self.worst_untrained_change
        return (
            -(worst if worst is not None else float("-inf")),
            -self.mean_gain,
            -(untrained if untrained is not None else 0.0),
            # On equal dev figures, the candidate that changes nothing outside the names of
            # the trained domains: what the dev items cannot show it cannot have broken.
            self.name != ROUTED,
            self.order,
        )


def measure(
    name: str,
    order: int,
    combined: Mapping[str, tuple[float, int]],
    base: Mapping[str, tuple[float, int]],
    alone: Mapping[str, float],
    records: tuple[Iterable[Mapping[str, Any]], Iterable[Mapping[str, Any]]] | None = None,
) -> Candidate:
    """A candidate's retention per trained domain (`alone`'s keys) and change elsewhere;
    given `records` (the base's and the candidate's item records), also each untrained
    domain's one-sided p of a drop."""
    candidate = Candidate(name, order, {d: round(s, 6) for d, (s, _) in combined.items()})
    if records is not None:
        candidate.untrained_p = drop_p(*records, trained=alone)
    for domain, (score, items) in sorted(combined.items()):
        base_score = base[domain][0]
        if domain in alone:
            candidate.trained[domain] = {
                "base": round(base_score, 6),
                "alone": round(alone[domain], 6),
                "combined": round(score, 6),
                "retention": retention(base_score, alone[domain], score),
                "items": items,
            }
        else:
            candidate.untrained_change[domain] = round(score - base_score, 6)
    return candidate


def drop_p(
    base: Iterable[Mapping[str, Any]],
    candidate: Iterable[Mapping[str, Any]],
    trained: Collection[str],
) -> dict[str, float]:
    """Each untrained domain's one-sided exact p that `candidate` scores worse than `base`
    (item records paired by id; an item counts as regressed where its score fell, improved
    where it rose)."""
    before = {r["id"]: float(r["score"]) for r in base}
    moves: dict[str, list[int]] = {}
    for record in candidate:
        domain = record["domain"]
        if domain in trained or record["id"] not in before:
            continue
        counts = moves.setdefault(domain, [0, 0])
        change = float(record["score"]) - before[record["id"]]
        if change > 0:
            counts[0] += 1
        elif change < 0:
            counts[1] += 1
    return {d: round(sign_test_worse(up, down), 6) for d, (up, down) in sorted(moves.items())}


def rank(
    candidates: Sequence[Candidate],
    max_untrained_drop: float | None = None,
    alpha: float | None = None,
) -> list[Candidate]:
    """Best first, by the rule in the module docstring."""
    return sorted(candidates, key=lambda c: (not c.within(max_untrained_drop, alpha), c.sort_key()))
