"""Batched generation for evaluation: fast on CPU, identical to one prompt at a time.

Prompts are sorted by length so each batch pads little, padded on the left (decoder-only
models continue from the last position), and decoded by a small loop over the model's
key/value cache instead of `model.generate`. The loop's reason to exist is per-row stopping:
a row that reaches EOS, one of its stop strings, or `max_new_tokens` leaves the batch at
once (its cache rows are dropped), so the rows still talking get cheaper steps and a batch
ends when its last row does, not after its slowest row has held every other row for the
full length. Evaluation prompts share a long chat-template prefix (the system turn), so a
batch computes that prefix once and copies its cache to every row
(docs/evaluation-performance.md has the measurements).

Decoding is greedy by default. With a `temperature` above 0 it samples (after
`repetition_penalty` and nucleus `top_p`), and each prompt draws from its own random
stream seeded by `seed` and the prompt's position, so a sampled answer depends on the seed
and the prompt only, not on the batch it landed in or on an out-of-memory retry.
When a batch does not fit in accelerator memory, the batch size is halved, the batch
retried, and the smaller size kept for the rest of the run.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Default stop strings: a newline after some text ends a one-sentence answer.
DEFAULT_STOP_STRINGS = ("\n",)


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen. The defaults are greedy decoding."""

    temperature: float = 0.0
    """0 picks the most likely token (greedy); above 0 samples from the softened distribution."""

    top_p: float = 1.0
    """Nucleus sampling: sample only from the most likely tokens holding this much probability."""

    repetition_penalty: float = 1.0
    """Above 1, tokens already in the prompt or the answer get less likely (as in `transformers`)."""

    seed: int = 0
    """Seed of the per-prompt random streams; the same seed gives the same samples."""

    def __post_init__(self) -> None:
        if not (self.temperature >= 0.0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be 0 or more, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (self.repetition_penalty > 0.0 and math.isfinite(self.repetition_penalty)):
            raise ValueError(f"repetition_penalty must be above 0, got {self.repetition_penalty}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 or more, got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = Sampling()


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


def end_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Token ids that end an answer: the model's EOS ids and the tokenizer's."""
    eos = model.generation_config.eos_token_id
    ids = {eos} if isinstance(eos, int) else set(eos or [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _row_seed(seed: int, index: int) -> int:
    # One stream per prompt, from a hash of both: torch's CPU generator keeps only the low
    # 32 bits of a seed, so packing the two side by side would lose the run's seed.
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def _next_tokens(
    logits: torch.Tensor,
    seen: torch.Tensor | None,
    sampling: Sampling,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """The next token of every row from its last-position logits."""
    import torch

    scores = logits.float()
    if seen is not None:
        # The same rule as transformers' RepetitionPenaltyLogitsProcessor, applied only to
        # tokens really in the row (not its left padding).
        penalised = torch.where(
            scores < 0, scores * sampling.repetition_penalty, scores / sampling.repetition_penalty
        )
        scores = torch.where(seen, penalised, scores)
    if sampling.greedy:
        return scores.argmax(dim=-1)
    probs = torch.softmax(scores / sampling.temperature, dim=-1)
    sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
    cumulative = sorted_probs.cumsum(dim=-1)
    if sampling.top_p < 1.0:
        # Keep the smallest set of most likely tokens whose mass reaches top_p (at least one).
        outside = (cumulative - sorted_probs) >= sampling.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        cumulative = sorted_probs.cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=g) for g in generators]).to(scores.device)
    targets = draws * cumulative[:, -1]
    picked = torch.searchsorted(cumulative, targets[:, None], right=True)
    picked = picked.clamp(max=cumulative.shape[-1] - 1)
    return sorted_ids.gather(-1, picked).squeeze(-1)


def _cache_keyword(model: PreTrainedModel) -> str:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns, then goes).
    return (
        "cache"
        if "cache" in inspect.signature(type(model).forward).parameters
        else "past_key_values"
    )


def _output_cache(output: Any) -> Any:
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


#: A prompt prefix shared by every row of a batch is computed once when it is at least this long.
MIN_SHARED_PREFIX = 4


def _shared_prefix(token_lists: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every list that all lists share, leaving each at least one token."""
    if len(token_lists) < 2:
        return 0
    first, shortest = token_lists[0], min(len(ids) for ids in token_lists)
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in token_lists):
        length += 1
    return length


def _prefill(
    model: PreTrainedModel,
    token_lists: list[list[int]],
    pad_id: int,
    cache_keyword: str,
) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """Run the prompts through the model: (output, cache, attention mask, next positions).

    Evaluation prompts share a long chat-template prefix (system message and all), so the
    prefix is computed once and its cache copied to every row; only the rest of each prompt
    is computed per row, left-padded. Pad tokens sit between the prefix and a short row's
    text, masked out, and positions count real tokens only, so every row sees exactly the
    positions and context it would see alone.
    """
    import torch

    device = model.device
    rows = len(token_lists)
    shared = _shared_prefix(token_lists)
    cache_arguments: dict[str, Any] = {}
    if shared >= MIN_SHARED_PREFIX:
        prefix = torch.tensor([token_lists[0][:shared]], device=device)
        cache = _output_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
        cache.batch_repeat_interleave(rows)
        cache_arguments[cache_keyword] = cache
    else:
        shared = 0
    suffixes = [ids[shared:] for ids in token_lists]
    width = max(len(ids) for ids in suffixes)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((rows, width), dtype=torch.long)
    for row, ids in enumerate(suffixes):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        suffix_mask[row, width - len(ids) :] = 1
    mask = torch.cat([torch.ones((rows, shared), dtype=torch.long), suffix_mask], dim=-1)
    positions = shared + (suffix_mask.cumsum(dim=-1) - 1).clamp(min=0)
    input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)
    output = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **cache_arguments,
    )
    return output, _output_cache(output), mask, positions[:, -1:] + 1


def _generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    stops: list[tuple[str, ...]],
    indices: list[int],
    max_new_tokens: int,
    sampling: Sampling,
) -> list[Generation]:
    import torch

    started = time.perf_counter()
    # The prompts are chat-templated text that already holds the special tokens.
    token_lists = [list(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    end_ids = end_token_ids(model, tokenizer)
    rows = len(prompts)
    seen = None
    if sampling.repetition_penalty != 1.0:
        seen = torch.zeros(rows, model.config.get_text_config().vocab_size, dtype=torch.bool)
        for row, ids in enumerate(token_lists):
            seen[row, ids] = True
        seen = seen.to(model.device)
    generators = [torch.Generator().manual_seed(_row_seed(sampling.seed, i)) for i in indices]
    new: list[list[int]] = [[] for _ in range(rows)]
    ended = [False] * rows
    stopped = [False] * rows
    active = list(range(rows))
    cache_keyword = _cache_keyword(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(end_ids)
    with torch.inference_mode():
        output, cache, mask, next_position = _prefill(model, token_lists, pad_id, cache_keyword)
        for _ in range(max_new_tokens):
            tokens = _next_tokens(
                output.logits[:, -1, :], seen, sampling, [generators[r] for r in active]
            )
            keep: list[int] = []
            for slot, (row, token) in enumerate(zip(active, tokens.tolist(), strict=True)):
                if token in end_ids:
                    ended[row] = True
                    continue
                new[row].append(token)
                if stops[row]:
                    text = str(tokenizer.decode(new[row], skip_special_tokens=True))
                    stopped[row] = cut_at_stop(text, stops[row])[1]
                if not stopped[row] and len(new[row]) < max_new_tokens:
                    keep.append(slot)
            if not keep:
                break
            if len(keep) < len(active):
                # Finished rows leave the batch: later steps compute only the rows still going.
                chosen = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(chosen)
                mask, next_position, tokens = mask[chosen], next_position[chosen], tokens[chosen]
                if seen is not None:
                    seen = seen[chosen]
                active = [active[slot] for slot in keep]
            if seen is not None:
                seen[torch.arange(len(active), device=seen.device), tokens] = True
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            output = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=next_position,
                use_cache=True,
                **{cache_keyword: cache},
            )
            next_position = next_position + 1
    seconds = time.perf_counter() - started
    results = []
    for row in range(rows):
        text, _ = cut_at_stop(str(tokenizer.decode(new[row], skip_special_tokens=True)), stops[row])
        results.append(
            Generation(
                text=text,
                new_tokens=len(new[row]),
                prompt_tokens=len(token_lists[row]),
                seconds=seconds / rows,
                truncated=not ended[row] and not stopped[row] and len(new[row]) >= max_new_tokens,
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
    row_stop_strings: Sequence[Sequence[str]] | None = None,
    sampling: Sampling = GREEDY,
    progress: bool = True,
) -> GenerationReport:
    """Decode every prompt in length-sorted batches; outputs come back in prompt order.

    `stop_strings` apply to every row; `row_stop_strings`, one sequence per prompt, add
    stops of that prompt's own (e.g. an item's answer format).
    """
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
    if row_stop_strings is not None and len(row_stop_strings) != len(prompts):
        raise ValueError(
            f"row_stop_strings has {len(row_stop_strings)} entries for {len(prompts)} prompts"
        )
    shared = tuple(s for s in stop_strings if s)
    stops = [
        shared + tuple(s for s in (row_stop_strings[i] if row_stop_strings else ()) if s)
        for i in range(len(prompts))
    ]
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
                    model,
                    tokenizer,
                    [prompts[i] for i in chosen],
                    [stops[i] for i in chosen],
                    chosen,
                    max_new_tokens,
                    sampling,
                )
            except (RuntimeError, MemoryError) as error:
                if not _is_oom(error) or len(chosen) == 1:
                    raise
                # Halve what was tried (a short last batch may be smaller than batch_size).
                batch_size = len(chosen) // 2
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
