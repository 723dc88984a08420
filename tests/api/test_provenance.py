"""A step reuses an earlier output only when it was made from the same inputs (`provenance.json`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaizen.api import EXIT_OK, StepSummary, parse_summary
from kaizen.api.args import AnalyzeArgs, EvaluateArgs
from kaizen.api.args_combination import MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import StepProvenance, read_artifact
from kaizen.api.provenance import (
    MISSING,
    changes,
    input_paths,
    path_digest,
    step_provenance,
)
from kaizen.api.runner import COMPLETION_MARKER, run_step


class Step:
    """A step whose work counts its runs and copies its input into its output."""

    def __init__(self, tmp_path: Path) -> None:
        self.out = tmp_path / "out"
        self.summary_path = tmp_path / "termination-log"
        self.runs = 0

    def work(self, out: Path) -> StepSummary:
        self.runs += 1
        (out / "result.txt").write_text(f"run {self.runs}")
        return StepSummary(step="evaluate-baseline", ok=True, message=f"run {self.runs}")

    def run(self, args: EvaluateArgs | AnalyzeArgs, inputs: tuple[str, ...] = ()) -> StepSummary:
        code = run_step(
            "evaluate-baseline",
            self.out,
            self.work,
            summary_path=str(self.summary_path),
            args=args,
            inputs=inputs,
        )
        assert code == EXIT_OK
        return parse_summary(self.summary_path.read_bytes())


def _evaluate(out: Path, **overrides: object) -> EvaluateArgs:
    values: dict[str, object] = {"output": str(out), "model": "org/model", "suite": "demo"}
    values.update(overrides)
    return EvaluateArgs.model_validate(values)


def test_the_same_inputs_reuse_the_output_and_say_so(tmp_path: Path) -> None:
    step = Step(tmp_path)
    first = step.run(_evaluate(step.out))
    assert not first.reused
    provenance = read_artifact(step.out / StepProvenance.FILE_NAME, StepProvenance)
    assert provenance.args["model"] == "org/model" and provenance.command == "evaluate"

    again = step.run(_evaluate(step.out))
    assert step.runs == 1
    assert again.reused and again.message == "run 1"


def test_options_that_only_shape_logs_do_not_force_a_redo(tmp_path: Path) -> None:
    step = Step(tmp_path)
    step.run(_evaluate(step.out))
    step.run(_evaluate(step.out, quiet=True, tracking_mode="offline", tracking_project="p"))
    assert step.runs == 1


def test_a_changed_argument_redoes_the_step_and_says_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The issue: `kaizen run --restart` with another model reused the old scores.
    step = Step(tmp_path)
    step.run(_evaluate(step.out, max_new_tokens=16))
    capsys.readouterr()
    redone = step.run(_evaluate(step.out, model=str(tmp_path / "no-such-model")))
    assert step.runs == 2 and not redone.reused and redone.message == "run 2"
    err = capsys.readouterr().err
    assert "made from other inputs" in err and "--model 'org/model'" in err
    assert "--max-new-tokens 16 → 32" in err
    # The record now describes the new run: going back to the first inputs redoes it again.
    step.run(_evaluate(step.out, max_new_tokens=16))
    assert step.runs == 3


def test_a_changed_input_file_redoes_the_step(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text('{"overall": 0.5}')
    step = Step(tmp_path)
    args = AnalyzeArgs(output=str(step.out), baseline=str(baseline))
    step.run(args)
    step.run(args)
    assert step.runs == 1
    # The baseline was evaluated again (another model): the plan made from it is stale.
    baseline.write_text('{"overall": 0.7}')
    step.run(args)
    assert step.runs == 2


def test_a_changed_file_inside_an_input_folder_redoes_the_step(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "eval.jsonl").write_text('{"q": 1}\n')
    step = Step(tmp_path)
    step.run(_evaluate(step.out), inputs=(str(suite),))
    step.run(_evaluate(step.out), inputs=(str(suite),))
    assert step.runs == 1
    (suite / "eval.jsonl").write_text('{"q": 2}\n')
    step.run(_evaluate(step.out), inputs=(str(suite),))
    assert step.runs == 2


def test_an_output_without_a_provenance_record_is_redone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Outputs left by an older Kaizen have a marker and no record of their inputs.
    step = Step(tmp_path)
    step.run(_evaluate(step.out))
    (step.out / StepProvenance.FILE_NAME).unlink()
    step.run(_evaluate(step.out))
    assert step.runs == 2
    assert "no usable record of its inputs" in capsys.readouterr().err


def test_a_redo_removes_the_old_marker_before_working(tmp_path: Path) -> None:
    step = Step(tmp_path)
    step.run(_evaluate(step.out))
    seen: list[bool] = []

    def failing(out: Path) -> StepSummary:
        seen.append((out / COMPLETION_MARKER).exists())
        raise RuntimeError("node lost half way")

    code = run_step(
        "evaluate-baseline",
        step.out,
        failing,
        summary_path=str(step.summary_path),
        args=_evaluate(step.out, limit=3),
    )
    assert code != EXIT_OK and seen == [False]
    # Half-replaced artifacts are never taken for the first run's output, even with its inputs.
    assert not (step.out / COMPLETION_MARKER).exists()
    step.run(_evaluate(step.out))
    assert step.runs == 2


def test_input_paths_of_each_step_kind(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    train = TrainArgs(
        output="o",
        model=str(model),
        suite="demo",
        domain="geo",
        plan="/a/plan.json",
        extra_data="/a/extra.jsonl",
        adapters=["/a/start"],
    )
    # A hub id or a shipped suite name is not a local path; an existing folder is.
    assert input_paths(train) == sorted(["/a/plan.json", "/a/extra.jsonl", "/a/start", str(model)])
    merge = MergeArgs(output="o", model="org/m", sources=["geo=/a/geo", "sci=/a/sci"])
    assert input_paths(merge) == ["/a/geo", "/a/sci"]


def test_path_digests_follow_content(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "weights").write_bytes(b"\x00" * 10)
    first = path_digest(folder)
    # A temporary file of a write in progress is not content.
    (folder / ".weights.123.tmp").write_bytes(b"partial")
    assert path_digest(folder) == first
    (folder / "weights").write_bytes(b"\x01" * 10)
    assert path_digest(folder) != first
    assert path_digest(tmp_path / "absent") == MISSING


def test_changes_name_arguments_and_files() -> None:
    before = step_provenance("s", AnalyzeArgs(output="o", baseline="/nowhere/a.json"))
    after = step_provenance("s", AnalyzeArgs(output="o", baseline="/nowhere/b.json", threshold=0.5))
    found = changes(before, after)
    assert "--baseline '/nowhere/a.json' → '/nowhere/b.json'" in found
    assert any(c.startswith("--threshold") for c in found)
    assert "/nowhere/b.json is gone" in found and "/nowhere/a.json is no longer read" in found
