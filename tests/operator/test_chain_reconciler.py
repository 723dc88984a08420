"""The operator's chain reconciliation against a recording fake of its API calls: what it calls,
in which order, and what it writes (the emulator tests run the same code over HTTP)."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from typing import Any

from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import MergeDigest, ScoreDigest, ValidationDigest
from kaizen.operator.chain import ChainReconciler

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UID = "chain-uid"


class FakeKube:
    """The chain's API calls over dicts; `calls` records (verb, name) in order."""

    def __init__(self, chain: dict[str, Any]) -> None:
        self.chain = chain
        self.cycles: dict[str, dict[str, Any]] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    async def get_chain(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.chain) if self.chain is not None else None

    async def patch_chain_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch-status", name))
        status = self.chain.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value

    async def list_cycles(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        assert label_selector == "kaizen.dev/chain=loop"
        return [copy.deepcopy(c) for c in self.cycles.values()]

    async def create_cycle(self, manifest: dict[str, Any], owner_uid: str) -> None:
        self.calls.append(("create-cycle", manifest["metadata"]["name"]))
        self.cycles[manifest["metadata"]["name"]] = manifest

    async def delete_cycles(self, namespace: str, names: Any) -> list[str]:
        deleted: list[str] = list(names)
        for name in deleted:
            self.calls.append(("delete-cycle", name))
            del self.cycles[name]
        return deleted

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.config_maps.get(name))

    async def put_config_map(self, manifest: dict[str, Any]) -> None:
        self.calls.append(("put-config-map", manifest["metadata"]["name"]))
        self.config_maps[manifest["metadata"]["name"]] = manifest


def finish(cycle: dict[str, Any], promoted: bool = True) -> None:
    """Give a created cycle the status of a finished one."""
    name = cycle["metadata"]["name"]
    start = cycle["spec"]["model"].get("adapters", [])
    merged = f"/artifacts/ml/{name}/merge/adapter"
    cycle["status"] = ImprovementCycleStatus(
        phase=Phase.SUCCEEDED,
        baseline=ScoreDigest(overall=0.4, domains={"geo": 0.4}),
        candidate=ScoreDigest(
            overall=0.5, domains={"geo": 0.5}, results_path=f"/artifacts/ml/{name}/c.json"
        ),
        merged=MergeDigest(path=merged, combination="ties"),
        validation=ValidationDigest(
            verdict="Promote" if promoted else "Reject", overall_delta=0.1, p_value=0.01
        ),
        promoted_adapters=[*start, merged] if promoted else start,
    ).to_wire()


def reconciler(kube: FakeKube) -> tuple[ChainReconciler, list[tuple[str, str, str]]]:
    events: list[tuple[str, str, str]] = []
    return (
        ChainReconciler(
            kube,
            post_event=lambda body, type_, reason, message: events.append((type_, reason, message)),
            clock=lambda: NOW,
        ),
        events,
    )


def chain_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementChain",
        "metadata": {"name": "loop", "namespace": "ml", "uid": UID, "generation": 1},
        "spec": {"afterPrevious": True, "template": {"spec": {"model": {"name": "m"}}}, **spec},
    }


def test_the_next_cycle_is_created_first_then_the_lineage_then_the_status_then_deletions() -> None:
    kube = FakeKube(chain_body(successfulCyclesHistoryLimit=0))
    chains, events = reconciler(kube)
    asyncio.run(chains.reconcile("ml", "loop"))
    assert kube.calls == [("create-cycle", "loop-1"), ("patch-status", "loop")]
    created = kube.cycles["loop-1"]
    (owner,) = created["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("ImprovementChain", UID, True)
    assert created["metadata"]["labels"] == {
        "kaizen.dev/chain": "loop",
        "kaizen.dev/chain-index": "1",
    }
    assert created["metadata"]["annotations"] == {"kaizen.dev/chain-generation": "1"}
    assert kube.chain["status"]["currentCycle"] == "loop-1"

    kube.calls.clear()
    finish(kube.cycles["loop-1"])
    asyncio.run(chains.reconcile("ml", "loop"))
    assert kube.calls == [
        ("create-cycle", "loop-2"),
        ("put-config-map", "loop-lineage"),
        ("patch-status", "loop"),
        ("delete-cycle", "loop-1"),  # history limit 0: after its record is safe
    ]
    assert kube.cycles["loop-2"]["spec"]["model"]["adapters"] == [
        "/artifacts/ml/loop-1/merge/adapter"
    ]
    assert kube.cycles["loop-2"]["spec"]["validation"]["reference"] == {
        "results": "/artifacts/ml/loop-1/c.json",
        "name": "v1",
    }
    configmap = kube.config_maps["loop-lineage"]
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == UID
    lineage = json.loads(configmap["data"]["lineage.json"])
    assert [e["cycle"] for e in lineage["entries"]] == ["loop-1"] and lineage["version"] == 1
    status = kube.chain["status"]
    assert status["lineageConfigMap"] == "loop-lineage" and status["version"] == 1
    assert [e[1] for e in events] == ["CycleStarted", "VersionPromoted", "CycleStarted"]

    # Nothing new: nothing is called but the reads.
    kube.calls.clear()
    events.clear()
    asyncio.run(chains.reconcile("ml", "loop"))
    assert kube.calls == [] and events == []


def test_the_lineage_artifact_is_rebuilt_from_the_status_when_its_config_map_is_gone() -> None:
    kube = FakeKube(chain_body())
    chains, _ = reconciler(kube)
    asyncio.run(chains.reconcile("ml", "loop"))
    finish(kube.cycles["loop-1"])
    asyncio.run(chains.reconcile("ml", "loop"))
    del kube.config_maps["loop-lineage"]  # someone deleted it
    finish(kube.cycles["loop-2"], promoted=False)
    asyncio.run(chains.reconcile("ml", "loop"))
    lineage = json.loads(kube.config_maps["loop-lineage"]["data"]["lineage.json"])
    assert [(e["cycle"], e["reason"]) for e in lineage["entries"]] == [
        ("loop-1", "Promoted"),
        ("loop-2", "Rejected"),
    ]


def test_an_invalid_chain_creates_nothing_and_says_why() -> None:
    kube = FakeKube(chain_body(concurrencyPolicy="Allow"))
    chains, events = reconciler(kube)
    asyncio.run(chains.reconcile("ml", "loop"))
    assert kube.calls == [("patch-status", "loop")]
    status = kube.chain["status"]
    assert status["phase"] == "Stalled" and "spec.concurrencyPolicy" in status["message"]
    assert events[0][:2] == ("Warning", "InvalidSpec")


def test_cycles_of_another_owner_are_not_the_chains() -> None:
    kube = FakeKube(chain_body())
    kube.cycles["loop-7"] = {
        "metadata": {
            "name": "loop-7",
            "labels": {"kaizen.dev/chain": "loop", "kaizen.dev/chain-index": "7"},
            "ownerReferences": [{"uid": "someone-else"}],
        },
        "spec": {},
    }
    chains, _ = reconciler(kube)
    asyncio.run(chains.reconcile("ml", "loop"))
    assert ("create-cycle", "loop-1") in kube.calls and "loop-7" in kube.cycles


def test_a_scheduled_chain_tells_its_daemon_when_to_wake() -> None:
    from kaizen.operator.chain import seconds_until

    body = chain_body(schedule={"cron": "30 12 * * *"})
    body["spec"].pop("afterPrevious")
    body["metadata"]["creationTimestamp"] = "2026-12-01T11:00:00Z"
    kube = FakeKube(body)
    chains, _ = reconciler(kube)
    asyncio.run(chains.reconcile("ml", "loop"))
    assert kube.calls == [("patch-status", "loop")]  # 12:00: nothing due yet
    wake = chains.wake_at[("ml", "loop")]
    assert wake == datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert kube.chain["status"]["nextRunTime"] == "2026-12-01T12:30:00Z"
    # The daemon sleeps until then (a half-second margin), at most its interval.
    assert seconds_until(wake, NOW, cap=3600) == 1800.5
    assert seconds_until(wake, NOW, cap=60) == 60
    assert seconds_until(None, NOW, cap=60) == 60
    # Once the chain is gone, there is nothing to wake for.
    kube.chain = None  # type: ignore[assignment]
    assert asyncio.run(chains.reconcile("ml", "loop")) is None
    assert ("ml", "loop") not in chains.wake_at
