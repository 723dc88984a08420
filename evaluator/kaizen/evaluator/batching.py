"""How rows share forward passes: prompt passes and the key/value cache of the rows in flight.

The decoding loop in :mod:`kaizen.evaluator.generation` keeps up to a batch of rows in
flight. This module holds what a batch is made of:

* prompt passes (`prefill`): the prefix every prompt shares (the chat template's system turn)
  is computed once and its cache copied to every row; the rest of each prompt is computed
  left-padded, with position ids that count real tokens only, so a row sees exactly what it
  would see alone;
* `prefill_groups`: joining prompts are split into length groups, trading padded tokens
  against the fixed cost of a pass;
* `InFlight`: the running rows' cache, mask and positions; rows leave (`keep`) and join
  (`join`) by padding and cropping cache columns, which only a plain growing cache allows
  (`mergeable`; not a sliding window or a recurrent state).
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch
    from transformers import PreTrainedModel


def cache_keyword(model: PreTrainedModel) -> str:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns, then goes).
    return (
        "cache"
        if "cache" in inspect.signature(type(model).forward).parameters
        else "past_key_values"
    )


def output_cache(output: Any) -> Any:
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


def shared_prefix(token_lists: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every list that all lists share, leaving each at least one token."""
    if len(token_lists) < 2:
        return 0
    first, shortest = token_lists[0], min(len(ids) for ids in token_lists)
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in token_lists):
        length += 1
    return length


@dataclass
class InFlight:
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
            if mergeable(self.cache):
                self._crop()
        return tokens

    def _crop(self) -> None:
        # Columns that only finished rows used (all padding now) are cut from the left.
        empty = int((self.mask.sum(dim=0) == 0).int().cumprod(dim=0).sum())
        if empty:
            self.mask = self.mask[:, empty:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, empty:], layer.values[:, :, empty:]

    def join(self, other: InFlight) -> None:
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


def sliding_window(model: PreTrainedModel) -> int | None:
    """The attention window of a model with sliding-window layers, else None."""
    config = getattr(model, "config", None)
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or window <= 0:
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types and not any("sliding" in str(kind) for kind in layer_types):
        return None
    return window


def mergeable(cache: Any) -> bool:
    # Rows can join a running batch only when every layer is a plain growing key/value cache
    # (not a sliding window or a recurrent state): then padding the columns is all it takes.
    layers = getattr(cache, "layers", None) or []
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" for layer in layers)


def prefill(
    model: PreTrainedModel,
    token_lists: list[list[int]],
    rows: list[int],
    pad_id: int,
    cache_keyword: str,
    track_seen: bool,
    prefixes: dict[tuple[int, ...], Any],
    prefix_length: int | None = None,
) -> InFlight:
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
    shared = prefix_length if prefix_length is not None else shared_prefix(token_lists)
    cache_arguments: dict[str, Any] = {}
    if shared >= MIN_SHARED_PREFIX:
        key = tuple(token_lists[0][:shared])
        if key not in prefixes:
            prefix = torch.tensor([key], device=device)
            prefixes[key] = output_cache(model(input_ids=prefix, use_cache=True, logits_to_keep=1))
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
    return InFlight(
        rows=list(rows),
        cache=output_cache(output),
        mask=mask,
        next_position=positions[:, -1:] + 1,
        logits=output.logits[:, -1, :],
        seen=seen,
    )
