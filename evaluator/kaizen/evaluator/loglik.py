"""Log-likelihood scoring of continuations: multiple choice without generation.

For each (context, continuation) request the model reads `context + continuation` once and
the log-probabilities of the continuation's tokens given everything before them are
summed (the `acc` of lm-evaluation-harness). A multiple-choice item is answered by the
choice with the highest sum. Requests are batched: sorted by length (longest first, so an
out-of-memory error shows up on the first batch), right-padded, one forward pass per batch;
the batch size halves on out-of-memory and stays halved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Loglik:
    """The log-likelihood of one continuation."""

    logprob: float
    """Sum of the continuation tokens' log-probabilities (natural log)."""

    tokens: int
    """Tokens in the continuation."""

    greedy: bool
    """True when greedy decoding would have produced exactly these tokens."""


@dataclass(frozen=True)
class LoglikReport:
    """All results, in request order, with the wall time and the batch size finally used."""

    results: list[Loglik]
    wall_seconds: float
    batch_size: int


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) such that their concatenation encodes the whole text.

    The whole text is encoded at once (a tokenizer may merge across the boundary) and split
    at the context's length, as lm-evaluation-harness does; when the merge changed the
    context's own tokens, the two parts are encoded separately instead. Trailing spaces of
    the context move to the continuation, so " Paris" is scored as one word.
    """
    stripped = context.rstrip(" ")
    continuation = context[len(stripped) :] + continuation
    context = stripped
    context_ids = list(tokenizer(context, add_special_tokens=False)["input_ids"])
    whole = list(tokenizer(context + continuation, add_special_tokens=False)["input_ids"])
    if whole[: len(context_ids)] == context_ids and len(whole) > len(context_ids):
        return context_ids, whole[len(context_ids) :]
    return context_ids, list(tokenizer(continuation, add_special_tokens=False)["input_ids"])


def _is_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def _score_batch(
    model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], pad_id: int
) -> list[Loglik]:
    import torch

    lengths = [len(c) + len(t) for c, t in rows]
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (context, continuation) in enumerate(rows):
        sequence = context + continuation
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    device = model.device
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    results = []
    for row, (context, continuation) in enumerate(rows):
        # The logits at position p predict token p + 1.
        start = len(context) - 1
        window = logits[row, start : start + len(continuation)].float()
        logprobs = torch.log_softmax(window, dim=-1)
        target = torch.tensor(continuation, dtype=torch.long, device=logprobs.device)
        picked = logprobs.gather(1, target.unsqueeze(1)).squeeze(1)
        greedy = bool((window.argmax(dim=-1) == target).all())
        results.append(Loglik(float(picked.sum()), len(continuation), greedy))
    return results


def loglikelihoods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
) -> LoglikReport:
    """Log-likelihood of each (context, continuation), in request order."""
    started = time.perf_counter()
    encoded = [encode_pair(tokenizer, context, continuation) for context, continuation in requests]
    for index, (context, continuation) in enumerate(encoded):
        if not context or not continuation:
            raise ValueError(f"request {index}: context and continuation must not be empty")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Longest first: the largest batch runs first, so memory trouble shows at once.
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
    results: list[Loglik | None] = [None] * len(encoded)
    position = 0
    size = max(1, batch_size)
    while position < len(order):
        chunk = order[position : position + size]
        try:
            scored = _score_batch(model, [encoded[i] for i in chunk], pad_id)
        except RuntimeError as error:
            if size > 1 and _is_oom(error):
                _empty_cache()
                size //= 2
                continue
            raise
        for index, result in zip(chunk, scored, strict=True):
            results[index] = result
        position += len(chunk)
    done = [r for r in results if r is not None]
    return LoglikReport(done, time.perf_counter() - started, size)


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def rank_choices(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[tuple[str, Sequence[str]]],
    *,
    batch_size: int = 16,
) -> tuple[list[dict[str, Any]], LoglikReport]:
    """For each (prompt, choices): the chosen choice (highest summed log-probability) and all scores.

    Ties go to the earlier choice, so results never depend on float noise in the order.
    """
    requests = [(prompt, choice) for prompt, choices in questions for choice in choices]
    report = loglikelihoods(model, tokenizer, requests, batch_size=batch_size)
    answers = []
    cursor = 0
    for _, choices in questions:
        scored = report.results[cursor : cursor + len(choices)]
        cursor += len(choices)
        best = max(range(len(choices)), key=lambda i: (scored[i].logprob, -i))
        answers.append(
            {
                "chosen": choices[best],
                "logprobs": [round(s.logprob, 6) for s in scored],
                "tokens": [s.tokens for s in scored],
                "greedy": [s.greedy for s in scored],
            }
        )
    return answers, report
