"""Training one LoRA adapter with peft: a plain, seeded AdamW loop that checkpoints and resumes.

The loop is deliberately small (no `transformers.Trainer`): a fixed number of optimiser
steps over a deterministic batch schedule, loss on the answer tokens only (the labels
from `data.tokenize_examples`; the output layer computes logits only there,
`loss.answer_loss`), a constant learning rate, and a checkpoint every K steps
so that a preempted Job resumes where it stopped and ends with the same adapter an
uninterrupted run would have produced. With token-level distillation on
(`distill_weight > 0`, examples carrying teacher targets) the loss adds the weighted KL to
the teacher's top-k distribution (`distillation.kl_to_teacher`).
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api import fields
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import atomic_write_json
from kaizen.trainer import fsdp
from kaizen.trainer.averaging import WeightAverage
from kaizen.trainer.data import TEACHER_KEYS, TokenizedExample, collate
from kaizen.trainer.distillation import kl_to_teacher
from kaizen.trainer.distributed import SINGLE, Parallel
from kaizen.trainer.files import atomic_directory
from kaizen.trainer.loss import answer_loss
from kaizen.trainer.memory import (
    autocast_bf16,
    enable_gradient_checkpointing,
    prepare_quantized,
)
from kaizen.trainer.packing import pack
from kaizen.trainer.schedule import SCHEDULES, batch_indices, rate_at

if TYPE_CHECKING:  # pragma: no cover - torch and peft are slow to import
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import PreTrainedModel

#: `target_modules` value meaning every linear layer except the output head (peft's spelling).
ALL_LINEAR = "all-linear"
CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
#: The final loss reported is the mean over this many last steps (one step's loss is noisy).
FINAL_LOSS_WINDOW = 5


@dataclass(frozen=True)
class LoraSettings:
    """Everything that decides the adapter a training run produces."""

    rank: int = fields.DEFAULT_LORA_RANK
    """LoRA rank `r`."""
    alpha: int = fields.DEFAULT_LORA_ALPHA
    """LoRA scaling `lora_alpha` (the update is scaled by alpha / rank)."""
    dropout: float = fields.DEFAULT_LORA_DROPOUT
    """Dropout on the LoRA input."""
    target_modules: tuple[str, ...] = fields.DEFAULT_TARGET_MODULES
    """Module names that get LoRA weights, or `all-linear`."""
    learning_rate: float = fields.DEFAULT_LEARNING_RATE
    """AdamW learning rate: the peak of `lr_schedule` (`schedule.rate_at`)."""
    lr_schedule: str = fields.DEFAULT_LR_SCHEDULE
    """After the warmup, `constant`; or `linear` / `cosine`: decay to 0 at the last step."""
    warmup_ratio: float = fields.DEFAULT_WARMUP_RATIO
    """Share of the steps over which the rate rises from 0 (any schedule)."""
    steps: int = fields.DEFAULT_TRAIN_STEPS
    """Optimiser steps."""
    batch_size: int = fields.DEFAULT_TRAIN_BATCH_SIZE
    """Examples per optimiser step."""
    seed: int = 0
    """Seed for the LoRA initialisation, dropout and the batch schedule."""
    max_grad_norm: float = fields.DEFAULT_MAX_GRAD_NORM
    """Gradients are clipped to this norm (0 turns clipping off)."""
    checkpoint_every: int = fields.DEFAULT_CHECKPOINT_EVERY
    """Save a resumable checkpoint every this many steps (and after the last)."""
    group_by_length: bool = True
    """Batch examples of similar length together (`schedule.epoch_order`): less padding per step."""
    distill_weight: float = 0.0
    """Weight of the token-level distillation KL term (0: off, plain cross-entropy)."""
    distill_top_k: int = fields.DEFAULT_DISTILL_TOP_K
    """Teacher tokens per answer position the KL compares (set when the targets are made)."""
    distill_temperature: float = fields.DEFAULT_DISTILL_TEMPERATURE
    """Temperature of the KL's distributions; the term is scaled by its square."""
    preserve_weight: float = 0.0
    """Weight of the KL to the model before training on the rehearsal and anchor lines (0:
    off). Those examples carry that model's targets (`distillation`)."""
    ema_decay: float = fields.DEFAULT_EMA_DECAY
    """Save a moving average of the adapter's weights over the last steps rather than the
    last step's (`averaging.WeightAverage`; 0: off)."""
    precision: str = fields.DEFAULT_PRECISION
    """`auto` (bf16 autocast on GPUs that support it), `bf16` or `fp32`."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (memory for compute; same adapter)."""
    quantization: str = fields.DEFAULT_QUANTIZATION
    """`none`, or `4bit`: the base was loaded in 4-bit NF4 (QLoRA; `runtime.load_model`)."""
    packing: bool = False
    """Lay each batch's examples end to end in fewer rows, attention kept within each
    (`packing.pack`): less padding, the same loss."""
    pack_length: int = 0
    """Tokens per packed row (the train step passes its max sequence length); 0: the
    batch's longest example."""
    parallelism: str = "ddp"
    """Under torchrun: `ddp` (every rank holds the base, LoRA gradients summed) or `fsdp`
    (the base sharded over the ranks, `kaizen.trainer.fsdp`). The same adapter either way."""

    @property
    def distilling(self) -> bool:
        """Whether the loss has a token-level KL term (a teacher's, or the preservation one)."""
        return self.distill_weight > 0 or self.preserve_weight > 0

    def validate(self) -> None:
        """Raise `ConfigurationError` on values no run can use."""
        problems = []
        if self.rank < 1:
            problems.append(f"rank must be at least 1, got {self.rank}")
        if self.alpha < 1:
            problems.append(f"alpha must be at least 1, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules or any(not name.strip() for name in self.target_modules):
            problems.append(
                f"target modules must be non-empty names, got {list(self.target_modules)}"
            )
        if ALL_LINEAR in self.target_modules and len(self.target_modules) > 1:
            problems.append(f"{ALL_LINEAR!r} cannot be combined with other target modules")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be positive, got {self.learning_rate}")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"lr schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.steps < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch size must be at least 1, got {self.batch_size}")
        if self.seed < 0:
            problems.append(f"seed must be non-negative, got {self.seed}")
        if self.max_grad_norm < 0:
            problems.append(f"max grad norm must be non-negative, got {self.max_grad_norm}")
        if self.checkpoint_every < 1:
            problems.append(
                f"checkpoint interval must be at least 1 step, got {self.checkpoint_every}"
            )
        if self.distill_weight < 0:
            problems.append(f"distillation weight must be non-negative, got {self.distill_weight}")
        if self.preserve_weight < 0:
            problems.append(f"preservation weight must be non-negative, got {self.preserve_weight}")
        if self.distill_top_k < 1:
            problems.append(f"distillation top-k must be at least 1, got {self.distill_top_k}")
        if not self.distill_temperature > 0:
            problems.append(
                f"distillation temperature must be positive, got {self.distill_temperature}"
            )
        if self.parallelism not in ("ddp", "fsdp"):
            problems.append(f"parallelism must be ddp or fsdp, got {self.parallelism!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema decay must be in [0, 1), got {self.ema_decay}")
        elif self.ema_decay and self.parallelism == "fsdp":
            problems.append("ema decay cannot be combined with fsdp parallelism")
        if problems:
            raise ConfigurationError("; ".join(problems))

    def lora_config(self) -> LoraConfig:
        from peft import LoraConfig

        targets: str | list[str] = (
            ALL_LINEAR if self.target_modules == (ALL_LINEAR,) else list(self.target_modules)
        )
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=targets,
            bias="none",
            task_type="CAUSAL_LM",
        )


@dataclass
class TrainingResult:
    """What a training run did; `training.json` is written from this."""

    adapter_dir: Path
    loss_curve: list[float]
    """Training loss of every step, from step 1 (including steps done before a resume)."""
    resumed_from: int
    """Step of the checkpoint this run started from (0 for a fresh run)."""
    train_seconds: float
    """Wall time of the optimiser steps, summed over this run and the ones it resumed."""
    tokens: int
    """Non-padding tokens processed, summed like `train_seconds`."""
    trainable_parameters: int
    total_parameters: int
    peak_memory_mb: float
    device: str
    autocast: str | None
    kl_curve: list[float] = field(default_factory=list)
    """The distillation KL term (before weight and T²) of every step; empty when off."""

    @property
    def steps(self) -> int:
        return len(self.loss_curve)

    @property
    def final_loss(self) -> float:
        tail = self.loss_curve[-FINAL_LOSS_WINDOW:]
        return sum(tail) / len(tail)

    @property
    def final_kl(self) -> float | None:
        tail = self.kl_curve[-FINAL_LOSS_WINDOW:]
        return sum(tail) / len(tail) if tail else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.train_seconds if self.train_seconds > 0 else None


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on GPU, else the process's peak resident set size, in MiB."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fingerprint(settings: LoraSettings, examples: Sequence[TokenizedExample], base: str) -> str:
    # The checkpoint interval may change between attempts, and under a constant learning rate
    # the steps too (a longer run can continue a shorter one); everything else must match.
    fields = asdict(settings)
    if settings.lr_schedule == "constant" and not settings.warmup_ratio:
        for name in ("steps", "lr_schedule", "warmup_ratio"):  # fingerprints from before
            fields.pop(name)
    fields.pop("checkpoint_every")
    if not settings.distilling:
        # Without distillation these do not touch the adapter: leaving them out keeps the
        # fingerprints of plain runs what they were before distillation existed.
        for name in ("distill_weight", "distill_top_k", "distill_temperature"):
            fields.pop(name)
    if not settings.preserve_weight:
        fields.pop("preserve_weight")  # likewise: fingerprints from before it existed hold
    if not settings.ema_decay:
        fields.pop("ema_decay")  # likewise
    # Likewise the memory options at their defaults (and checkpointing, which changes nothing).
    fields.pop("gradient_checkpointing")
    fields.pop("packing")  # the same batches and loss, packed or not
    fields.pop("pack_length")
    # FSDP checkpoints keep the optimiser state by parameter name: not resumable under DDP.
    for name, default in (("precision", "auto"), ("quantization", "none"), ("parallelism", "ddp")):
        if fields[name] == default:
            fields.pop(name)
    sha = hashlib.sha256(json.dumps({"settings": fields, "base": base}, sort_keys=True).encode())
    for example in examples:
        sha.update(json.dumps([example.input_ids, example.labels]).encode())
    return sha.hexdigest()


def _checkpoints(output_dir: Path) -> list[Path]:
    folder = output_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    # Only complete checkpoints have a state file: they are published by one rename.
    found = [path for path in folder.glob("step-*") if (path / STATE_FILE).exists()]
    return sorted(found, key=lambda path: int(path.name.split("-")[1]))


def _save_checkpoint(
    model: PeftModel,
    optimizer: torch.optim.Optimizer,
    output_dir: Path,
    state: dict[str, Any],
    sharded: Parallel | None = None,
    average: WeightAverage | None = None,
) -> None:
    """Rank 0 writes; with `sharded` (FSDP) every rank calls this to gather the weights."""
    import torch

    adapter_state = None
    optimizer_state = optimizer.state_dict
    if sharded is not None:
        adapter_state = fsdp.trainable_state(model, sharded)
        gathered = fsdp.optimizer_state(model, optimizer)
        optimizer_state = lambda: gathered  # noqa: E731
        if not sharded.is_main:
            return
    target = output_dir / CHECKPOINTS / f"step-{state['step']:06d}"
    with atomic_directory(target) as tmp:
        model.save_pretrained(str(tmp), state_dict=adapter_state)
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        saved: dict[str, Any] = {"optimizer": optimizer_state(), "rng": rng}
        if average is not None:
            saved["average"] = average.state()
        torch.save(saved, tmp / OPTIMIZER_FILE)
        atomic_write_json(tmp / STATE_FILE, state)
    # Keep only the newest checkpoint: one is enough to resume, and adapters of large
    # models with their optimiser state are not small.
    for old in _checkpoints(output_dir)[:-1]:
        shutil.rmtree(old, ignore_errors=True)


def _find_checkpoint(output_dir: Path, fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of this run's settings and data; others are removed."""
    found = _checkpoints(output_dir)
    if not found:
        return None
    latest = found[-1]
    state = json.loads((latest / STATE_FILE).read_text())
    if state.get("fingerprint") != fingerprint:
        print(
            f"[train] checkpoint {latest} was made with other settings or data; starting afresh",
            file=sys.stderr,
        )
        shutil.rmtree(output_dir / CHECKPOINTS, ignore_errors=True)
        return None
    return latest, state


def _load_checkpoint(
    model: PeftModel,
    optimizer: torch.optim.Optimizer,
    latest: Path,
    sharded: bool,
    average: WeightAverage | None = None,
) -> None:
    """Every rank loads the checkpoint `_find_checkpoint` found (FSDP: into its shards)."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(latest / "adapter_model.safetensors")
    saved = torch.load(latest / OPTIMIZER_FILE, map_location="cpu")
    if sharded:
        fsdp.load_adapter(model, weights)
        fsdp.load_optimizer_state(model, optimizer, saved["optimizer"])
    else:
        set_peft_model_state_dict(model, weights)
        optimizer.load_state_dict(saved["optimizer"])
    if average is not None:
        average.load(saved["average"])
    torch.set_rng_state(saved["rng"]["cpu"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])


def train_lora(
    model: PreTrainedModel,
    examples: Sequence[TokenizedExample],
    settings: LoraSettings,
    output_dir: str | Path,
    *,
    pad_token_id: int,
    base: str = "",
    on_step: Callable[[int, float], None] | None = None,
    on_metrics: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
    parallel: Parallel = SINGLE,
) -> TrainingResult:
    """Train a LoRA adapter on `model` and save it to `output_dir/adapter` (peft format).

    `base` names the weights under the adapter (model and promoted adapters, and the
    teacher when distilling): a checkpoint made on other weights is not resumed.
    `on_step(step, loss)` is called after every optimiser step (and its checkpoint), then
    `on_metrics(step, metrics)` with `loss` and `lr`, and `ce` and `kl` when distilling, e.g. to log
    them. With `settings.distill_weight`, every example must carry teacher targets
    (`distillation.teacher_targets`); with `settings.preserve_weight` alone, the rehearsal
    and anchor lines do. Under torchrun, `parallel` is this process's rank: the
    ranks share each batch and only rank 0 writes (`kaizen.trainer.distributed`).
    """
    import torch
    from peft import get_peft_model
    from tqdm import tqdm

    settings.validate()
    parallel.check_batch(settings.batch_size)
    if not examples:
        raise ConfigurationError("no training examples")
    if settings.packing and settings.distilling:
        raise ConfigurationError(
            "packing cannot be combined with token-level distillation or --preserve-weight"
        )
    if settings.distill_weight > 0 and any(example.teacher is None for example in examples):
        raise ValueError("distillation is on but some examples have no teacher targets")
    if settings.distilling and all(example.teacher is None for example in examples):
        raise ValueError("the KL term is on but no example has targets")
    output_dir = Path(output_dir)
    # FSDP: rank 0's base is on the CPU and the others' on the meta device until sharded.
    # (One process shards too when it has joined a process group, as a GPU check does.)
    sharded = settings.parallelism == "fsdp" and (parallel.distributed or fsdp.group_ready())
    device = fsdp.device_for(parallel) if sharded else next(model.parameters()).device
    if sharded and settings.quantization != "none":
        raise ConfigurationError("4-bit quantization cannot be combined with FSDP sharding")
    if settings.quantization != "none":
        model = prepare_quantized(model, settings.gradient_checkpointing)
    # Seed before the adapter exists: LoRA's A matrices are randomly initialised.
    torch.manual_seed(settings.seed)
    try:
        peft_model = get_peft_model(model, settings.lora_config())
    except ValueError as error:
        # peft raises ValueError for target modules the model does not have.
        raise ConfigurationError(f"cannot attach LoRA to the model: {error}") from None
    if settings.gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    # bf16 autocast on GPUs that have it: the frozen base is bf16 there (load_model)
    # while peft keeps the LoRA weights in float32, so matmuls run in bf16 and the
    # optimiser still updates float32 weights.
    use_bf16 = autocast_bf16(settings.precision, device)
    if sharded:
        full_state = peft_model.state_dict() if parallel.is_main else None
        peft_model = fsdp.shard(peft_model, parallel, bf16=use_bf16, full_state=full_state)
        del full_state
    trainable = [param for param in peft_model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0)
    average = WeightAverage(trainable, settings.ema_decay) if settings.ema_decay else None
    fingerprint = _fingerprint(settings, examples, base)

    with parallel.main_first():  # rank 0 may drop a stale checkpoint before the others look
        found = _find_checkpoint(output_dir, fingerprint)
    state = None
    if found is not None:
        _load_checkpoint(peft_model, optimizer, found[0], sharded, average)
        state = found[1]
    loss_curve: list[float] = list(state["loss_curve"]) if state else []
    kl_curve: list[float] = list(state.get("kl_curve", [])) if state else []
    start = len(loss_curve)
    if start > settings.steps:
        # A checkpoint beyond the requested steps belongs to a longer run: not this one.
        raise ConfigurationError(
            f"{output_dir / CHECKPOINTS} holds a checkpoint at step {start}, past the {settings.steps} steps asked for"
        )
    if start:
        print(f"[train] resuming from the checkpoint at step {start}", file=sys.stderr)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Throughput counts the steps of earlier attempts too, so a resumed run reports
    # the same tokens/s as one that was never interrupted.
    tokens = int(state["tokens"]) if state else 0
    earlier_seconds = float(state["train_seconds"]) if state else 0.0
    peft_model.train()
    bar = tqdm(
        total=settings.steps,
        initial=start,
        desc="train",
        unit="step",
        file=sys.stderr,
        disable=not progress,
    )
    lengths = [len(example.input_ids) for example in examples] if settings.group_by_length else None
    started = time.perf_counter()
    for step in range(start, settings.steps):
        rows = [
            examples[i]
            for i in batch_indices(len(examples), settings.batch_size, step, settings.seed, lengths)
        ]
        rows = parallel.shard(rows)  # the whole batch in a plain run
        if settings.packing:
            embeddings: Any = model.get_input_embeddings()
            packed = pack(rows, pad_token_id, embeddings.weight.dtype, settings.pack_length)
            batch = {key: value.to(device) for key, value in packed.items()}
        else:
            batch = {key: value.to(device) for key, value in collate(rows, pad_token_id).items()}
        targets = {key: batch.pop(key) for key in TEACHER_KEYS if key in batch}
        # This rank's share of the batch's answer tokens (1.0 in a plain run): its mean loss
        # weighted by it sums over the ranks to the whole batch's mean.
        ce_share = parallel.share(int((batch["labels"][:, 1:] != -100).sum()), device)
        metrics: dict[str, float] = {}
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            if settings.distilling:
                outputs = peft_model(**batch)
                if targets:
                    ids, logprobs, mask = (
                        targets["teacher_ids"],
                        targets["teacher_logprobs"],
                        targets["teacher_mask"],
                    )
                    temperature = settings.distill_temperature
                    # Each example's term weighs as its targets say (a teacher's lines
                    # --distill-weight, the preserved lines --preserve-weight).
                    weights = torch.where(
                        targets["teacher_preserve"],
                        settings.preserve_weight,
                        settings.distill_weight,
                    )
                    weighted = kl_to_teacher(
                        outputs.logits, ids, logprobs, mask, temperature, weights=weights
                    )
                    kl = kl_to_teacher(outputs.logits, ids, logprobs, mask, temperature).detach()
                    positions = int(targets["teacher_mask"].sum())
                else:  # a batch of lines without targets (preservation only)
                    weighted = kl = outputs.logits.new_zeros((), dtype=torch.float32)
                    positions = 0
                kl_share = parallel.share(positions, device)
                loss = (
                    outputs.loss * ce_share + settings.distill_temperature**2 * weighted * kl_share
                )
                metrics = {
                    "ce": round(parallel.sum(outputs.loss.detach() * ce_share).item(), 6),
                    "kl": round(parallel.sum(kl * kl_share).item(), 6),
                }
                kl_curve.append(metrics["kl"])
            else:
                loss = answer_loss(peft_model, batch) * ce_share
        reported = parallel.sum(loss.detach())  # the whole batch's loss
        if not torch.isfinite(reported):
            raise FloatingPointError(
                f"training loss became {reported.item()} at step {step + 1}; lower the learning rate"
            )
        loss.backward()
        if not sharded:  # FSDP reduce-scatters the gradients itself
            parallel.reduce_gradients(trainable)
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        rate = rate_at(
            step, settings.steps, settings.learning_rate, settings.lr_schedule,
            settings.warmup_ratio,
        )  # fmt: skip
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if average is not None:
            average.update(step)
        loss_curve.append(round(reported.item(), 6))
        seen = sum(len(row.input_ids) for row in rows)  # not padding
        tokens += int(parallel.sum(torch.tensor(seen, device=device)))
        done = step + 1
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            state = {
                "step": done,
                "loss_curve": loss_curve,
                "fingerprint": fingerprint,
                "tokens": tokens,
                "train_seconds": earlier_seconds + time.perf_counter() - started,
            }
            if settings.distilling:
                state["kl_curve"] = kl_curve
            if sharded:
                _save_checkpoint(peft_model, optimizer, output_dir, state, parallel)
            elif parallel.is_main:
                _save_checkpoint(peft_model, optimizer, output_dir, state, average=average)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_curve[-1]:.4f}")
        if on_step is not None:
            on_step(done, loss_curve[-1])
        if on_metrics is not None:
            on_metrics(done, {"loss": loss_curve[-1], "lr": rate, **metrics})
    train_seconds = earlier_seconds + time.perf_counter() - started
    bar.close()

    adapter_dir = output_dir / "adapter"
    if average is not None:
        average.apply()  # the adapter is the average (the checkpoint kept the last weights)
    # FSDP: the LoRA weights gathered from their shards, saved as an ordinary peft adapter.
    adapter_state = fsdp.trainable_state(peft_model, parallel) if sharded else None
    if parallel.is_main:
        with atomic_directory(adapter_dir) as tmp:
            peft_model.save_pretrained(str(tmp), state_dict=adapter_state)
    parallel.barrier()  # the adapter is on the volume before any rank reports
    return TrainingResult(
        adapter_dir=adapter_dir,
        loss_curve=loss_curve,
        resumed_from=start,
        train_seconds=train_seconds,
        tokens=tokens,
        trainable_parameters=sum(param.numel() for param in trainable),
        total_parameters=sum(param.numel() for param in peft_model.parameters()),
        peak_memory_mb=peak_memory_mb(device),
        device=str(device),
        autocast="bfloat16" if use_bf16 else None,
        kl_curve=kl_curve,
    )
