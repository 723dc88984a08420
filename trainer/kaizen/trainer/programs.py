"""The train and merge steps: arguments in, artifacts and a `StepSummary` out, under `run_step`.

Each step checks every input it can before loading a model (suite, domain, plan, extra
data, adapter folders, `--source` syntax), so a configuration error costs seconds and
exits with code 3. The full record goes to `training.json` / `merge.json` in the
artifact directory; the summary carries only the digest the operator puts in status.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kaizen.api.args import MergeArgs, ModelArgs, StepArgs, TrainArgs
from kaizen.api.artifacts import MergeRecord, TrainingRecord, write_artifact
from kaizen.api.runner import ConfigurationError, run_step
from kaizen.api.summary import AdapterDigest, MergeDigest, StepSummary, file_digest

TRAINING_FILE = TrainingRecord.FILE_NAME
MERGE_FILE = MergeRecord.FILE_NAME
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _check_adapters(paths: list[str]) -> None:
    # load_model would find a missing adapter only after loading the base model; and
    # its error is a FileNotFoundError, which run_step would count as retryable.
    for path in paths:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ConfigurationError(
                f"--adapter {path}: not an adapter directory (no adapter_config.json)"
            )


def _load_model(args: ModelArgs) -> Any:
    from kaizen.runtime.models import ModelNotFound, load_model

    try:
        return load_model(args.model, args.adapters, revision=args.revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None


def _tracking(args: StepArgs) -> Any:
    """The step's `TrackingOptions` (W&B run destination) from its command line."""
    from kaizen.runtime.tracking import TrackingOptions

    return TrackingOptions.from_args(args)


def _artifact_name(text: str) -> str:
    # W&B artifact names allow letters, digits, '-', '_' and '.' only.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def train(args: TrainArgs, out: Path) -> StepSummary:
    """Train one domain's adapter into `out/adapter`; write `out/training.json`."""
    from kaizen.runtime.models import ModelNotFound, load_tokenizer
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.data import (
        assemble_examples,
        examples_from_pool,
        read_extra_examples,
        read_plan,
        replay_count,
        replay_examples,
        tokenize_examples,
    )
    from kaizen.trainer.lora import LoraSettings, train_lora

    settings = LoraSettings(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=tuple(args.target_modules),
        learning_rate=args.learning_rate,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
        checkpoint_every=args.checkpoint_every,
    )
    settings.validate()
    suite = load_suite(args.suite)
    extra = read_extra_examples(args.extra_data, args.domain) if args.extra_data else []
    # A domain without a training pool can still be trained on extra data of its own.
    pool = examples_from_pool(suite.training_pool(args.domain, required=not extra))
    targeted: tuple[str, ...] = ()
    if args.plan:
        plan = read_plan(args.plan)
        if args.domain not in plan.priority_domains:
            raise ConfigurationError(
                f"{args.plan}: domain {args.domain!r} is not among priority_domains {plan.priority_domains}"
            )
        targeted = tuple(plan.targeted_capabilities)
    examples = assemble_examples(
        pool,
        domain=args.domain,
        suite=suite.name,
        extra=extra,
        targeted_capabilities=targeted,
        capability_weight=args.capability_weight,
        seed=args.seed,
    )
    # Rehearsal: other domains' pools make up --replay-fraction of the final set.
    pools = {
        d: examples_from_pool([t for t in suite.training if t.domain == d])
        for d in suite.domains
        if d != args.domain
    }
    replay = replay_examples(
        pools,
        domain=args.domain,
        count=replay_count(len(examples), args.replay_fraction),
        seed=args.seed,
    )
    if replay:
        examples = assemble_examples(
            pool,
            domain=args.domain,
            suite=suite.name,
            extra=extra,
            replay=replay,
            targeted_capabilities=targeted,
            capability_weight=args.capability_weight,
            seed=args.seed,
        )
    _check_adapters(args.adapters)
    try:
        tokenizer = load_tokenizer(args.model, revision=args.revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None
    tokenized = tokenize_examples(tokenizer, examples, args.max_seq_length)
    model = _load_model(args)

    config = {
        **asdict(settings),
        "max_seq_length": args.max_seq_length,
        "capability_weight": args.capability_weight,
        "replay_fraction": args.replay_fraction,
        "replay_examples": len(replay),
    }
    tracking_config = {
        **config,
        "domain": args.domain,
        "suite": suite.name,
        "model": args.model,
        "adapters": args.adapters,
    }
    with _tracking(args).run(
        job_type="train", name=args.step, config=tracking_config, directory=out
    ) as tracker:
        result = train_lora(
            model,
            tokenized.examples,
            settings,
            out,
            pad_token_id=tokenizer.pad_token_id,
            base=json.dumps([args.model, args.revision, args.adapters]),
            on_step=lambda step, loss: tracker.log({"train/loss": loss}, step=step),
            progress=not args.quiet,
        )
        record = TrainingRecord.model_validate(
            {
                "step": args.step,
                "cycle": args.cycle,
                "domain": args.domain,
                "suite": {
                    "name": suite.name,
                    "version": suite.version,
                    "path": str(suite.path),
                    "digest": suite.digest,
                },
                "model": {"ref": args.model, "revision": args.revision, "adapters": args.adapters},
                "config": config,
                "plan": {"path": args.plan, "targeted_capabilities": list(targeted)},
                "examples": {
                    "pool": len(pool),
                    "extra": len(extra),
                    "training_set": len(examples),
                    "used": len(tokenized.examples),
                    "truncated": tokenized.truncated,
                    "dropped_no_answer_tokens": tokenized.dropped,
                    "answer_tokens": sum(example.answer_tokens for example in tokenized.examples),
                },
                "steps": result.steps,
                "resumed_from": result.resumed_from,
                "loss_curve": result.loss_curve,
                "final_loss": result.final_loss,
                "train_seconds": round(result.train_seconds, 3),
                "seconds_per_step": round(result.train_seconds / result.steps, 4),
                "tokens_per_second": round(result.tokens_per_second, 1)
                if result.tokens_per_second
                else None,
                "peak_memory_mb": round(result.peak_memory_mb, 1),
                "trainable_parameters": result.trainable_parameters,
                "total_parameters": result.total_parameters,
                "device": result.device,
                "autocast": result.autocast,
                "versions": _versions(),
                "adapter": str(result.adapter_dir),
            }
        )
        write_artifact(out / TRAINING_FILE, record)
        tracker.summary(
            {"final_loss": result.final_loss, "tokens_per_second": record.tokens_per_second}
        )
        tracker.artifact(
            _artifact_name(f"adapter-{args.domain}"), "lora-adapter", [result.adapter_dir]
        )

    final_loss = round(result.final_loss, 4)
    return StepSummary(
        step=args.step,
        ok=True,
        message=f"trained {args.domain} adapter: {result.steps} steps, final loss {final_loss}",
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS),
        adapter=AdapterDigest(
            domain=args.domain,
            path=str(result.adapter_dir),
            examples=len(tokenized.examples),
            steps=result.steps,
            final_loss=final_loss,
        ),
    )


def merge(args: MergeArgs, out: Path) -> StepSummary:
    """Merge the `--source` adapters into `out/adapter`; write `out/merge.json`."""
    from kaizen.trainer.merge import check_compatible, merge_adapters, read_source

    sources = [read_source(domain, path) for domain, path in args.source_pairs()]
    check_compatible(sources, args.combination, args.density)
    _check_adapters(args.adapters)
    config = {"combination": args.combination, "density": args.density, "seed": args.seed}
    tracking_config = {
        **config,
        "sources": {s.domain: str(s.path) for s in sources},
        "model": args.model,
    }
    with _tracking(args).run(
        job_type="merge", name=args.step, config=tracking_config, directory=out
    ) as tracker:
        result = merge_adapters(
            sources,
            out,
            load_base=lambda: _load_model(args),
            combination=args.combination,
            density=args.density,
            seed=args.seed,
        )
        record = MergeRecord.model_validate(
            {
                "step": args.step,
                "cycle": args.cycle,
                "model": {"ref": args.model, "revision": args.revision, "adapters": args.adapters},
                "config": config,
                "combination": result.combination,
                "rank": result.rank,
                "sources": [source.describe() for source in result.sources],
                "seconds": round(result.seconds, 3),
                "versions": _versions(),
                "adapter": str(result.adapter_dir),
            }
        )
        write_artifact(out / MERGE_FILE, record)
        tracker.artifact("merged-adapter", "lora-adapter", [result.adapter_dir])
    domains = [source.domain for source in result.sources]
    return StepSummary(
        step=args.step,
        ok=True,
        message=f"merged {', '.join(domains)} with {result.combination} into a rank-{result.rank} adapter",
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS),
        merge=MergeDigest(
            path=str(result.adapter_dir), combination=result.combination, sources=domains
        ),
    )


def run_train(args: TrainArgs) -> int:
    return run_step(args.step, args.output, lambda out: train(args, out))


def run_merge(args: MergeArgs) -> int:
    return run_step(args.step, args.output, lambda out: merge(args, out))
