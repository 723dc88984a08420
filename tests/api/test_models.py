"""The API models: defaults, camelCase on the wire, errors that name the field."""

from __future__ import annotations

import pytest

from kaizen.api import (
    BUNDLED_MODEL,
    ImprovementCycleSpec,
    SpecError,
    parse_cycle,
    parse_spec,
)


def cycle_doc(spec: object) -> dict[str, object]:
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementCycle",
        "metadata": {"name": "c1"},
        "spec": spec,
    }


def test_defaults_are_pinned() -> None:
    spec = ImprovementCycleSpec()
    assert spec.model.name == BUNDLED_MODEL
    assert spec.evaluation.suite == "demo"
    assert (spec.evaluation.max_new_tokens, spec.evaluation.batch_size) == (32, 64)
    assert (spec.analysis.max_priority_domains, spec.analysis.score_threshold) == (2, 0.7)
    t = spec.training
    assert (
        t.rank,
        t.alpha,
        t.dropout,
        t.target_modules,
        t.learning_rate,
        t.steps,
        t.batch_size,
    ) == (8, 16, 0.0, ["all-linear"], 1e-3, 30, 8)
    assert (spec.merge.combination, spec.merge.density) == ("ties", 0.5)
    v = spec.validation
    assert (v.min_improvement, v.max_regression, v.significance, v.require_significance) == (
        0.0,
        0.1,
        0.05,
        True,
    )
    assert spec.tracking.mode == "offline"
    assert spec.max_step_retries == 1


def test_wire_format_is_camel_case() -> None:
    wire = parse_spec({"evaluation": {"maxNewTokens": 8}, "queueName": "gpu"}).to_wire()
    assert wire["evaluation"]["maxNewTokens"] == 8  # type: ignore[index]
    assert wire["queueName"] == "gpu"
    assert "max_new_tokens" not in str(wire)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"training": {"lerningRate": 0.1}}, "spec.training.lerningRate: unknown field"),
        ({"evaluation": {"maxNewTokens": 0}}, "spec.evaluation.maxNewTokens"),
        ({"merge": {"combination": "average"}}, "spec.merge.combination"),
        ({"training": {"targetModules": []}}, "spec.training.targetModules"),
        ({"resources": {"trainer": {"gpus": -1}}}, "spec.resources.trainer.gpus"),
        ({"model": {"name": "a b"}}, "spec.model"),
        ({"tracking": {"apiKeySecret": {"name": "wandb"}}}, "spec.tracking.apiKeySecret.key"),
        ({"colour": "blue"}, "spec.colour: unknown field"),
        ({"training": {"extraData": ""}}, "spec.training.extraData"),
    ],
)
def test_a_wrong_field_is_rejected_with_its_path(spec: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_cycle(cycle_doc(spec))
    assert field in str(error.value)


def test_snake_case_keys_are_not_accepted_on_the_wire() -> None:
    with pytest.raises(SpecError, match="spec.evaluation.max_new_tokens"):
        parse_spec({"evaluation": {"max_new_tokens": 4}})


def test_wrong_kind_and_name_are_named() -> None:
    with pytest.raises(SpecError, match="kind"):
        parse_cycle({**cycle_doc({}), "kind": "Cycle"})
    with pytest.raises(SpecError, match="metadata.name"):
        parse_cycle({**cycle_doc({}), "metadata": {"name": "Bad_Name"}})
