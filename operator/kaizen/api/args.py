"""Typed step arguments: one model per step kind, the only writer and reader of a step's argv.

The planner builds an `EvaluateArgs`, `TrainArgs`, … from the cycle spec and renders it with
`to_argv()`; the step program parses its command line back with `parse_step_argv` (or
`Model.from_argv`). Flags, defaults, bounds and help text all come from the model's fields,
so the Job's command, the local subprocess and a person typing the command agree by
construction, and `from_argv(m.to_argv()) == m` for every model.

This module holds the machinery and the evaluation steps' arguments; the training steps'
are in `args_training` (`LoraTrainingArgs`, `TrainArgs`), the combination steps' in
`args_combination` (`MergeArgs`, `JointArgs`, `CombineArgs`), and each program's list of
them in `commands`.

Flags follow the field names (`max_new_tokens` → `--max-new-tokens`); a field may name its
own flag, be a comma-separated list, take several values after one flag, or have a
negating flag, through the `cli(...)` metadata helper.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NoReturn, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from kaizen.api import fields as f

Program = Literal["kaizen.evaluator", "kaizen.trainer"]
#: Module run by the evaluator image (`python -m kaizen.evaluator …`).
EVALUATOR: Program = "kaizen.evaluator"
#: Module run by the trainer image (`python -m kaizen.trainer …`).
TRAINER: Program = "kaizen.trainer"


def cli(
    *,
    flag: str | None = None,
    separator: str | None = None,
    nargs: str | None = None,
    negation: str | None = None,
    metavar: str | None = None,
) -> dict[str, Any]:
    """Field metadata that shapes a field's command-line form (see the module docstring)."""
    meta = {"flag": flag, "separator": separator, "nargs": nargs, "negation": negation}
    meta["metavar"] = metavar
    return {"cli": {k: v for k, v in meta.items() if v is not None}}


class StepUsageError(ValueError):
    """A step command line that cannot be parsed; `step` names the step as well as it can."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(message)


def _meta(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    return dict(extra.get("cli", {})) if isinstance(extra, dict) else {}  # type: ignore[arg-type]


def _is_list(info: FieldInfo) -> bool:
    annotation = info.annotation
    if get_origin(annotation) in (list, tuple):
        return True
    return any(get_origin(a) in (list, tuple) for a in get_args(annotation))


def _is_bool(info: FieldInfo) -> bool:
    return info.annotation is bool


def _flag(name: str, info: FieldInfo) -> str:
    return str(_meta(info).get("flag") or "--" + name.replace("_", "-"))


def _help(info: FieldInfo) -> str:
    text = " ".join((info.description or "").split())
    if not info.is_required() and info.default not in (None, [], (), False):
        default = info.default
        if isinstance(default, list | tuple):
            default = " ".join(str(v) for v in default)
        text += f" (default: {default})"
    return text.replace("%", "%%")


def _ordered_fields(kind: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    # The step's own arguments first, then the contract's (output, step, tracking).
    common = StepArgs.model_fields
    own = [(n, i) for n, i in kind.model_fields.items() if n not in common]
    return own + [(n, i) for n, i in kind.model_fields.items() if n in common]


class StepArgs(BaseModel):
    """Arguments every step takes: where it writes, what it is called, where it reports."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    PROGRAM: ClassVar[Program]
    """The module the step's image runs."""
    COMMAND: ClassVar[str]
    """The subcommand of that module."""
    SUMMARY: ClassVar[str] = ""
    """One line of help for the subcommand."""

    output: str = Field(min_length=1, json_schema_extra=cli(metavar="DIR"))
    """Artifact directory of this step (created if missing); a complete earlier output there
    is reused."""

    step: str = Field(default="", json_schema_extra=cli(metavar="NAME"))
    """Step name used in the summary and the W&B run (default: the subcommand)."""

    cycle: str | None = Field(default=None, json_schema_extra=cli(metavar="NAME"))
    """Cycle name: the W&B group of the run."""

    tracking_mode: f.TrackingMode = f.DEFAULT_TRACKING_MODE
    """Weights & Biases mode; online without WANDB_API_KEY falls back to offline."""

    tracking_project: str = Field(default=f.DEFAULT_TRACKING_PROJECT, min_length=1)
    """W&B project."""

    tracking_entity: str | None = None
    """W&B entity (team or user)."""

    quiet: bool = False
    """No progress bars."""

    def model_post_init(self, context: Any) -> None:
        if not self.step:
            object.__setattr__(self, "step", self.COMMAND)

    # -- rendering -------------------------------------------------------------------------

    def to_argv(self) -> list[str]:
        """`[command, --flag, value, …]`: every set value, in field order."""
        argv = [self.COMMAND]
        for name, info in _ordered_fields(type(self)):
            value = getattr(self, name)
            meta, flag = _meta(info), _flag(name, info)
            if value is None:
                continue
            if _is_bool(info):
                if value != info.default:
                    argv.append(flag if value else "--no-" + flag[2:])
            elif _is_list(info):
                if not value and meta.get("negation"):
                    argv.append(meta["negation"])
                elif not value:
                    continue
                elif meta.get("separator"):
                    argv += [flag, meta["separator"].join(value)]
                elif meta.get("nargs"):
                    argv += [flag, *value]
                else:
                    for item in value:
                        argv += [flag, str(item)]
            else:
                argv += [flag, str(value)]
        return argv

    def command(self, python: str = "python") -> list[str]:
        """The whole command line: `python -m <program> <command> …`."""
        return [python, "-m", self.PROGRAM, *self.to_argv()]

    # -- parsing ---------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One argparse option per field; values stay strings for pydantic to validate."""
        for name, info in cls.model_fields.items():
            meta, flag = _meta(info), _flag(name, info)
            options: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
            options["help"] = _help(info)
            if "metavar" in meta:
                options["metavar"] = meta["metavar"]
            if _is_bool(info):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
                continue
            if info.is_required():
                options["required"] = True
            if get_origin(info.annotation) is Literal:
                options["choices"] = get_args(info.annotation)
            if _is_list(info) and meta.get("negation"):
                group = parser.add_mutually_exclusive_group()
                group.add_argument(flag, action="append", **options)
                group.add_argument(
                    meta["negation"],
                    dest=name,
                    action="store_const",
                    const=[],
                    default=argparse.SUPPRESS,
                    help=f"none at all (empties {flag})",
                )
            elif _is_list(info) and meta.get("separator"):
                sep = meta["separator"]
                options["type"] = lambda text, sep=sep: [
                    p.strip() for p in text.split(sep) if p.strip()
                ]
                parser.add_argument(flag, **options)
            elif _is_list(info) and meta.get("nargs"):
                parser.add_argument(flag, nargs=meta["nargs"], **options)
            elif _is_list(info):
                parser.add_argument(flag, action="append", **options)
            else:
                parser.add_argument(flag, **options)

    @classmethod
    def from_namespace(cls, values: dict[str, Any]) -> Self:
        """Validate parsed option values; errors name the flag, as the user typed it."""
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                loc = problem["loc"]
                name = str(loc[0]) if loc else ""
                info = cls.model_fields.get(name)
                where = _flag(name, info) if info else (name or "arguments")
                problems.append(f"{where}: {problem['msg']}")
            step = str(values.get("step") or cls.COMMAND)
            raise StepUsageError(step, "; ".join(problems)) from None

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Self:
        """Parse `[command, --flag, …]` (as `to_argv` writes it) back into the model."""
        parsed = parse_step_argv(argv, [cls], prog=f"python -m {cls.PROGRAM}")
        assert isinstance(parsed, cls)
        return parsed


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors follow the step contract."""

    def error(self, message: str) -> NoReturn:
        raise StepUsageError("", f"{self.prog}: {message}")


def build_parser(kinds: Sequence[type[StepArgs]], *, prog: str) -> argparse.ArgumentParser:
    """The parser of a step program whose subcommands are `kinds`."""
    parser = _Parser(prog=prog)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for kind in kinds:
        sub = commands.add_parser(kind.COMMAND, help=kind.SUMMARY, description=kind.__doc__)
        kind.add_arguments(sub)
    return parser


def guess_step(argv: Sequence[str], kinds: Sequence[type[StepArgs]] = ()) -> str:
    """The step name of a command line that did not parse: `--step`, else the subcommand."""
    args = list(argv)
    for index, arg in enumerate(args):
        if arg == "--step" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--step="):
            return arg.split("=", 1)[1]
    commands = [k.COMMAND for k in kinds]
    return next((a for a in args if a in commands), commands[0] if len(commands) == 1 else "step")


def parse_step_argv(argv: Sequence[str], kinds: Sequence[type[StepArgs]], *, prog: str) -> StepArgs:
    """Parse a step program's command line into the model of its subcommand.

    Raises `StepUsageError` (naming the step) on any problem; `--help` prints and exits 0.
    """
    parser = build_parser(kinds, prog=prog)
    try:
        namespace = vars(parser.parse_args(list(argv)))
    except StepUsageError as error:
        raise StepUsageError(guess_step(argv, kinds), str(error)) from None
    command = namespace.pop("command")
    kind = next(k for k in kinds if command == k.COMMAND)
    return kind.from_namespace(namespace)


# -- the model and its adapters (evaluate, combine, train, merge) ----------------------------


class ModelArgs(StepArgs):
    """Arguments of a step that loads the model."""

    model: str = Field(min_length=1, json_schema_extra=cli(metavar="REF"))
    """Base model: hub id (org/name), local or PVC directory, or bundled:smollm2-135m-instruct."""

    adapters: list[str] = Field(
        default_factory=list, json_schema_extra=cli(flag="--adapter", metavar="DIR")
    )
    """An adapter already promoted for this model, merged into the base weights first (repeat
    for several, applied in order); a folder of routed adapters (routes.json) applies each of
    its adapters to the prompts that name its route (docs/routing.md)."""

    revision: str | None = Field(default=None, json_schema_extra=cli(metavar="R"))
    """Hub revision (branch, tag or commit) of --model."""


class InferenceArgs(ModelArgs):
    """Arguments of a step that loads the model to generate with it (evaluate, combine): its
    attention kernel, dtype and placement. A cycle gives every such step the same values, its
    `spec.evaluation`'s, so that the scores they compare were computed alike."""

    attention: f.Attention = f.DEFAULT_ATTENTION
    """Attention kernel: sdpa (PyTorch's scaled-dot-product attention, flash kernels on GPUs)
    or eager."""

    precision: f.Precision = f.DEFAULT_PRECISION
    """Weights' dtype: auto (bf16 on GPUs, float32 on CPUs), bf16 or fp32."""

    device_map: f.DeviceMap = f.DEFAULT_DEVICE_MAP
    """single: the model on one device; auto: its blocks spread over every visible GPU, then
    host memory (accelerate), for models one GPU cannot hold."""

    max_gpu_memory: f.Quantity | None = Field(default=None, json_schema_extra=cli(metavar="QTY"))
    """With --device-map auto, the most weight memory per GPU (a quantity, e.g. 60Gi)."""


class EvaluateArgs(InferenceArgs):
    """Score a model (plus adapters) on a suite: writes results.json and responses.jsonl."""

    PROGRAM: ClassVar[Program] = EVALUATOR
    COMMAND: ClassVar[str] = "evaluate"
    SUMMARY: ClassVar[str] = "score a model (plus adapters) on a suite"

    suite: str = Field(min_length=1)
    """A shipped suite name (demo, core) or a suite directory (PVC path, mounted ConfigMap);
    format: docs/evaluation.md."""

    domains: list[str] = Field(default_factory=list, json_schema_extra=cli(separator=","))
    """Comma-separated domains to evaluate (default: all)."""

    limit: f.ItemLimit | None = None
    """Evaluate only the first N items of each domain in each split (dev and test)."""

    split: Literal["all", "dev", "test"] = "all"
    """Only the dev items (a cycle's own choices) or the test items (the gate's) of the suite."""

    max_new_tokens: f.MaxNewTokens = f.DEFAULT_MAX_NEW_TOKENS
    """Most tokens generated per item."""

    batch_size: f.EvalBatchSize = f.DEFAULT_EVAL_BATCH_SIZE
    """Prompts generated together; halved on out-of-memory and kept halved, so start high."""

    temperature: float = Field(default=0.0, ge=0.0)
    """0 decodes greedily; above 0 samples at this temperature."""

    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """When sampling, draw only from the most likely tokens holding this much probability."""

    repetition_penalty: float = Field(default=1.0, gt=0.0)
    """Above 1, tokens already in the prompt or answer become less likely (1: off)."""

    seed: f.Seed = 0
    """Seed of the sampling (each item has its own stream from it) and of lm-eval."""

    stop: list[str] | None = Field(
        default=None, json_schema_extra=cli(negation="--no-stop", metavar="STRING")
    )
    """End an answer at this string (\\n and \\t are read as newline and tab); repeat for
    several; replaces the default, a newline after some text. --no-stop: answers end only at
    EOS or --max-new-tokens."""

    lm_eval_tasks: list[str] = Field(
        default_factory=list, json_schema_extra=cli(flag="--lm-eval-task", metavar="NAME_OR_YAML")
    )
    """Also run this lm-evaluation-harness task (a registry name or a local task YAML) on the
    same model and report it as domain lmeval:<task>; repeat for several; needs the lmeval
    extra."""

    @field_validator("stop", mode="before")
    @classmethod
    def _read_escapes(cls, value: Any) -> Any:
        # A shell passes `\n` as backslash + n: read the usual escapes, as a user means them.
        if isinstance(value, list):
            value = [
                v.replace("\\n", "\n").replace("\\t", "\t") if isinstance(v, str) else v
                for v in value
            ]
            if any(v == "" for v in value):
                raise ValueError("a stop string cannot be empty (use --no-stop)")
        return value


class AnalyzeArgs(StepArgs):
    """Plan which domains to train from the baseline results: writes plan.json."""

    PROGRAM: ClassVar[Program] = EVALUATOR
    COMMAND: ClassVar[str] = "analyze"
    SUMMARY: ClassVar[str] = "plan which domains to train from baseline results"

    baseline: str = Field(min_length=1, json_schema_extra=cli(metavar="PATH"))
    """results.json of the baseline evaluation."""

    max_domains: f.MaxPriorityDomains = f.DEFAULT_MAX_PRIORITY_DOMAINS
    """At most this many priority domains."""

    threshold: f.ScoreThreshold = f.DEFAULT_SCORE_THRESHOLD
    """Only domains scoring below this are trained."""

    defer: list[f.ArgValue] = Field(
        default_factory=list, json_schema_extra=cli(flag="--defer", metavar="DOMAIN")
    )
    """A domain planned only after every other domain below the threshold (repeat the flag)."""


class ValidateArgs(StepArgs):
    """Compare the candidate with the baseline on identical items and decide promotion."""

    PROGRAM: ClassVar[Program] = EVALUATOR
    COMMAND: ClassVar[str] = "validate"
    SUMMARY: ClassVar[str] = "compare candidate with baseline and decide promotion"

    baseline: str = Field(min_length=1, json_schema_extra=cli(metavar="PATH"))
    """results.json of the baseline evaluation."""

    candidate: str = Field(min_length=1, json_schema_extra=cli(metavar="PATH"))
    """results.json of the candidate evaluation (same items)."""

    min_improvement: f.MinImprovement = f.DEFAULT_MIN_IMPROVEMENT
    """The overall score must improve by more than this."""

    max_regression: f.MaxRegression = f.DEFAULT_MAX_REGRESSION
    """A domain dropping by more than this blocks promotion."""

    significance: f.Significance = f.DEFAULT_SIGNIFICANCE
    """Level of the exact McNemar test."""

    require_significance: bool = True
    """Promote only when the improvement is significant."""

    power: f.Power = f.DEFAULT_POWER
    """Power at which the suite must detect --target-improvement; a result that is not
    significant on a suite that cannot is Inconclusive."""

    target_improvement: f.TargetImprovement = f.DEFAULT_TARGET_IMPROVEMENT
    """Overall improvement the suite must be able to detect (the larger of this and
    --min-improvement is used)."""

    max_slowdown: f.MaxSlowdown | None = None
    """Largest share of tokens/s the candidate may lose (off when not given)."""

    max_memory_increase: f.MaxMemoryIncrease | None = None
    """Largest relative increase of peak memory (off when not given)."""

    lm_eval_max_drop: f.LmEvalMaxDrop | None = None
    """An lm-eval task dropping by more than this (significantly, when lm-eval reports a
    standard error) blocks promotion."""

    lm_eval_min_scores: list[str] = Field(
        default_factory=list,
        json_schema_extra=cli(flag="--lm-eval-min-score", metavar="TASK=SCORE"),
    )
    """The candidate's score on an lm-eval task must reach SCORE (repeat for several)."""

    reference: str | None = Field(default=None, json_schema_extra=cli(metavar="PATH"))
    """results.json of a reference model on the same items (e.g. the previous promoted
    version): the candidate must not be significantly worse than it either."""

    reference_name: str | None = Field(default=None, json_schema_extra=cli(metavar="NAME"))
    """How the reports name --reference (default: its model and adapters)."""

    combination: str | None = Field(default=None, json_schema_extra=cli(metavar="PATH"))
    """combination.json of the combine step that chose the candidate's adapter: its
    retention figures (on dev items; the gate never reads them) go into report.json."""

    html_report: str | None = Field(default=None, json_schema_extra=cli(metavar="DIR"))
    """Also write the cycle's HTML report with its PNG plots into DIR; the cycle's other
    artifacts are read from DIR's parent folder (the cycle's artifact directory)."""

    @field_validator("lm_eval_min_scores")
    @classmethod
    def _task_equals_score(cls, value: list[str]) -> list[str]:
        for entry in value:
            task, sep, score = entry.rpartition("=")
            try:
                number = float(score)
            except ValueError:
                number = -1.0
            if not sep or not task.strip() or not 0.0 <= number <= 1.0:
                raise ValueError(f"{entry!r}: expected TASK=SCORE with SCORE between 0 and 1")
        return value

    def min_scores(self) -> dict[str, float]:
        """`{task: floor}` of --lm-eval-min-score."""
        pairs = (entry.rpartition("=") for entry in self.lm_eval_min_scores)
        return {task.strip(): float(score) for task, _, score in pairs}
