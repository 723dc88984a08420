"""Sequence packing: a batch's examples laid end to end in fewer rows, attention kept within each,
and a prompt prefix that every example shares computed once per row.

`collate` pads every example of a batch to the longest one; with short and long examples mixed,
much of the batch is padding that the model computes anyway. And every example of a train
step starts with the same tokens (the chat template's system prompt: 22 of the demo pools'
~50 tokens), which each row of a padded batch computes again. `pack` instead:

- finds the prefix that all the batch's examples share (`shared_prefix`: prompt tokens only,
  ending before the position whose logits predict any example's first answer token);
- places each example's remaining tokens (its *suffix*) into rows of at most `width` tokens,
  each row starting with one copy of the prefix: as few rows as first fit (longest first)
  needs, filled evenly (`balanced_rows`), and cut to the longest one filled;
- within a row, gives every suffix the positions it has alone (continuing after the prefix)
  and a block-diagonal causal 4D `attention_mask` (`[rows, 1, row width, row width]`, 0 where a
  token may attend, the dtype's minimum elsewhere: additive, as eager attention and SDPA both
  take it): a suffix token sees the prefix and the earlier tokens of its own suffix, nothing of
  the other examples.

Each example's logits are therefore exactly those it gets alone (the prefix is causal: it
never sees what follows it, so one copy serves every suffix), and the loss (the mean over the
batch's answer tokens) is the padded batch's: packing changes the speed, not the adapter
(`tests/trainer/test_packing.py`). The gradient that the prefix's copies would get in a padded
batch is the sum of what its one copy gets here. Token-level distillation targets are not
packed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kaizen.trainer.data import IGNORE_INDEX, TokenizedExample

if TYPE_CHECKING:  # pragma: no cover
    import torch


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Indices of the examples in each row: first fit, longest first (ties in order)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[int] = []
    for index in order:
        length = lengths[index]
        if length > width:
            raise ValueError(f"an example of {length} tokens does not fit a row of {width}")
        for row, room in enumerate(free):
            if length <= room:
                rows[row].append(index)
                free[row] -= length
                break
        else:
            rows.append([index])
            free.append(width - length)
    return rows


def shared_prefix(batch: Sequence[TokenizedExample]) -> int:
    """How many leading tokens every example of `batch` has in common and may share.

    Only prompt tokens are shared, and the prefix stops before the position whose logits
    predict an example's first answer token (that position's target differs by example). A
    batch of one example shares nothing (there is nothing to save).
    """
    if len(batch) < 2:
        return 0
    first = batch[0].input_ids
    limit = min(len(item.input_ids) for item in batch) - 1  # every suffix keeps a token
    for item in batch:
        answer = next((i for i, label in enumerate(item.labels) if label != IGNORE_INDEX), None)
        if answer is not None:
            limit = min(limit, answer - 1)
    length = 0
    while length < limit and all(item.input_ids[length] == first[length] for item in batch):
        length += 1
    return length


def balanced_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """As few rows as first fit needs, filled evenly: each example, longest first, goes to the
    emptiest row. A batch's rows are cut to the longest one, so a full row beside a nearly
    empty one would pad the empty one to the full width. First fit's rows where the even
    split does not fit the width."""
    first_fit = pack_rows(lengths, width)
    rows: list[list[int]] = [[] for _ in first_fit]
    fills = [0] * len(rows)
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        row = min(range(len(rows)), key=lambda r: (fills[r], r))
        if fills[row] + lengths[index] > width:
            return first_fit
        rows[row].append(index)
        fills[row] += lengths[index]
    return rows


@dataclass(frozen=True)
class PackedRow:
    """One row: the shared prefix, then each member's suffix at `starts[i]` (row offsets)."""

    members: tuple[int, ...]
    """Indices into the batch."""
    starts: tuple[int, ...]
    """Where each member's suffix begins in the row (its positions continue the prefix's)."""
    used: int
    """Tokens of the row that are not padding."""


def pack_layout(
    batch: Sequence[TokenizedExample], width: int = 0, share_prefix: bool = True
) -> tuple[int, list[PackedRow]]:
    """The prefix length and the rows of a packed batch (`width`: at least the longest example)."""
    lengths = [len(item.input_ids) for item in batch]
    width = max(width, *lengths)
    prefix = shared_prefix(batch) if share_prefix else 0
    rows = []
    for members in balanced_rows([length - prefix for length in lengths], width - prefix):
        starts, offset = [], prefix
        for index in members:
            starts.append(offset)
            offset += lengths[index] - prefix
        rows.append(PackedRow(tuple(members), tuple(starts), offset))
    return prefix, rows


def pack(
    batch: Sequence[TokenizedExample],
    pad_token_id: int,
    dtype: torch.dtype,
    width: int = 0,
    share_prefix: bool = True,
) -> dict[str, torch.Tensor]:
    """`input_ids`, `labels`, `position_ids` and the 4D `attention_mask` of a packed batch,
    in rows of at most `width` tokens (at least the longest example's length)."""
    import torch

    if any(item.teacher is not None for item in batch):
        raise ValueError("token-level distillation targets cannot be packed")
    prefix, rows = pack_layout(batch, width, share_prefix)
    size = max(row.used for row in rows)
    input_ids = torch.full((len(rows), size), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), size), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), size), dtype=torch.long)
    allowed = torch.zeros((len(rows), size, size), dtype=torch.bool)
    causal = torch.ones((size, size), dtype=torch.bool).tril()
    if prefix:
        shared = torch.tensor(batch[0].input_ids[:prefix])
    for r, row in enumerate(rows):
        if prefix:
            input_ids[r, :prefix] = shared
            position_ids[r, :prefix] = torch.arange(prefix)
            allowed[r, :prefix, :prefix] = causal[:prefix, :prefix]
        for index, start in zip(row.members, row.starts, strict=True):
            item = batch[index]
            length = len(item.input_ids) - prefix
            end = start + length
            input_ids[r, start:end] = torch.tensor(item.input_ids[prefix:])
            labels[r, start:end] = torch.tensor(item.labels[prefix:])
            # Its first label would be predicted from the token before it in the row (the
            # previous example's last): never trained. It is a prompt token anyway.
            labels[r, start] = IGNORE_INDEX
            position_ids[r, start:end] = torch.arange(prefix, prefix + length)
            allowed[r, start:end, start:end] = causal[:length, :length]
            allowed[r, start:end, :prefix] = True
        # Padding attends to itself only (a row of -inf would give NaNs); its labels are ignored.
        pad = torch.arange(row.used, size)
        allowed[r, pad, pad] = True
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": mask.unsqueeze(1),
    }
