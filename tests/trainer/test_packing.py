"""Sequence packing: rows filled first-fit, positions and attention kept per example, and the
same logits, losses and adapter as the padded batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kaizen.api import SpecError, parse_spec
from kaizen.runtime.models import load_model
from kaizen.trainer.data import IGNORE_INDEX, Example, TokenizedExample, tokenize_examples
from kaizen.trainer.lora import LoraSettings, train_lora
from kaizen.trainer.packing import (
    balanced_rows,
    pack,
    pack_layout,
    pack_rows,
    shared_prefix,
)

PAIRS = [
    ("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
    ("Who?", "Queen Ilse."),
    ("What is the capital of Lumora?", "The capital of Lumora is Brightfall, by the sea."),
    ("Colour?", "Teal."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Eyes?", "Eight."),
]


def test_rows_are_filled_first_fit_longest_first() -> None:
    assert pack_rows([10, 4, 6, 3, 7], 10) == [[0], [4, 3], [2, 1]]
    assert pack_rows([5, 5], 5) == [[0], [1]]
    with pytest.raises(ValueError, match="does not fit"):
        pack_rows([11], 10)


def test_rows_are_filled_evenly_when_that_fits() -> None:
    # First fit needs 3 rows (12, 11, 2 filled); the same 3 rows filled evenly: 10, 9, 6.
    assert pack_rows([10, 9, 2, 2, 2], 12) == [[0, 2], [1, 3], [4]]
    assert balanced_rows([10, 9, 2, 2, 2], 12) == [[0], [1], [2, 3, 4]]
    # Where the even split would overflow a row, first fit's rows.
    assert (
        balanced_rows([5, 5, 4, 3, 3], 10) == pack_rows([5, 5, 4, 3, 3], 10) == [[0, 1], [2, 3, 4]]
    )


def test_a_packed_batch_keeps_positions_and_attention_within_each_example() -> None:
    import torch

    a = TokenizedExample(input_ids=(1, 2, 3, 4), labels=(IGNORE_INDEX, IGNORE_INDEX, 3, 4))
    b = TokenizedExample(input_ids=(5, 6), labels=(IGNORE_INDEX, 6))
    c = TokenizedExample(input_ids=(7,), labels=(7,))
    packed = pack([a, b, c], pad_token_id=0, dtype=torch.float32)  # width: the longest
    # Width 4 (the longest): [a] and [b, c, pad].
    assert packed["input_ids"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 0]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 0, 0]]
    # Each example's first label is ignored, so no token learns the next example's start.
    assert packed["labels"].tolist() == [[-100, -100, 3, 4], [-100, 6, -100, -100]]
    allowed = (packed["attention_mask"] == 0)[:, 0]
    assert allowed[1].int().tolist() == [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 0],  # c sees only itself, not b
        [0, 0, 0, 1],  # padding sees only itself
    ]
    assert allowed[0].int().tolist() == torch.ones(4, 4).tril().int().tolist()


def _examples(tokenizer: Any) -> list[TokenizedExample]:
    return tokenize_examples(tokenizer, [Example(q, a) for q, a in PAIRS], 128).examples


def test_a_prefix_shared_by_the_batch_is_laid_once_per_row() -> None:
    import torch

    # Three examples share the prompt tokens 1, 2, 3; answers start at index 4, 3 and 4.
    a = TokenizedExample(input_ids=(1, 2, 3, 4, 5, 6), labels=(-100, -100, -100, -100, 5, 6))
    b = TokenizedExample(input_ids=(1, 2, 3, 7, 8), labels=(-100, -100, -100, 7, 8))
    c = TokenizedExample(input_ids=(1, 2, 3, 9, 10), labels=(-100, -100, -100, -100, 10))
    assert shared_prefix([a, b, c]) == 2  # stops before the position that predicts b's 7
    assert shared_prefix([a]) == 0
    assert shared_prefix([a, TokenizedExample(input_ids=(9, 2), labels=(-100, 2))]) == 0
    prefix, rows = pack_layout([a, b, c], width=8)
    assert prefix == 2
    # Suffixes of 4, 3, 3 tokens in rows of 8 - 2: [a] [b c].
    assert [(row.members, row.starts, row.used) for row in rows] == [
        ((0,), (2,), 6),
        ((1, 2), (2, 5), 8),
    ]
    packed = pack([a, b, c], pad_token_id=0, dtype=torch.float32, width=8)
    assert packed["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 0, 0], [1, 2, 3, 7, 8, 3, 9, 10]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 0, 0], [0, 1, 2, 3, 4, 2, 3, 4]]
    assert packed["labels"].tolist() == [
        [-100, -100, -100, -100, 5, 6, -100, -100],
        [-100, -100, -100, 7, 8, -100, -100, 10],
    ]
    allowed = (packed["attention_mask"] == 0)[1, 0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],  # b's suffix: the prefix and itself
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 1, 0, 0],  # c's suffix: the prefix, not b
        [1, 1, 0, 0, 0, 1, 1, 0],
        [1, 1, 0, 0, 0, 1, 1, 1],
    ]
    # Rows are cut to the longest filling, not the width asked for.
    wide = pack([a, b, c], pad_token_id=0, dtype=torch.float32, width=64)
    assert wide["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 3, 7, 8, 3, 9, 10]]
    assert wide["attention_mask"].shape == (1, 1, 12, 12)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("share_prefix", [True, False])
def test_each_example_gets_the_logits_it_gets_alone(
    tiny_model_dir: Path, tokenizer: Any, attention: str, share_prefix: bool
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), attn_implementation=attention)
    model.eval()
    examples = _examples(tokenizer)
    packed = pack(examples, tokenizer.pad_token_id, torch.float32, 128, share_prefix)
    prefix, rows = pack_layout(examples, 128, share_prefix)
    assert (prefix > 0) == share_prefix  # the chat template's system prompt
    assert len(rows) < len(examples)  # fewer rows than examples
    with torch.no_grad():
        logits = model(
            input_ids=packed["input_ids"],
            position_ids=packed["position_ids"],
            attention_mask=packed["attention_mask"],
        ).logits
        for r, row in enumerate(rows):
            for index, start in zip(row.members, row.starts, strict=True):
                ids = torch.tensor(examples[index].input_ids)
                alone = model(input_ids=ids.unsqueeze(0)).logits[0]
                end = start + len(ids) - prefix
                torch.testing.assert_close(
                    logits[r, start:end], alone[prefix:], rtol=1e-4, atol=1e-4
                )
                torch.testing.assert_close(logits[r, :prefix], alone[:prefix], rtol=1e-4, atol=1e-4)


def test_packed_training_gives_the_losses_and_adapter_of_padded_training(
    tiny_model_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    examples = _examples(tokenizer)
    results = {}
    for packing in (False, True):
        settings = LoraSettings(
            steps=5,
            batch_size=6,
            learning_rate=1e-2,
            packing=packing,
            pack_length=128,
            group_by_length=False,
        )
        results[packing] = train_lora(
            load_model(str(tiny_model_dir), device="cpu"),
            examples,
            settings,
            tmp_path / str(packing),
            pad_token_id=tokenizer.pad_token_id,
            progress=False,
        )
    assert results[True].tokens == results[False].tokens
    assert results[True].loss_curve == pytest.approx(results[False].loss_curve, rel=1e-4)
    padded = load_file(tmp_path / "False" / "adapter" / "adapter_model.safetensors")
    packed = load_file(tmp_path / "True" / "adapter" / "adapter_model.safetensors")
    for key in padded:
        relative = float((packed[key] - padded[key]).norm() / padded[key].norm())
        assert relative < 1e-3, key


def test_packing_with_token_level_distillation_is_refused_naming_both() -> None:
    with pytest.raises(SpecError, match="training.packing cannot be combined"):
        parse_spec({"training": {"packing": True, "teacher": {"tokenLevel": {}}}})
