"""The `ImprovementCycle` status: phase, conditions (Kubernetes API conventions) and step records."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from kaizen.api._base import ApiModel
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.summary import (
    AdapterDigest,
    CombinationDigest,
    MergeDigest,
    PlanDigest,
    ScoreDigest,
    ValidationDigest,
)


class Phase(StrEnum):
    """Summary of the conditions, for humans and printer columns."""

    PENDING = "Pending"
    EVALUATING = "Evaluating"
    ANALYZING = "Analyzing"
    TRAINING = "Training"
    MERGING = "Merging"
    VALIDATING = "Validating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class StepState(StrEnum):
    """Where one step stands."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Condition(ApiModel):
    """A condition as in the Kubernetes API conventions (metav1.Condition)."""

    type: str
    """CamelCase condition type, e.g. `BaselineEvaluated`, `Ready`."""

    status: Literal["True", "False", "Unknown"]
    """`True`, `False` or `Unknown`."""

    reason: str
    """CamelCase reason for the last transition."""

    message: str = ""
    """Human-readable details."""

    last_transition_time: str
    """When `status` last changed (RFC 3339)."""

    observed_generation: int | None = None
    """The `metadata.generation` this condition was set for."""


class StepRecord(ApiModel):
    """One step of the cycle: its Job, state and outcome. Recorded before any Job can vanish."""

    name: str
    """Step name: `evaluate-baseline`, `analyze`, `train-<domain>`, `joint`, `score-<domain>`,
    `merge`, `combine`, `evaluate-candidate`, `validate`."""

    job_name: str
    """Name of the Job (operator) or process (local) that runs the step."""

    state: StepState = StepState.PENDING
    """Pending, Queued, Running, Succeeded or Failed."""

    attempt: int = 1
    """Which launch of the step this is."""

    start_time: str | None = None
    """When the step was launched (RFC 3339)."""

    completion_time: str | None = None
    """When the step's outcome was recorded (RFC 3339)."""

    reason: str | None = None
    """CamelCase reason of the outcome."""

    message: str | None = None
    """One line about the outcome."""

    digest: str | None = None
    """sha256 of the step's main result file."""

    artifacts_dir: str | None = None
    """Where the step wrote its artifacts."""


class ImprovementCycleStatus(ApiModel):
    """Observed state of a cycle. Everything here is bounded: full results live in artifacts."""

    observed_generation: int | None = None
    """The `metadata.generation` last acted on."""

    run_generation: int | None = None
    """The `metadata.generation` whose spec this cycle runs: the one that started it."""

    run_spec: ImprovementCycleSpec | None = None
    """The spec this cycle runs, copied when it started. Later edits are not run (condition
    `SpecApplied` says so): a started cycle never changes its settings."""

    phase: Phase = Phase.PENDING
    """Summary of the conditions."""

    conditions: list[Condition] = Field(default_factory=list)
    """Conditions per the Kubernetes API conventions, including Ready, Reconciling and Stalled."""

    steps: list[StepRecord] = Field(default_factory=list)
    """One record per launched step."""

    start_time: str | None = None
    """When the cycle started (RFC 3339)."""

    completion_time: str | None = None
    """When the cycle reached Succeeded or Failed (RFC 3339)."""

    artifacts_path: str | None = None
    """The cycle's artifact directory."""

    baseline: ScoreDigest | None = None
    """Scores of the model as given."""

    plan: PlanDigest | None = None
    """The improvement plan."""

    adapters: list[AdapterDigest] = Field(default_factory=list)
    """Adapters trained in this cycle, one per priority domain."""

    joint: AdapterDigest | None = None
    """The adapter trained on the union of the priority domains' data (when `joint` is a
    candidate)."""

    alone: dict[str, float] = Field(default_factory=dict)
    """Each trained domain's adapter alone, scored on its own domain's dev items."""

    merged: MergeDigest | None = None
    """The merged candidate adapter(s)."""

    combination: CombinationDigest | None = None
    """The combination chosen, with each trained domain's retention."""

    candidate: ScoreDigest | None = None
    """Scores of the model with the candidate adapter, on the same items."""

    validation: ValidationDigest | None = None
    """The comparison and the verdict."""

    report_path: str | None = None
    """The cycle's HTML report (`<artifacts>/report/index.html`, PNG plots beside it); also
    `kaizen report <artifacts>`."""

    promoted_adapters: list[str] = Field(default_factory=list)
    """The adapter stack to start the next cycle from (`spec.model.adapters` of the next cycle)."""

    failure_reason: str | None = None
    """CamelCase reason when the cycle failed."""

    message: str | None = None
    """The latest human-readable news."""
