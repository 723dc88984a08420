"""The promotion gates and the verdict: Promote, Reject or Inconclusive.

`decide` is pure: it takes what the comparison measured (the overall change and its p-value,
the minimum detectable effect, the domains that regressed, the sentences of any other gate
that failed) and returns the verdict with one sentence per gate. The rules (docs/evaluation.md):

- any blocking gate (a significant domain regression, speed, memory, an lm-eval task, the
  reference model) fails → **Reject**;
- the overall change exceeds `min_improvement` and is significant (or significance is not
  required) → **Promote**;
- not significant, and the suite cannot detect the target improvement at the configured
  power (MDE above the target) → **Inconclusive**: the suite, not the candidate, is the problem;
- otherwise → **Reject** (a suite able to see the target saw no significant improvement, the
  change is below the minimum, or the candidate is significantly worse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from kaizen.api import fields as f
from kaizen.api.args import ValidateArgs
from kaizen.api.numbers import format_p
from kaizen.api.runner import ConfigurationError
from kaizen.evaluator.power import PowerAnalysis

#: Domains folded in from lm-eval are named `lmeval:<task>` (kaizen.evaluator.lmeval).
LMEVAL_PREFIX = "lmeval:"


@dataclass(frozen=True)
class Gates:
    """What a candidate must achieve to be promoted (see `ValidationSpec`)."""

    min_improvement: float = f.DEFAULT_MIN_IMPROVEMENT
    max_regression: float = f.DEFAULT_MAX_REGRESSION
    significance: float = f.DEFAULT_SIGNIFICANCE
    require_significance: bool = True
    power: float = f.DEFAULT_POWER
    target_improvement: float = f.DEFAULT_TARGET_IMPROVEMENT
    max_slowdown: float | None = None
    max_memory_increase: float | None = None
    lm_eval_max_drop: float | None = None
    lm_eval_min_scores: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: ValidateArgs) -> Gates:
        """The gates a validate command line names."""
        return cls(
            min_improvement=args.min_improvement,
            max_regression=args.max_regression,
            significance=args.significance,
            require_significance=args.require_significance,
            power=args.power,
            target_improvement=args.target_improvement,
            max_slowdown=args.max_slowdown,
            max_memory_increase=args.max_memory_increase,
            lm_eval_max_drop=args.lm_eval_max_drop,
            lm_eval_min_scores=args.min_scores(),
        )

    @property
    def target(self) -> float:
        """The improvement the suite must be able to detect."""
        return max(self.target_improvement, self.min_improvement)

    def check(self) -> None:
        if not -1.0 <= self.min_improvement <= 1.0:
            raise ConfigurationError(
                f"min improvement must be between -1 and 1, got {self.min_improvement}"
            )
        if not 0.0 <= self.max_regression <= 1.0:
            raise ConfigurationError(
                f"max regression must be between 0 and 1, got {self.max_regression}"
            )
        if not 0.0 < self.significance < 1.0:
            raise ConfigurationError(
                f"significance must be strictly between 0 and 1, got {self.significance}"
            )
        if not 0.0 < self.power < 1.0:
            raise ConfigurationError(f"power must be strictly between 0 and 1, got {self.power}")
        if not 0.0 < self.target_improvement <= 1.0:
            raise ConfigurationError(
                f"target improvement must be in (0, 1], got {self.target_improvement}"
            )

    def settings(self) -> dict[str, Any]:
        """The gates as report.json's `gates` records them."""
        return {
            "min_improvement": self.min_improvement,
            "max_regression": self.max_regression,
            "significance": self.significance,
            "require_significance": self.require_significance,
            "power": self.power,
            "target_improvement": self.target_improvement,
            "max_slowdown": self.max_slowdown,
            "max_memory_increase": self.max_memory_increase,
            "lm_eval_max_drop": self.lm_eval_max_drop,
            "lm_eval_min_scores": dict(self.lm_eval_min_scores),
        }


def power_sentence(power: PowerAnalysis, target: float) -> str:
    """Whether the suite can detect `target`, in words."""
    if power.mde is None:
        return (
            f"the suite cannot detect any improvement with {power.power:.0%} power on "
            f"{power.n} items (at least {power.min_significant_items} items must flip, none back)"
        )
    verb = "can" if power.mde <= target else "cannot"
    return (
        f"the suite {verb} detect {target:+.4f} with {power.power:.0%} power: minimum "
        f"detectable effect {power.mde:.4f} on {power.n} items at discordance "
        f"{power.discordance:.3f} (best case {power.floor:.4f})"
    )


def decide(
    overall_delta: float,
    p_value: float,
    regressions: Sequence[str],
    gates: Gates,
    *,
    power: PowerAnalysis,
    blockers: Sequence[str] = (),
    notes: Sequence[str] = (),
    unconfirmed: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """(`Promote`, `Reject` or `Inconclusive`, one sentence per gate); see the module docstring."""
    reasons = []
    improved_enough = overall_delta > gates.min_improvement
    reasons.append(
        f"overall change {overall_delta:+.4f} {'exceeds' if improved_enough else 'does not exceed'} "
        f"the minimum improvement {gates.min_improvement:+.4f}"
    )
    if regressions:
        reasons.append(
            f"significant regressions beyond {gates.max_regression:.4f} (Holm-adjusted) in: "
            f"{', '.join(regressions)}"
        )
    else:
        reasons.append(
            f"no domain dropped significantly by more than {gates.max_regression:.4f}"
            + (f" (not significant: {', '.join(unconfirmed)})" if unconfirmed else "")
        )
    significant = p_value < gates.significance
    verdict_on_p = "significant" if significant else "not significant"
    required = "required" if gates.require_significance else "not required"
    reasons.append(
        f"McNemar p={format_p(p_value)} is {verdict_on_p} at {gates.significance:g} ({required})"
    )
    reasons.append(power_sentence(power, gates.target))
    reasons.extend(blockers)
    reasons.extend(notes)
    adequate = power.mde is not None and power.mde <= gates.target
    if regressions or blockers:
        return "Reject", reasons
    # Significance counts only in the direction of improvement.
    significant_gain = significant and overall_delta > 0
    if improved_enough and (significant_gain or not gates.require_significance):
        return "Promote", reasons
    if gates.require_significance and not significant and not adequate:
        return "Inconclusive", reasons
    return "Reject", reasons


# -- speed and memory --------------------------------------------------------------------------


def performance_gate(
    baseline: Mapping[str, Any] | None, candidate: Mapping[str, Any] | None, gates: Gates
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(report.json's `performance`, blocking sentences, passing sentences) of two runs."""
    if not baseline or not candidate:
        return None, [], []
    base_speed, cand_speed = (
        float(baseline["tokens_per_second"]),
        float(candidate["tokens_per_second"]),
    )
    base_mem, cand_mem = float(baseline["peak_memory_mib"]), float(candidate["peak_memory_mib"])
    slowdown = 1 - cand_speed / base_speed if base_speed > 0 else 0.0
    increase = cand_mem / base_mem - 1 if base_mem > 0 else 0.0
    blockers: list[str] = []
    notes: list[str] = []
    if gates.max_slowdown is not None:
        text = (
            f"generation speed {base_speed:.1f} -> {cand_speed:.1f} tokens/s "
            f"({-slowdown:+.1%}), allowed loss {gates.max_slowdown:.0%}"
        )
        (blockers if slowdown > gates.max_slowdown else notes).append(text)
    if gates.max_memory_increase is not None:
        text = (
            f"peak memory {base_mem:.0f} -> {cand_mem:.0f} MiB ({increase:+.1%}), "
            f"allowed increase {gates.max_memory_increase:.0%}"
        )
        (blockers if increase > gates.max_memory_increase else notes).append(text)
    record = {
        "baseline_tokens_per_second": base_speed,
        "candidate_tokens_per_second": cand_speed,
        "slowdown": round(slowdown, 6),
        "baseline_peak_memory_mib": base_mem,
        "candidate_peak_memory_mib": cand_mem,
        "memory_increase": round(increase, 6),
        "passed": not blockers,
    }
    return record, blockers, notes


# -- lm-evaluation-harness tasks ---------------------------------------------------------------


def _tasks(domains: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        name.removeprefix(LMEVAL_PREFIX): row
        for name, row in domains.items()
        if isinstance(row, Mapping) and row.get("source") == "lm-eval"
    }


def lm_eval_gate(
    baseline: Mapping[str, Any], candidate: Mapping[str, Any], gates: Gates
) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """(report.json's `lm_eval`, blocking sentences, passing sentences) of the tasks of both runs.

    A task's delta is tested with a z-test on lm-eval's standard errors, taken as independent
    (the items are the same, so this overstates the error: a conservative test).
    """
    before, after = _tasks(baseline), _tasks(candidate)
    missing = sorted(set(gates.lm_eval_min_scores) - set(after))
    if missing:
        raise ConfigurationError(
            f"--lm-eval-min-score: task(s) {', '.join(missing)} not in the candidate's results "
            f"(lm-eval tasks there: {', '.join(sorted(after)) or 'none'})"
        )
    table: dict[str, dict[str, Any]] = {}
    blockers: list[str] = []
    notes: list[str] = []
    for task in sorted(set(before) & set(after)):
        b, c = float(before[task]["score"]), float(after[task]["score"])
        delta = round(c - b, 12)
        errors = (before[task].get("stderr"), after[task].get("stderr"))
        stderr = math.hypot(*errors) if None not in errors else None  # type: ignore[arg-type]
        p_value = None
        if stderr:
            p_value = 2 * (1 - NormalDist().cdf(abs(delta) / stderr))
        floor = gates.lm_eval_min_scores.get(task)
        failed = []
        if gates.lm_eval_max_drop is not None and -delta > gates.lm_eval_max_drop:
            confirmed = p_value is None or p_value < gates.significance
            if confirmed:
                shown = "" if p_value is None else f", p={format_p(p_value)}"
                failed.append(f"dropped {-delta:.4f} > {gates.lm_eval_max_drop:.4f}{shown}")
        if floor is not None and c < floor:
            failed.append(f"scored {c:.4f} < floor {floor:.4f}")
        if failed:
            blockers.append(f"lm-eval task {task}: " + "; ".join(failed))
        elif gates.lm_eval_max_drop is not None or floor is not None:
            notes.append(f"lm-eval task {task}: {b:.4f} -> {c:.4f} within its gates")
        table[task] = {
            "baseline": b,
            "candidate": c,
            "delta": delta,
            "stderr": stderr,
            "p_value": p_value,
            "min_score": floor,
            "passed": not failed,
        }
    return table, blockers, notes
