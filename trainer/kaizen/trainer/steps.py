"""What the steps that train an adapter share (train, joint): their `LoraSettings` from the
typed arguments, how the base model is loaded (quantized, or sharded for FSDP), the tracking
run and the `train_lora` call inside it (`adapter_run`), and running under torchrun, where
rank 0 runs the step contract and the other ranks train beside it.

Both steps take `LoraTrainingArgs`, so whatever the train step honours of `spec.training`
(precision, gradient checkpointing, packing, quantization, parallelism) the joint step
honours the same way.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api.args import ModelArgs, StepArgs
from kaizen.api.args_training import LoraTrainingArgs
from kaizen.api.runner import ConfigurationError, run_step
from kaizen.api.summary import EXIT_CONFIG_ERROR, EXIT_OK, StepSummary
from kaizen.trainer.distributed import Parallel, from_environment, process_group

if TYPE_CHECKING:  # torch is imported late: a usage error never loads it
    from kaizen.runtime.tracking import Tracker
    from kaizen.trainer.data import TokenizedExample
    from kaizen.trainer.lora import LoraSettings, TrainingResult

#: A step's work on one rank: its artifact directory and its place among the ranks.
Work = Callable[[Path, Parallel], StepSummary]


def lora_settings(args: LoraTrainingArgs, **extra: Any) -> LoraSettings:
    """The `LoraSettings` of `args` (plus a step's own, e.g. distillation), validated."""
    from kaizen.trainer.lora import LoraSettings

    settings = LoraSettings(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=tuple(args.target_modules),
        learning_rate=args.learning_rate,
        steps=args.steps,
        lr_schedule=args.lr_schedule,
        warmup_ratio=args.warmup_ratio,
        batch_size=args.batch_size,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
        ema_decay=args.ema_decay,
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing,
        packing=args.packing,
        pack_length=args.max_seq_length if args.packing else 0,
        quantization=args.quantization,
        parallelism=args.parallelism,
        **extra,
    )
    settings.validate()
    return settings


def check_adapters(paths: list[str]) -> None:
    """Every `--adapter` is an adapter folder (before the base model is loaded)."""
    # load_model would find a missing adapter only after loading the base model; and
    # its error is a FileNotFoundError, which run_step would count as retryable.
    from kaizen.runtime.routing import is_adapter, is_routed, read_routes

    for path in paths:
        if not is_adapter(path):
            raise ConfigurationError(
                f"--adapter {path}: not an adapter directory (no adapter_config.json or routes.json)"
            )
        if is_routed(path):
            read_routes(path)


def base_adapters(args: ModelArgs) -> list[str]:
    """The `--adapter`s a step trains on, each folder of routed adapters reduced to its route
    of the step's `--domain` (none for a step without one, or a domain it has no route for):
    a domain's adapter learns on top of what that domain's prompts are served with
    (`kaizen.runtime.routing`)."""
    from kaizen.runtime.routing import resolve

    return resolve(args.adapters, getattr(args, "domain", None))


def load_base(args: ModelArgs, load_options: dict[str, Any] | None = None) -> Any:
    """`--model` with its `--adapter`s merged in (`load_options`: e.g. 4-bit quantization)."""
    from kaizen.runtime.models import ModelNotFound, load_model

    try:
        return load_model(
            args.model, base_adapters(args), revision=args.revision, load_options=load_options
        )
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None


def load_sharded_base(args: ModelArgs, parallel: Parallel) -> Any:
    """FSDP's base: the weights on rank 0's CPU, an empty (meta) model on the other ranks."""
    from kaizen.runtime.models import ModelNotFound
    from kaizen.trainer import fsdp

    try:
        return fsdp.load_base(args.model, base_adapters(args), args.revision, parallel)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None


def load_training_base(args: LoraTrainingArgs, parallel: Parallel) -> Any:
    """The base model as a training step trains on it: sharded under torchrun with
    `--parallelism fsdp`, else whole (in 4 bits with `--quantization 4bit`)."""
    from kaizen.trainer.memory import quantized_load_options

    if args.parallelism == "fsdp" and parallel.distributed:
        if args.quantization != "none":
            raise ConfigurationError(
                "--parallelism fsdp cannot be combined with --quantization (no process holds "
                "the whole model to quantize it); use ddp"
            )
        return load_sharded_base(args, parallel)
    return load_base(args, quantized_load_options(args.quantization))


def tracking(args: StepArgs, disabled: bool = False) -> Any:
    """The step's `TrackingOptions` (W&B run destination) from its command line; `disabled`
    for the ranks other than 0 of a distributed step (one run per step)."""
    import dataclasses

    from kaizen.runtime.tracking import TrackingOptions

    options = TrackingOptions.from_args(args)
    return dataclasses.replace(options, mode="disabled") if disabled else options


def base_key(args: ModelArgs, *extra: Any) -> str:
    """What a checkpoint's weights were trained on: `--model`, `--revision`, the `--adapter`s
    and what else the step names (the joint marker, a distillation teacher). A checkpoint made
    on another base is not resumed (`train_lora`'s `base`)."""
    return json.dumps([args.model, args.revision, args.adapters, *extra])


@dataclass(frozen=True)
class AdapterRun:
    """One training step's adapter inside its tracking run: `train` is the one place a step
    calls `train_lora`, so the train and joint steps log, report progress, name their base
    and share out the ranks the same way."""

    args: LoraTrainingArgs
    out: Path
    parallel: Parallel
    tracker: Tracker

    def train(
        self,
        model: Any,
        examples: Sequence[TokenizedExample],
        settings: LoraSettings,
        *,
        pad_token_id: int,
        base: Sequence[Any] = (),
    ) -> TrainingResult:
        """Train into `out/adapter`: every step's metrics logged as `train/<name>`, progress on
        rank 0 unless `--quiet`, `base` (beyond the model and adapters) in the checkpoint key."""
        from kaizen.trainer.lora import train_lora

        return train_lora(
            model,
            examples,
            settings,
            self.out,
            pad_token_id=pad_token_id,
            base=base_key(self.args, *base),
            on_metrics=lambda step, metrics: self.tracker.log(
                {f"train/{name}": value for name, value in metrics.items()}, step=step
            ),
            progress=not self.args.quiet and self.parallel.is_main,
            parallel=self.parallel,
        )

    def finish(self, summary: dict[str, Any], artifact: str, adapter_dir: Path) -> None:
        """The run's summary values, and (rank 0) the adapter as a `lora-adapter` artifact."""
        self.tracker.summary(summary)
        if self.parallel.is_main:
            self.tracker.artifact(artifact, "lora-adapter", [adapter_dir])


@contextmanager
def adapter_run(
    args: LoraTrainingArgs, out: Path, parallel: Parallel, *, job_type: str, config: dict[str, Any]
) -> Iterator[AdapterRun]:
    """The step's tracking run (one per step: the other ranks' are disabled) around its
    adapter's training."""
    destination = tracking(args, disabled=not parallel.is_main)
    with destination.run(
        job_type=job_type, name=args.step, config=config, directory=out
    ) as tracker:
        yield AdapterRun(args, out, parallel, tracker)


def versions() -> dict[str, str]:
    """The versions of torch, transformers and peft."""
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def run_training_step(args: StepArgs, work: Work, inputs: Sequence[str] = ()) -> int:
    """Run a training step under the step contract: in one process, or as one rank of
    torchrun's (`RANK`/`WORLD_SIZE`), where every rank trains and only rank 0 writes."""
    parallel = from_environment()
    if not parallel.distributed:
        return run_step(
            args.step, args.output, lambda out: work(out, parallel), args=args, inputs=inputs
        )
    with process_group(parallel):
        return _run_ranks(args, work, list(inputs), parallel)


def _run_ranks(args: StepArgs, work: Work, inputs: list[str], parallel: Parallel) -> int:
    """One rank of a distributed step: rank 0 runs the step contract (reuse, summary,
    artifacts) and tells the others whether to train; they train beside it silently."""
    if not parallel.is_main:
        if not parallel.broadcast(None):
            return EXIT_OK  # rank 0 reused an earlier output, or failed before training
        try:
            work(Path(args.output), parallel)
        except ConfigurationError as error:
            # Rank 0 meets the same inputs and reports it in the summary; this rank's exit
            # code says so too, for the launcher (`kaizen.trainer.launch`).
            print(f"[rank {parallel.rank}] configuration error: {error}", file=sys.stderr)
            return EXIT_CONFIG_ERROR
        return EXIT_OK
    told = False

    def main(out: Path) -> StepSummary:
        nonlocal told
        parallel.broadcast(True)
        told = True
        return work(out, parallel)

    try:
        code = run_step(args.step, args.output, main, args=args, inputs=inputs)
    finally:
        if not told:
            parallel.broadcast(False)
    return code
