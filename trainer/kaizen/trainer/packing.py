"""Sequence packing: a batch's examples laid end to end in fewer rows, attention kept within each.

`collate` pads every example of a batch to the longest one; with short and long examples mixed,
much of the batch is padding that the model computes anyway. `pack` instead places the batch's
examples into rows of `width` tokens (the training's `max_seq_length`, or the longest example;
first fit, longest first), so the batch has the same examples and the same answer tokens in
fewer rows. Within a row:

- `position_ids` restart at 0 for every example, so rotary (or learned) positions are what
  each example has alone;
- a block-diagonal causal 4D `attention_mask` (`[rows, 1, width, width]`, 0 where a token may
  attend, the dtype's minimum elsewhere: additive, as eager attention and SDPA both take it)
  lets a token see only the earlier tokens of its own example;
- the label of each example's first token is ignored, so the last token of one example is
  never trained to predict the first of the next (it is a prompt token anyway).

Each example's logits are therefore those it gets alone, and the loss (the mean over the
batch's answer tokens) is the unpacked batch's: packing changes the speed, not the adapter
(`tests/trainer/test_packing.py`). Token-level distillation targets are not packed.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def pack(
    batch: Sequence[TokenizedExample], pad_token_id: int, dtype: torch.dtype, width: int = 0
) -> dict[str, torch.Tensor]:
    """`input_ids`, `labels`, `position_ids` and the 4D `attention_mask` of a packed batch,
    in rows of `width` tokens (at least the longest example's length)."""
    import torch

    if any(item.teacher is not None for item in batch):
        raise ValueError("token-level distillation targets cannot be packed")
    lengths = [len(item.input_ids) for item in batch]
    width = max(width, *lengths)
    rows = pack_rows(lengths, width)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.zeros((len(rows), width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            item, length = batch[index], lengths[index]
            end = start + length
            input_ids[row, start:end] = torch.tensor(item.input_ids)
            labels[row, start:end] = torch.tensor(item.labels)
            labels[row, start] = IGNORE_INDEX
            position_ids[row, start:end] = torch.arange(length)
            allowed[row, start:end, start:end] = causal[:length, :length]
            start = end
        # Padding attends to itself only (a row of -inf would give NaNs); its labels are ignored.
        pad = torch.arange(start, width)
        allowed[row, pad, pad] = True
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "attention_mask": mask.unsqueeze(1),
    }
