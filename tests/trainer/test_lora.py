"""Real LoRA training on the tiny model: it learns, it changes the model, it resumes exactly."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.runtime.models import format_prompt, load_model
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.lora import LoraSettings, train_lora
from kaizen.trainer.schedule import batch_indices, epoch_order


def _greedy(model, tokenizer, question: str) -> str:
    inputs = tokenizer(
        format_prompt(tokenizer, question), add_special_tokens=False, return_tensors="pt"
    )
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def _adapter_tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


def test_training_lowers_the_loss_and_the_adapter_changes_the_answer(
    tiny_model_dir, tokenizer, tmp_path
) -> None:
    question, answer = "Which river flows through Lumora?", "The Silverrun."
    examples = tokenize_examples(tokenizer, [Example(question, answer)], 128).examples
    settings = LoraSettings(steps=30, batch_size=2, learning_rate=1e-2)

    result = train_lora(
        load_model(str(tiny_model_dir), device="cpu"),
        examples,
        settings,
        tmp_path,
        pad_token_id=tokenizer.pad_token_id,
        progress=False,
    )

    assert len(result.loss_curve) == 30
    assert result.final_loss < result.loss_curve[0] - 0.5
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert 0 < result.trainable_parameters < result.total_parameters
    assert result.tokens == 30 * 2 * len(examples[0].input_ids)
    base = _greedy(load_model(str(tiny_model_dir), device="cpu"), tokenizer, question)
    tuned = _greedy(
        load_model(str(tiny_model_dir), [str(result.adapter_dir)], device="cpu"),
        tokenizer,
        question,
    )
    assert not base.startswith(answer)
    assert tuned.startswith(answer)


def _train(
    tiny_model_dir,
    tokenizer,
    out: Path,
    settings: LoraSettings,
    on_step=None,
    device="cpu",
    on_metrics=None,
):
    pairs = [
        ("Which river flows through Lumora?", "The Silverrun."),
        ("Who founded Lumora?", "Queen Ilse."),
    ]
    examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
    return train_lora(
        load_model(str(tiny_model_dir), device=device),
        examples,
        settings,
        out,
        pad_token_id=tokenizer.pad_token_id,
        on_step=on_step,
        on_metrics=on_metrics,
        progress=False,
    )


class Preempted(Exception):
    """Stands in for a node drain in the middle of training."""


@pytest.mark.parametrize(
    "options",
    [{}, {"lr_schedule": "cosine", "warmup_ratio": 0.2}, {"ema_decay": 0.5}],
    ids=["constant", "cosine", "averaged"],
)
def test_interrupted_training_resumes_to_the_same_adapter(
    tiny_model_dir, tokenizer, tmp_path, options
) -> None:
    # Dropout makes the resumed run depend on the restored random state too; a decaying
    # schedule, on the step's rate being set from the step alone; averaged weights, on the
    # checkpoint carrying the average (recomputed from the resumed weights alone, the first
    # three steps would be missing from it).
    settings = LoraSettings(
        steps=7, batch_size=1, learning_rate=1e-2, dropout=0.1, checkpoint_every=3, **options
    )
    straight = _train(tiny_model_dir, tokenizer, tmp_path / "straight", settings)

    def preempt(step: int, loss: float) -> None:
        if step == 5:
            raise Preempted

    with pytest.raises(Preempted):
        _train(tiny_model_dir, tokenizer, tmp_path / "resumed", settings, on_step=preempt)
    assert not (tmp_path / "resumed" / "adapter").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step-000003"]

    resumed = _train(tiny_model_dir, tokenizer, tmp_path / "resumed", settings)

    assert resumed.resumed_from == 3
    assert resumed.loss_curve == straight.loss_curve
    expected = _adapter_tensors(straight.adapter_dir)
    actual = _adapter_tensors(resumed.adapter_dir)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert expected[key].equal(actual[key]), key


def test_checkpoint_of_other_settings_is_not_resumed(tiny_model_dir, tokenizer, tmp_path) -> None:
    _train(
        tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=2, batch_size=1, checkpoint_every=1)
    )
    other = _train(
        tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=2, batch_size=1, learning_rate=5e-3)
    )
    assert other.resumed_from == 0


def test_a_longer_run_continues_a_shorter_one(tiny_model_dir, tokenizer, tmp_path) -> None:
    _train(tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=2, batch_size=1))
    longer = _train(tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=4, batch_size=1))
    assert longer.resumed_from == 2
    assert len(longer.loss_curve) == 4
    with pytest.raises(ConfigurationError, match="past the 3 steps"):
        _train(tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=3, batch_size=1))


def test_under_a_decaying_schedule_a_longer_run_starts_afresh(
    tiny_model_dir, tokenizer, tmp_path
) -> None:
    # Its rates at the shorter run's steps differ: that run's checkpoint is not its past.
    short = LoraSettings(steps=2, batch_size=1, lr_schedule="linear")
    _train(tiny_model_dir, tokenizer, tmp_path, short)
    rates: list[float] = []
    longer = _train(
        tiny_model_dir, tokenizer, tmp_path, replace(short, steps=4),
        on_metrics=lambda step, metrics: rates.append(metrics["lr"]),
    )  # fmt: skip
    assert longer.resumed_from == 0 and len(longer.loss_curve) == 4
    # Each step's rate is logged (W&B's train/lr): 4/4, 3/4, 2/4, 1/4 of the peak.
    assert rates == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])


def test_named_target_modules_only_get_lora_weights(tiny_model_dir, tokenizer, tmp_path) -> None:
    result = _train(
        tiny_model_dir,
        tokenizer,
        tmp_path,
        LoraSettings(steps=1, target_modules=("q_proj", "v_proj")),
    )
    names = {
        key.split(".lora_")[0].rsplit(".", 1)[-1] for key in _adapter_tensors(result.adapter_dir)
    }
    assert names == {"q_proj", "v_proj"}


def test_unknown_target_module_is_a_configuration_error(
    tiny_model_dir, tokenizer, tmp_path
) -> None:
    with pytest.raises(ConfigurationError, match="cannot attach LoRA"):
        _train(
            tiny_model_dir,
            tokenizer,
            tmp_path,
            LoraSettings(steps=1, target_modules=("no_such_proj",)),
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rank": 0}, "rank must be at least 1"),
        ({"dropout": 1.0}, "dropout"),
        ({"target_modules": ("all-linear", "q_proj")}, "cannot be combined"),
        ({"learning_rate": 0.0}, "learning rate"),
        ({"steps": 0}, "steps"),
        ({"checkpoint_every": 0}, "checkpoint interval"),
    ],
)
def test_settings_are_validated(change: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LoraSettings(**change).validate()


def test_batch_schedule_covers_every_example_once_per_epoch() -> None:
    first_epoch = [i for step in range(3) for i in batch_indices(12, 4, step, seed=0)]
    assert sorted(first_epoch) == list(range(12))
    assert batch_indices(12, 4, 5, seed=0) == batch_indices(12, 4, 5, seed=0)
    assert batch_indices(12, 4, 0, seed=0) != batch_indices(12, 4, 0, seed=1)
    # A batch larger than the set wraps into the next epoch.
    assert sorted(set(batch_indices(3, 8, 0, seed=0))) == [0, 1, 2]


def _padded_tokens(lengths: list[int], batch_size: int, steps: int, grouped: bool) -> int:
    total = 0
    for step in range(steps):
        rows = batch_indices(len(lengths), batch_size, step, 0, lengths if grouped else None)
        total += max(lengths[i] for i in rows) * batch_size
    return total


def test_length_grouped_batches_pad_less_and_still_cover_every_example() -> None:
    # Short pool answers mixed with long composed ones, as a synthesised set has them.
    lengths = [random.Random(i).choice([40, 45, 50, 90, 110, 128]) for i in range(96)]
    epoch = [i for step in range(12) for i in batch_indices(96, 8, step, 3, lengths)]
    assert sorted(epoch) == list(range(96))
    # Each batch spans a narrow band of lengths, and the whole schedule pads far less.
    spans = [
        max(lengths[i] for i in rows) - min(lengths[i] for i in rows)
        for rows in (batch_indices(96, 8, step, 3, lengths) for step in range(12))
    ]
    assert sorted(spans)[len(spans) // 2] <= 20
    grouped = _padded_tokens(lengths, 8, 48, grouped=True)
    plain = _padded_tokens(lengths, 8, 48, grouped=False)
    assert grouped < 0.8 * plain
    # Deterministic for a seed, different across seeds and epochs.
    assert batch_indices(96, 8, 20, 3, lengths) == batch_indices(96, 8, 20, 3, lengths)
    assert epoch_order(96, 8, 0, 3, lengths) != epoch_order(96, 8, 1, 3, lengths)
    assert epoch_order(96, 8, 0, 3, lengths) != epoch_order(96, 8, 0, 4, lengths)
    with pytest.raises(ValueError, match="lengths"):
        batch_indices(96, 8, 0, 3, lengths[:-1])


@pytest.mark.gpu
def test_training_on_cuda_uses_bf16_autocast(tiny_model_dir, tokenizer, tmp_path) -> None:
    result = _train(
        tiny_model_dir, tokenizer, tmp_path, LoraSettings(steps=3, batch_size=2), device="cuda"
    )
    assert result.device.startswith("cuda")
    assert result.autocast == "bfloat16"
    assert all(loss == loss for loss in result.loss_curve)  # no NaN
    assert result.peak_memory_mb > 0
