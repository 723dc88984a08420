"""Batched greedy generation for evaluation: fast on CPU, identical to one prompt at a time.

Prompts are sorted by length so each batch pads little, padded on the left (decoder-only
models continue from the last position), and each row stops on its own: at EOS or when its
text reaches a stop string (a newline ends a one-sentence answer). A batch runs until its
slowest row stops, so per-row stopping is where most of the speed is on CPU (docs/ml-notes.md).
When a batch does not fit in accelerator memory, the batch size is halved and the batch retried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Default stop strings: a newline after some text ends a one-sentence answer.
DEFAULT_STOP_STRINGS = ("\n",)


@dataclass(frozen=True)
class Generation:
    """One prompt's output."""

    text: str
    """The response, cut at the first stop string and stripped."""

    new_tokens: int
    """Tokens generated for this row, up to and including its stop (EOS and padding excluded)."""

    prompt_tokens: int
    """Tokens in the prompt."""

    seconds: float
    """This row's share of its batch's wall time."""

    truncated: bool
    """True when the row hit `max_new_tokens` without EOS or a stop string."""


@dataclass(frozen=True)
class GenerationReport:
    """All outputs, in the order of the prompts, and throughput."""

    outputs: list[Generation]
    wall_seconds: float
    batch_size: int
    """The batch size finally used (smaller than asked when memory ran out)."""

    @property
    def new_tokens(self) -> int:
        return sum(o.new_tokens for o in self.outputs)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, bool]:
    """(text before the first stop string after leading whitespace, whether one was found)."""
    body = text.lstrip()
    positions = [body.find(s) for s in stop_strings if s and body.find(s) >= 0]
    if not positions:
        return body.rstrip(), False
    return body[: min(positions)].rstrip(), True


def _is_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


class _StopOnStrings:
    """A stopping criterion that marks a row done once its new text contains a stop string.

    Leading whitespace does not count, so a model that opens with a newline is not cut to
    an empty answer. Returning one flag per row lets `generate` finish rows independently
    (finished rows are filled with padding while the others continue).
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, prompt_length: int, stop_strings: Sequence[str]
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stop_strings = [s for s in stop_strings if s]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stop_strings:
            return done
        new = input_ids[:, self.prompt_length :].tolist()
        for row, ids in enumerate(new):
            _, stopped = cut_at_stop(
                str(self.tokenizer.decode(ids, skip_special_tokens=True)), self.stop_strings
            )
            done[row] = stopped
        return done


def _row_length(ids: list[int], end_ids: set[int]) -> tuple[int, bool]:
    """(tokens up to the first end token, whether an end token was found)."""
    for position, token in enumerate(ids):
        if token in end_ids:
            return position, True
    return len(ids), False


def _generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int,
    stop_strings: Sequence[str],
) -> list[Generation]:
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    started = time.perf_counter()
    # The prompts are chat-templated text that already holds the special tokens.
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    encoded = {key: value.to(model.device) for key, value in encoded.items()}
    prompt_length = encoded["input_ids"].shape[1]
    eos = model.generation_config.eos_token_id
    eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
    if tokenizer.eos_token_id is not None:
        eos_ids.add(tokenizer.eos_token_id)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        eos_token_id=sorted(eos_ids),
        pad_token_id=pad_id,
    )
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            generation_config=config,
            stopping_criteria=StoppingCriteriaList(
                [_StopOnStrings(tokenizer, prompt_length, stop_strings)]
            ),
        )
    seconds = time.perf_counter() - started
    # Finished rows are filled with the pad token, which is EOS for SmolLM: a row's tokens
    # end at its first EOS or pad token.
    end_ids = eos_ids | {pad_id}
    results = []
    for row, ids in enumerate(output[:, prompt_length:].tolist()):
        length, ended = _row_length(ids, end_ids)
        text, stopped = cut_at_stop(
            str(tokenizer.decode(ids[:length], skip_special_tokens=True)), stop_strings
        )
        results.append(
            Generation(
                text=text,
                new_tokens=length,
                prompt_tokens=int(encoded["attention_mask"][row].sum()),
                seconds=seconds / len(prompts),
                truncated=not ended and not stopped and length >= max_new_tokens,
            )
        )
    return results


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str] = DEFAULT_STOP_STRINGS,
    progress: bool = True,
) -> GenerationReport:
    """Greedy-decode every prompt in length-sorted batches; outputs come back in prompt order."""
    from tqdm import tqdm

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"max_new_tokens and batch_size must be positive, got {max_new_tokens} and {batch_size}"
        )
    if tokenizer.padding_side != "left":
        # Right padding would make a decoder-only model continue from pad tokens.
        raise ValueError(
            "generation needs a tokenizer with padding_side='left' (use models.load_tokenizer)"
        )
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    # Longest first: a batch that runs out of memory does so at the start, not after an hour.
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    outputs: list[Generation | None] = [None] * len(prompts)
    started = time.perf_counter()
    position = 0
    with tqdm(
        total=len(prompts), disable=not progress, file=sys.stderr, unit="item", desc="generate"
    ) as bar:
        while position < len(order):
            chosen = order[position : position + batch_size]
            try:
                batch = _generate_batch(
                    model, tokenizer, [prompts[i] for i in chosen], max_new_tokens, stop_strings
                )
            except (RuntimeError, MemoryError) as error:
                if not _is_oom(error) or batch_size == 1:
                    raise
                batch_size //= 2
                _empty_cache()
                print(
                    f"[generate] out of memory; retrying with batch size {batch_size}",
                    file=sys.stderr,
                )
                continue
            for index, result in zip(chosen, batch, strict=True):
                outputs[index] = result
            position += len(chosen)
            bar.update(len(chosen))
    done = [o for o in outputs if o is not None]
    return GenerationReport(
        outputs=done, wall_seconds=time.perf_counter() - started, batch_size=batch_size
    )


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
