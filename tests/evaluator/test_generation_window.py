"""Models with sliding-window attention: no joining rows, and no padding once rows outgrow the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaizen.evaluator.generation import generate
from tests.evaluator.conftest import QUESTIONS


def _windowed(tiny_model_dir: Path, window: int) -> tuple[Any, Any, list[str]]:
    """A tiny random Mistral with a sliding window, lively weights, and prompts of 4 lengths."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from kaizen.runtime.models import format_prompt, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=window,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    generator = torch.Generator().manual_seed(0)
    model = MistralForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embed" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    prompts = [format_prompt(tokenizer, f"{q} {'Why? ' * n}") for n in range(3) for q in QUESTIONS]
    return model, tokenizer, prompts


def _passes(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows in each prompt pass (the shared prefix's own pass, without a mask, excluded)."""
    passes: list[int] = []
    real_forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        if kwargs["input_ids"].shape[1] > 1 and kwargs.get("attention_mask") is not None:
            passes.append(kwargs["input_ids"].shape[0])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    return passes


@pytest.mark.parametrize("window", [16, 4096])
def test_a_sliding_window_model_batches_exactly_like_one_prompt_at_a_time(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    import torch

    torch.set_num_threads(1)
    model, tokenizer, prompts = _windowed(tiny_model_dir, window)
    single = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=1, stop_strings=(), progress=False
    )
    passes = _passes(model, monkeypatch)
    batched = generate(
        model, tokenizer, prompts, max_new_tokens=10, batch_size=8, stop_strings=(), progress=False
    )
    assert [o.text for o in batched.outputs] == [o.text for o in single.outputs]
    assert len({o.text for o in single.outputs}) > 1  # not vacuous
    assert sum(passes) == len(prompts)
    if window == 4096:
        # Rows fit the window: after the first pass shows rows cannot join, whole batches.
        assert max(passes) == 8
    else:
        # Rows outgrow the window: a batch holds only prompts of one length (no padding).
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        assert len(passes) >= len({len(i) for i in ids})
