"""The joint step: one LoRA adapter trained on the union of the priority domains' training sets.

A candidate beside the merges of the per-domain adapters. Each train step leaves the
training set it trained on (`data.jsonl`: its pool, synthesised and teacher lines, and its
replay of the other domains), already checked against the evaluation items; the joint
adapter trains on all of them together, each distinct (question, answer) once, for as many
optimiser steps as the planner gives it (by default the sum of the domain adapters' steps:
the same number of updates, spent on one adapter). Nothing has to be merged afterwards, so
nothing is lost to interference between adapters; what is lost instead is each domain's
share of the updates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kaizen.api.args import JointArgs
from kaizen.api.artifacts import JointRecord, write_artifact
from kaizen.api.runner import ConfigurationError, run_step
from kaizen.api.summary import AdapterDigest, StepSummary, atomic_write_bytes, file_digest

JOINT_FILE = JointRecord.FILE_NAME
DATA_FILE = "data.jsonl"
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


def joint(args: JointArgs, out: Path) -> StepSummary:
    """Train the joint adapter into `out/adapter`; write `out/joint.json` and `out/data.jsonl`."""
    from kaizen.runtime.models import ModelNotFound, load_model, load_tokenizer
    from kaizen.trainer.data import Example, tokenize_examples
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
    )
    settings.validate()
    sets = [(domain, read_training_set(domain, path)) for domain, path in args.data_pairs()]
    lines, added = union(sets)
    atomic_write_bytes(
        out / DATA_FILE,
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode(),
    )
    try:
        tokenizer = load_tokenizer(args.model, revision=args.revision)
        model = load_model(args.model, args.adapters, revision=args.revision)
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
    result = train_lora(
        model,
        tokenized.examples,
        settings,
        out,
        pad_token_id=tokenizer.pad_token_id,
        base=json.dumps([args.model, args.revision, args.adapters, "joint"]),
        progress=not args.quiet,
    )
    domains = [domain for domain, _ in sets]
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
        }
    )
    write_artifact(out / JOINT_FILE, record)
    name = "+".join(domains)
    return StepSummary(
        step=args.step,
        ok=True,
        message=(
            f"trained one adapter on {', '.join(domains)} together: {len(tokenized.examples)} "
            f"examples, {result.steps} steps, final loss {result.final_loss:.4f}"
        ),
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS),
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
    return run_step(args.step, args.output, lambda out: joint(args, out), args=args, inputs=inputs)
