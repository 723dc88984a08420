"""The `ImprovementCycle` spec: what a user asks for, with a default and a description per field."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kaizen.api._base import ApiModel

#: The model shipped with Kaizen for machines without GPUs or hub access (see docs/design.md §5).
BUNDLED_MODEL = "bundled:smollm2-135m-instruct"


class ModelSpec(ApiModel):
    """The model to improve."""

    name: str = Field(default=BUNDLED_MODEL, min_length=1)
    """Hub id (`org/name`), a local or PVC path, or `bundled:smollm2-135m-instruct`."""

    adapters: list[str] = Field(default_factory=list)
    """LoRA adapters already promoted for this model, applied in order before anything else."""

    revision: str | None = None
    """Hub revision (branch, tag or commit) when `name` is a hub id."""


class EvaluationSpec(ApiModel):
    """How the model is evaluated (baseline and candidate use the same settings and items)."""

    suite: str = Field(default="demo", min_length=1)
    """A suite shipped with Kaizen (`demo`) or a path to a suite directory (PVC or ConfigMap)."""

    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    """Most tokens generated per item."""

    batch_size: int = Field(default=64, ge=1, le=1024)
    """Prompts generated together. Larger is faster until memory runs out; when a batch does
    not fit, it is halved and the smaller size kept, so start high."""

    limit: int | None = Field(default=None, ge=1)
    """Evaluate only the first `limit` items of each domain (for smoke tests)."""

    domains: list[str] = Field(default_factory=list)
    """Evaluate only these domains of the suite (all when empty)."""

    lm_eval_tasks: list[str] = Field(default_factory=list)
    """lm-evaluation-harness task names or task YAML paths run on the same model; each becomes a
    domain `lmeval:<task>` in the results (needs the evaluator image with `kaizen[lmeval]`)."""


class AnalysisSpec(ApiModel):
    """How the weakest domains are chosen for training."""

    max_priority_domains: int = Field(default=2, ge=1, le=32)
    """At most this many domains get an adapter in one cycle."""

    score_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    """Only domains scoring below this are candidates for training."""


class TrainingSpec(ApiModel):
    """LoRA training of one adapter per priority domain."""

    rank: int = Field(default=8, ge=1, le=512)
    """LoRA rank `r`."""

    alpha: int = Field(default=16, ge=1, le=4096)
    """LoRA scaling `lora_alpha`."""

    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """LoRA dropout."""

    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"], min_length=1)
    """Modules that get LoRA weights; `all-linear` means every linear layer but the output head."""

    learning_rate: float = Field(default=1e-3, gt=0.0, le=1.0)
    """AdamW learning rate."""

    steps: int = Field(default=30, ge=1, le=1_000_000)
    """Optimiser steps per adapter."""

    batch_size: int = Field(default=8, ge=1, le=4096)
    """Examples per optimiser step."""

    max_seq_length: int = Field(default=128, ge=16, le=32768)
    """Training examples are truncated to this many tokens."""

    seed: int = Field(default=0, ge=0)
    """Seed for data order and initialisation."""

    replay_fraction: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Share of each adapter's training set drawn from the suite's other domains (rehearsal),
    so the adapter learns its domain without forgetting what the model already knew."""

    extra_data: str | None = Field(default=None, min_length=1)
    """Your own training data: a JSONL file of `{"question", "answer", "domain",
    "capability"}` lines (`domain` and `capability` optional) on a volume the Jobs mount (the
    artifact PVC). Each adapter adds the lines of its domain (lines without a domain go to
    every adapter) to the suite's training pool; a domain with no pool trains on them alone.
    A malformed line fails the train step naming the file and line."""


class MergeSpec(ApiModel):
    """How the per-domain adapters are combined into one candidate adapter."""

    combination: Literal["linear", "cat", "ties", "dare_linear", "dare_ties"] = "ties"
    """peft `add_weighted_adapter` combination type. TIES keeps most of each adapter (docs/ml-notes.md)."""

    density: float = Field(default=0.5, gt=0.0, le=1.0)
    """Fraction of weights kept by `ties` and `dare_*`."""

    seed: int = Field(default=0, ge=0)
    """Seed for the random pruning of `dare_*`."""


class ValidationSpec(ApiModel):
    """The gates a candidate must pass to be promoted."""

    min_improvement: float = Field(default=0.0, ge=-1.0, le=1.0)
    """The candidate's overall score must beat the baseline's by more than this."""

    max_regression: float = Field(default=0.1, ge=0.0, le=1.0)
    """A domain whose score drops by more than this is a regression and blocks promotion."""

    significance: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Significance level of the paired (exact McNemar) test."""

    require_significance: bool = Field(default=True)
    """Promote only when the overall improvement is significant at `significance`."""


class StepResources(ApiModel):
    """Image and resources of the Jobs that run one kind of step."""

    image: str | None = None
    """Container image; the operator's default for this kind of step when empty."""

    gpus: int = Field(default=0, ge=0, le=64)
    """`nvidia.com/gpu` requested and limited."""

    cpu: str | None = None
    """CPU request, e.g. `4`."""

    memory: str | None = None
    """Memory request and limit, e.g. `32Gi`."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the Job's pod must match."""


class ResourcesSpec(ApiModel):
    """Resources of the evaluator and trainer Jobs."""

    evaluator: StepResources = Field(default_factory=StepResources)
    """Evaluate, analyze and validate steps."""

    trainer: StepResources = Field(default_factory=StepResources)
    """Train and merge steps."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the cycle's namespace."""

    name: str = Field(min_length=1)
    """Secret name."""

    key: str = Field(min_length=1)
    """Key within the Secret."""


class TrackingSpec(ApiModel):
    """Experiment tracking with Weights & Biases."""

    project: str = "kaizen"
    """W&B project."""

    entity: str | None = None
    """W&B entity (team or user)."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    """`online` needs `apiKeySecret`; `offline` writes run files into the artifact directory."""

    api_key_secret: SecretKeyRef | None = Field(default=None)
    """Secret holding `WANDB_API_KEY`."""


class ImprovementCycleSpec(ApiModel):
    """One evaluate → analyze → train → merge → validate cycle."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    """The model to improve."""

    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    """Evaluation settings."""

    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    """How priority domains are chosen."""

    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """LoRA training settings."""

    merge: MergeSpec = Field(default_factory=MergeSpec)
    """How adapters are merged."""

    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    """Promotion gates."""

    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Job images and resources (operator only)."""

    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    """Weights & Biases tracking."""

    hub_token_secret: SecretKeyRef | None = Field(default=None)
    """Secret holding `HF_TOKEN` for gated or private hub models."""

    queue_name: str | None = Field(default=None)
    """Kueue LocalQueue; Jobs then carry `kueue.x-k8s.io/queue-name` and may wait as Queued."""

    max_step_retries: int = Field(default=1, ge=0, le=10)
    """Pod retries per step (`backoffLimit`); configuration errors are never retried."""

    @field_validator("model")
    @classmethod
    def _model_name_has_no_spaces(cls, value: ModelSpec) -> ModelSpec:
        if any(ch.isspace() for ch in value.name):
            raise ValueError("model.name must not contain whitespace")
        return value
