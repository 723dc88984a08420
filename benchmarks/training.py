"""LoRA training speed of Kaizen's loop against Hugging Face `Trainer` + peft, on the same data.

    python benchmarks/training.py                         # bundled model, demo pools, CPU
    python benchmarks/training.py --steps 20 --threads 2
    python benchmarks/training.py --arch llama-7b --device cuda --precision bf16 \\
        --peak-tflops 989 --batch-size 16 --max-seq-length 1024   # a GPU machine (random weights)

Contenders, each starting from the same freshly loaded weights, with the same tokenised
examples (Kaizen's `tokenize_examples`: chat template, loss on the answer tokens), LoRA
settings (rank, alpha, target modules), batch size, number of optimiser steps, constant
learning rate and AdamW, thread count and precision:

  (a) HF: `transformers.Trainer` on a peft model, `DataCollatorForSeq2Seq` padding each batch
      to its longest example (the usual recipe), no evaluation, saving or logging;
  (b) Kaizen: `kaizen.trainer.lora.train_lora` (batches grouped by length; the output layer
      computes logits only at the answer tokens, `kaizen.trainer.loss`);
  (c) Kaizen with packing (`--packing`: rows of `--max-seq-length` tokens, attention within
      each example, the prompt prefix the batch shares computed once per row).

Tokens are the non-padding tokens of the batches each contender trained on (counted by its
own collator for (a); every example's tokens for (b) and (c), the shared prefix included
however often it is computed). Tokens/s divides them by the time of the optimiser steps
(Trainer's `train_runtime` for (a), Kaizen's `train_seconds`); tokens per CPU-second divides
them by the process's CPU time over the same call (its own work whatever else the machine
runs: the steadier figure on a shared machine; Kaizen's includes saving its adapter). With
`--repeats N` the three contenders run in turn N times (a, b, c, a, b, c, ...) and each one's
best run counts, so a burst of load does not land on one contender only. Prints both and
the ratios of (b) and (c) to (a) measured in this run; compare only figures of one run. With
`--peak-tflops` it also prints model FLOP utilisation: 6 x parameters x tokens per second
plus attention (the usual convention: a frozen base's weights get no gradient, so
LoRA's real work is nearer 4 x parameters; the convention is kept for comparability).

`--arch` trains a randomly initialised architecture of that class instead of the bundled
model (no weights are downloaded: for speed and memory only), with the bundled tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Randomly initialised architectures (Llama-style), by class: (hidden, layers, heads, kv heads, ffn).
ARCHS = {
    "llama-1b": (2048, 16, 32, 8, 8192),
    "llama-7b": (4096, 32, 32, 32, 11008),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--arch", choices=sorted(ARCHS), default=None)
    parser.add_argument("--suite", default="demo")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="for MFU (e.g. 989: H100 bf16)"
    )
    parser.add_argument("--skip-hf", action="store_true", help="only Kaizen's contenders")
    parser.add_argument(
        "--repeats", type=int, default=1, help="run the contenders in turn N times; fastest counts"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """A fresh model (the bundled one, or a random architecture) and the bundled tokenizer."""
    import torch

    from kaizen.runtime.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(args.model)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if args.arch is None:
        return load_model(args.model, device=args.device, dtype=dtype), tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, kv, ffn = ARCHS[args.arch]
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=ffn,
        max_position_embeddings=4096, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(args.device):
        model: Any = LlamaForCausalLM(config)
    return model.to(dtype), tokenizer


def examples(args: argparse.Namespace, tokenizer: Any) -> list[Any]:
    """Every training-pool example of the suite, tokenised as the train step does."""
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.data import examples_from_pool, tokenize_examples

    suite = load_suite(args.suite)
    pool = [
        example
        for domain in suite.domains
        for example in examples_from_pool(suite.training_pool(domain, required=False))
    ]
    return list(tokenize_examples(tokenizer, pool, args.max_seq_length).examples)


def run_hf(args: argparse.Namespace, data: list[Any]) -> dict[str, float]:
    """(a) transformers.Trainer on a peft model."""
    import torch
    from peft import get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from kaizen.trainer.lora import LoraSettings

    model, tokenizer = load(args)
    model = get_peft_model(model, LoraSettings(rank=args.rank, alpha=2 * args.rank).lora_config())
    base = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    counted = {"tokens": 0}

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = base(features)
        counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    rows = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in data]
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
            learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
            optim="adamw_torch", max_grad_norm=1.0, logging_strategy="no", save_strategy="no",
            report_to=[], dataloader_num_workers=0, seed=0, use_cpu=args.device == "cpu",
            bf16=args.precision == "bf16", disable_tqdm=True, remove_unused_columns=False,
        )  # fmt: skip
        trainer = Trainer(model=model, args=training, train_dataset=rows, data_collator=collate)
        cpu = time.process_time()
        result = trainer.train()
        cpu = time.process_time() - cpu
    del model, trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    seconds = float(result.metrics["train_runtime"])
    return {"seconds": seconds, "tokens": counted["tokens"], "cpu_seconds": cpu}


def run_kaizen(args: argparse.Namespace, data: list[Any], packing: bool) -> dict[str, float]:
    """(b) and (c): Kaizen's LoRA loop."""
    import torch

    from kaizen.trainer.lora import LoraSettings, train_lora

    model, tokenizer = load(args)
    settings = LoraSettings(
        rank=args.rank, alpha=2 * args.rank, steps=args.steps, batch_size=args.batch_size,
        learning_rate=1e-3, checkpoint_every=10**6, packing=packing,
        pack_length=args.max_seq_length if packing else 0,
        precision="bf16" if args.precision == "bf16" else "fp32",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        cpu = time.process_time()
        result = train_lora(
            model, data, settings, out, pad_token_id=tokenizer.pad_token_id, progress=False
        )
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    cpu = time.process_time() - cpu
    return {"seconds": result.train_seconds, "tokens": result.tokens, "cpu_seconds": cpu}


def flops_per_token(args: argparse.Namespace, data: list[Any]) -> float:
    """6 N plus attention (12 x layers x hidden x mean sequence length), per trained token."""
    model, _ = load(args)
    params = sum(p.numel() for p in model.parameters())
    config = model.config
    mean_length = sum(len(e.input_ids) for e in data) / len(data)
    del model
    layers, hidden = int(config.num_hidden_layers), int(config.hidden_size)
    return float(6 * params + 12 * layers * hidden * mean_length)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from kaizen.runtime.models import load_tokenizer

    tokenizer = load_tokenizer(args.model)
    data = examples(args, tokenizer)
    lengths = sorted(len(e.input_ids) for e in data)
    print(
        f"{len(data)} examples of {lengths[0]}-{lengths[-1]} tokens (median "
        f"{lengths[len(lengths) // 2]}); {args.steps} steps of {args.batch_size}; "
        f"{torch.get_num_threads()} threads; {args.device} {args.precision}",
        file=sys.stderr,
    )
    contenders: dict[str, Any] = {
        "hf_trainer": lambda: run_hf(args, data),
        "kaizen": lambda: run_kaizen(args, data, packing=False),
        "kaizen_packing": lambda: run_kaizen(args, data, packing=True),
    }
    if args.skip_hf:
        del contenders["hf_trainer"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for repeat in range(max(1, args.repeats)):
        for name, contender in contenders.items():
            run = contender()
            run["tokens_per_second"] = run["tokens"] / run["seconds"]
            run["tokens_per_cpu_second"] = run["tokens"] / run["cpu_seconds"]
            runs[name].append(run)
            print(
                f"round {repeat + 1}: {name} {run['tokens_per_second']:.1f} tokens/s",
                file=sys.stderr,
            )
    figures: dict[str, dict[str, Any]] = {
        name: dict(max(done, key=lambda run: run["tokens_per_second"]))
        for name, done in runs.items()
    }
    for name, figure in figures.items():
        figure["runs_tokens_per_second"] = [
            round(run["tokens_per_second"], 2) for run in runs[name]
        ]
        figure["tokens_per_cpu_second"] = max(run["tokens_per_cpu_second"] for run in runs[name])
    if "hf_trainer" in figures:
        base = figures["hf_trainer"]["tokens_per_second"]
        base_cpu = figures["hf_trainer"]["tokens_per_cpu_second"]
        for name in ("kaizen", "kaizen_packing"):
            figures[name]["vs_hf_trainer"] = figures[name]["tokens_per_second"] / base
            figures[name]["vs_hf_trainer_cpu"] = figures[name]["tokens_per_cpu_second"] / base_cpu
    if args.peak_tflops:
        per_token = flops_per_token(args, data)
        for figure in figures.values():
            figure["mfu"] = figure["tokens_per_second"] * per_token / (args.peak_tflops * 1e12)
    print(
        f"{'contender':<16}{'tokens':>10}{'seconds':>10}{'tokens/s':>11}{'vs HF':>8}"
        f"{'tokens/CPU-s':>14}{'vs HF':>8}{'MFU':>8}"
    )
    for name, figure in figures.items():
        ratio, ratio_cpu = figure.get("vs_hf_trainer"), figure.get("vs_hf_trainer_cpu")
        mfu = figure.get("mfu")
        print(
            f"{name:<16}{figure['tokens']:>10.0f}{figure['seconds']:>10.2f}"
            f"{figure['tokens_per_second']:>11.1f}{(f'{ratio:.2f}x' if ratio else '-'):>8}"
            f"{figure['tokens_per_cpu_second']:>14.1f}{(f'{ratio_cpu:.2f}x' if ratio_cpu else '-'):>8}"
            f"{(f'{mfu:.1%}' if mfu else '-'):>8}"
        )
    if args.json:
        settings = {key: str(value) for key, value in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
