"""`report.json`: the validate step's comparison of candidate and baseline, and its verdict."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kaizen.api.artifacts_base import (
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
    """No domain may drop by more than this."""
    significance: float
    """Significance level of the McNemar test."""
    require_significance: bool
    """Whether the McNemar test must be significant."""


class ValidationReport(Artifact):
    """`report.json`: the A/B comparison of candidate and baseline, and the verdict."""

    FILE_NAME: ClassVar[str] = "report.json"
    KIND: ClassVar[str] = "validation report"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
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
    """Domains that dropped by more than `max_regression`."""
    verdict: Verdict
    """Whether the candidate passed every gate."""
    reasons: list[str]
    """One sentence per gate."""
    improved_items: list[str]
    """Ids wrong in the baseline and right in the candidate."""
    regressed_items: list[str]
    """Ids right in the baseline and wrong in the candidate."""
