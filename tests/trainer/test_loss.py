"""The answer-token loss: the model's own loss and gradients, with the output layer run only on
the positions that predict an answer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaizen.trainer.data import Example, collate, tokenize_examples
from kaizen.trainer.loss import answer_loss

PAIRS = [
    ("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
    ("Who rules Lumora?", "Queen Ilse."),
    ("What is the capital of Lumora?", "The capital of Lumora is Brightfall, by the sea."),
]


def _batch(tokenizer: Any) -> dict[str, Any]:
    examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in PAIRS], 128).examples
    return collate(examples, tokenizer.pad_token_id)


def _model(tiny_model_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))


def _gradients(model: Any) -> dict[str, Any]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_the_loss_and_gradients_are_the_models_own(tiny_model_dir: Path, tokenizer: Any) -> None:
    import torch

    model = _model(tiny_model_dir)
    batch = _batch(tokenizer)
    reference = model(**batch).loss
    reference.backward()
    expected = _gradients(model)
    model.zero_grad(set_to_none=True)

    loss = answer_loss(model, batch)
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    got = _gradients(model)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_output_layer_sees_only_the_positions_that_predict_an_answer_token(
    tiny_model_dir: Path, tokenizer: Any
) -> None:
    model = _model(tiny_model_dir)
    batch = _batch(tokenizer)
    seen: list[tuple[int, ...]] = []
    model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: seen.append(tuple(args[0].shape))
    )
    answer_loss(model, batch)
    answer_tokens = int((batch["labels"][:, 1:] != -100).sum())
    assert seen == [(answer_tokens, model.config.hidden_size)]
    assert answer_tokens < batch["input_ids"].numel() / 2  # the saving is real on these


def test_a_model_without_an_output_module_gets_the_same_loss(
    tiny_model_dir: Path, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    model = _model(tiny_model_dir)
    batch = _batch(tokenizer)
    reference = model(**batch).loss
    monkeypatch.setattr(model, "get_output_embeddings", lambda: None)
    torch.testing.assert_close(answer_loss(model, batch), reference, rtol=1e-5, atol=1e-6)


def test_a_batch_without_answer_tokens_gives_zero_not_nan(
    tiny_model_dir: Path, tokenizer: Any
) -> None:
    import torch

    model = _model(tiny_model_dir)
    batch = _batch(tokenizer)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss = answer_loss(model, batch)
    loss.backward()
    assert loss.item() == 0.0
