"""Operator settings that end up in every Job are checked at start-up with the spec's rules."""

from __future__ import annotations

import pytest

from kaizen.operator.settings import OperatorSettings


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("KAIZEN_DEFAULT_CPU", "lots", "not a Kubernetes quantity"),
        ("KAIZEN_DEFAULT_MEMORY", "4 GB", "not a Kubernetes quantity"),
        ("KAIZEN_DEFAULT_MEMORY", "0", "more than zero"),
        ("KAIZEN_DEFAULT_QUEUE_NAME", "gpu queue", "label value"),
        ("KAIZEN_DEFAULT_QUEUE_NAME", "q" * 64, "at most 63"),
        ("KAIZEN_HUB_TOKEN_SECRET", "HF_Secret/token", "secret name 'HF_Secret'"),
        ("KAIZEN_WANDB_API_KEY_SECRET", "wandb/api key", "key 'api key'"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=variable) as error:
        OperatorSettings.from_env({variable: value})
    assert says in str(error.value)


def test_good_values_are_kept_as_written() -> None:
    settings = OperatorSettings.from_env(
        {
            "KAIZEN_DEFAULT_CPU": "500m",
            "KAIZEN_DEFAULT_MEMORY": "1.5Gi",
            "KAIZEN_DEFAULT_QUEUE_NAME": "team-a.gpu_queue",
            "KAIZEN_HUB_TOKEN_SECRET": "hf.tokens/HF_TOKEN",
        }
    )
    assert (settings.default_cpu, settings.default_memory) == ("500m", "1.5Gi")
    assert settings.default_queue_name == "team-a.gpu_queue"
    assert settings.hub_token_secret == "hf.tokens/HF_TOKEN"
