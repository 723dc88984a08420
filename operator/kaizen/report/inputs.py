"""What a cycle's report is drawn from: the typed artifacts found in its artifact directory.

A cycle's folder holds one folder per step (`evaluate-baseline/results.json`,
`analyze/plan.json`, `train-<domain>/training.json` and `data_card.json`, `merge/merge.json`,
`evaluate-candidate/results.json`, `validate/report.json`) and, when `kaizen run` ran it,
`status.json`. Each file is read with its model (`kaizen.api.artifacts`), so a file of an
unknown version is refused naming it; a file that is absent leaves its section out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import (
    ArtifactError,
    CombinationReport,
    DataCard,
    EvaluationResults,
    ImprovementPlan,
    MergeRecord,
    TrainingRecord,
    ValidationReport,
    read_artifact,
)
from kaizen.api.status import ImprovementCycleStatus

#: The file `kaizen run` keeps a cycle's status in.
STATUS_FILE = "status.json"
#: Step folders of a cycle, by role.
BASELINE_DIR, CANDIDATE_DIR = "evaluate-baseline", "evaluate-candidate"
ANALYZE_DIR, MERGE_DIR, VALIDATE_DIR = "analyze", "merge", "validate"
COMBINE_DIR = "combine"
TRAIN_PREFIX = "train-"


class ReportInputError(ValueError):
    """A folder that is not a cycle's artifact directory, or an artifact that cannot be read."""


@dataclass
class Adapter:
    """One trained adapter: its record and, when written, its data card."""

    record: TrainingRecord
    card: DataCard | None = None


@dataclass
class CycleInputs:
    """Everything found of one cycle."""

    directory: Path
    name: str
    namespace: str | None = None
    status: ImprovementCycleStatus | None = None
    baseline: EvaluationResults | None = None
    candidate: EvaluationResults | None = None
    plan: ImprovementPlan | None = None
    adapters: list[Adapter] = field(default_factory=list)
    merge: MergeRecord | None = None
    combination: CombinationReport | None = None
    validation: ValidationReport | None = None

    @property
    def verdict(self) -> str | None:
        """The validation verdict, or the cycle's outcome without one."""
        if self.validation is not None:
            return self.validation.verdict
        if self.status is not None and self.status.phase.value in ("Succeeded", "Failed"):
            return self.status.failure_reason or (
                "NothingToImprove" if self.status.phase.value == "Succeeded" else None
            )
        return None


def _read(path: Path, model: Any) -> Any:
    if not path.is_file():
        return None
    try:
        return read_artifact(path, model)
    except ArtifactError as error:
        raise ReportInputError(str(error)) from None


def _status(directory: Path) -> tuple[ImprovementCycleStatus | None, dict[str, Any]]:
    path = directory / STATUS_FILE
    if not path.is_file():
        return None, {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return ImprovementCycleStatus.model_validate(document["status"]), document.get("cycle", {})
    except (ValueError, KeyError, TypeError) as error:
        raise ReportInputError(
            f"{path}: not a cycle status written by kaizen run: {error}"
        ) from None


def read_cycle(directory: str | Path) -> CycleInputs:
    """The artifacts of the cycle whose artifact directory is `directory`."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ReportInputError(f"{folder}: no such directory")
    status, meta = _status(folder)
    found = CycleInputs(
        directory=folder,
        name=str(meta.get("name") or folder.name),
        namespace=meta.get("namespace") or None,
        status=status,
        baseline=_read(folder / BASELINE_DIR / EvaluationResults.FILE_NAME, EvaluationResults),
        candidate=_read(folder / CANDIDATE_DIR / EvaluationResults.FILE_NAME, EvaluationResults),
        plan=_read(folder / ANALYZE_DIR / ImprovementPlan.FILE_NAME, ImprovementPlan),
        merge=_read(folder / MERGE_DIR / MergeRecord.FILE_NAME, MergeRecord),
        combination=_read(folder / COMBINE_DIR / CombinationReport.FILE_NAME, CombinationReport),
        validation=_read(folder / VALIDATE_DIR / ValidationReport.FILE_NAME, ValidationReport),
    )
    for step in sorted(p for p in folder.iterdir() if p.name.startswith(TRAIN_PREFIX)):
        record = _read(step / TrainingRecord.FILE_NAME, TrainingRecord)
        if record is not None:
            card = _read(step / DataCard.FILE_NAME, DataCard)
            found.adapters.append(Adapter(record=record, card=card))
    if found.baseline is None and found.status is None:
        raise ReportInputError(
            f"{folder}: not a cycle's artifact directory (no {STATUS_FILE} and no "
            f"{BASELINE_DIR}/{EvaluationResults.FILE_NAME})"
        )
    return found
