"""The step contract: the 4 KiB bound, atomic writes, and `run_step` outcomes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api import (
    EXIT_CONFIG_ERROR,
    EXIT_FAILURE,
    EXIT_OK,
    SUMMARY_MAX_BYTES,
    ScoreDigest,
    StepSummary,
    SummaryTooLarge,
    atomic_write_json,
    encode_summary,
    parse_summary,
    write_summary,
)
from kaizen.api.runner import COMPLETION_MARKER, ConfigurationError, run_step


def test_a_summary_round_trips() -> None:
    summary = StepSummary(
        step="evaluate-baseline",
        ok=True,
        evaluation=ScoreDigest(overall=0.5, domains={"a": 0.25}, items=4),
    )
    assert parse_summary(encode_summary(summary)) == summary


def test_a_summary_over_4_kib_is_refused_when_written(tmp_path: Path) -> None:
    domains = {f"domain-{i:03d}": 0.123456 for i in range(400)}
    summary = StepSummary(
        step="evaluate-baseline", ok=True, evaluation=ScoreDigest(overall=0.5, domains=domains)
    )
    with pytest.raises(SummaryTooLarge, match="4096"):
        write_summary(summary, tmp_path / "summary.json")
    assert not (tmp_path / "summary.json").exists()


def test_a_summary_just_under_the_bound_is_written(tmp_path: Path) -> None:
    message = "x" * (SUMMARY_MAX_BYTES - 200)
    path = write_summary(StepSummary(step="s", ok=True, message=message), tmp_path / "t")
    assert len(path.read_bytes()) <= SUMMARY_MAX_BYTES


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a" / "r.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]


def test_run_step_success_writes_marker_and_summary(tmp_path: Path) -> None:
    calls = []

    def work(out: Path) -> StepSummary:
        calls.append(out)
        (out / "result.txt").write_text("ok")
        return StepSummary(step="s", ok=True, message="done")

    summary_path = tmp_path / "termination-log"
    assert run_step("s", tmp_path / "out", work, summary_path=str(summary_path)) == EXIT_OK
    summary = parse_summary(summary_path.read_bytes())
    assert (
        summary.ok
        and summary.artifacts_dir == str(tmp_path / "out")
        and summary.duration_seconds is not None
    )
    assert (tmp_path / "out" / COMPLETION_MARKER).exists()
    # A re-run (a retried Job) reuses the complete output instead of redoing the work.
    summary_path.unlink()
    assert run_step("s", tmp_path / "out", work, summary_path=str(summary_path)) == EXIT_OK
    reused = parse_summary(summary_path.read_bytes())
    assert len(calls) == 1 and reused == summary.model_copy(update={"reused": True})


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ConfigurationError("suite 'nope' not found"), EXIT_CONFIG_ERROR, "ConfigurationError"),
        (RuntimeError("CUDA out of memory"), EXIT_FAILURE, "StepError"),
    ],
)
def test_run_step_failures_report_a_reason(
    tmp_path: Path, error: Exception, code: int, reason: str
) -> None:
    def work(out: Path) -> StepSummary:
        raise error

    summary_path = tmp_path / "termination-log"
    assert run_step("s", tmp_path / "out", work, summary_path=str(summary_path)) == code
    summary = parse_summary(summary_path.read_bytes())
    assert (summary.ok, summary.reason) == (False, reason)
    assert str(error) in summary.message
    assert not (tmp_path / "out" / COMPLETION_MARKER).exists()
