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

import hashlib
import math
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kaizen.api.fields import DEFAULT_EVAL_BATCH_SIZE
from kaizen.evaluator import batching

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Default batch size (owned by `kaizen.api.fields`): start high; a batch that does not fit is
#: halved and the size kept.
DEFAULT_BATCH_SIZE = DEFAULT_EVAL_BATCH_SIZE

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
        self.cache_keyword = batching.cache_keyword(model)
        self.results: dict[int, Generation] = {}
        # A prefix every prompt shares (the system turn) is computed once for the whole run.
        common = batching.shared_prefix(token_lists)
        self.prefix_length = common if common >= batching.MIN_SHARED_PREFIX else None
        self.prefixes: dict[tuple[int, ...], Any] = {}
        self.pass_tokens = batching.PREFILL_PASS_TOKENS.get(
            model.device.type, batching.PREFILL_PASS_TOKENS["cuda"]
        )
        self.seconds: dict[int, float] = {}
        """Each row's share of the wall time of the passes it was in."""
        self.mergeable: bool | None = None
        """Whether waiting rows can join running ones (known after the first prompt pass)."""
        window = batching.sliding_window(model)
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
        flight: batching.InFlight | None = None
        new: dict[int, list[int]] = {}
        generators: dict[int, torch.Generator] = {}
        with torch.inference_mode():
            while queue or flight is not None:
                free = batch_size - (len(flight.rows) if flight is not None else 0)
                # A running batch exists only after a prompt pass, which set `mergeable`.
                can_join = flight is None or (self.mergeable and free >= max(1, batch_size // 4))
                if queue and can_join:
                    admitted = [queue.popleft() for _ in range(min(free, len(queue)))]
                    # Counted before the prompt pass: running out of memory there halves it.
                    self.largest = max(self.largest, batch_size - free + len(admitted))
                    for joining in self._prefill(admitted, queue):
                        if flight is None:
                            flight = joining
                        else:
                            flight.join(joining)
                        for index in joining.rows:
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

    def _prefill(self, admitted: list[int], queue: deque[int]) -> list[batching.InFlight]:
        """Prefill the admitted prompts (longest first) in length groups, each ready to join.

        Rows can join only a plain growing cache (not a sliding window or a recurrent
        state), which the first pass shows: until then only the first group is prefilled
        (the others go back to the queue), and for a model whose cache cannot take joining
        rows every later admission is one group, the batch it always was.
        """
        offset = self.prefix_length or 0
        lengths = [len(self.token_lists[i]) - offset for i in admitted]
        if self.unpadded:
            groups = batching.prefill_groups(lengths, 0)  # one group per length: no padding at all
        elif self.mergeable is False:
            groups = [(0, len(admitted))]
        else:
            groups = batching.prefill_groups(lengths, self.pass_tokens)
        flights: list[batching.InFlight] = []
        for start, end in groups:
            rows = admitted[start:end]
            if flights and (not self.mergeable or self.unpadded):
                queue.extendleft(reversed(admitted[start:]))
                break
            started = time.perf_counter()
            flights.append(
                batching.prefill(
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
                self.mergeable = batching.mergeable(flights[0].cache)
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
