"""Command line of the trainer image: `python -m kaizen.trainer train | merge | joint …`.

The arguments are the typed models of `kaizen.api.args` (`TrainArgs`, `MergeArgs`,
`JointArgs`): the
planner writes them, this program reads them back. A usage error is a configuration error
too: exit code 3 and a summary naming the step, so the operator fails the cycle at once
instead of retrying a command that cannot work. The work is in `programs`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from kaizen.api.args import TRAINER, StepArgs
from kaizen.api.args import build_parser as build_step_parser
from kaizen.api.args_combination import JointArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.commands import TRAINER_COMMANDS
from kaizen.api.runner import run_program

PROG = f"python -m {TRAINER}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the subcommands (for `--help`)."""
    return build_step_parser(TRAINER_COMMANDS, prog=PROG)


def run(args: StepArgs) -> int:
    """Run the parsed subcommand under the step contract; returns the exit code."""
    # peft calls a transformers method deprecated in v5 on every LoRA attach: noise in Job logs.
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    from kaizen.trainer import programs

    if isinstance(args, TrainArgs):
        return programs.run_train(args)
    if isinstance(args, JointArgs):
        from kaizen.trainer.joint import run_joint

        return run_joint(args)
    return programs.run_merge(args)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the subcommand under the step contract, return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_program(argv, TRAINER_COMMANDS, run, prog=PROG)
