"""Token-level distillation: the teacher's top-k next-token targets and the KL term of the loss.

Before training, the teacher reads every training example (prompt + answer, exactly the
tokens the student trains on) once, batched and without gradients, and keeps at each answer
token its `k` most likely next tokens with their log-probabilities at temperature T
(`teacher_targets`). The training loss then adds `weight × T² × KL(teacher ‖ student)`, both
distributions restricted to those `k` tokens and renormalised over them (`kl_to_teacher`),
averaged over the answer tokens. Comparing token ids needs one vocabulary: a teacher whose
tokenizer differs is refused (`same_vocabulary`).

The same term keeps what the model knew (`--preserve-weight`, learning without forgetting):
the model as it is before the step trains, with its current adapters, gives the targets of
the rehearsal and anchor lines only, and the KL to them holds the other domains' next-token
distributions where they were while the trained domain's lines move. Each example's targets
say which they are (`TeacherTargets.preserve`): a teacher's lines weigh `--distill-weight`, the
preserved lines `--preserve-weight`.

The targets are not saved with checkpoints: a restarted step computes them again from the
same teacher, examples and settings (which the checkpoint's fingerprint covers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kaizen.trainer.data import TeacherTargets, TokenizedExample, collate, predicted_positions

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch


def same_vocabulary(teacher_tokenizer: Any, student_tokenizer: Any) -> bool:
    """Whether both tokenizers map every token to the same id (added tokens included)."""
    return bool(teacher_tokenizer.get_vocab() == student_tokenizer.get_vocab())


@dataclass(frozen=True)
class TargetsReport:
    """What the teacher pass produced and cost."""

    examples: int
    """Examples that got targets."""
    positions: int
    """Answer tokens that got targets."""
    top_k_mass: float
    """Mean probability the teacher puts on its top-k tokens (how much of its distribution
    the KL sees)."""
    seconds: float
    """Wall time of the teacher pass."""


def teacher_targets(
    model: Any,
    examples: Sequence[TokenizedExample],
    *,
    top_k: int,
    temperature: float,
    vocabulary: int,
    pad_token_id: int,
    batch_size: int = 8,
    preserve: bool = False,
) -> tuple[list[TokenizedExample], TargetsReport]:
    """The examples with the teacher's top-k targets attached, and a report.

    `vocabulary` is the student tokenizer's size: logits of ids past it (padding rows of a
    teacher's embedding matrix) are left out, so every target id is one the student has.
    `preserve` marks them as the model's own before training, on lines whose knowledge the
    step keeps (`TeacherTargets.preserve`): their KL weighs `--preserve-weight`.
    """
    import torch

    device = next(model.parameters()).device
    k = min(top_k, vocabulary)
    model.eval()
    started = time.perf_counter()
    taught: list[TokenizedExample] = []
    mass = 0.0
    positions = 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            rows = [replace(item, teacher=None) for item in examples[start : start + batch_size]]
            batch = collate(rows, pad_token_id)
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits
            for row, item in enumerate(rows):
                # The logits at position i - 1 predict the answer token at i.
                at = torch.tensor(predicted_positions(item.labels), device=device) - 1
                logprobs = (logits[row, at, :vocabulary].float() / temperature).log_softmax(-1)
                top = logprobs.topk(k, dim=-1)
                mass += float(top.values.exp().sum())
                positions += len(at)
                targets = TeacherTargets(
                    ids=top.indices.to(torch.int32).cpu(),
                    logprobs=top.values.cpu(),
                    preserve=preserve,
                )
                taught.append(replace(item, teacher=targets))
    report = TargetsReport(
        examples=len(taught),
        positions=positions,
        top_k_mass=mass / positions if positions else 0.0,
        seconds=time.perf_counter() - started,
    )
    return taught, report


def attach_targets(
    examples: Sequence[TokenizedExample],
    *,
    teacher: Any | None,
    model: Any,
    kept: Sequence[int],
    **options: Any,
) -> tuple[list[TokenizedExample], TargetsReport | None, TargetsReport | None]:
    """The examples with their targets, and the reports of the teacher's pass and the kept
    lines' pass (None when not made): `teacher` (None: no token-level distillation) gives
    those of every example but the `kept` ones (indices), which get `model`'s own
    (`preserve`). `options` are `teacher_targets`'s."""
    examples = list(examples)

    def attach(source: Any, indices: Sequence[int], preserve: bool) -> TargetsReport:
        with_targets, report = teacher_targets(
            source, [examples[i] for i in indices], preserve=preserve, **options
        )
        for i, example in zip(indices, with_targets, strict=True):
            examples[i] = example
        return report

    taught = sorted(set(range(len(examples))) - set(kept))
    distilled = attach(teacher, taught, False) if teacher is not None else None
    preserved = attach(model, list(kept), True) if kept else None
    return examples, distilled, preserved


def kl_to_teacher(
    logits: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the masked positions of KL(teacher ‖ student) on the teacher's top-k tokens.

    `logits` are the student's (`[batch, width, vocabulary]`); the other tensors are those
    `collate` makes of the teacher targets. Both distributions are taken at `temperature`
    and renormalised over the `k` tokens, so the term is 0 exactly when the student ranks
    and spaces those tokens as the teacher does, whatever mass it puts elsewhere (the
    cross-entropy on the answer tokens takes care of that). With `weights` (`[batch, width]`)
    each position's KL is multiplied by its weight before the mean: a batch mixing a
    teacher's targets and the preservation targets weighs each as set.
    """
    student = logits.gather(-1, teacher_ids)[mask].float() / temperature
    log_q = student.log_softmax(-1)
    log_p = teacher_logprobs[mask].float().log_softmax(-1)
    if log_p.numel() == 0:
        return logits.new_zeros((), dtype=log_p.dtype)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)
    if weights is not None:
        per_position = per_position * weights[mask].float()
    return per_position.mean()
