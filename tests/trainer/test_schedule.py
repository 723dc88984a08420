"""The learning rate of each step: a warmup, then constant or a linear or cosine decay to 0."""

from __future__ import annotations

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.trainer.lora import LoraSettings
from kaizen.trainer.schedule import rate_at, warmup_steps


def rates(schedule: str, steps: int = 10, warmup: float = 0.0) -> list[float]:
    return [round(rate_at(s, steps, 1e-3, schedule, warmup), 9) for s in range(steps)]


def test_a_constant_rate_is_the_rate_at_every_step_after_its_warmup() -> None:
    assert rates("constant") == [1e-3] * 10
    assert rates("constant", warmup=0.2) == [5e-4] + [1e-3] * 9


def test_a_linear_decay_falls_in_a_straight_line_and_the_last_step_still_moves() -> None:
    assert rates("linear") == [round(1e-3 * (10 - s) / 10, 9) for s in range(10)]


def test_warmup_rises_to_the_peak_then_decay_starts_from_it() -> None:
    assert warmup_steps(10, 0.2) == 2 and warmup_steps(10, 0.05) == 1
    found = rates("linear", warmup=0.2)
    assert found[:2] == [5e-4, 1e-3]  # 1/2, 2/2 of the peak
    assert found[2:] == [round(1e-3 * (10 - s) / 8, 9) for s in range(2, 10)]


def test_a_cosine_decay_is_flat_at_the_peak_and_steep_in_the_middle() -> None:
    found = rates("cosine", steps=100)
    assert found[0] == 1e-3 and found[50] == pytest.approx(5e-4)
    assert all(a > b for a, b in zip(found, found[1:], strict=False))
    assert found[-1] > 0 and found[1] - found[2] < found[49] - found[50]


def test_an_unknown_schedule_or_warmup_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="'step'"):
        rate_at(0, 10, 1e-3, "step")
    with pytest.raises(ConfigurationError, match="lr schedule .*'step'"):
        LoraSettings(lr_schedule="step").validate()
    with pytest.raises(ConfigurationError, match="warmup ratio"):
        LoraSettings(lr_schedule="linear", warmup_ratio=1.0).validate()
