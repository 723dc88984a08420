"""Typed, versioned files that steps leave in their artifact directories, and how to read them.

`results.json` (evaluate), `plan.json` (analyze), `report.json` (validate), `training.json`
(train), `merge.json` (merge), `joint.json` (joint) and `combination.json` (combine) are each one
`Artifact` model: steps write them only with
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag

from kaizen.api.artifacts_base import (
    JSON_SCHEMA_DIALECT,
    VERSION_KEY,
    A,
    Artifact,
    ArtifactError,
    EvaluatedModel,
    FailureKind,
    FailureType,
    Hint,
    Interval,
    IntervalMethod,
    ModelRef,
    PairedTest,
    Record,
    SuiteRef,
    Verdict,
    check_version,
    optional_key,
    parse_artifact,
    read_artifact,
    write_artifact,
)
from kaizen.api.artifacts_combination import (
    CandidateScore,
    CombinationReport,
    DomainRetention,
    JointRecord,
    JointSource,
    Route,
    RouteTable,
    SimilarRoutes,
)
from kaizen.api.artifacts_plan import (
    DomainAnalysis,
    ExcludedDomain,
    Failure,
    ImprovementPlan,
    KnowledgeVsReasoning,
    PlanSplit,
    Recommendation,
    WeakGroup,
)
from kaizen.api.artifacts_training import (
    CardLine,
    DataCard,
    DistillationUse,
    DroppedLine,
    ExampleCounts,
    LoraConfig,
    MergeConfig,
    MergedSource,
    MergePointRecord,
    MergeRecord,
    PlanUse,
    PreservationUse,
    RehearsalReport,
    SynthesisReport,
    TeacherUse,
    TrainingConfig,
    TrainingRecord,
)
from kaizen.api.artifacts_validation import (
    ComparedSide,
    GateSettings,
    GroupComparison,
    McNemarCounts,
    PairedComparison,
    PerformanceComparison,
    PowerRecord,
    ReferenceComparison,
    RetentionRecord,
    TaskComparison,
    TrainedDomainRetention,
    ValidationReport,
)

#: What `kaizen.api.artifacts` offers (the artifact models live in sibling modules by file).
__all__ = [
    "A",
    "ARTIFACTS",
    "Artifact",
    "ArtifactError",
    "CandidateScore",
    "CombinationReport",
    "DomainRetention",
    "JointRecord",
    "JointSource",
    "Route",
    "RouteTable",
    "SimilarRoutes",
    "CardLine",
    "ComparedSide",
    "DataCard",
    "DistillationUse",
    "PreservationUse",
    "DomainAnalysis",
    "DomainScore",
    "DroppedLine",
    "EvaluatedModel",
    "EvaluationResults",
    "ExampleCounts",
    "ExcludedDomain",
    "Failure",
    "FailureKind",
    "FailureType",
    "GateSettings",
    "GenerationSettings",
    "GroupComparison",
    "GroupScore",
    "Hint",
    "ImprovementPlan",
    "Interval",
    "IntervalMethod",
    "ItemResult",
    "JSON_SCHEMA_DIALECT",
    "KnowledgeVsReasoning",
    "LmEvalRun",
    "LmEvalTask",
    "McNemarCounts",
    "MergeConfig",
    "MergePointRecord",
    "MergeRecord",
    "MergedSource",
    "ModelRef",
    "OverallScores",
    "PairedComparison",
    "PairedTest",
    "Performance",
    "PlanUse",
    "Recommendation",
    "Record",
    "RehearsalReport",
    "Selection",
    "StepProvenance",
    "SuiteRef",
    "SynthesisReport",
    "TaskScore",
    "TeacherUse",
    "TrainingConfig",
    "LoraConfig",
    "TrainingRecord",
    "VERSION_KEY",
    "PerformanceComparison",
    "PlanSplit",
    "PowerRecord",
    "ReferenceComparison",
    "RetentionRecord",
    "TaskComparison",
    "TrainedDomainRetention",
    "ValidationReport",
    "Verdict",
    "WeakGroup",
    "artifact_schema",
    "check_version",
    "main",
    "optional_key",
    "parse_artifact",
    "read_artifact",
    "render_schema",
    "schema_file_name",
    "write_artifact",
    "write_schemas",
]


# -- results.json ----------------------------------------------------------------------------


class Selection(Record):
    """Which items of the suite were evaluated."""

    domains: list[str]
    """Domains selected (empty: all)."""
    limit: int | None
    """At most this many items per domain (null: all)."""
    split: Literal["dev", "test"] | None = optional_key()
    """Only the items of this split (absent: dev and test items)."""


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
    split: Literal["dev", "test"] | None = optional_key()
    """`dev`: read by the cycle's own choices; `test`: by the validation gate (absent in
    results written before the split existed: the gate reads them all)."""
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
    route: list[str] | None = optional_key()
    """The routes of routed adapters (`routes.json`) the item's prompt went through (empty:
    it named no route's key and was answered without them); absent without routed adapters."""


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
    # Version 1 differs only by lacking `split` (its items were all the gate's: test).
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda raw: {**raw, VERSION_KEY: 2}
    }

    schema_version: Literal[2] = Field(default=2, alias="schema")
    """Layout version of this file (2: `split` of the items and of the selection)."""
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


class StepProvenance(Artifact):
    """`provenance.json`: the inputs a step's output was made from, written just before the
    completion marker. A re-run reuses the output only when its own inputs give the same
    `digest` (`kaizen.api.provenance`)."""

    FILE_NAME: ClassVar[str] = "provenance.json"
    KIND: ClassVar[str] = "step provenance"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    step: str
    """Step name."""
    command: str
    """The step program's subcommand (`evaluate`, `train`, …)."""
    kaizen_version: str
    """Version of Kaizen that ran the step: other code may give another output."""
    args: dict[str, Any]
    """The step's typed arguments that shape its output (tracking and display options left
    out), as the program parsed them."""
    inputs: dict[str, str]
    """Digest of every local file or folder the step read, by path (`missing` when absent)."""
    digest: str
    """sha256 over the version, the arguments and the inputs: the key of reuse."""


# A chain's lineage.json lives in its own module, built on the classes above (imported here,
# after them, so that it is registered wherever artifacts are).
from kaizen.api.lineage import ChainLineage  # noqa: E402

#: Every artifact model, in cycle order (then the chain's).
ARTIFACTS: tuple[type[Artifact], ...] = (
    EvaluationResults,
    ImprovementPlan,
    TrainingRecord,
    DataCard,
    MergeRecord,
    JointRecord,
    CombinationReport,
    RouteTable,
    ValidationReport,
    StepProvenance,
    ChainLineage,
)


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
    # Run as `python -m`, this file executes a second time as `__main__` (the package already
    # imported it): use the imported module's models, whose docstrings pydantic reads.
    from kaizen.api import artifacts as _published

    sys.exit(_published.main())
