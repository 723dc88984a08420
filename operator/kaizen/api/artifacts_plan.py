"""`plan.json`: which domains the analyze step found weak, why, and what to train.

The analyze step writes every field; the trainer reads `priority_domains`,
`targeted_capabilities` and, for synthesis, the diagnosis and failed items. Every figure is
made from the baseline's dev items (a domain without any falls back to its test items, and
`split` says so): the validation gate's test items choose nothing. Re-exported by
`kaizen.api.artifacts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from kaizen.api.artifacts_base import (
    VERSION_KEY,
    Artifact,
    EvaluatedModel,
    FailureKind,
    FailureType,
    Hint,
    Interval,
    Record,
    SuiteRef,
    optional_key,
)

# -- plan.json -------------------------------------------------------------------------------


class DomainAnalysis(Record):
    """What the analyze step found in one domain."""

    name: str
    """Domain name."""
    score: float
    """Domain score (0–1, rounded to 4 places)."""
    n: int
    """Items in the domain."""
    below_threshold: bool
    """The score is below the plan's threshold."""
    hint: Hint
    """What the domain lacks: single facts, their combination, or neither."""
    capabilities: dict[str, float]
    """Mean score per capability within the domain."""
    failure_kinds: dict[str, int]
    """Failed items by failure kind."""
    failed_items: list[str]
    """Ids of the failed items."""
    factual_score: float | None
    """Mean score of the `factual_recall` items (null: none)."""
    reasoning_score: float | None
    """Mean score of the items that combine facts (null: none)."""
    failure_types: dict[str, int]
    """Failed items by type (`knowledge`, `reasoning`)."""
    split: Literal["dev", "test", "all"]
    """The items every figure above comes from: `dev`, the domain's dev items (the gate
    never reads them); `test`, its test items, because it has no dev items (the plan's
    `split.fallback_domains`); `all`, both (a plan of version 2, made before the split)."""


class Recommendation(Record):
    """How to train one priority domain."""

    domain: str
    """The priority domain."""
    score: float
    """Its score."""
    gap: float
    """Threshold minus score."""
    hint: Hint
    """What the domain lacks."""
    focus_capabilities: list[str]
    """Capabilities to emphasise, weakest first."""
    failed_items: int
    """Failed items in the domain."""
    advice: str
    """The recommendation in words."""


class WeakGroup(Record):
    """One of the weakest domains or capabilities."""

    name: str
    """Domain or capability name."""
    score: float
    """Its score."""
    n: int | None
    """Items in it."""
    ci95: Interval | None
    """95% interval of the score (null for an lm-eval task)."""


class KnowledgeVsReasoning(Record):
    """Suite-wide: single facts against facts combined."""

    factual_score: float | None
    """Mean score of the `factual_recall` items (null: none)."""
    reasoning_score: float | None
    """Mean score of the items that combine facts (null: none)."""
    knowledge_failures: int
    """Failed single-fact items."""
    reasoning_failures: int
    """Failed items that combine facts."""
    reasoning_failures_with_facts_known: int
    """Failed combining items in domains whose own fact items were mostly right."""
    domains: dict[str, list[str]]
    """Domain names by hint (`knowledge`, `reasoning`, `none`)."""


class Failure(Record):
    """One wrong answer and why."""

    id: str
    """Item id."""
    domain: str
    """The item's domain."""
    capability: str
    """The item's capability."""
    kind: FailureKind
    """Why the answer failed (the first kind that applies)."""
    type: FailureType
    """Whether the item needed one fact or a combination."""


class ExcludedDomain(Record):
    """A domain of the results that the plan does not consider for training, and why."""

    name: str
    """Domain name (e.g. `lmeval:<task>`)."""
    score: float
    """Its score."""
    reason: str
    """Why it cannot be a priority domain."""


class PlanSplit(Record):
    """Which of the baseline's items the plan read: its dev items, unless a domain has none."""

    dev_items: int
    """Dev items read."""
    test_items_read: int
    """Test items read: those of the `fallback_domains`, and no others."""
    test_items_unread: int
    """Test items not read: they are left to the validation gate alone."""
    fallback_domains: list[str]
    """Domains without dev items, analysed on their test items instead (scores, failed
    items); never priority domains, since an adapter is scored and chosen on its domain's dev
    items."""
    note: str
    """The above in a sentence."""


def _upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A plan of version 1 or 2 as version 3: its domains were analysed on all items."""
    domains = raw.get("domains", [])
    if isinstance(domains, list):
        domains = [d | {"split": "all"} if isinstance(d, dict) else d for d in domains]
    return {**raw, VERSION_KEY: 3, **({"domains": domains} if "domains" in raw else {})}


class ImprovementPlan(Artifact):
    """`plan.json`: which domains to train and why.

    The analyze step writes every field. A plan written by hand needs only `schema` and
    `priority_domains` (the trainer reads those and `targeted_capabilities`).
    """

    FILE_NAME: ClassVar[str] = "plan.json"
    KIND: ClassVar[str] = "improvement plan"
    # Version 1 lacks `excluded`, versions 1 and 2 `split` (hand-written plans keep working).
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: _upgrade,
        2: _upgrade,
    }

    schema_version: Literal[3] = Field(default=3, alias="schema")
    """Layout version of this file (2: `excluded`; 3: `split`, the dev items analysed)."""
    priority_domains: list[str]
    """Domains that get one adapter each, weakest first: those below the threshold on their
    dev items, at most `max_domains`."""
    targeted_capabilities: list[str] = Field(default_factory=list)
    """Capabilities below the threshold, weakest first: training repeats their examples."""
    suite: SuiteRef | None = None
    """The suite of the baseline evaluation."""
    model: EvaluatedModel | None = None
    """The model of the baseline evaluation."""
    baseline: str | None = None
    """The baseline `results.json` the plan was made from."""
    threshold: float | None = None
    """Domains and capabilities scoring below this are weak."""
    max_domains: int | None = None
    """At most this many priority domains."""
    failure_kinds: dict[str, int] = Field(default_factory=dict)
    """Failed items by failure kind, over the items read (`split`)."""
    capabilities: dict[str, float] = Field(default_factory=dict)
    """Score per capability, over the items read (`split`)."""
    domains: list[DomainAnalysis] = Field(default_factory=list)
    """Every domain, weakest first (ties by name)."""
    recommendations: list[Recommendation] = Field(default_factory=list)
    """One per priority domain, in the same order."""
    weakest_domains: list[WeakGroup] = Field(default_factory=list)
    """The three weakest domains."""
    weakest_capabilities: list[WeakGroup] = Field(default_factory=list)
    """The three weakest capabilities."""
    knowledge_vs_reasoning: KnowledgeVsReasoning | None = None
    """Single facts against facts combined, over the suite."""
    failures: list[Failure] = Field(default_factory=list)
    """Every failed item."""
    excluded: list[ExcludedDomain] = Field(default_factory=list)
    """Domains never considered for training (lm-eval tasks), with the reason."""
    deferred: list[str] | None = optional_key()
    """Domains planned only after every other domain below the threshold (the analyze step's
    `--defer`: a chain's domains tried since its last promotion); absent when none."""
    split: PlanSplit | None = None
    """Which items the plan read (null: a plan of version 1 or 2, or written by hand)."""
