"""Editing a running cycle on the operator (emulator, real steps): the edit is answered, never
run, so the baseline and the candidate are evaluated alike (issue 11, items 2 and 9)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube.cluster import wait_for
from tests.operator.test_operator_integration import Env, G, P, V, env, tiny_spec

pytestmark = [pytest.mark.integration, pytest.mark.cycle]

__all__ = ["env"]  # the fixture, imported for pytest


def _max_new_tokens(env: Env, step: str) -> int:
    path = env.artifacts / env.namespace / "edited" / step / "results.json"
    return int(json.loads(path.read_text())["generation"]["max_new_tokens"])


def _conditions(cycle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in cycle["status"]["conditions"]}


def test_an_edit_while_running_is_not_run_and_reverting_restores_ready(
    env: Env, tiny_model_dir: Any
) -> None:
    env.apply(
        "edited",
        tiny_spec(tiny_model_dir, analysis={"scoreThreshold": 1.0, "maxPriorityDomains": 1}),
    )
    env.wait_phase("edited", "Analyzing", timeout=300)
    # maxNewTokens edited once the baseline ran (generation 2).
    env.api.patch_namespaced_custom_object(
        G, V, env.namespace, P, "edited", {"spec": {"evaluation": {"maxNewTokens": 4}}}
    )
    cycle = env.wait_phase("edited", "Succeeded", timeout=420)
    assert cycle["metadata"]["generation"] == 2
    assert (
        _max_new_tokens(env, "evaluate-baseline") == _max_new_tokens(env, "evaluate-candidate") == 8
    )
    status = cycle["status"]
    assert status["runGeneration"] == 1 and status["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}
    conditions = _conditions(cycle)
    assert (conditions["SpecApplied"]["status"], conditions["SpecApplied"]["reason"]) == (
        "False",
        "EditNotRun",
    )
    assert "spec.evaluation.maxNewTokens" in conditions["SpecApplied"]["message"]
    assert (conditions["Ready"]["status"], conditions["Stalled"]["status"]) == ("False", "True")
    assert conditions["Succeeded"]["status"] == "True"
    warnings = wait_for(
        lambda: [e for e in env.events("edited") if e["reason"] == "EditNotRun"],
        what="the EditNotRun Event",
    )
    assert warnings[0]["type"] == "Warning"

    # Reverted: Ready again, for generation 3.
    env.api.patch_namespaced_custom_object(
        G, V, env.namespace, P, "edited", {"spec": {"evaluation": {"maxNewTokens": 8}}}
    )
    cycle = wait_for(
        lambda: env.cycle("edited"),
        until=lambda c: c["status"].get("observedGeneration") == 3,
        what="the revert to be answered",
    )
    conditions = _conditions(cycle)
    assert (conditions["Ready"]["status"], conditions["SpecApplied"]["status"]) == ("True", "True")
    assert {c["observedGeneration"] for c in cycle["status"]["conditions"]} == {3}
