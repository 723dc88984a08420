"""Deleting and re-creating a cycle of the same name on the operator (emulator, real steps):
an earlier output is reused only when it was made from the same inputs (issue 11, item 1).

The artifact volume outlives the cycle, as a PVC does: before provenance was checked, a
cycle re-created with another `maxNewTokens` reported the old cycle's scores.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kube.cluster import wait_for
from tests.operator.test_operator_integration import Env, G, P, V, env, tiny_spec

pytestmark = [pytest.mark.integration, pytest.mark.cycle]

__all__ = ["env"]  # the fixture, imported for pytest


def _recreate(env: Env, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    if env.cycle(name) is not None:
        env.api.delete_namespaced_custom_object(G, V, env.namespace, P, name)
        wait_for(lambda: env.cycle(name), until=lambda c: c is None, what="the cycle to go")
    env.apply(name, spec)
    return env.wait_phase(name, "Succeeded", timeout=300)


def test_a_recreated_cycle_redoes_steps_whose_inputs_changed_and_reuses_the_rest(
    env: Env, tiny_model_dir: Any
) -> None:
    # A threshold of 0 plans nothing: evaluate-baseline and analyze only.
    spec = tiny_spec(tiny_model_dir, analysis={"scoreThreshold": 0.0})
    results = env.artifacts / env.namespace / "again" / "evaluate-baseline" / "results.json"

    first = _recreate(env, "again", spec)
    assert json.loads(results.read_text())["generation"]["max_new_tokens"] == 8
    uid = first["metadata"]["uid"]

    # Re-created with another maxNewTokens: the baseline is evaluated again, and the plan
    # made from it too (its input changed).
    spec["evaluation"]["maxNewTokens"] = 4
    second = _recreate(env, "again", spec)
    assert second["metadata"]["uid"] != uid
    assert json.loads(results.read_text())["generation"]["max_new_tokens"] == 4
    steps = {s["name"]: s for s in second["status"]["steps"]}
    assert not any("reused" in (s.get("message") or "") for s in steps.values()), steps
    # Jobs of the new cycle have names of their own (a digest of its uid).
    first_jobs = {s["jobName"] for s in first["status"]["steps"]}
    assert first_jobs.isdisjoint(s["jobName"] for s in steps.values())

    # Re-created with the same spec: both steps reuse what the last run made, and say so.
    before = results.stat().st_mtime_ns
    third = _recreate(env, "again", spec)
    steps = {s["name"]: s for s in third["status"]["steps"]}
    assert all("reused" in (s.get("message") or "") for s in steps.values()), steps
    assert results.stat().st_mtime_ns == before
