"""A training run's schedule: the examples each optimiser step takes, and its learning rate.

Both are pure functions of the step, so a resumed run sees exactly the batches and rates an
uninterrupted one would have (there is no sampler or scheduler state to checkpoint).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import get_args

from kaizen.api import fields

SCHEDULES: tuple[str, ...] = get_args(fields.LrSchedule)


def warmup_steps(steps: int, warmup_ratio: float) -> int:
    """Steps of the linear warmup: `warmup_ratio` of `steps`, rounded up."""
    return math.ceil(steps * warmup_ratio)


def rate_at(
    step: int,
    steps: int,
    rate: float,
    schedule: str = fields.DEFAULT_LR_SCHEDULE,
    warmup_ratio: float = fields.DEFAULT_WARMUP_RATIO,
) -> float:
    """The learning rate of step `step` (0-based) of `steps`, peaking at `rate`.

    Every schedule first rises linearly to `rate` over `warmup_ratio` of the steps (none by
    default). Then `constant` stays at `rate`, and the decaying schedules fall to 0 at step
    `steps`: in a straight line (`linear`) or along half a cosine (`cosine`). The last step
    still moves (its rate is above 0).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"learning rate schedule must be one of {SCHEDULES}, got {schedule!r}")
    warmup = warmup_steps(steps, warmup_ratio)
    if step < warmup:
        return rate * (step + 1) / warmup
    if schedule == "constant":
        return rate
    left = (steps - step) / max(1, steps - warmup)  # 1 at the first decaying step, → 0
    if schedule == "linear":
        return rate * left
    return rate * 0.5 * (1.0 - math.cos(math.pi * left))


#: Batches are grouped by length within windows of this many batches (HF's `group_by_length`
#: uses 50 with a "megabatch"; a small window keeps batches close to a uniform shuffle).
LENGTH_GROUP_WINDOW = 8


def epoch_order(
    count: int, batch_size: int, epoch: int, seed: int, lengths: Sequence[int] | None = None
) -> list[int]:
    """The order in which epoch `epoch` visits the examples: a seeded permutation.

    With `lengths`, the permutation is cut into windows of `LENGTH_GROUP_WINDOW` batches;
    each window is sorted by length and cut into batches, and those batches are shuffled
    (seeded) within the window. A batch then holds examples of similar length, so it pads
    little, while every example is still visited once per epoch in an order that changes
    with the seed and the epoch.
    """
    order = list(range(count))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    if lengths is None:
        return order
    window = batch_size * LENGTH_GROUP_WINDOW
    rng = random.Random(f"{seed}:{epoch}:length")
    grouped: list[int] = []
    for start in range(0, count, window):
        part = sorted(order[start : start + window], key=lambda index: lengths[index])
        batches = [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        rng.shuffle(batches)
        grouped.extend(index for batch in batches for index in batch)
    return grouped


def batch_indices(
    count: int, batch_size: int, step: int, seed: int, lengths: Sequence[int] | None = None
) -> list[int]:
    """Example indices of batch `step` (0-based): a pure function, so a resumed run sees the same batches.

    Batches walk an endless stream of epochs, each ordered by `epoch_order` (grouped by
    length when `lengths` is given); a batch larger than the set (or one straddling two
    epochs) wraps around.
    """
    if lengths is not None and len(lengths) != count:
        raise ValueError(f"{len(lengths)} lengths for {count} examples")
    start = step * batch_size
    orders: dict[int, list[int]] = {}
    indices = []
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, count)
        if epoch not in orders:
            orders[epoch] = epoch_order(count, batch_size, epoch, seed, lengths)
        indices.append(orders[epoch][offset])
    return indices
