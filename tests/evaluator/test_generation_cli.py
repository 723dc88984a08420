"""Decoding options on `python -m kaizen.evaluator evaluate`: documented, greedy by default, passed through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.summary import EXIT_CONFIG_ERROR, EXIT_OK, StepSummary
from kaizen.evaluator import evaluate as evaluate_module
from kaizen.evaluator.cli import build_parser, main
from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation
from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, Sampling

DECODING_OPTIONS = [
    "--temperature",
    "--top-p",
    "--repetition-penalty",
    "--seed",
    "--stop",
    "--no-stop",
    "--lm-eval-task",
]


def evaluate_actions() -> list[Any]:
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices["evaluate"]._actions  # type: ignore[union-attr]


def test_evaluate_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["evaluate", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in DECODING_OPTIONS:
        assert option in text, option
    undocumented = [a.option_strings for a in evaluate_actions() if not (a.help or "").strip()]
    assert undocumented == []


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[EvaluateOptions]:
    """Run `main` with the evaluate step replaced by one that records its options."""
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "termination-log"))
    seen: list[EvaluateOptions] = []

    def fake_step(options: EvaluateOptions, out: Path) -> StepSummary:
        seen.append(options)
        return StepSummary(step=options.step, ok=True)

    monkeypatch.setattr(evaluate_module, "evaluate_step", fake_step)
    return seen


def base_args(tmp_path: Path) -> list[str]:
    return ["evaluate", "--model", "m", "--suite", "demo", "--output", str(tmp_path / "out")]


def test_the_defaults_are_todays_greedy_decoding(
    captured: list[EvaluateOptions], tmp_path: Path
) -> None:
    assert main(base_args(tmp_path)) == EXIT_OK
    (options,) = captured
    assert options.sampling() == Sampling()
    assert options.sampling().greedy
    assert tuple(options.stop_strings) == DEFAULT_STOP_STRINGS == ("\n",)
    assert tuple(options.lm_eval_tasks) == ()
    # The dataclass defaults (used by callers other than the CLI) agree with the CLI's.
    plain = EvaluateOptions(model="m", suite="demo", step="evaluate")
    assert plain.sampling() == Sampling()
    assert tuple(plain.stop_strings) == DEFAULT_STOP_STRINGS


def test_decoding_options_are_passed_through(
    captured: list[EvaluateOptions], tmp_path: Path
) -> None:
    args = base_args(tmp_path) + [
        "--temperature", "0.7", "--top-p", "0.9", "--repetition-penalty", "1.2", "--seed", "5",
        "--stop", "\\n", "--stop", ".", "--lm-eval-task", "arc_easy",
        "--lm-eval-task", "tasks/mine.yaml",
    ]  # fmt: skip
    assert main(args) == EXIT_OK
    (options,) = captured
    assert options.sampling() == Sampling(
        temperature=0.7, top_p=0.9, repetition_penalty=1.2, seed=5
    )
    assert tuple(options.stop_strings) == ("\n", ".")
    assert tuple(options.lm_eval_tasks) == ("arc_easy", "tasks/mine.yaml")


def test_no_stop_removes_every_stop_string(captured: list[EvaluateOptions], tmp_path: Path) -> None:
    assert main(base_args(tmp_path) + ["--no-stop"]) == EXIT_OK
    assert tuple(captured[0].stop_strings) == ()


@pytest.mark.parametrize(
    "extra",
    [
        ["--temperature", "-1"],
        ["--top-p", "0"],
        ["--top-p", "1.5"],
        ["--repetition-penalty", "0"],
        ["--seed", "-3"],
        ["--stop", ""],
        ["--stop", "x", "--no-stop"],
    ],
)
def test_bad_decoding_options_exit_3(
    captured: list[EvaluateOptions], tmp_path: Path, extra: list[str]
) -> None:
    assert main(base_args(tmp_path) + extra) == EXIT_CONFIG_ERROR
    assert captured == []


def test_sampled_evaluation_is_reproducible_and_recorded(
    lively_model_dir: Path, tmp_path: Path
) -> None:
    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite="demo",
        step="evaluate",
        limit=1,
        max_new_tokens=6,
        batch_size=4,
        temperature=0.9,
        top_p=0.95,
        repetition_penalty=1.1,
        seed=11,
        stop_strings=(),
        quiet=True,
    )
    first = run_evaluation(options, tmp_path / "first")
    second = run_evaluation(options, tmp_path / "second")
    assert [r["response"] for r in first["items"]] == [r["response"] for r in second["items"]]
    generation = json.loads((tmp_path / "first" / "results.json").read_text())["generation"]
    assert generation["temperature"] == 0.9 and generation["top_p"] == 0.95
    assert generation["repetition_penalty"] == 1.1 and generation["seed"] == 11
    assert generation["stop_strings"] == []
