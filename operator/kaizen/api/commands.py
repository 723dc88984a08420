"""Every step kind's typed arguments, by the program that runs it: what `python -m
kaizen.evaluator` and `python -m kaizen.trainer` parse (`parse_step_argv`, `run_program`) and
list in `--help`."""

from __future__ import annotations

from kaizen.api.args import AnalyzeArgs, EvaluateArgs, StepArgs, ValidateArgs
from kaizen.api.args_combination import CombineArgs, JointArgs, MergeArgs
from kaizen.api.args_training import TrainArgs

#: The evaluator's subcommands.
EVALUATOR_COMMANDS: tuple[type[StepArgs], ...] = (
    EvaluateArgs,
    AnalyzeArgs,
    ValidateArgs,
    CombineArgs,
)
#: The trainer's subcommands.
TRAINER_COMMANDS: tuple[type[StepArgs], ...] = (TrainArgs, MergeArgs, JointArgs)
