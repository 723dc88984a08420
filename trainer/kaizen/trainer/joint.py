"""The joint step: one LoRA adapter trained on the union of the priority domains' training sets.

A candidate beside the merges of the per-domain adapters. Each train step leaves the
training set it trained on (`data.jsonl`: its pool, synthesised and teacher lines, and its
replay of the other domains), already checked against the evaluation items; the joint
adapter trains on all of them together, each distinct (question, answer) once, for as many
optimiser steps as the planner gives it (by default the sum of the domain adapters' steps:
the same number of updates, spent on one adapter). Nothing has to be merged afterwards, so
nothing is lost to interference between adapters; what is lost instead is each domain's
share of the updates.

It trains exactly as the train steps do, with the same `LoraTrainingArgs` (a cycle gives
both its `spec.training`'s options) through the same code (`kaizen.trainer.steps`):
precision, gradient checkpointing, packing, 4-bit quantization, and under torchrun (the
operator starts one process per GPU, or a TrainJob, as for a train step) ddp or fsdp. What
the train steps did to build their sets (synthesis, a teacher, replay) is already in the
lines; token-level distillation is not repeated (the union trains on cross-entropy).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kaizen.api.args_combination import JointArgs
from kaizen.api.artifacts import DataCard, JointRecord, LoraConfig, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import AdapterDigest, StepSummary, atomic_write_bytes, file_digest
from kaizen.trainer.distributed import SINGLE, Parallel
from kaizen.trainer.steps import (
    adapter_run,
    check_adapters,
    load_training_base,
    lora_settings,
    run_training_step,
    versions,
)

JOINT_FILE = JointRecord.FILE_NAME
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def read_training_set(domain: str, path: str | Path) -> list[dict[str, Any]]:
    """The lines of a train step's data.jsonl; ConfigurationError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(
            f"--data {domain}={path}: no such file (the train step of {domain} writes it)"
        )
    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"{path}:{number}: not JSON: {error.msg}") from None
        for name in ("question", "answer"):
            if not isinstance(record, dict) or not isinstance(record.get(name), str):
                raise ConfigurationError(f"{path}:{number}: {name}: missing or not a string")
        lines.append(record)
    if not lines:
        raise ConfigurationError(f"{path}: no training lines")
    return lines


def union(sets: list[tuple[str, list[dict[str, Any]]]]) -> tuple[list[dict[str, Any]], list[int]]:
    """Every distinct (question, answer) once, in order of the sets; how many each set added.

    A domain's replay of another priority domain repeats lines that domain's own set holds:
    kept once, the union weighs every domain by its own data, not by how often it was replayed.
    """
    seen: set[tuple[str, str]] = set()
    kept: list[dict[str, Any]] = []
    added: list[int] = []
    for _, lines in sets:
        count = 0
        for line in lines:
            key = (line["question"].strip(), line["answer"].strip())
            if key in seen:
                continue
            seen.add(key)
            kept.append(line)
            count += 1
        added.append(count)
    return kept, added


def joint(args: JointArgs, out: Path, parallel: Parallel = SINGLE) -> StepSummary:
    """Train the joint adapter into `out/adapter`; write `out/joint.json` and `out/data.jsonl`.

    The model is loaded and trained as the train step does (`kaizen.trainer.steps`): the same
    precision, gradient checkpointing, packing, quantization and, under torchrun, the same
    ddp or fsdp; only rank 0 (`parallel.is_main`) writes anything.
    """
    from kaizen.runtime.models import ModelNotFound, load_tokenizer
    from kaizen.trainer.data import Example, tokenize_examples
    from kaizen.trainer.memory import check_quantization

    settings = lora_settings(args)
    check_quantization(args.quantization)  # before any weight is loaded
    parallel.check_batch(args.batch_size)
    sets = [(domain, read_training_set(domain, path)) for domain, path in args.data_pairs()]
    lines, added = union(sets)
    if parallel.is_main:
        atomic_write_bytes(
            out / DataCard.DATA_FILE,
            "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode(),
        )
    check_adapters(args.adapters)
    try:
        tokenizer = load_tokenizer(args.model, revision=args.revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None
    examples = [
        Example(
            line["question"],
            line["answer"],
            line.get("capability"),
            str(line.get("source") or "pool"),
        )
        for line in lines
    ]
    tokenized = tokenize_examples(tokenizer, examples, args.max_seq_length)
    if not tokenized.examples:
        raise ConfigurationError("no training example has answer tokens after truncation")
    model = load_training_base(args, parallel)
    domains = [domain for domain, _ in sets]
    config = {
        **{k: v for k, v in asdict(settings).items() if k in LoraConfig.model_fields},
        "max_seq_length": args.max_seq_length,
        "processes": parallel.world_size,
        "ema_decay": settings.ema_decay or None,  # absent from joint.json when off
    }
    with adapter_run(
        args,
        out,
        parallel,
        job_type="joint",
        config={**config, "domains": domains, "model": args.model, "adapters": args.adapters},
    ) as run:
        result = run.train(
            model,
            tokenized.examples,
            settings,
            pad_token_id=tokenizer.pad_token_id,
            base=["joint"],
        )
        record = JointRecord.model_validate(
            {
                "step": args.step,
                "cycle": args.cycle,
                "model": {"ref": args.model, "revision": args.revision, "adapters": args.adapters},
                "sources": [
                    {"domain": domain, "path": path, "lines": len(data), "kept": kept}
                    for (domain, path), (_, data), kept in zip(
                        args.data_pairs(), sets, added, strict=True
                    )
                ],
                "examples": len(tokenized.examples),
                "truncated": tokenized.truncated,
                "steps": result.steps,
                "learning_rate": args.learning_rate,
                "rank": args.rank,
                "final_loss": round(result.final_loss, 4),
                "loss_curve": result.loss_curve,
                "train_seconds": round(result.train_seconds, 3),
                "peak_memory_mb": round(result.peak_memory_mb, 1),
                "adapter": str(result.adapter_dir),
                "config": config,
                "resumed_from": result.resumed_from,
                "tokens_per_second": round(result.tokens_per_second, 1)
                if result.tokens_per_second
                else None,
                "device": result.device,
                "autocast": result.autocast,
                "versions": versions(),
            }
        )
        if parallel.is_main:
            write_artifact(out / JOINT_FILE, record)
        run.finish({"final_loss": result.final_loss}, "joint-adapter", result.adapter_dir)
    name = "+".join(domains)
    return StepSummary(
        step=args.step,
        ok=True,
        message=(
            f"trained one adapter on {', '.join(domains)} together: {len(tokenized.examples)} "
            f"examples, {result.steps} steps, final loss {result.final_loss:.4f}"
        ),
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS) if parallel.is_main else None,
        adapter=AdapterDigest(
            domain=name,
            path=str(result.adapter_dir),
            examples=len(tokenized.examples),
            steps=result.steps,
            final_loss=round(result.final_loss, 4),
            learning_rate=args.learning_rate,
        ),
    )


def run_joint(args: JointArgs) -> int:
    # The domains' training sets are inputs: a rerun after they changed trains again.
    inputs = [path for _, path in args.data_pairs()]
    return run_training_step(args, lambda out, parallel: joint(args, out, parallel), inputs)
