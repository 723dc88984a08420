"""Command line of the evaluator image: `python -m kaizen.evaluator evaluate | analyze | validate |
combine`.

The arguments are the typed models of `kaizen.api.args` (`EvaluateArgs`, `AnalyzeArgs`,
`ValidateArgs`): the planner writes them, this program reads them back, and a usage error is
a configuration error (exit 3 with a summary), so the operator fails the cycle at once
instead of retrying the Job. Each subcommand runs one step function under `run_step`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kaizen.api.args import EVALUATOR, AnalyzeArgs, EvaluateArgs, StepArgs, ValidateArgs
from kaizen.api.args import build_parser as build_step_parser
from kaizen.api.args_combination import CombineArgs
from kaizen.api.commands import EVALUATOR_COMMANDS
from kaizen.api.runner import run_program, run_step

PROG = f"python -m {EVALUATOR}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the three subcommands (for `--help`)."""
    return build_step_parser(EVALUATOR_COMMANDS, prog=PROG)


def _tracking(args: StepArgs):  # type: ignore[no-untyped-def]
    from kaizen.runtime.tracking import TrackingOptions

    return TrackingOptions.from_args(args)


def _suite_inputs(args: EvaluateArgs) -> list[str]:
    """The suite's folder when it is a shipped one (a suite directory is among the arguments)."""
    from kaizen.runtime.suites.loader import suite_folder

    folder = suite_folder(args.suite)
    return [str(folder)] if folder is not None else []


def run(args: StepArgs) -> int:
    """Run the parsed subcommand under the step contract; returns the exit code."""
    # Imported here so `--help` and usage errors stay fast (the steps import torch).
    if isinstance(args, EvaluateArgs):
        from kaizen.evaluator.evaluate import EvaluateOptions, evaluate_step

        options = EvaluateOptions.from_args(args, tracking=_tracking(args))
        return run_step(
            args.step,
            args.output,
            lambda out: evaluate_step(options, out),
            args=args,
            inputs=_suite_inputs(args),
        )
    if isinstance(args, CombineArgs):
        from kaizen.evaluator.combine import run_combine

        return run_combine(args)
    if isinstance(args, AnalyzeArgs):
        from kaizen.evaluator.analysis import analyze_step

        return run_step(
            args.step,
            args.output,
            lambda out: analyze_step(
                Path(args.baseline),
                out,
                step=args.step,
                threshold=args.threshold,
                max_domains=args.max_domains,
                defer=args.defer,
                tracking=_tracking(args),
            ),
            args=args,
        )
    assert isinstance(args, ValidateArgs)
    from kaizen.evaluator.validate import Gates, validate_step

    gates = Gates.from_args(args)
    return run_step(
        args.step,
        args.output,
        lambda out: validate_step(
            Path(args.baseline),
            Path(args.candidate),
            out,
            step=args.step,
            gates=gates,
            tracking=_tracking(args),
            reference=args.reference,
            reference_name=args.reference_name,
            html_report=args.html_report,
            combination=args.combination,
        ),
        args=args,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the subcommand under the step contract, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_program(argv, EVALUATOR_COMMANDS, run, prog=PROG)
