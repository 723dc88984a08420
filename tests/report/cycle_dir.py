"""A cycle's artifact directory written from hand-made artifacts, as the steps lay it out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import (
    DataCard,
    EvaluationResults,
    ImprovementPlan,
    MergeRecord,
    TrainingRecord,
    ValidationReport,
    write_artifact,
)
from kaizen.evaluator.analysis import build_plan
from kaizen.evaluator.validate import Gates, compare
from tests.api.artifact_samples import _data_card, _merge, _training
from tests.evaluator.results_factory import domain_records, results


def _results(scores: dict[str, list[int]]) -> dict[str, Any]:
    data = results([r for domain, s in scores.items() for r in domain_records(domain, s)])
    data["performance"]["tokens_per_second"] = 40.0
    return data


BEFORE = {"geography": [1] * 8 + [0] * 2, "zephyria": [0] * 12, "arithmetic": [1, 0] * 5}
AFTER = {"geography": [1] * 6 + [0] * 4, "zephyria": [1] * 10 + [0] * 2, "arithmetic": [1, 0] * 5}


def write_cycle(
    directory: Path, *, before: dict[str, list[int]] = BEFORE, after: dict[str, list[int]] = AFTER
) -> Path:
    """Every artifact of a finished cycle under `directory` (returned)."""
    baseline, candidate = _results(before), _results(after)
    b_path = directory / "evaluate-baseline" / EvaluationResults.FILE_NAME
    c_path = directory / "evaluate-candidate" / EvaluationResults.FILE_NAME
    write_artifact(b_path, EvaluationResults.model_validate(baseline))
    write_artifact(c_path, EvaluationResults.model_validate(candidate))
    # The plan reads dev items: the trained domains have some, geography none (it is
    # analysed on its test items and not trained, and the report says so).
    dev = [
        r | {"id": f"dev-{r['id']}", "split": "dev"}
        for domain in ("zephyria", "arithmetic")
        for r in domain_records(domain, before.get(domain, [])[:4])
    ]
    plan = build_plan(results(baseline["items"] + dev), threshold=0.7, max_domains=2)
    write_artifact(
        directory / "analyze" / ImprovementPlan.FILE_NAME, ImprovementPlan.model_validate(plan)
    )
    report = compare(baseline, candidate, Gates(), (b_path, c_path))
    write_artifact(
        directory / "validate" / ValidationReport.FILE_NAME, ValidationReport.model_validate(report)
    )
    for domain in ("zephyria", "arithmetic"):
        record = _training() | {"domain": domain, "step": f"train-{domain}"}
        record["loss_curve"] = [2.0 / (1 + i / 5) for i in range(30)]
        write_artifact(
            directory / f"train-{domain}" / TrainingRecord.FILE_NAME,
            TrainingRecord.model_validate(record),
        )
        card = _data_card() | {"domain": domain, "step": f"train-{domain}"}
        write_artifact(
            directory / f"train-{domain}" / DataCard.FILE_NAME, DataCard.model_validate(card)
        )
    write_artifact(
        directory / "merge" / MergeRecord.FILE_NAME, MergeRecord.model_validate(_merge())
    )
    return directory


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
