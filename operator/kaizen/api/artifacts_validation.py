"""`report.json`: the validate step's comparison of candidate and baseline, and its verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from kaizen.api.artifacts_base import (
    VERSION_KEY,
    Artifact,
    EvaluatedModel,
    Interval,
    PairedTest,
    Record,
    SuiteRef,
    Verdict,
)

# -- report.json -----------------------------------------------------------------------------


class ComparedSide(Record):
    """One side of the comparison."""

    path: str
    """Its `results.json`."""
    model: EvaluatedModel
    """The model evaluated."""
    overall: float
    """Its mean score over the paired items."""


class PairedComparison(Record):
    """Baseline against candidate on the same items."""

    baseline: float
    """Baseline mean score."""
    candidate: float
    """Candidate mean score."""
    delta: float
    """Candidate minus baseline."""
    delta_ci95: Interval
    """Paired bootstrap 95% interval of `delta` (seeded)."""
    n: int
    """Paired items."""
    test: PairedTest
    """The paired test used."""
    p_value: float
    """Two-sided p-value of the paired test."""


class GroupComparison(PairedComparison):
    """The comparison within one domain or capability."""

    improved_items: list[str]
    """Ids wrong in the baseline and right in the candidate."""
    regressed_items: list[str]
    """Ids right in the baseline and wrong in the candidate."""
    p_holm: float
    """`p_value` adjusted (Holm–Bonferroni) across the domains, or across the capabilities."""


class McNemarCounts(Record):
    """The exact McNemar test on per-item correctness that the promotion gate uses."""

    improved: int
    """Items that went from wrong to right."""
    regressed: int
    """Items that went from right to wrong."""
    p_value: float
    """Two-sided exact p-value."""


class GateSettings(Record):
    """The promotion gates the candidate was held to."""

    min_improvement: float
    """The overall delta must exceed this."""
    max_regression: float
    """A domain that drops by more than this, significantly after Holm's correction, blocks."""
    significance: float
    """Significance level of the McNemar test and of the per-domain tests."""
    require_significance: bool
    """Whether the McNemar test must be significant."""
    power: float
    """Power at which the suite must detect `target_improvement`."""
    target_improvement: float
    """The overall improvement the suite must be able to detect."""
    max_slowdown: float | None
    """Largest share of tokens/s the candidate may lose (null: not checked)."""
    max_memory_increase: float | None
    """Largest relative increase of peak memory (null: not checked)."""
    lm_eval_max_drop: float | None
    """Largest drop of an lm-eval task (null: not checked)."""
    lm_eval_min_scores: dict[str, float]
    """Floor of the candidate's score per lm-eval task."""


class PowerRecord(Record):
    """How large an overall improvement the suite can detect (docs/evaluation.md)."""

    n: int
    """Paired items."""
    alpha: float
    """Two-sided level of the test (`significance`)."""
    power: float
    """Target power."""
    discordance: float
    """Share of items whose correctness changed (the nuisance parameter of the power)."""
    method: Literal["exact", "normal"]
    """`exact`: power of the exact McNemar test summed over the discordant counts; `normal`:
    Connor's (1987) approximation, for suites over 2,000 items."""
    mde: float | None
    """Minimum detectable effect: the smallest overall improvement detected with `power` at
    this discordance (null: none can be at this size and level)."""
    floor: float | None
    """The MDE if the candidate broke no item: the best this suite can do."""
    min_significant_items: int | None
    """Fewest items, all fixed and none broken, that the test can call significant."""
    target: float
    """The improvement the suite had to be able to detect: the larger of
    `target_improvement` and `min_improvement`."""
    adequate: bool
    """The MDE is at most `target`: a non-significant result then says the improvement
    is smaller than the target, and rejects."""


class PerformanceComparison(Record):
    """Speed and memory of the two evaluations (one measurement each)."""

    baseline_tokens_per_second: float
    """Baseline generation speed."""
    candidate_tokens_per_second: float
    """Candidate generation speed."""
    slowdown: float
    """Share of speed lost: 1 - candidate / baseline (negative: faster)."""
    baseline_peak_memory_mib: float
    """Baseline peak memory, MiB."""
    candidate_peak_memory_mib: float
    """Candidate peak memory, MiB."""
    memory_increase: float
    """candidate / baseline - 1 (negative: less memory)."""
    passed: bool
    """Both configured gates hold (true when none is configured)."""


class TaskComparison(Record):
    """One lm-evaluation-harness task, before and after (no per-item pairs: a z-test)."""

    baseline: float
    """Baseline score."""
    candidate: float
    """Candidate score."""
    delta: float
    """Candidate minus baseline."""
    stderr: float | None
    """Standard error of the delta from lm-eval's per-run errors, treated as independent
    (conservative for the same items); null when lm-eval reported none."""
    p_value: float | None
    """Two-sided p-value of delta / stderr (null without a standard error)."""
    min_score: float | None
    """The floor the candidate had to reach (null: none)."""
    passed: bool
    """The task's gates hold."""


class ReferenceComparison(Record):
    """The candidate against a reference model (e.g. the previous promoted version)."""

    name: str
    """How the reports name the reference."""
    side: ComparedSide
    """The reference evaluation."""
    overall: PairedComparison
    """Reference (as `baseline`) against the candidate over all items."""
    mcnemar: McNemarCounts
    """The exact McNemar test of candidate against reference."""
    domains: dict[str, GroupComparison]
    """The comparison per domain."""
    regressions: list[str]
    """Domains where the candidate is significantly worse than the reference, by more than
    `max_regression`."""
    worse_overall: bool
    """The candidate is significantly worse than the reference overall."""


class TrainedDomainRetention(Record):
    """One trained domain on its dev items: base, its adapter alone, the chosen combination."""

    base: float
    """The base model's score."""
    alone: float
    """The domain's own adapter's score, alone (its `score-<domain>` step)."""
    combined: float
    """The chosen combination's score."""
    retention: float | None
    """(combined − base) / (alone − base); null when undefined (see `undefined`)."""
    undefined: str | None
    """Why `retention` is null (null when it is defined)."""
    items: int
    """Dev items of the domain."""


class RetentionRecord(Record):
    """How much of each domain adapter's own gain the promoted combination kept.

    Copied from the combine step's `combination.json`: every figure is on **dev** items, the
    items the combination was chosen on, never the gate's test items the rest of this report
    is computed from.
    """

    path: str
    """The `combination.json` it was read from."""
    split: Literal["dev"]
    """The items every figure here comes from."""
    chosen: str
    """The combination the candidate carries (`ties`, `joint`, `copy` for one domain, …)."""
    candidates: list[str]
    """Every candidate combination that was scored, best first."""
    rule: str
    """How the candidates were ranked."""
    trained: dict[str, TrainedDomainRetention]
    """Each trained domain's base, alone, combined and retention."""
    untrained_change: dict[str, float]
    """Each untrained domain's change from the base (combined − base)."""
    min_retention: float | None
    """The worst defined retention (null: none defined)."""
    mean_gain: float
    """Mean over the trained domains of combined − base."""
    worst_untrained_change: float | None
    """The most negative untrained change (null: no untrained domain)."""
    target: float
    """`merge.minRetention`."""
    target_met: bool | None
    """Whether `min_retention` reaches `target` (null: no retention defined)."""


class ValidationReport(Artifact):
    """`report.json`: the A/B comparison of candidate and baseline, and the verdict."""

    FILE_NAME: ClassVar[str] = "report.json"
    KIND: ClassVar[str] = "validation report"

    # Version 2 differs only by lacking `retention` (such a report had none to give).
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        2: lambda raw: {**raw, VERSION_KEY: 3, "retention": None}
    }

    schema_version: Literal[3] = Field(default=3, alias="schema")
    """Layout version of this file (2: Inconclusive, power, noise-aware regressions, speed,
    memory, lm-eval and reference gates; 3: `retention`)."""
    baseline: ComparedSide
    """The baseline evaluation."""
    candidate: ComparedSide
    """The candidate evaluation."""
    suite: SuiteRef
    """The suite both were evaluated on."""
    items: int
    """Paired items."""
    overall_delta: float
    """Candidate overall score minus baseline overall score."""
    overall: PairedComparison
    """The comparison over all items."""
    domains: dict[str, GroupComparison]
    """The comparison per domain."""
    capabilities: dict[str, GroupComparison]
    """The comparison per capability."""
    mcnemar: McNemarCounts
    """The gate's test."""
    gates: GateSettings
    """The gates applied."""
    regressions: list[str]
    """Domains that dropped by more than `max_regression` with a Holm-adjusted p-value below
    `significance`: they block promotion."""
    unconfirmed_drops: list[str]
    """Domains that dropped by more than `max_regression` without significance: reported,
    not blocking."""
    power: PowerRecord
    """How large an improvement the suite can detect."""
    performance: PerformanceComparison | None
    """Speed and memory (null when a side lacks the measurement)."""
    lm_eval: dict[str, TaskComparison]
    """Each lm-eval task in both evaluations, by task name."""
    reference: ReferenceComparison | None
    """The comparison with `--reference` (null: none given)."""
    retention: RetentionRecord | None
    """How much of each domain adapter's gain the candidate's combination kept, on dev
    items (`--combination`; null: none given, as for a candidate made outside a cycle)."""
    verdict: Verdict
    """`Promote` (every gate passed), `Reject` (a gate failed, or a suite able to detect the
    target found no significant improvement) or `Inconclusive` (not significant on a suite
    too small to detect the target)."""
    reasons: list[str]
    """One sentence per gate."""
    improved_items: list[str]
    """Ids wrong in the baseline and right in the candidate."""
    regressed_items: list[str]
    """Ids right in the baseline and wrong in the candidate."""
