"""Typed, versioned files that steps leave in their artifact directories, and how to read them.

`results.json` (evaluate), `plan.json` (analyze), `report.json` (validate), `training.json`
(train) and `merge.json` (merge) are each one `Artifact` model: steps write them only with
`write_artifact` and read them only with `read_artifact`, so the file format has one owner.
Every file carries its layout version under the key `"schema"`; a reader refuses a file
without one, or with a version it does not know (newer: upgrade Kaizen), with an
`ArtifactError` that names the file. `python -m kaizen.api.artifacts --schemas DIR` writes
one JSON Schema per model (committed under `docs/schemas/`); docs/artifacts.md is the guide.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from kaizen.api import fields as f
from kaizen.api.summary import atomic_write_json

#: The key that holds an artifact's layout version in every file.
VERSION_KEY = "schema"
#: JSON Schema dialect of the published schemas.
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Verdict = Literal["Promote", "Reject"]
#: Why a wrong answer failed, in the order the analyze step tests them (the first that applies).
FailureKind = Literal["empty", "refusal", "repetition", "truncated", "wrong_format", "wrong_answer"]
#: Whether a failed item needed one fact (`knowledge`) or a combination of facts (`reasoning`).
FailureType = Literal["knowledge", "reasoning"]
#: What a domain lacks: single facts, their combination, or neither.
Hint = Literal["knowledge", "reasoning", "none"]
#: How a 95% interval of a mean score was computed.
IntervalMethod = Literal["wilson", "bootstrap"]
#: The paired test of a comparison: exact McNemar for right/wrong scores, else sign-flip permutation.
PairedTest = Literal["mcnemar_exact", "paired_permutation"]
Interval = tuple[float, float]


class ArtifactError(ValueError):
    """An artifact file that cannot be used: missing, not JSON, of an unknown version or layout."""


def _omitted_when_none(value: object) -> bool:
    return value is None


def _drop_null(schema: dict[str, Any]) -> None:
    """JSON Schema of a field that is left out rather than written as null."""
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    schema.pop("default", None)


def optional_key() -> Any:
    """A field that is absent from the file (not `null`) when it does not apply."""
    return Field(default=None, exclude_if=_omitted_when_none, json_schema_extra=_drop_null)


class Record(BaseModel):
    """A part of an artifact: snake_case keys exactly as in the file, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _require_version(schema: dict[str, Any]) -> None:
    # The version has a default so that writers need not pass it, but a file must have it.
    required = schema.setdefault("required", [])
    if VERSION_KEY not in required:
        required.insert(0, VERSION_KEY)


class Artifact(Record):
    """A whole artifact file. Subclasses set `FILE_NAME`, `KIND` and a `Literal` version field."""

    model_config = ConfigDict(serialize_by_alias=True, json_schema_extra=_require_version)

    FILE_NAME: ClassVar[str]
    """The file's name in a step's artifact directory."""
    KIND: ClassVar[str]
    """What the file is, in words, for error messages."""
    SCHEMA_VERSION: ClassVar[int]
    """The layout version this Kaizen writes and reads (from the `schema_version` field's type)."""

    schema_version: int = Field(alias="schema")
    """Layout version of the file (subclasses narrow it to `Literal[N]`)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # The version is written once, as the field's Literal type (a `const` in the schema).
        field = cls.model_fields["schema_version"]
        (cls.SCHEMA_VERSION,) = get_args(field.annotation)
        if field.alias != VERSION_KEY or field.default != cls.SCHEMA_VERSION:
            raise TypeError(f"{cls.__name__}.schema_version: alias {VERSION_KEY!r}, default N")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, exactly as `write_artifact` writes it."""
        return self.model_dump(mode="json")


# -- shared parts ----------------------------------------------------------------------------


class SuiteRef(Record):
    """The evaluation suite a file was made from."""

    name: str
    """Suite name."""
    version: str
    """Suite version (from its `suite.yaml`)."""
    digest: str
    """`sha256:<hex>` of the selected items: equal digests mean identical questions and scorers."""
    path: str
    """The suite's folder when it was loaded."""


class EvaluatedModel(Record):
    """The model an evaluation scored."""

    name: str
    """Model reference (`bundled:<name>`, a hub id or a folder)."""
    revision: str | None
    """Hub revision, when one was pinned."""
    adapters: list[str]
    """LoRA adapter folders applied on top, in order."""


class ModelRef(Record):
    """The base model a training or merge step loaded."""

    ref: str
    """Model reference (`bundled:<name>`, a hub id or a folder)."""
    revision: str | None
    """Hub revision, when one was pinned."""
    adapters: list[str]
    """LoRA adapter folders merged into the base before this step."""


# -- results.json ----------------------------------------------------------------------------


class Selection(Record):
    """Which items of the suite were evaluated."""

    domains: list[str]
    """Domains selected (empty: all)."""
    limit: int | None
    """At most this many items per domain (null: all)."""


class GenerationSettings(Record):
    """How answers were generated."""

    max_new_tokens: int
    """Token limit per answer."""
    batch_size: int
    """Batch size asked for."""
    batch_size_used: int
    """Batch size that fit in memory (halved from `batch_size` on out-of-memory)."""
    temperature: float
    """Sampling temperature (0: greedy)."""
    top_p: float
    """Nucleus sampling mass."""
    repetition_penalty: float
    """Repetition penalty (1: none)."""
    seed: int
    """Sampling seed."""
    stop_strings: list[str]
    """Generation stops at the first of these."""
    device: str
    """Torch device the model ran on."""
    dtype: str
    """Torch dtype of the weights, e.g. `float32`."""


class OverallScores(Record):
    """Scores over every item of the evaluation."""

    micro: float
    """Mean score, every item weighing the same (0–1)."""
    macro: float
    """Mean of the per-domain scores, every domain weighing the same (0–1)."""
    n: int
    """Items evaluated."""
    correct: int
    """Items scoring at least 0.5."""
    micro_ci95: Interval
    """95% interval of `micro`."""
    macro_ci95: Interval
    """95% interval of `macro` (bootstrap resampling within each domain)."""
    ci_method: IntervalMethod
    """How `micro_ci95` was computed: Wilson for 0/1 scores, bootstrap otherwise."""


class GroupScore(Record):
    """The score of one domain or capability of the suite."""

    score: float
    """Mean item score (0–1)."""
    n: int
    """Items in the group."""
    correct: int
    """Items scoring at least 0.5."""
    ci95: Interval
    """95% interval of `score`."""
    ci_method: IntervalMethod
    """How `ci95` was computed."""


class TaskScore(Record):
    """A report-only domain: one lm-evaluation-harness task (no per-item records)."""

    score: float
    """The task's primary metric."""
    n: int
    """Items lm-eval scored."""
    metric: str
    """Name of the primary metric, e.g. `acc`."""
    stderr: float | None
    """lm-eval's standard error of the metric, when it reports one."""
    source: Literal["lm-eval"]
    """Marks the entry as an lm-eval task."""


def _score_kind(value: Any) -> str:
    source = value.get("source") if isinstance(value, dict) else getattr(value, "source", None)
    return "lm-eval" if source is not None else "suite"


DomainScore = Annotated[
    Annotated[GroupScore, Tag("suite")] | Annotated[TaskScore, Tag("lm-eval")],
    Discriminator(_score_kind),
]


class Performance(Record):
    """Throughput and memory of the evaluation."""

    tokens_per_second: float
    """Generated tokens per second of generation time."""
    new_tokens: int
    """Tokens generated in all."""
    wall_seconds: float
    """Generation plus log-likelihood ranking time."""
    generation_seconds: float
    """Time spent generating answers."""
    loglik_seconds: float
    """Time spent ranking multiple-choice answers."""
    latency_per_item_seconds: float
    """`wall_seconds` divided by the number of items."""
    peak_memory_mib: float
    """Peak memory: CUDA allocations on a GPU, the process's resident set otherwise (MiB)."""


class ItemResult(Record):
    """One evaluated item."""

    id: str
    """Item id, unique in the suite."""
    domain: str
    """The item's domain."""
    capability: str
    """The item's capability (`factual_recall`, `cross_referencing`, …)."""
    question: str
    """The question as asked."""
    reference: str
    """The reference answer."""
    scorer: str
    """Name of the scorer that scored the response."""
    response: str
    """The model's answer (for a multiple-choice item: the choice it ranked highest)."""
    extracted: str
    """What the scorer read from the response."""
    score: float
    """The item's score (0–1)."""
    correct: bool
    """`score` is at least 0.5."""
    new_tokens: int
    """Tokens generated (0 for a multiple-choice item)."""
    truncated: bool
    """Generation stopped at `max_new_tokens`."""
    seconds: float
    """Time spent on the item."""
    choices: list[str] | None = optional_key()
    """The choices of a multiple-choice item; absent otherwise."""
    logprobs: list[float] | None = optional_key()
    """Summed log-probability of each choice; absent unless multiple choice."""


class LmEvalTask(Record):
    """All metrics of one lm-evaluation-harness task."""

    metric: str
    """The primary metric."""
    n: int
    """Items scored."""
    metrics: dict[str, float]
    """Every metric lm-eval reported, keyed `<metric>,<filter>`."""


class LmEvalRun(Record):
    """The lm-evaluation-harness run folded into the results."""

    version: str | None
    """Installed lm-eval version."""
    tasks: dict[str, LmEvalTask]
    """Each task by name."""


class EvaluationResults(Artifact):
    """`results.json`: everything the evaluate step measured, item by item."""

    FILE_NAME: ClassVar[str] = "results.json"
    KIND: ClassVar[str] = "evaluation results"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    suite: SuiteRef
    """The suite and the digest of the selected items."""
    selection: Selection
    """Which items were selected."""
    model: EvaluatedModel
    """The model evaluated."""
    generation: GenerationSettings
    """Token limit, batch size, sampling settings, device and dtype of the generation."""
    overall: OverallScores
    """Scores over all items."""
    domains: dict[str, DomainScore]
    """Score per domain, by name (lm-eval tasks appear as `lmeval:<task>`)."""
    capabilities: dict[str, GroupScore]
    """Score per capability, by name."""
    performance: Performance
    """Throughput and memory."""
    items: list[ItemResult]
    """Every item, in suite order (validate pairs baseline and candidate by position and id)."""
    lmeval: LmEvalRun | None = optional_key()
    """The lm-evaluation-harness run, when tasks were given; absent otherwise."""


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


class ImprovementPlan(Artifact):
    """`plan.json`: which domains to train and why.

    The analyze step writes every field. A plan written by hand needs only `schema` and
    `priority_domains` (the trainer reads those and `targeted_capabilities`).
    """

    FILE_NAME: ClassVar[str] = "plan.json"
    KIND: ClassVar[str] = "improvement plan"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    priority_domains: list[str]
    """Domains that get one adapter each, weakest first."""
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
    """Failed items by failure kind, over the suite."""
    capabilities: dict[str, float] = Field(default_factory=dict)
    """Score per capability, over the suite."""
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


# -- training.json ---------------------------------------------------------------------------


class TrainingConfig(Record):
    """Everything that decided the adapter."""

    rank: int
    """LoRA rank."""
    alpha: int
    """LoRA alpha."""
    dropout: float
    """Dropout on the LoRA input."""
    target_modules: list[str]
    """Modules that got LoRA weights, or `all-linear`."""
    learning_rate: float
    """Constant AdamW learning rate."""
    steps: int
    """Optimiser steps asked for."""
    batch_size: int
    """Examples per step."""
    seed: int
    """Seed of initialisation, dropout and batch order."""
    max_grad_norm: float
    """Gradient clipping norm (0: off)."""
    checkpoint_every: int
    """Steps between checkpoints."""
    max_seq_length: int
    """Tokens per example, at most."""
    capability_weight: int
    """Copies of each example of a targeted capability."""
    replay_fraction: float
    """Share of the training set drawn from other domains (rehearsal)."""
    replay_examples: int
    """Rehearsal examples added."""
    synthesis_examples: int = 0
    """Most items synthesised from the domain's knowledge (0: none)."""
    teacher: str = "none"
    """Distillation mode: `none` or `context`."""
    teacher_model: str | None = None
    """The teacher model (null: the model being trained)."""
    teacher_share: float = 1.0
    """Share of the synthesised items the teacher answered."""
    distill_weight: float = 0.0
    """Weight of the token-level distillation KL term (0: off)."""
    distill_top_k: int = f.DEFAULT_DISTILL_TOP_K
    """Teacher tokens per answer position the KL compared."""
    distill_temperature: float = f.DEFAULT_DISTILL_TEMPERATURE
    """Temperature of the KL's distributions (the term is scaled by its square)."""


class PlanUse(Record):
    """What the step took from the plan."""

    path: str | None
    """The `plan.json` given (null: none)."""
    targeted_capabilities: list[str]
    """Capabilities whose examples were repeated."""


class ExampleCounts(Record):
    """How the training set was made."""

    pool: int
    """Examples from the suite's training pool for the domain."""
    extra: int
    """Examples from `--extra-data`."""
    training_set: int
    """Examples after repetition and rehearsal."""
    used: int
    """Examples left after tokenisation."""
    truncated: int
    """Examples cut at `max_seq_length`."""
    dropped_no_answer_tokens: int
    """Examples dropped because their prompt alone filled `max_seq_length`."""
    answer_tokens: int
    """Answer tokens (the ones with a loss) in all."""
    synthesized: int = 0
    """Items synthesised from knowledge that made it into the training set."""
    teacher: int = 0
    """Of those, items answered by the teacher."""
    contaminated: int = 0
    """Lines dropped by the contamination guard (listed in the data card)."""


class DistillationUse(Record):
    """What token-level distillation did (docs/training-data.md)."""

    teacher: str | None
    """The teacher model (null: the model being trained, with its adapters)."""
    positions: int
    """Answer tokens that got the teacher's top-k targets."""
    top_k_mass: float
    """Mean probability the teacher put on its top-k tokens: how much of its distribution
    the KL saw."""
    teacher_seconds: float
    """Wall time of the teacher's pass over the training set (not in `train_seconds`)."""
    kl_curve: list[float]
    """The KL term (before weight and temperature²) of every step."""
    final_kl: float | None
    """Mean KL term over the last steps."""


class TrainingRecord(Artifact):
    """`training.json`: how one domain's adapter was trained."""

    FILE_NAME: ClassVar[str] = "training.json"
    KIND: ClassVar[str] = "training record"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    step: str
    """Step name, e.g. `train-geography`."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    domain: str
    """The domain trained."""
    suite: SuiteRef
    """The suite whose training pool was used."""
    model: ModelRef
    """The base model."""
    config: TrainingConfig
    """Training settings."""
    plan: PlanUse
    """What was taken from the plan."""
    examples: ExampleCounts
    """The training set."""
    steps: int
    """Optimiser steps done (including those before a resume)."""
    resumed_from: int
    """Step of the checkpoint this run resumed from (0: a fresh run)."""
    loss_curve: list[float]
    """Training loss of every step (with distillation: cross-entropy + weight × T² × KL)."""
    final_loss: float
    """Mean loss over the last steps."""
    train_seconds: float
    """Time spent in optimiser steps."""
    seconds_per_step: float
    """`train_seconds` per step."""
    tokens_per_second: float | None
    """Training tokens per second (null when no time was measured)."""
    peak_memory_mb: float
    """Peak memory, MiB."""
    trainable_parameters: int
    """Parameters of the adapter."""
    total_parameters: int
    """Parameters of base model plus adapter."""
    device: str
    """Torch device."""
    autocast: str | None
    """Autocast dtype, when mixed precision was used."""
    versions: dict[str, str]
    """Versions of torch, transformers and peft."""
    adapter: str
    """The adapter folder (peft format)."""
    data_card: str | None = None
    """The step's `data_card.json`: where every training line came from."""
    distillation: DistillationUse | None = None
    """Token-level distillation, when it was on."""


# -- data_card.json --------------------------------------------------------------------------


class CardLine(Record):
    """One training line, as shown in a data card."""

    source: str
    """Where it came from: `pool`, `FILE:LINE` (extra data), `synthesis:<kind>`,
    `teacher:<kind>`, `replay:<domain>`."""
    capability: str | None
    """The capability it exercises."""
    question: str
    """The question."""
    answer: str
    """The answer trained on."""


class DroppedLine(Record):
    """A line left out, and why."""

    source: str
    """Where it came from."""
    question: str
    """Its question."""
    answer: str | None = None
    """Its answer (a teacher's rejected answer, for instance)."""
    reason: str
    """Why it was left out."""


class SynthesisReport(Record):
    """How the synthesised share of the training set was chosen."""

    budget: int
    """Most items asked for (`--synthesis-examples`)."""
    facts: int
    """Facts of the domain."""
    passages: int
    """Passages of the domain."""
    available: dict[str, int]
    """Candidate items the knowledge supports, by capability."""
    chosen: dict[str, int]
    """Items chosen, by capability."""
    weights: dict[str, float]
    """Weight of each capability in the mix (docs/training-data.md)."""
    diagnosis: str | None
    """The analysis's knowledge-vs-reasoning hint for the domain."""
    targeted_capabilities: list[str]
    """Capabilities the plan targets."""
    failed_items: int
    """The domain's failed evaluation items the synthesis was steered by."""
    behind_failures: int
    """Candidates about entities of failed items (taken first)."""
    earlier_lines: int = 0
    """Synthesised questions the model's promoted adapters were already trained on (found
    through their `data.jsonl`); candidates among them come after new ones."""
    repeated: int = 0
    """Chosen items that repeat such an earlier line (when too few new ones remain)."""


class TeacherUse(Record):
    """What the teacher did."""

    mode: str
    """`context`: the teacher saw the facts in its prompt."""
    model: str | None
    """The teacher model (null: the model being trained)."""
    share: float
    """Share of the synthesised items it was asked."""
    asked: int
    """Answers asked for."""
    accepted: int
    """Answers that stated the known fact, kept for training."""


class DataCard(Artifact):
    """`data_card.json`: the training set of one adapter, where each line came from and why."""

    FILE_NAME: ClassVar[str] = "data_card.json"
    KIND: ClassVar[str] = "data card"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    step: str
    """Step name, e.g. `train-geography`."""
    domain: str
    """The domain trained."""
    suite: SuiteRef
    """The suite the pool and knowledge came from."""
    seed: int
    """The seed every choice was made with (the same seed gives the same set)."""
    steps: int
    """Optimiser steps of this adapter."""
    learning_rate: float
    """Learning rate of this adapter."""
    total: int
    """Lines in the training set (repeats and replay included)."""
    by_source: dict[str, int]
    """Lines by source kind (`pool`, `extra`, `synthesis:<kind>`, `teacher:<kind>`, `replay`)."""
    by_capability: dict[str, int]
    """Lines by capability."""
    by_domain: dict[str, int]
    """Lines by domain (replay brings the others)."""
    synthesis: SynthesisReport | None = None
    """How the synthesised items were chosen (null: synthesis off or no knowledge)."""
    teacher: TeacherUse | None = None
    """Distillation (null: off)."""
    dropped: list[DroppedLine] = Field(default_factory=list)
    """Lines left out: contamination, duplicates, rejected teacher answers."""
    examples: list[CardLine] = Field(default_factory=list)
    """A few lines of each source."""
    data: str
    """The training set itself, one JSON line each (`data.jsonl`)."""


# -- merge.json ------------------------------------------------------------------------------


class MergeConfig(Record):
    """The merge settings asked for."""

    combination: str
    """peft combination type."""
    density: float
    """Share of weights kept by the pruning combinations."""
    seed: int
    """Seed of the random pruning (`dare_*`)."""


class MergedSource(Record):
    """One adapter that went into the merge."""

    domain: str
    """The adapter's domain."""
    path: str
    """Its folder."""
    rank: int
    """Its LoRA rank."""
    alpha: float
    """Its LoRA alpha."""
    target_modules: list[str] | str | None
    """Its target layer names (or peft's pattern string)."""


class MergeRecord(Artifact):
    """`merge.json`: how the domain adapters were combined into the candidate."""

    FILE_NAME: ClassVar[str] = "merge.json"
    KIND: ClassVar[str] = "merge record"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    step: str
    """Step name."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    model: ModelRef
    """The base model."""
    config: MergeConfig
    """Merge settings asked for."""
    combination: str
    """The combination applied (`copy` when there was a single source)."""
    rank: int
    """Rank of the merged adapter."""
    sources: list[MergedSource]
    """The adapters merged, in order."""
    seconds: float
    """Wall time of the merge."""
    versions: dict[str, str]
    """Versions of torch, transformers and peft."""
    adapter: str
    """The merged adapter folder (peft format)."""


#: Every artifact model, in cycle order.
ARTIFACTS: tuple[type[Artifact], ...] = (
    EvaluationResults,
    ImprovementPlan,
    TrainingRecord,
    DataCard,
    MergeRecord,
    ValidationReport,
)

A = TypeVar("A", bound=Artifact)


# -- reading and writing ---------------------------------------------------------------------


def write_artifact(path: str | os.PathLike[str], artifact: Artifact) -> Path:
    """Write `artifact` as indented JSON to `path`, atomically (temp file and rename)."""
    return atomic_write_json(path, artifact.to_dict())


def _problems(error: ValidationError, limit: int = 5) -> str:
    found = error.errors()
    shown = [
        f"{'.'.join(str(part) for part in problem['loc']) or '(top level)'}: {problem['msg']}"
        for problem in found[:limit]
    ]
    more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(shown) + more


def check_version(raw: object, model: type[Artifact], where: str) -> None:
    """Raise `ArtifactError` unless `raw` is a JSON object of the version `model` reads."""
    kind, known = model.KIND, model.SCHEMA_VERSION
    if not isinstance(raw, dict):
        raise ArtifactError(f"{where}: {kind} must be a JSON object, got {type(raw).__name__}")
    if VERSION_KEY not in raw:
        raise ArtifactError(
            f'{where}: {kind} without a schema version (no "{VERSION_KEY}" key); Kaizen writes '
            f'one in every artifact: a file that follows version {known} needs "{VERSION_KEY}": {known}'
        )
    version = raw[VERSION_KEY]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ArtifactError(
            f"{where}: {kind} schema version {version!r} is not an integer (this Kaizen reads {known})"
        )
    if version > known:
        raise ArtifactError(
            f"{where}: {kind} schema version {version} is newer than this Kaizen reads ({known}); "
            "upgrade Kaizen"
        )
    if version != known:
        raise ArtifactError(
            f"{where}: unknown {kind} schema version {version} (this Kaizen reads {known})"
        )


def parse_artifact(raw: object, model: type[A], where: str = "<data>") -> A:
    """Validate a parsed JSON value as `model`, version first; `ArtifactError` names `where`."""
    check_version(raw, model, where)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ArtifactError(
            f"{where}: not valid {model.KIND} (schema version {model.SCHEMA_VERSION}): "
            f"{_problems(error)}"
        ) from None


def read_artifact(path: str | os.PathLike[str], model: type[A]) -> A:
    """Read and validate one artifact file; `ArtifactError` (naming the file) when unusable."""
    target = Path(path)
    kind = model.KIND
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{target}: {kind} file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{target}: cannot read {kind}: {error}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{target}:{error.lineno}: invalid JSON: {error.msg}") from None
    return parse_artifact(raw, model, str(target))


# -- JSON Schema -----------------------------------------------------------------------------


def schema_file_name(model: type[Artifact]) -> str:
    """`results.json` → `results.schema.json`."""
    return f"{Path(model.FILE_NAME).stem}.schema.json"


def artifact_schema(model: type[Artifact]) -> dict[str, Any]:
    """The JSON Schema of a file as Kaizen reads it."""
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema()}


def render_schema(model: type[Artifact]) -> str:
    """The schema as committed under docs/schemas/: indented, ending in a newline."""
    return json.dumps(artifact_schema(model), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: str | os.PathLike[str]) -> list[Path]:
    """Write one `<name>.schema.json` per artifact model into `directory`."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for model in ARTIFACTS:
        path = target / schema_file_name(model)
        path.write_text(render_schema(model), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kaizen.api.artifacts",
        description="Write the JSON Schema of every artifact file Kaizen steps write.",
    )
    parser.add_argument(
        "--schemas", metavar="DIR", required=True, help="folder for <name>.schema.json files"
    )
    args = parser.parse_args(argv)
    for path in write_schemas(args.schemas):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
