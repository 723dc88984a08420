"""The typed step arguments: rendering, parsing back, and usage errors that name step and flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api import EXIT_CONFIG_ERROR, SUMMARY_PATH_ENV, parse_summary
from kaizen.api.args import AnalyzeArgs, EvaluateArgs, StepUsageError, ValidateArgs, parse_step_argv
from kaizen.api.args_combination import MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.commands import EVALUATOR_COMMANDS, TRAINER_COMMANDS
from kaizen.api.runner import run_program

ROUND_TRIPS = [
    EvaluateArgs(output="/o", model="m", suite="demo"),
    EvaluateArgs(
        output="/o w/space",
        step="evaluate-candidate",
        cycle="c",
        model="org/m",
        adapters=["/a", "/b"],
        revision="main",
        suite="s",
        domains=["x", "y z"],
        limit=2,
        temperature=0.7,
        top_p=0.9,
        stop=["\n", "###"],
        lm_eval_tasks=["arc_easy"],
        tracking_mode="disabled",
        tracking_entity="e",
        quiet=True,
    ),
    EvaluateArgs(output="/o", model="m", suite="demo", stop=[]),
    AnalyzeArgs(output="/o", baseline="/b/results.json", max_domains=5, threshold=0.0),
    ValidateArgs(output="/o", baseline="/b", candidate="/c", require_significance=False),
    ValidateArgs(output="/o", baseline="/b", candidate="/c", min_improvement=-0.5),
    ValidateArgs(output="/o", baseline="/b", candidate="/c", combination="/x/combination.json"),
    TrainArgs(output="/o", model="m", suite="s", domain="d"),
    TrainArgs(
        output="/o",
        model="m",
        suite="s",
        domain="d",
        target_modules=["q_proj", "v_proj"],
        plan="/p.json",
        extra_data="/x.jsonl",
        replay_fraction=0.0,
        learning_rate=3e-5,
    ),  # fmt: skip
    TrainArgs(
        output="/o",
        model="m",
        suite="s",
        domain="d",
        teacher="context",
        teacher_model="org/teacher",
        distill_weight=0.5,
        distill_top_k=4,
        distill_temperature=2.0,
    ),
    MergeArgs(output="/o", model="m", sources=["a=/x", "b=/y=z"], combination="cat"),
]


@pytest.mark.parametrize("args", ROUND_TRIPS, ids=lambda a: f"{a.COMMAND}")
def test_to_argv_parses_back_to_the_same_model(args) -> None:
    assert type(args).from_argv(args.to_argv()) == args
    kinds = EVALUATOR_COMMANDS + TRAINER_COMMANDS
    assert parse_step_argv(args.to_argv(), kinds, prog="p") == args


def test_the_step_defaults_to_the_subcommand_and_the_stop_default_is_kept_apart() -> None:
    args = EvaluateArgs(output="/o", model="m", suite="s")
    assert args.step == "evaluate" and args.stop is None
    assert "--stop" not in args.to_argv() and "--no-stop" not in args.to_argv()
    assert "--no-stop" in EvaluateArgs(output="/o", model="m", suite="s", stop=[]).to_argv()


def test_stop_strings_read_shell_escapes() -> None:
    parsed = EvaluateArgs.from_argv(
        [
            "evaluate",
            "--output",
            "o",
            "--model",
            "m",
            "--suite",
            "s",
            "--stop",
            "\\n",
            "--stop",
            ".",
        ]
    )
    assert parsed.stop == ["\n", "."]


@pytest.mark.parametrize(
    ("argv", "step", "message"),
    [
        (["train", "--output", "o", "--model", "m", "--suite", "s", "--domain", "d", "--rank", "0",
          "--step", "train-d"], "train-d", "--rank: Input should be greater than or equal to 1"),
        (["train", "--output", "o", "--model", "m", "--suite", "s", "--domain", "d",
          "--target-modules", "all-linear", "q_proj"], "train", "--target-modules"),
        (["merge", "--output", "o", "--model", "m", "--source", "nope"], "merge", "expected DOMAIN=DIR"),
        (["merge", "--output", "o", "--model", "m", "--source", "a=/x", "--combination", "magnitude_prune"],
         "merge", "invalid choice: 'magnitude_prune'"),
        (["evaluate", "--output", "o", "--model", "m", "--suite", "s", "--top-p", "0",
          "--step=evaluate-baseline"], "evaluate-baseline", "--top-p"),
        (["evaluate", "--output", "o", "--model", "m"], "evaluate", "required: --suite"),
        (["validate", "--output", "o", "--baseline", "b", "--candidate", "c",
          "--significance", "1.5"], "validate", "--significance"),
        (["bogus"], "step", "invalid choice: 'bogus'"),
    ],
)  # fmt: skip
def test_usage_errors_name_the_step_and_the_flag(argv, step, message) -> None:
    with pytest.raises(StepUsageError) as error:
        parse_step_argv(argv, EVALUATOR_COMMANDS + TRAINER_COMMANDS, prog="p")
    assert error.value.step == step
    assert message in str(error.value)


@pytest.mark.parametrize("kinds", [EVALUATOR_COMMANDS, TRAINER_COMMANDS])
def test_both_programs_report_a_usage_error_the_same_way(
    kinds, tmp_path: Path, monkeypatch
) -> None:
    """Exit 3 and a ConfigurationError summary naming `--step`, whichever program parses."""
    summary_path = tmp_path / "summary.json"
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(summary_path))
    command = kinds[0].COMMAND
    ran = []
    code = run_program(
        [command, "--output", "o", "--step=evaluate-baseline", "--no-such-flag"],
        kinds,
        ran.append,
        prog="p",
    )
    assert code == EXIT_CONFIG_ERROR and ran == []
    summary = parse_summary(summary_path.read_bytes())
    assert (summary.ok, summary.reason, summary.step) == (
        False,
        "ConfigurationError",
        "evaluate-baseline",
    )
    assert summary.message.startswith("usage: p ")
    assert len(json.dumps(summary.to_wire())) < 4096


def test_help_documents_every_flag_with_its_default() -> None:
    from kaizen.api.args import build_parser

    for kinds in (EVALUATOR_COMMANDS, TRAINER_COMMANDS):
        parser = build_parser(kinds, prog="p")
        for kind in kinds:
            sub = parser._subparsers._group_actions[0].choices[kind.COMMAND]  # type: ignore[union-attr]
            for action in sub._actions:
                if action.option_strings and action.dest != "help":
                    assert (action.help or "").strip(), (kind.COMMAND, action.option_strings)
    train_help = TrainArgs.model_fields["replay_fraction"]
    assert train_help.default == 0.5
