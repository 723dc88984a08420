"""Command line of the evaluator image: `python -m kaizen.evaluator evaluate | analyze | validate`.

Only parsing lives here; each subcommand calls one step function under `run_step`, which
writes the summary and picks the exit code (0 done, 1 failed, 3 configuration error).
Bad arguments are configuration errors too: they exit 3 with a summary, not argparse's 2,
so the operator fails the cycle at once instead of retrying the Job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kaizen.api.runner import run_step
from kaizen.api.summary import EXIT_CONFIG_ERROR, StepSummary, write_summary
from kaizen.evaluator.generation import DEFAULT_BATCH_SIZE


class UsageError(Exception):
    """The command line cannot be parsed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _domains(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0.0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _stop_string(text: str) -> str:
    # A shell passes `\n` as backslash + n: read the usual escapes, as a user means them.
    value = text.replace("\\n", "\n").replace("\\t", "\t")
    if not value:
        raise argparse.ArgumentTypeError("a stop string cannot be empty (use --no-stop)")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_common(parser: argparse.ArgumentParser, default_step: str) -> None:
    group = parser.add_argument_group("step contract and tracking")
    group.add_argument(
        "--output",
        required=True,
        type=Path,
        help="artifact directory of this step (created if missing)",
    )
    group.add_argument(
        "--step",
        default=default_step,
        help=f"step name used in the summary and W&B run (default: {default_step})",
    )
    group.add_argument("--cycle", default=None, help="cycle name; the W&B group of the run")
    group.add_argument(
        "--tracking-mode",
        choices=("offline", "online", "disabled"),
        default="offline",
        help="W&B mode; online without WANDB_API_KEY falls back to offline (default: offline)",
    )
    group.add_argument("--tracking-project", default="kaizen", help="W&B project (default: kaizen)")
    group.add_argument("--tracking-entity", default=None, help="W&B entity (team or user)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the three subcommands."""
    parser = _Parser(prog="python -m kaizen.evaluator", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    evaluate = commands.add_parser("evaluate", help="score a model (plus adapters) on a suite")
    evaluate.add_argument(
        "--model", required=True, help="hub id, model directory, or bundled:smollm2-135m-instruct"
    )
    evaluate.add_argument(
        "--adapter",
        action="append",
        default=[],
        help="LoRA adapter directory merged into the weights; repeat to apply several in order",
    )
    evaluate.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    evaluate.add_argument(
        "--suite",
        required=True,
        help="a shipped suite name (demo, core) or a suite directory (PVC path, mounted "
        "ConfigMap); format: docs/evaluation.md",
    )
    evaluate.add_argument(
        "--domains",
        type=_domains,
        default=[],
        help="comma-separated domains to evaluate (default: all)",
    )
    evaluate.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        help="evaluate only the first N items of each domain",
    )
    evaluate.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=32,
        help="most tokens generated per item (default: 32)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="prompts generated together; halved on out-of-memory and kept halved, so start "
        f"high (default: {DEFAULT_BATCH_SIZE})",
    )
    decoding = evaluate.add_argument_group("decoding (the defaults are greedy decoding)")
    decoding.add_argument(
        "--temperature",
        type=_non_negative_float,
        default=0.0,
        help="0 decodes greedily; above 0 samples at this temperature (default: 0)",
    )
    decoding.add_argument(
        "--top-p",
        type=_probability,
        default=1.0,
        help="when sampling, draw only from the most likely tokens holding this much "
        "probability (default: 1, all tokens)",
    )
    decoding.add_argument(
        "--repetition-penalty",
        type=_positive_float,
        default=1.0,
        help="above 1, tokens already in the prompt or answer become less likely (default: 1, off)",
    )
    decoding.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="seed of the sampling (each item has its own stream from it) and of lm-eval (default: 0)",
    )
    stops = decoding.add_mutually_exclusive_group()
    stops.add_argument(
        "--stop",
        action="append",
        type=_stop_string,
        default=None,
        metavar="STRING",
        help="end an answer at this string (\\n and \\t are read as newline and tab); "
        "repeat for several; replaces the default, a newline after some text",
    )
    stops.add_argument(
        "--no-stop",
        action="store_true",
        help="no stop strings: answers end only at EOS or --max-new-tokens",
    )
    evaluate.add_argument(
        "--lm-eval-task",
        action="append",
        default=[],
        metavar="NAME_OR_YAML",
        help="also run this lm-evaluation-harness task (a registry name or a local task YAML) "
        "on the same model and report it as domain lmeval:<task>; repeat for several; "
        "needs the lmeval extra",
    )
    _add_common(evaluate, "evaluate")

    analyze = commands.add_parser(
        "analyze", help="plan which domains to train from baseline results"
    )
    analyze.add_argument(
        "--baseline", required=True, type=Path, help="results.json of the baseline evaluation"
    )
    analyze.add_argument(
        "--max-domains",
        type=_positive_int,
        default=2,
        help="at most this many priority domains (default: 2)",
    )
    analyze.add_argument(
        "--threshold",
        type=_fraction,
        default=0.7,
        help="only domains scoring below this are trained (default: 0.7)",
    )
    _add_common(analyze, "analyze")

    validate = commands.add_parser(
        "validate", help="compare candidate with baseline and decide promotion"
    )
    validate.add_argument(
        "--baseline", required=True, type=Path, help="results.json of the baseline evaluation"
    )
    validate.add_argument(
        "--candidate",
        required=True,
        type=Path,
        help="results.json of the candidate evaluation (same items)",
    )
    validate.add_argument(
        "--min-improvement",
        type=float,
        default=0.0,
        help="overall score must improve by more than this (default: 0)",
    )
    validate.add_argument(
        "--max-regression",
        type=_fraction,
        default=0.1,
        help="a domain dropping by more than this blocks promotion (default: 0.1)",
    )
    validate.add_argument(
        "--significance",
        type=float,
        default=0.05,
        help="level of the exact McNemar test (default: 0.05)",
    )
    validate.add_argument(
        "--require-significance",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="promote only when the improvement is significant (default: required)",
    )
    _add_common(validate, "validate")
    return parser


def _guess_step(argv: Sequence[str]) -> str:
    """The --step value (or the subcommand) from raw arguments, for the summary of a usage error."""
    args = list(argv)
    if "--step" in args[:-1]:
        return args[args.index("--step") + 1]
    return next((a for a in args if a in ("evaluate", "analyze", "validate")), "evaluator")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the subcommand under the step contract, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        summary = StepSummary(
            step=_guess_step(argv), ok=False, reason="ConfigurationError", message=str(error)
        )
        try:
            write_summary(summary)
        except OSError as write_error:  # outside a pod there may be no termination log
            print(f"could not write summary: {write_error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR

    # Imported here so `--help` and usage errors stay fast (the steps import torch).
    from kaizen.runtime.tracking import TrackingOptions

    tracking = TrackingOptions(
        mode=args.tracking_mode,
        project=args.tracking_project,
        entity=args.tracking_entity,
        cycle=args.cycle,
    )
    if args.command == "evaluate":
        from kaizen.evaluator.evaluate import EvaluateOptions, evaluate_step
        from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS

        options = EvaluateOptions(
            model=args.model,
            suite=args.suite,
            step=args.step,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            adapters=tuple(args.adapter),
            revision=args.revision,
            domains=tuple(args.domains),
            limit=args.limit,
            tracking=tracking,
            quiet=args.quiet,
            temperature=args.temperature,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            seed=args.seed,
            stop_strings=() if args.no_stop else tuple(args.stop or DEFAULT_STOP_STRINGS),
            lm_eval_tasks=tuple(args.lm_eval_task),
        )
        return run_step(args.step, args.output, lambda out: evaluate_step(options, out))
    if args.command == "analyze":
        from kaizen.evaluator.analysis import analyze_step

        return run_step(
            args.step,
            args.output,
            lambda out: analyze_step(
                args.baseline,
                out,
                step=args.step,
                threshold=args.threshold,
                max_domains=args.max_domains,
                tracking=tracking,
            ),
        )
    from kaizen.evaluator.validate import Gates, validate_step

    gates = Gates(
        min_improvement=args.min_improvement,
        max_regression=args.max_regression,
        significance=args.significance,
        require_significance=args.require_significance,
    )
    return run_step(
        args.step,
        args.output,
        lambda out: validate_step(
            args.baseline, args.candidate, out, step=args.step, gates=gates, tracking=tracking
        ),
    )
