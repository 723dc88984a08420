"""Kaizen's API: the `ImprovementCycle` models, the step contract and CRD generation.

This package imports nothing else of `kaizen`; evaluator, trainer and operator depend on it.
"""

from kaizen.api.cycle import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    SINGULAR,
    VERSION,
    ImprovementCycle,
    SpecError,
    parse_cycle,
    parse_spec,
)
from kaizen.api.spec import (
    BUNDLED_MODEL,
    AnalysisSpec,
    EvaluationSpec,
    ImprovementCycleSpec,
    MergeSpec,
    ModelSpec,
    ResourcesSpec,
    SecretKeyRef,
    StepResources,
    TrackingSpec,
    TrainingSpec,
    ValidationSpec,
)
from kaizen.api.status import (
    Condition,
    ImprovementCycleStatus,
    Phase,
    StepRecord,
    StepState,
)
from kaizen.api.summary import (
    EXIT_CONFIG_ERROR,
    EXIT_FAILURE,
    EXIT_OK,
    SUMMARY_MAX_BYTES,
    SUMMARY_PATH_ENV,
    AdapterDigest,
    MergeDigest,
    PlanDigest,
    ScoreDigest,
    StepSummary,
    SummaryTooLarge,
    ValidationDigest,
    atomic_write_bytes,
    atomic_write_json,
    encode_summary,
    file_digest,
    parse_summary,
    step_artifacts_dir,
    write_summary,
)

__all__ = [
    "API_VERSION", "BUNDLED_MODEL", "EXIT_CONFIG_ERROR", "EXIT_FAILURE", "EXIT_OK", "GROUP",
    "KIND", "PLURAL", "SINGULAR", "SUMMARY_MAX_BYTES", "SUMMARY_PATH_ENV", "VERSION",
    "AdapterDigest", "AnalysisSpec", "Condition", "EvaluationSpec", "ImprovementCycle",
    "ImprovementCycleSpec", "ImprovementCycleStatus", "MergeDigest", "MergeSpec", "ModelSpec",
    "Phase", "PlanDigest", "ResourcesSpec", "ScoreDigest", "SecretKeyRef", "SpecError",
    "StepRecord", "StepResources", "StepState", "StepSummary", "SummaryTooLarge", "TrackingSpec",
    "TrainingSpec", "ValidationDigest", "ValidationSpec", "atomic_write_bytes",
    "atomic_write_json", "encode_summary", "file_digest", "parse_cycle", "parse_spec",
    "parse_summary", "step_artifacts_dir", "write_summary",
]
