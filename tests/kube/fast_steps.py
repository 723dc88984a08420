"""Stand-ins for the step programs that report at once, for the job simulator's ``step_runner``.

Fault-injection tests and the scale benchmark measure the operator (its API traffic, its
restarts, its bookkeeping), not the ML steps: a real step on the tiny model takes seconds to
minutes. A fast step parses the Job's real command line with the steps' own parser (so a
malformed argv still fails, exit 3) and writes the summary its kind must report, with
plausible numbers; it never touches the artifact folder.

    JobSimulator(cluster, ns, step_runner=run_fast_step, step_seconds=0.5)
"""

from __future__ import annotations

from pathlib import Path

from kaizen.api.args import (
    EVALUATOR,
    AnalyzeArgs,
    EvaluateArgs,
    StepArgs,
    StepUsageError,
    ValidateArgs,
    parse_step_argv,
)
from kaizen.api.args_combination import CombineArgs, JointArgs, MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.commands import EVALUATOR_COMMANDS, TRAINER_COMMANDS
from kaizen.api.summary import (
    EXIT_CONFIG_ERROR,
    SUMMARY_PATH_ENV,
    AdapterDigest,
    CombinationDigest,
    MergeDigest,
    PlanDigest,
    ScoreDigest,
    StepSummary,
    ValidationDigest,
    encode_summary,
)

#: The domains a fast analysis names (the shipped demo suite's).
DOMAINS = ("arithmetic", "geography")


def fast_summary(args: StepArgs) -> StepSummary:
    """The summary the step of `args` reports, without doing its work."""
    out = args.output.rstrip("/")
    summary = StepSummary(step=args.step, ok=True, artifacts_dir=out, duration_seconds=0.0)
    if isinstance(args, EvaluateArgs):
        candidate = bool(args.adapters) or args.step.endswith("candidate")
        summary.evaluation = ScoreDigest(
            overall=0.6 if candidate else 0.5,
            domains={d: 0.6 if candidate else 0.5 for d in DOMAINS},
            items=20,
            results_path=f"{out}/results.json",
        )
    elif isinstance(args, AnalyzeArgs):
        summary.plan = PlanDigest(
            priority_domains=list(DOMAINS[: args.max_domains]), plan_path=f"{out}/plan.json"
        )
    elif isinstance(args, TrainArgs):
        summary.adapter = AdapterDigest(
            domain=args.domain, path=f"{out}/adapter", examples=10, steps=args.steps
        )
    elif isinstance(args, JointArgs):
        summary.adapter = AdapterDigest(
            domain="+".join(DOMAINS), path=f"{out}/adapter", examples=20, steps=args.steps
        )
    elif isinstance(args, CombineArgs):
        summary.combination = CombinationDigest(
            path=f"{out}/adapter",
            chosen="ties",
            retention=dict.fromkeys(DOMAINS, 1.0),
            min_retention=1.0,
            target_met=True,
        )
    elif isinstance(args, MergeArgs):
        summary.merge = MergeDigest(
            path=f"{out}/adapter",
            combination="linear",
            sources=[domain for domain, _ in args.source_pairs()],
        )
    elif isinstance(args, ValidateArgs):
        summary.validation = ValidationDigest(
            verdict="Promote", overall_delta=0.1, p_value=0.01, reasons=["fast step"]
        )
    return summary


def run_fast_step(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    """Run one step container's command line as a fast step: (log, exit code)."""
    # [python, -m, kaizen.evaluator | kaizen.trainer, <command>, --flag, value, ...]
    program = argv[2] if len(argv) > 2 and argv[1] == "-m" else ""
    kinds = EVALUATOR_COMMANDS if program == EVALUATOR else TRAINER_COMMANDS
    path = Path(env[SUMMARY_PATH_ENV])
    try:
        args = parse_step_argv(argv[3:], kinds, prog=program or "step")
    except StepUsageError as error:
        summary = StepSummary(
            step=error.step or "step", ok=False, reason="ConfigurationError", message=str(error)
        )
        path.write_bytes(encode_summary(summary))
        return f"{error}\n", EXIT_CONFIG_ERROR
    summary = fast_summary(args)
    path.write_bytes(encode_summary(summary))
    return f"{args.step}: fast step done\n", 0
