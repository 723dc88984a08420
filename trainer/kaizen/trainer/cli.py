"""Command line of the trainer step: `python -m kaizen.trainer train|merge …`.

The operator builds these argument lists (see `kaizen.cycle.planner`) and the local
executor runs the very same ones. This module only parses; the work is in `steps`.
A usage error is a configuration error too: it exits with code 3 and writes a summary,
so the operator fails the cycle at once instead of retrying a command that cannot work.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from kaizen.api.summary import EXIT_CONFIG_ERROR, StepSummary, write_summary
from kaizen.trainer.merge import COMBINATIONS


def _step_name(argv: Sequence[str]) -> str:
    # The arguments did not parse, so find --step by hand: the operator matches the
    # summary to the step it started by this name.
    for index, arg in enumerate(argv):
        if arg == "--step" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--step="):
            return arg.split("=", 1)[1]
    return "merge" if "merge" in argv[:1] else "trainer"


class StepArgumentParser(argparse.ArgumentParser):
    """An argument parser whose usage errors follow the step contract (exit 3 + summary)."""

    def __init__(self, *args: Any, argv: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.argv = list(argv)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        summary = StepSummary(
            step=_step_name(self.argv),
            ok=False,
            reason="ConfigurationError",
            message=f"usage: {message}",
        )
        # Outside a pod there is usually no termination log: stderr has the message.
        with contextlib.suppress(OSError):
            write_summary(summary)
        sys.exit(EXIT_CONFIG_ERROR)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=True,
        metavar="REF",
        help="base model: hub id (org/name), local or PVC directory, or bundled:smollm2-135m-instruct",
    )
    group.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="DIR",
        help="an adapter already promoted for this model, merged into the base weights first "
        "(repeat for several, applied in order)",
    )
    group.add_argument(
        "--revision", metavar="R", help="hub revision (branch, tag or commit) of --model"
    )


def _add_step_options(parser: argparse.ArgumentParser, default_step: str | None) -> None:
    group = parser.add_argument_group("step contract")
    group.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="artifact directory of this step; a complete earlier output there is reused",
    )
    group.add_argument(
        "--step",
        default=default_step,
        required=default_step is None,
        help="step name reported in the summary"
        + (f" (default: {default_step})" if default_step else ""),
    )
    group.add_argument("--cycle", metavar="NAME", help="cycle name: the W&B group of this run")
    group.add_argument(
        "--tracking-mode",
        choices=("offline", "online", "disabled"),
        default="offline",
        help="Weights & Biases mode; online needs WANDB_API_KEY (default: offline)",
    )
    group.add_argument(
        "--tracking-project", default="kaizen", metavar="P", help="W&B project (default: kaizen)"
    )
    group.add_argument("--tracking-entity", metavar="E", help="W&B entity (team or user)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; `argv` is what it will parse, to name the step in a usage-error summary."""
    parser = StepArgumentParser(
        argv=argv,
        prog="python -m kaizen.trainer",
        description="Train one LoRA adapter per domain, or merge domain adapters into one.",
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{train,merge}",
        parser_class=functools.partial(StepArgumentParser, argv=argv),
    )

    train = commands.add_parser(
        "train",
        help="train a LoRA adapter on one domain's training pool",
        description="Train a LoRA adapter on a suite's training pool for one domain. Writes "
        "OUTPUT/adapter/ (peft format), OUTPUT/training.json and the step summary.",
    )
    _add_model_options(train)
    data = train.add_argument_group("data")
    data.add_argument(
        "--suite", required=True, help="shipped suite name (e.g. demo) or suite directory"
    )
    data.add_argument("--domain", required=True, help="the suite domain to train on")
    data.add_argument(
        "--plan",
        metavar="PATH",
        help="plan.json of the analyze step: the domain must be a priority domain, and examples "
        "of its targeted_capabilities are repeated --capability-weight times",
    )
    data.add_argument(
        "--capability-weight",
        type=int,
        default=2,
        metavar="N",
        help="copies of each example whose capability the plan targets (default: 2)",
    )
    data.add_argument(
        "--replay-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="share of the training set drawn from the suite's other domains' pools (rehearsal "
        "against forgetting), in [0, 1) (default: 0)",
    )
    data.add_argument(
        "--extra-data",
        metavar="PATH",
        help="JSONL file of extra examples {question, answer[, domain, capability]}; lines for "
        "other domains are skipped",
    )
    data.add_argument(
        "--max-seq-length",
        type=int,
        default=128,
        metavar="N",
        help="truncate examples to N tokens (default: 128)",
    )
    lora = train.add_argument_group("LoRA")
    lora.add_argument("--rank", type=int, default=8, help="LoRA rank r (default: 8)")
    lora.add_argument(
        "--alpha",
        type=int,
        default=16,
        help="LoRA alpha; updates scale by alpha/rank (default: 16)",
    )
    lora.add_argument("--dropout", type=float, default=0.0, help="LoRA dropout (default: 0.0)")
    lora.add_argument(
        "--target-modules",
        nargs="+",
        default=["all-linear"],
        metavar="NAME",
        help="modules that get LoRA weights, e.g. q_proj v_proj, or all-linear (default: all-linear)",
    )
    optim = train.add_argument_group("optimisation")
    optim.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="constant AdamW learning rate (default: 1e-3)",
    )
    optim.add_argument("--steps", type=int, default=30, help="optimiser steps (default: 30)")
    optim.add_argument("--batch-size", type=int, default=8, help="examples per step (default: 8)")
    optim.add_argument(
        "--max-grad-norm",
        type=float,
        default=1.0,
        help="gradient clipping norm, 0 for none (default: 1.0)",
    )
    optim.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for initialisation, dropout and data order (default: 0)",
    )
    optim.add_argument(
        "--checkpoint-every",
        type=int,
        default=10,
        metavar="K",
        help="checkpoint every K steps into OUTPUT/checkpoints; a restarted step resumes from the "
        "latest (default: 10)",
    )
    _add_step_options(train, default_step=None)

    merge = commands.add_parser(
        "merge",
        help="merge domain adapters into one candidate adapter",
        description="Combine domain adapters with peft add_weighted_adapter. Writes OUTPUT/adapter/, "
        "OUTPUT/merge.json and the step summary. A single source is copied unchanged.",
    )
    _add_model_options(merge)
    combine = merge.add_argument_group("merge")
    combine.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="DOMAIN=DIR",
        help="a domain adapter to merge (repeat for each domain)",
    )
    combine.add_argument(
        "--combination",
        choices=COMBINATIONS,
        default="ties",
        help="peft combination type; linear, ties and dare_* need equal ranks (default: ties)",
    )
    combine.add_argument(
        "--density",
        type=float,
        default=0.5,
        help="fraction of weights kept by ties and dare_* (default: 0.5)",
    )
    combine.add_argument(
        "--seed", type=int, default=0, help="seed of the random pruning of dare_* (default: 0)"
    )
    _add_step_options(merge, default_step="merge")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    # peft calls a transformers method deprecated in v5 on every LoRA attach: noise in Job logs.
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    from kaizen.trainer import programs

    return programs.run_train(args) if args.command == "train" else programs.run_merge(args)
