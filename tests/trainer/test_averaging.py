"""The adapter as a moving average of its weights: the rule and the saved adapter (the resume:
test_lora's interrupted-training test)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from kaizen.api.args_training import TrainArgs
from kaizen.api.runner import ConfigurationError
from kaizen.trainer.averaging import WeightAverage, decay_at
from kaizen.trainer.lora import CHECKPOINTS, LoraSettings
from kaizen.trainer.steps import lora_settings
from tests.trainer.test_lora import _adapter_tensors, _train


def test_the_rate_warms_up_then_stays_at_the_decay() -> None:
    assert decay_at(0, 0.99) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert decay_at(10, 0.99) == pytest.approx(11 / 20)
    assert decay_at(889, 0.99) < 0.99 and decay_at(890, 0.99) == 0.99
    assert decay_at(5, 0.3) == 0.3  # the decay caps it once the warm-up passes it


def test_the_average_follows_the_weights_by_the_rate() -> None:
    weight = torch.zeros(2, dtype=torch.bfloat16)
    average = WeightAverage([weight], decay=0.99)
    weight.fill_(1.0)
    average.update(0)  # 0.1 × 0 + 0.9 × 1
    assert average.averages[0].tolist() == pytest.approx([0.9, 0.9])
    assert average.averages[0].dtype == torch.float32  # kept in float32 whatever the weights
    weight.fill_(2.0)
    average.update(1)  # 2/11 × 0.9 + 9/11 × 2
    assert average.averages[0].tolist() == pytest.approx([1.8, 1.8])
    saved = average.state()
    average.apply()
    assert weight.tolist() == [1.796875, 1.796875]  # 1.8 in bfloat16
    other = WeightAverage([torch.zeros(2)], decay=0.99)
    other.load(saved)
    assert other.averages[0].tolist() == pytest.approx([1.8, 1.8])
    with pytest.raises(ValueError, match="averages 1 weights, the adapter has 2"):
        WeightAverage([torch.zeros(1), torch.zeros(1)], decay=0.5).load(saved)


def test_the_adapter_saved_is_the_average_and_the_checkpoint_the_last_weights(
    tiny_model_dir, tokenizer, tmp_path
) -> None:
    settings = LoraSettings(steps=6, batch_size=1, learning_rate=1e-2, checkpoint_every=6)
    last = _train(tiny_model_dir, tokenizer, tmp_path / "last", settings)
    averaged = _train(
        tiny_model_dir,
        tokenizer,
        tmp_path / "averaged",
        replace(settings, ema_decay=0.9),
    )
    # The same steps (the average never feeds back into training) ...
    assert averaged.loss_curve == last.loss_curve
    checkpoint = tmp_path / "averaged" / CHECKPOINTS / "step-000006"
    last_weights = _adapter_tensors(last.adapter_dir)
    # ... so the checkpoint holds the plain run's last weights, and the adapter differs.
    for key, value in _adapter_tensors(checkpoint).items():
        assert value.equal(last_weights[key]), key
    saved = _adapter_tensors(averaged.adapter_dir)
    assert saved.keys() == last_weights.keys()
    moved = [key for key in saved if "lora_B" in key and not saved[key].equal(last_weights[key])]
    assert moved  # the B matrices start at 0 and every step moves them


def test_a_checkpoint_without_an_average_is_not_resumed_by_a_run_with_one(
    tiny_model_dir, tokenizer, tmp_path
) -> None:
    plain = LoraSettings(steps=2, batch_size=1, checkpoint_every=1)
    _train(tiny_model_dir, tokenizer, tmp_path, plain)
    averaged = _train(tiny_model_dir, tokenizer, tmp_path, replace(plain, ema_decay=0.9))
    assert averaged.resumed_from == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ema_decay": 1.0}, r"ema decay must be in \[0, 1\)"),
        ({"ema_decay": -0.1}, "ema decay"),
        ({"ema_decay": 0.9, "parallelism": "fsdp"}, "cannot be combined with fsdp"),
    ],
)
def test_the_decay_is_validated(change: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LoraSettings(**change).validate()


def test_the_train_step_takes_the_decay(tmp_path: Path) -> None:
    args = TrainArgs(output=str(tmp_path), model="m", suite="demo", domain="d", ema_decay=0.9)
    assert lora_settings(args).ema_decay == 0.9  # what train_lora is given
    with pytest.raises(ValidationError, match="--ema-decay cannot be combined with --parallelism"):
        TrainArgs(
            output=str(tmp_path), model="m", suite="demo", domain="d", ema_decay=0.9,
            parallelism="fsdp",
        )  # fmt: skip
