"""The files the steps really write (a real evaluation on the tiny model, then analyze and
validate on it) read back through their models, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaizen.api.artifacts import (
    EvaluationResults,
    ImprovementPlan,
    ValidationReport,
    read_artifact,
)


@pytest.fixture(scope="module")
def evaluation(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """results.json of a real evaluation on the tiny model: one generated and one multiple-choice item."""
    import torch

    from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation

    tmp = tmp_path_factory.mktemp("artifacts")
    suite = tmp / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text(
        "name: mc\nversion: '1'\ndomains: [geo, sea]\ncapabilities: [factual_recall]\n"
    )
    items = [
        {"id": "mc1", "domain": "geo", "capability": "factual_recall",
         "question": "What is the capital of France?", "answer": "Paris", "choices": ["Lyon", "Paris"]},
        {"id": "gen1", "domain": "sea", "capability": "factual_recall",
         "question": "What is the capital of Italy?", "answer": "Rome"},
    ]  # fmt: skip
    (suite / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    options = EvaluateOptions(
        model=str(tiny_model_dir), suite=str(suite), step="evaluate", max_new_tokens=4, quiet=True
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_evaluation(options, tmp / "evaluate")
    finally:
        torch.set_num_threads(threads)
    yield tmp / "evaluate" / EvaluationResults.FILE_NAME


def test_a_real_results_file_reads_back_unchanged(evaluation: Path) -> None:
    on_disk = json.loads(evaluation.read_text())
    results = read_artifact(evaluation, EvaluationResults)
    assert results.to_dict() == on_disk
    mc, gen = results.items
    assert mc.choices == ["Lyon", "Paris"] and mc.logprobs is not None and len(mc.logprobs) == 2
    assert "choices" not in on_disk["items"][1] and gen.choices is None


def test_the_plan_analyze_writes_is_what_the_trainer_reads(
    evaluation: Path, tmp_path: Path
) -> None:
    from kaizen.evaluator.analysis import analyze_step
    from kaizen.runtime.tracking import TrackingOptions
    from kaizen.trainer.data import read_plan

    summary = analyze_step(
        evaluation,
        tmp_path / "analyze",
        step="analyze",
        threshold=1.0,
        max_domains=2,
        tracking=TrackingOptions(mode="disabled"),
    )
    plan = read_plan(tmp_path / "analyze" / ImprovementPlan.FILE_NAME)
    assert summary.plan is not None and plan.priority_domains == summary.plan.priority_domains
    assert plan.baseline == str(evaluation) and plan.suite is not None
    assert plan == read_artifact(tmp_path / "analyze" / "plan.json", ImprovementPlan)


def test_the_report_validate_writes_reads_back(evaluation: Path, tmp_path: Path) -> None:
    from kaizen.evaluator.validate import Gates, validate_step
    from kaizen.runtime.tracking import TrackingOptions

    summary = validate_step(
        evaluation,
        evaluation,
        tmp_path / "validate",
        step="validate",
        gates=Gates(),
        tracking=TrackingOptions(mode="disabled"),
    )
    report = read_artifact(tmp_path / "validate" / ValidationReport.FILE_NAME, ValidationReport)
    assert summary.validation is not None and report.verdict == summary.validation.verdict
    assert report.items == 2 and report.overall_delta == 0.0
