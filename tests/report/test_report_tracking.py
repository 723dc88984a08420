"""W&B gets the report's plots: the validate step logs them as images, read back offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.evaluator.gates import Gates
from kaizen.evaluator.validate import validate_step
from kaizen.runtime.tracking import TrackingOptions
from tests.evaluator.test_tracking import read_run
from tests.report.cycle_dir import write_cycle

pytest.importorskip("wandb")


def test_the_validate_step_writes_the_report_and_logs_its_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    cycle = write_cycle(tmp_path / "cyc")
    (cycle / "validate" / "report.json").unlink()
    summary = validate_step(
        cycle / "evaluate-baseline" / "results.json",
        cycle / "evaluate-candidate" / "results.json",
        cycle / "validate",
        step="validate",
        gates=Gates(),
        tracking=TrackingOptions(mode="offline", project="kaizen-tests", cycle="cyc"),
        html_report=cycle / "report",
    )
    assert summary.validation is not None
    assert summary.validation.html_report_path == str(cycle / "report" / "index.html")
    run = read_run(wandb_dir)
    for plot in ("domains", "deltas", "flips", "loss"):
        assert json.loads(run["history"][f"report/{plot}/_type"]) == "image-file"
        logged = run["dir"] / "files" / json.loads(run["history"][f"report/{plot}/path"])
        assert logged.read_bytes() == (cycle / "report" / f"{plot}.png").read_bytes()
    assert float(run["history"]["power/mde"]) == summary.validation.minimum_detectable_effect


def test_a_report_that_cannot_be_drawn_does_not_fail_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cycle = write_cycle(tmp_path / "cyc")
    (cycle / "analyze" / "plan.json").write_text('{"schema": 99}')
    summary = validate_step(
        cycle / "evaluate-baseline" / "results.json",
        cycle / "evaluate-candidate" / "results.json",
        cycle / "validate",
        step="validate",
        gates=Gates(),
        tracking=TrackingOptions(mode="disabled"),
        html_report=cycle / "report",
    )
    assert summary.ok and summary.validation is not None
    assert summary.validation.html_report_path is None
    assert "[report] no HTML report: ReportInputError" in capsys.readouterr().err
