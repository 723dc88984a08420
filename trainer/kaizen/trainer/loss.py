"""The training loss on the answer tokens, with logits computed only where a label needs them.

A causal LM's output layer maps every position's hidden state to the whole vocabulary (49,152
columns for the bundled model, 128,256 for Llama 3), and the usual loss computes it at every
position of the batch, prompt and padding included, then ignores all but the answer tokens'.
`answer_loss` gives the output layer only the hidden states of the positions whose next token
is a label (a forward pre-hook on the model's output embeddings), so that layer's work, its
backward pass and the float32 cross-entropy over the vocabulary shrink to the answer tokens:
with the demo's pools (~50 tokens, ~12 of them the answer) about three quarters of it goes.
The loss is the same number as the model's own (the mean over the answer tokens of the
cross-entropy, in float32): `tests/trainer/test_loss.py`.

A model whose output layer is not a module called on the `[batch, positions, hidden]` states
(the hook then never fires, or sees another shape) gets the full logits, and the positions are
taken from them: slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kaizen.trainer.data import IGNORE_INDEX

if TYPE_CHECKING:  # pragma: no cover
    import torch


def answer_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of `batch` (its `labels`), like `model(**batch).loss`."""
    import torch
    import torch.nn.functional as F

    inputs = {key: value for key, value in batch.items() if key != "labels"}
    labels = batch["labels"]
    # The logits at position p predict the token at p + 1.
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    keep = targets != IGNORE_INDEX

    head = _output_layer(model)
    selected = {"done": False}

    def select(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        hidden = args[0]
        if selected["done"] or hidden.dim() != 3 or hidden.shape[:2] != keep.shape:
            return None
        selected["done"] = True
        return (hidden[keep], *args[1:])

    handle = head.register_forward_pre_hook(select) if head is not None else None
    try:
        logits: torch.Tensor = model(**inputs).logits
    finally:
        if handle is not None:
            handle.remove()
    if not selected["done"]:
        logits = logits[keep]
    if not len(logits):  # no answer token in this share of the batch: nothing to learn
        return logits.float().sum()
    return F.cross_entropy(logits.float(), targets[keep], reduction="mean")


def _output_layer(model: Any) -> Any:
    """The module that maps hidden states to the vocabulary, or None."""
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    getter = getattr(inner, "get_output_embeddings", None)
    layer = getter() if callable(getter) else None
    return layer if isinstance(layer, torch.nn.Module) else None
