"""ImprovementChains with the real kopf operator against the HTTP Kubernetes emulator.

The job simulator runs each step Job's real command line (the tiny random llama of
`tests/conftest.py`, the `demo` suite with two items per domain), so the cycles a chain creates
really evaluate, train, merge and validate, and the next cycle really starts from the adapter
the previous one promoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.cluster import CYCLES, EVENTS, wait_for
from tests.operator.test_operator_integration import Env, operator_env, tiny_spec

pytestmark = pytest.mark.integration

G, V = "kaizen.dev", "v1alpha1"
CHAINS_PLURAL = "improvementchains"
CHAINS = f"{G}/{V}/{CHAINS_PLURAL}"
CONFIGMAPS = "v1/configmaps"

#: Gates every candidate passes (the random model's changes are noise): promotion is certain.
ALWAYS_PROMOTE = {"minImprovement": -1.0, "maxRegression": 1.0, "requireSignificance": False}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """The operator must log no error at all."""
    with operator_env(tmp_path, monkeypatch, check_errors=True) as handle:
        yield handle


def apply_chain(env: Env, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementChain",
        "metadata": {"name": name},
        "spec": spec,
    }
    return env.api.create_namespaced_custom_object(G, V, env.namespace, CHAINS_PLURAL, body)


def patch_chain(env: Env, name: str, spec: dict[str, Any]) -> None:
    env.api.patch_namespaced_custom_object(G, V, env.namespace, CHAINS_PLURAL, name, {"spec": spec})


def chain(env: Env, name: str) -> dict[str, Any] | None:
    return env.cluster.get(CHAINS, env.namespace, name)


def wait_chain_phase(env: Env, name: str, phase: str, timeout: float) -> dict[str, Any]:
    found = wait_for(
        lambda: chain(env, name),
        until=lambda c: bool(c) and (c.get("status") or {}).get("phase") in (phase, "Stalled"),
        timeout=timeout,
        interval=0.3,
        what=f"chain {name} to reach {phase}",
    )
    status = found["status"]
    assert status["phase"] == phase, f"chain {name} is {status['phase']}: {status.get('message')}"
    return found


def cycles(env: Env) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in env.cluster.objects(CYCLES, env.namespace)}


def chain_events(env: Env, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in env.cluster.objects(EVENTS, env.namespace)
        if (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == "ImprovementChain"
    ]


@pytest.mark.cycle
def test_a_chain_runs_three_cycles_each_from_the_previous_promoted_adapters(
    env: Env, tiny_model_dir: Path
) -> None:
    template = tiny_spec(tiny_model_dir, validation=ALWAYS_PROMOTE)
    template["evaluation"]["domains"] = ["arithmetic", "geography"]
    template["analysis"]["maxPriorityDomains"] = 1
    created = apply_chain(
        env,
        "loop",
        {
            "template": {"metadata": {"labels": {"team": "ml"}}, "spec": template},
            "afterPrevious": True,
            "stop": {"maxCycles": 3},
            "successfulCyclesHistoryLimit": 1,
        },
    )
    done = wait_chain_phase(env, "loop", "Completed", timeout=1200)
    status = done["status"]

    assert status["stopReason"] == "MaxCycles" and status["cyclesStarted"] == 3
    assert status["observedGeneration"] == done["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    lineage = status["lineage"]
    assert [r["cycle"] for r in lineage] == ["loop-1", "loop-2", "loop-3"]
    assert [r["version"] for r in lineage] == [1, 2, 3] and status["version"] == 3
    assert all(r["promoted"] and r["verdict"] == "Promote" for r in lineage)
    for record in lineage:
        assert record["baseline"]["domains"] and record["candidate"]["domains"]
        assert record["startTime"] and record["completionTime"]
    # Each cycle starts from the adapters its predecessor promoted: the stack grows by one.
    final = {
        name: [v for v in env.cluster.history(CYCLES, env.namespace, name) if v][-1]
        for name in ("loop-1", "loop-2", "loop-3")
    }
    merged = [final[f"loop-{i}"]["status"]["promotedAdapters"][-1] for i in (1, 2, 3)]
    for i, adapter in enumerate(merged, start=1):
        assert adapter.startswith(f"{env.artifacts}/{env.namespace}/loop-{i}/")
    assert [r["adapters"] for r in lineage] == [merged[:1], merged[:2], merged[:3]]
    assert status["adapters"] == merged
    assert all(Path(adapter).is_dir() for adapter in merged)

    # History limit 1: the first two cycles are gone, their records are not.
    remaining = cycles(env)
    assert sorted(remaining) == ["loop-3"]
    last = remaining["loop-3"]
    assert last["spec"]["model"]["adapters"] == merged[:2]
    # ...and is also compared with that version as it was promoted (loop-2's candidate).
    reference = last["spec"]["validation"]["reference"]
    assert reference["name"] == "v2"
    assert reference["results"] == final["loop-2"]["status"]["candidate"]["resultsPath"]
    assert last["metadata"]["labels"]["team"] == "ml"
    assert last["metadata"]["labels"]["kaizen.dev/chain-index"] == "3"
    (owner,) = last["metadata"]["ownerReferences"]
    assert owner["uid"] == created["metadata"]["uid"] and owner["kind"] == "ImprovementChain"
    assert owner["controller"] is True
    # The cycles the chain deleted ran their steps before they went (their Jobs went too).
    for name, adapters in (("loop-1", []), ("loop-2", merged[:1])):
        versions = env.cluster.history(CYCLES, env.namespace, name)
        seen = [v for v in versions if v]
        assert seen[0]["spec"]["model"]["adapters"] == adapters
        assert seen[-1]["status"]["phase"] == "Succeeded"

    # The lineage artifact keeps everything, in the chain's ConfigMap.
    assert status["lineageConfigMap"] == "loop-lineage"
    configmap = env.cluster.get(CONFIGMAPS, env.namespace, "loop-lineage")
    assert configmap is not None
    artifact = json.loads(configmap["data"]["lineage.json"])
    assert artifact["schema"] == 2 and artifact["version"] == 3  # lineage.json v2: test scores
    assert [e["cycle"] for e in artifact["entries"]] == ["loop-1", "loop-2", "loop-3"]
    assert all(e["candidate"]["test"] is not None for e in artifact["entries"])  # validated
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

    events = wait_for(
        lambda: chain_events(env, "loop"),
        until=lambda evs: "ChainCompleted" in {e["reason"] for e in evs},
        what="the ChainCompleted Event",
    )
    reasons = [e["reason"] for e in events]
    assert reasons.count("CycleStarted") == 3 and reasons.count("VersionPromoted") == 3
    assert not [e for e in events if e["type"] == "Warning"]

    # Deleting the chain deletes what it owns (the garbage collector, through ownerReferences).
    env.api.delete_namespaced_custom_object(G, V, env.namespace, CHAINS_PLURAL, "loop")
    wait_for(lambda: cycles(env), until=lambda c: c == {}, what="the chain's cycles to go")
    assert env.cluster.get(CONFIGMAPS, env.namespace, "loop-lineage") is None


def nothing_to_improve(model: Path) -> dict[str, Any]:
    """A cycle that ends after analysis: no domain scores below 0."""
    spec = tiny_spec(model)
    spec["analysis"]["scoreThreshold"] = 0.0
    spec["evaluation"]["domains"] = ["arithmetic"]
    return spec


def test_a_plateau_stops_the_chain(env: Env, tiny_model_dir: Path) -> None:
    apply_chain(
        env,
        "flat",
        {
            "template": {"spec": nothing_to_improve(tiny_model_dir)},
            "afterPrevious": True,
            "stop": {"plateauCycles": 2, "maxCycles": 10},
        },
    )
    done = wait_chain_phase(env, "flat", "Completed", timeout=300)
    status = done["status"]
    assert status["stopReason"] == "Plateau" and status["cyclesStarted"] == 2
    assert [r["reason"] for r in status["lineage"]] == ["NothingToImprove", "NothingToImprove"]
    assert status["version"] == 0 and status["cyclesWithoutPromotion"] == 2
    assert sorted(cycles(env)) == ["flat-1", "flat-2"]


def test_a_chain_with_nothing_new_to_try_stops_exhausted(env: Env, tiny_model_dir: Path) -> None:
    apply_chain(
        env,
        "spent",
        {
            "template": {"spec": nothing_to_improve(tiny_model_dir)},
            "afterPrevious": True,
            "stop": {"maxCycles": 10},
        },
    )
    done = wait_chain_phase(env, "spent", "Completed", timeout=300)
    status = done["status"]
    # its twin would have nothing to train either: one cycle, not ten
    assert status["stopReason"] == "Exhausted" and status["cyclesStarted"] == 1
    assert "the last cycle had nothing to train from version 0" in status["message"]
    assert sorted(cycles(env)) == ["spent-1"]


def test_a_chain_moves_on_when_its_cycle_ends_not_on_its_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    # The safety nets (the cycles' timer, the chain's daemon) wake only every 10 minutes here:
    # the next cycle can only come from the chain's handler of its cycle's end.
    with operator_env(tmp_path, monkeypatch, check_errors=True, reconcile_interval=600) as env:
        apply_chain(
            env,
            "prompt",
            {
                "template": {"spec": nothing_to_improve(tiny_model_dir)},
                "afterPrevious": True,
                # plateauCycles: a second cycle even though the first had nothing to train
                # (without it the chain would stop there, Exhausted)
                "stop": {"maxCycles": 2, "plateauCycles": 5},
            },
        )
        done = wait_chain_phase(env, "prompt", "Completed", timeout=300)
        assert [r["cycle"] for r in done["status"]["lineage"]] == ["prompt-1", "prompt-2"]


def test_a_scheduled_chain_starts_its_cycle_when_due(env: Env, tiny_model_dir: Path) -> None:
    # Every minute: the chain's daemon sleeps until the next minute starts, then the cycle runs.
    apply_chain(
        env,
        "minutely",
        {
            "template": {"spec": nothing_to_improve(tiny_model_dir)},
            "schedule": {"cron": "* * * * *"},
            "stop": {"maxCycles": 1},
        },
    )
    first = wait_for(
        lambda: chain(env, "minutely"),
        until=lambda c: bool(c) and bool((c.get("status") or {}).get("phase")),
        what="the chain's first status",
    )["status"]
    # Unless it was created in the very second a minute began, it first waits for that minute.
    due = first.get("nextRunTime") if first["phase"] == "Waiting" else None
    done = wait_chain_phase(env, "minutely", "Completed", timeout=300)
    status = done["status"]
    assert status["lastScheduleTime"].endswith(":00Z")
    if due is not None:
        assert status["lastScheduleTime"] == due  # the run due then, and only that one
    assert [r["cycle"] for r in status["lineage"]] == ["minutely-1"]
    assert "nextRunTime" not in status  # completed: nothing is due any more


def test_a_suspended_chain_starts_nothing_until_resumed(env: Env, tiny_model_dir: Path) -> None:
    apply_chain(
        env,
        "paused",
        {
            "template": {"spec": nothing_to_improve(tiny_model_dir)},
            "afterPrevious": True,
            "suspend": True,
            "stop": {"maxCycles": 1},
        },
    )
    suspended = wait_chain_phase(env, "paused", "Suspended", timeout=60)
    assert suspended["status"]["cyclesStarted"] == 0 and cycles(env) == {}
    patch_chain(env, "paused", {"suspend": False})
    done = wait_chain_phase(env, "paused", "Completed", timeout=300)
    assert done["status"]["stopReason"] == "MaxCycles"
    assert sorted(cycles(env)) == ["paused-1"]


def test_an_invalid_chain_stalls_naming_the_field(env: Env, tiny_model_dir: Path) -> None:
    # The emulator does no OpenAPI validation: the operator's own check is what runs here.
    apply_chain(
        env,
        "broken",
        {
            "template": {"spec": nothing_to_improve(tiny_model_dir)},
            "schedule": {"cron": "0 25 * * *"},
        },
    )
    stalled = wait_chain_phase(env, "broken", "Stalled", timeout=60)
    status = stalled["status"]
    assert "spec.schedule.cron" in status["message"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Stalled"] == ("True", "InvalidSpec")
    assert conditions["Ready"] == ("False", "InvalidSpec")
    events = wait_for(
        lambda: chain_events(env, "broken"),
        until=lambda evs: any(e["reason"] == "InvalidSpec" for e in evs),
        what="an InvalidSpec Event",
    )
    assert events[0]["type"] == "Warning"
    assert cycles(env) == {}
