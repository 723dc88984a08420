"""Batched generation for evaluation: fast on CPU, identical to one prompt at a time.

Prompts are sorted by length (longest first), padded on the left (decoder-only models
continue from the last position), and decoded by a small loop over the model's key/value
cache instead of `model.generate`. The loop's reason to exist is per-row stopping: a row
that reaches EOS, one of its stop strings, or `max_new_tokens` leaves the batch at once (its
cache rows are dropped), and waiting prompts join the running rows as soon as a quarter of
the batch is free, so the batch stays full instead of draining to its slowest row.
Evaluation prompts share a long chat-template prefix (the system turn), so each group of
joining prompts computes that prefix once and copies its cache to every row
(docs/evaluation-performance.md has the measurements).

Decoding is greedy by default. With a `temperature` above 0 it samples (after
`repetition_penalty` and nucleus `top_p`), and each prompt draws from its own random
stream seeded by `seed` and the prompt's position, so a sampled answer depends on the seed
and the prompt only, not on the batch it landed in or on an out-of-memory retry.
When a batch does not fit in accelerator memory, the batch size is halved, the batch
retried, and the smaller size kept for the rest of the run.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Default batch size: start high; a batch that does not fit is halved and the size kept.
DEFAULT_BATCH_SIZE = 64

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

    message = str(error).lower()
    # CUDA says "out of memory"; torch's CPU allocator "can't allocate memory".
    return (
        isinstance(error, torch.cuda.OutOfMemoryError)
        or "out of memory" in message
        or "can't allocate memory" in message
    )


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


#: What one more forward pass costs, in prompt tokens computed: on CPU a pass reads every weight
#: once (about as long as computing ~30 tokens of a small model); on a GPU the fixed cost is
#: kernel launches and weight reads, worth far more tokens.
PREFILL_PASS_TOKENS = {"cpu": 32, "cuda": 256}


def prefill_groups(lengths: Sequence[int], pass_tokens: int) -> list[tuple[int, int]]:
    """Split prompts (longest first) into consecutive groups to prefill, each padded to its
    longest prompt, minimising padded tokens + `pass_tokens` per group: `[(start, end), ...]`.

    One group pads every prompt to the longest; a few long prompts among many short ones
    would double the work, so they get a pass of their own when that costs less.
    """
    if any(a < b for a, b in zip(lengths, lengths[1:], strict=False)):
        raise ValueError("prefill_groups needs lengths sorted longest first")
    count = len(lengths)
    # best[i]: the cheapest cost of prefilling prompts i.. (groups start where the longest is).
    best = [0.0] * (count + 1)
    cut = [count] * (count + 1)
    for start in range(count - 1, -1, -1):
        best[start] = math.inf
        for end in range(count, start, -1):  # on a tie, the longer group (fewer passes)
            cost = pass_tokens + lengths[start] * (end - start) + best[end]
            if cost < best[start]:
                best[start], cut[start] = cost, end
    groups, start = [], 0
    while start < count:
        groups.append((start, cut[start]))
        start = cut[start]
    return groups


def _shared_prefix(token_lists: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every list that all lists share, leaving each at least one token."""
    if len(token_lists) < 2:
        return 0
    first, shortest = token_lists[0], min(len(ids) for ids in token_lists)
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in token_lists):
        length += 1
    return length


@dataclass
class _InFlight:
    """The rows being decoded together: one entry per row in every tensor, in `rows` order."""

    rows: list[int]
    """Prompt indices."""

    cache: Any
    mask: torch.Tensor
    """[rows, cache length]: 1 for real tokens, 0 for padding."""

    next_position: torch.Tensor
    """[rows, 1]: the position id of each row's next token."""

    logits: torch.Tensor
    """[rows, vocabulary]: each row's next-token logits."""

    seen: torch.Tensor | None
    """[rows, vocabulary]: tokens in each row so far (only with a repetition penalty)."""

    def keep(self, slots: list[int], tokens: torch.Tensor) -> torch.Tensor:
        """Drop every row not in `slots`; returns those rows' `tokens`."""
        import torch

        if len(slots) < len(self.rows):
            chosen = torch.tensor(slots, device=self.mask.device)
            self.cache.batch_select_indices(chosen)
            self.mask, self.next_position = self.mask[chosen], self.next_position[chosen]
            tokens = tokens[chosen]
            if self.seen is not None:
                self.seen = self.seen[chosen]
            self.rows = [self.rows[slot] for slot in slots]
            if _mergeable(self.cache):
                self._crop()
        return tokens

    def _crop(self) -> None:
        # Columns that only finished rows used (all padding now) are cut from the left.
        empty = int((self.mask.sum(dim=0) == 0).int().cumprod(dim=0).sum())
        if empty:
            self.mask = self.mask[:, empty:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, empty:], layer.values[:, :, empty:]

    def join(self, other: _InFlight) -> None:
        """Add `other`'s rows, left-padding the shorter cache so the columns line up."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)])
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat(
                [_pad_left(mine.values, width), _pad_left(theirs.values, width)]
            )
        self.next_position = torch.cat([self.next_position, other.next_position])
        self.logits = torch.cat([self.logits, other.logits])
        if self.seen is not None and other.seen is not None:
            self.seen = torch.cat([self.seen, other.seen])
        self.rows += other.rows


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """`tensor` padded with zeros at the start of its sequence axis (the last for a mask,
    the third of four for keys and values) to `width`."""
    import torch

    axis = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)


def _sliding_window(model: PreTrainedModel) -> int | None:
    """The attention window of a model with sliding-window layers, else None."""
    config = getattr(model, "config", None)
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or window <= 0:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types and not any("sliding" in str(kind) for kind in layer_types):
        return None
    return window


def _mergeable(cache: Any) -> bool:
    # Rows can join a running batch only when every layer is a plain growing key/value cache
    # (not a sliding window or a recurrent state): then padding the columns is all it takes.
    layers = getattr(cache, "layers", None) or []
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


def _prefill(
    model: PreTrainedModel,
    token_lists: list[list[int]],
    rows: list[int],
    pad_id: int,
    cache_keyword: str,
    track_seen: bool,
    prefixes: dict[tuple[int, ...], Any],
    prefix_length: int | None = None,
) -> _InFlight:
    """Run new prompts through the model; they come back ready for their first token.

    Evaluation prompts share a long chat-template prefix (system message and all), so the
    prefix is computed once and its cache copied to every row; only the rest of each prompt
    is computed per row, left-padded. Pad tokens sit between the prefix and a short row's
    text, masked out, and positions count real tokens only, so every row sees exactly the
    positions and context it would see alone. `prefix_length`, when given, is a prefix all
    these prompts share; its cache is kept in `prefixes` and reused by later calls.
    """
    import torch

    device = model.device
    count = len(token_lists)
    shared = prefix_length if prefix_length is not None else _shared_prefix(token_lists)
    cache_arguments: dict[str, Any] = {}
    if shared >= MIN_SHARED_PREFIX:
        key = tuple(token_lists[0][:shared])
        if key not in prefixes:
            prefix = torch.tensor([key], device=device)
            prefixes[key] = _output_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
        cache = copy.deepcopy(prefixes[key])
        cache.batch_repeat_interleave(count)
        cache_arguments[cache_keyword] = cache
    else:
        shared = 0
    suffixes = [ids[shared:] for ids in token_lists]
    width = max(len(ids) for ids in suffixes)
    input_ids = torch.full((count, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((count, width), dtype=torch.long)
    for row, ids in enumerate(suffixes):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        suffix_mask[row, width - len(ids) :] = 1
    mask = torch.cat([torch.ones((count, shared), dtype=torch.long), suffix_mask], dim=-1)
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
    seen = None
    if track_seen:
        logits = output.logits
        seen = torch.zeros((count, logits.shape[-1]), dtype=torch.bool)
        for row, ids in enumerate(token_lists):
            seen[row, ids] = True
        seen = seen.to(device)
    return _InFlight(
        rows=list(rows),
        cache=_output_cache(output),
        mask=mask,
        next_position=positions[:, -1:] + 1,
        logits=output.logits[:, -1, :],
        seen=seen,
    )


class _Decoder:
    """Decodes prompts with up to `batch_size` rows in flight, refilling as rows finish.

    A finished row leaves the batch at once; when a quarter of the batch is free, waiting
    prompts are prefilled and join the running rows (their caches left-padded to the same
    width), so the batch stays full instead of draining to its slowest row.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        token_lists: list[list[int]],
        stops: list[tuple[str, ...]],
        max_new_tokens: int,
        sampling: Sampling,
    ) -> None:
        self.model, self.tokenizer, self.token_lists = model, tokenizer, token_lists
        self.stops, self.max_new_tokens, self.sampling = stops, max_new_tokens, sampling
        self.end_ids = end_token_ids(model, tokenizer)
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.end_ids)
        )
        self.cache_keyword = _cache_keyword(model)
        self.results: dict[int, Generation] = {}
        # A prefix every prompt shares (the system turn) is computed once for the whole run.
        common = _shared_prefix(token_lists)
        self.prefix_length = common if common >= MIN_SHARED_PREFIX else None
        self.prefixes: dict[tuple[int, ...], Any] = {}
        self.pass_tokens = PREFILL_PASS_TOKENS.get(model.device.type, PREFILL_PASS_TOKENS["cuda"])
        self.seconds: dict[int, float] = {}
        """Each row's share of the wall time of the passes it was in."""
        self.mergeable: bool | None = None
        """Whether waiting rows can join running ones (known after the first prompt pass)."""
        window = _sliding_window(model)
        longest = max((len(ids) for ids in token_lists), default=0)
        self.unpadded = window is not None and longest + max_new_tokens > window
        """Rows are batched only with rows of the same length: in a sliding window, padding
        would take the place of real tokens once a row outgrows the window."""
        self.largest = 0
        """The most rows that were in flight (or about to be) at once."""

    def run(self, order: Sequence[int], batch_size: int, bar: Any) -> None:
        """Decode the prompts of `order` that have no result yet, recording each in `results`."""
        import torch

        queue = deque(i for i in order if i not in self.results)
        flight: _InFlight | None = None
        new: dict[int, list[int]] = {}
        generators: dict[int, torch.Generator] = {}
        with torch.inference_mode():
            while queue or flight is not None:
                free = batch_size - (len(flight.rows) if flight is not None else 0)
                can_join = flight is None or (
                    _mergeable(flight.cache) and free >= max(1, batch_size // 4)
                )
                if queue and can_join:
                    admitted = [queue.popleft() for _ in range(min(free, len(queue)))]
                    self.largest = max(self.largest, batch_size - free + len(admitted))
                    for joining in self._prefill(admitted, queue):
                        if flight is None:
                            flight = joining
                        else:
                            flight.join(joining)
                    for index in admitted:
                        new[index] = []
                        generators[index] = torch.Generator().manual_seed(
                            _row_seed(self.sampling.seed, index)
                        )
                assert flight is not None
                started = time.perf_counter()
                tokens = _next_tokens(
                    flight.logits,
                    flight.seen,
                    self.sampling,
                    [generators[r] for r in flight.rows],
                )
                slots = []
                for slot, (row, token) in enumerate(zip(flight.rows, tokens.tolist(), strict=True)):
                    if self._step_row(row, token, new[row]):
                        bar.update(1)
                    else:
                        slots.append(slot)
                if not slots:
                    flight = None
                    continue
                tokens = flight.keep(slots, tokens)
                if flight.seen is not None:
                    flight.seen[torch.arange(len(slots), device=tokens.device), tokens] = True
                flight.mask = torch.cat([flight.mask, flight.mask.new_ones((len(slots), 1))], -1)
                output = self.model(
                    input_ids=tokens[:, None],
                    attention_mask=flight.mask,
                    position_ids=flight.next_position,
                    use_cache=True,
                    **{self.cache_keyword: flight.cache},
                )
                flight.logits = output.logits[:, -1, :]
                flight.next_position = flight.next_position + 1
                share = (time.perf_counter() - started) / len(slots)
                for row in flight.rows:
                    self.seconds[row] += share

    def _prefill(self, admitted: list[int], queue: deque[int]) -> list[_InFlight]:
        """Prefill the admitted prompts (longest first) in length groups, each ready to join.

        Rows can join only a plain growing cache (not a sliding window or a recurrent
        state), which the first pass shows: until then only the first group is prefilled
        (the others go back to the queue), and for a model whose cache cannot take joining
        rows every later admission is one group, the batch it always was.
        """
        offset = self.prefix_length or 0
        lengths = [len(self.token_lists[i]) - offset for i in admitted]
        if self.unpadded:
            groups = prefill_groups(lengths, 0)  # one group per length: no padding at all
        elif self.mergeable is False:
            groups = [(0, len(admitted))]
        else:
            groups = prefill_groups(lengths, self.pass_tokens)
        flights: list[_InFlight] = []
        for start, end in groups:
            rows = admitted[start:end]
            if flights and (not self.mergeable or self.unpadded):
                queue.extendleft(reversed(admitted[start:]))
                break
            started = time.perf_counter()
            flights.append(
                _prefill(
                    self.model,
                    [self.token_lists[i] for i in rows],
                    rows,
                    self.pad_id,
                    self.cache_keyword,
                    self.sampling.repetition_penalty != 1.0,
                    self.prefixes,
                    self.prefix_length,
                )
            )
            if self.mergeable is None:
                self.mergeable = _mergeable(flights[0].cache)
            share = (time.perf_counter() - started) / len(rows)
            for index in rows:
                self.seconds[index] = share
        return flights

    def _step_row(self, row: int, token: int, new: list[int]) -> bool:
        """Add `token` to `row`; True (and the row's result recorded) when the row is done."""
        ended = token in self.end_ids
        stopped = False
        if not ended:
            new.append(token)
            if self.stops[row]:
                text = str(self.tokenizer.decode(new, skip_special_tokens=True))
                stopped = cut_at_stop(text, self.stops[row])[1]
        if not ended and not stopped and len(new) < self.max_new_tokens:
            return False
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        self.results[row] = Generation(
            text=cut_at_stop(text, self.stops[row])[0],
            new_tokens=len(new),
            prompt_tokens=len(self.token_lists[row]),
            seconds=self.seconds[row],
            truncated=not ended and not stopped,
        )
        return True


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
    """Decode every prompt, longest first, up to `batch_size` at once; outputs in prompt order.

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
    # The prompts are chat-templated text that already holds the special tokens.
    token_lists = [
        list(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    ]
    # Longest first: running out of memory happens at the start, not after an hour.
    order = sorted(range(len(prompts)), key=lambda i: (-len(token_lists[i]), i))
    decoder = _Decoder(model, tokenizer, token_lists, stops, max_new_tokens, sampling)
    started = time.perf_counter()
    with tqdm(
        total=len(prompts), disable=not progress, file=sys.stderr, unit="item", desc="generate"
    ) as bar:
        while len(decoder.results) < len(prompts):
            decoder.largest = 0
            try:
                decoder.run(order, batch_size, bar)
            except (RuntimeError, MemoryError) as error:
                if not _is_oom(error) or decoder.largest <= 1:
                    raise
                # Halve what was tried (a short last batch may be smaller than batch_size);
                # rows in flight start again, finished rows are kept.
                batch_size = decoder.largest // 2
                _empty_cache()
                print(
                    f"[generate] out of memory; retrying with batch size {batch_size}",
                    file=sys.stderr,
                )
    return GenerationReport(
        outputs=[decoder.results[i] for i in range(len(prompts))],
        wall_seconds=time.perf_counter() - started,
        batch_size=batch_size,
    )


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
