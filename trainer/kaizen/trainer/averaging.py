"""An exponential moving average of the adapter's weights (`--ema-decay`).

The adapter saved at the end of a run is, by default, the last step's weights. With a decay
`d > 0`, it is instead an average that every optimiser step moves toward that step's weights:
`average = r * average + (1 - r) * weights`, with `r = min(d, (1 + t) / (10 + t))` after step
`t` (counted from 0), the warm-up of TensorFlow's `ExponentialMovingAverage` with
`num_updates`. The warm-up keeps the first steps (far from where training ends) from weighing:
after step `t` the average spans roughly the last `(10 + t) / 9` steps, about the last
tenth of a run, until `r` reaches `d` (at step 890 for 0.99). An average of the last steps'
weights lies nearer the middle of the region they wander over than any one of them (the idea
of stochastic weight averaging); what it does to recall in other words is measured in
docs/forgetting.md, "Averaged weights".

Only the trainable (LoRA) weights are averaged, in float32: a copy of the adapter's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - torch is slow to import
    import torch

#: Steps of the warm-up's denominator: `r = (1 + t) / (WARMUP + t)` before the cap.
WARMUP = 10


def decay_at(step: int, decay: float) -> float:
    """How much of the average stays after optimiser step `step` (from 0) at `decay`."""
    return min(decay, (1 + step) / (WARMUP + step))


class WeightAverage:
    """The moving average of `weights` (the trainable parameters, in their order)."""

    def __init__(self, weights: Iterable[torch.Tensor], decay: float) -> None:
        self.weights = list(weights)
        self.decay = decay
        self.averages = [weight.detach().float().clone() for weight in self.weights]

    def update(self, step: int) -> None:
        """Move the average toward the weights after optimiser step `step` (from 0)."""
        import torch

        kept = decay_at(step, self.decay)
        with torch.no_grad():
            for average, weight in zip(self.averages, self.weights, strict=True):
                average.mul_(kept).add_(weight.detach().float(), alpha=1.0 - kept)

    def state(self) -> list[torch.Tensor]:
        """What a checkpoint keeps to resume the average (saved at once: no copy)."""
        return list(self.averages)

    def load(self, saved: list[torch.Tensor]) -> None:
        """Resume from a checkpoint's `state()`."""
        if len(saved) != len(self.averages):
            raise ValueError(
                f"the checkpoint averages {len(saved)} weights, the adapter has {len(self.averages)}"
            )
        for average, value in zip(self.averages, saved, strict=True):
            average.copy_(value)

    def apply(self) -> None:
        """Write the average into the weights (before the adapter is saved)."""
        import torch

        with torch.no_grad():
            for average, weight in zip(self.averages, self.weights, strict=True):
                weight.copy_(average.to(weight.dtype))
