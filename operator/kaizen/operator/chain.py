"""One reconciliation of one `ImprovementChain`: read it and its cycles, ask the chain engine,
apply the decision.

Order of effects: the next cycle is created first (its name is deterministic, so a retry finds
it rather than making a second one); then the lineage artifact (ConfigMap `<chain>-lineage`)
gets the newly folded records; then the status is written; only then are old cycles deleted
(their records are safe by then); Events last. The chain never patches a cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kaizen.api.chain import (
    CHAIN_KIND,
    ImprovementChain,
    ImprovementChainStatus,
    parse_chain,
    rfc3339,
)
from kaizen.api.lineage import ChainLineage, LineageEntry
from kaizen.api.resource import API_VERSION, ImprovementCycle, SpecError, parse_spec
from kaizen.api.status import ImprovementCycleStatus
from kaizen.cycle.chain import (
    ANNOTATION_CHAIN_GENERATION,
    LABEL_CHAIN,
    LABEL_CHAIN_INDEX,
    ChainDecision,
    ObservedCycle,
    invalid_chain,
    reconcile_chain,
)
from kaizen.cycle.types import CycleEvent
from kaizen.operator.reconciler import EventPoster, merge_patch, owned_by

logger = logging.getLogger(__name__)

#: The key of the lineage artifact in the chain's ConfigMap.
LINEAGE_KEY = ChainLineage.FILE_NAME
#: Bytes of lineage kept in the ConfigMap (the API server refuses ConfigMaps over 1 MiB).
CONFIG_MAP_BUDGET = 900_000


class ChainKubeCalls(Protocol):
    """The API calls a chain reconciliation needs (`kaizen.operator.kube.Kube`)."""

    async def get_chain(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_chain_status(
        self, namespace: str, name: str, status_patch: dict[str, Any]
    ) -> Any: ...

    async def list_cycles(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    async def create_cycle(self, manifest: dict[str, Any], owner_uid: str) -> Any: ...

    async def delete_cycles(self, namespace: str, names: Any) -> list[str]: ...

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def put_config_map(self, manifest: dict[str, Any]) -> None: ...


def lineage_config_map_name(chain: str) -> str:
    return f"{chain}-lineage"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller ownerReference to a Kaizen object."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def cycle_manifest(cycle: ImprovementCycle, chain: str, uid: str) -> dict[str, Any]:
    """The cycle object to create, owned by the chain."""
    meta = cycle.metadata
    extra = meta.model_extra or {}
    return {
        "apiVersion": API_VERSION,
        "kind": "ImprovementCycle",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": dict(extra.get("labels") or {}),
            "annotations": dict(extra.get("annotations") or {}),
            "ownerReferences": [owner_reference(CHAIN_KIND, chain, uid)],
        },
        "spec": cycle.spec.to_wire(),
    }


def observe_cycle(obj: Mapping[str, Any]) -> ObservedCycle | None:
    """What the chain engine needs of one cycle object; None for one without a chain index."""
    meta = obj.get("metadata") or {}
    try:
        index = int((meta.get("labels") or {})[LABEL_CHAIN_INDEX])
    except (KeyError, ValueError):
        return None
    status = None
    if obj.get("status"):
        try:
            status = ImprovementCycleStatus.model_validate(obj["status"])
        except ValueError:
            status = None
    generation = (meta.get("annotations") or {}).get(ANNOTATION_CHAIN_GENERATION)
    try:
        spec = parse_spec(obj.get("spec"))
    except SpecError:
        spec = None
    return ObservedCycle(
        name=meta["name"],
        index=index,
        status=status,
        chain_generation=int(generation) if generation and generation.isdigit() else None,
        deleting=bool(meta.get("deletionTimestamp")),
        spec=spec,
    )


def merged_lineage(
    existing: ChainLineage | None, chain: ImprovementChain, decision: ChainDecision, now: str
) -> ChainLineage:
    """The lineage artifact with the decision's new records appended (each index once)."""
    entries = list(existing.entries) if existing else []
    known = {entry.index for entry in entries}
    entries += [LineageEntry.from_record(r) for r in decision.recorded if r.index not in known]
    model = chain.spec.template.spec.model
    return ChainLineage(
        chain=chain.metadata.name,
        namespace=chain.metadata.namespace,
        model=model.name,
        base_adapters=list(model.adapters),
        suite=chain.spec.template.spec.evaluation.suite,
        version=decision.status.version,
        adapters=list(decision.status.adapters),
        entries=sorted(entries, key=lambda entry: entry.index),
        updated=now,
    )


@dataclasses.dataclass
class ChainOutcome:
    """What one chain reconciliation did (for logs, the daemon and tests)."""

    decision: ChainDecision
    created: str | None = None
    deleted: list[str] = dataclasses.field(default_factory=list)


class ChainReconciler:
    """Reconciles chains one at a time per chain; shared by the chain handlers and its daemon."""

    def __init__(
        self,
        kube: ChainKubeCalls,
        *,
        post_event: EventPoster,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.post_event = post_event
        self.clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: When each chain wants to be looked at next (its next scheduled run), for its daemon.
        self.wake_at: dict[tuple[str, str], datetime | None] = {}

    async def reconcile(self, namespace: str, name: str) -> ChainOutcome | None:
        """Reconcile one chain; None when it is gone or being deleted."""
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._reconcile(namespace, name)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _reconcile(self, namespace: str, name: str) -> ChainOutcome | None:
        body = await self.kube.get_chain(namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self.wake_at.pop((namespace, name), None)
            return None
        meta = body.get("metadata") or {}
        uid = meta.get("uid") or ""
        now = self.clock()
        old_status: dict[str, Any] = dict(body.get("status") or {})
        chain: ImprovementChain | None = None
        try:
            parsed = parse_chain({**body, "status": None})
        except SpecError as error:
            decision = invalid_chain(
                _loose_status(old_status), meta.get("generation"), str(error), now
            )
        else:
            chain = parsed.model_copy(update={"status": _loose_status(old_status)})
            objects = await self.kube.list_cycles(namespace, f"{LABEL_CHAIN}={name}")
            observed = [
                seen
                for obj in objects
                if owned_by(obj, uid) and (seen := observe_cycle(obj)) is not None
            ]
            decision = reconcile_chain(chain, observed, now)
        outcome = ChainOutcome(decision=decision)
        self.wake_at[(namespace, name)] = decision.wake_at

        if decision.create is not None and chain is not None:
            await self.kube.create_cycle(cycle_manifest(decision.create, name, uid), uid)
            outcome.created = decision.create.metadata.name
        if decision.recorded and chain is not None:
            await self._write_lineage(namespace, name, uid, chain, decision, rfc3339(now))
        if chain is not None and (decision.recorded or old_status.get("lineageConfigMap")):
            decision.status.lineage_config_map = lineage_config_map_name(name)

        new_status = decision.status.to_wire()
        if new_status != old_status:
            await self.kube.patch_chain_status(namespace, name, merge_patch(old_status, new_status))
        if decision.delete:
            outcome.deleted = await self.kube.delete_cycles(namespace, decision.delete)
        for event in decision.events:
            self._post(body, event)
        return outcome

    async def _write_lineage(
        self,
        namespace: str,
        name: str,
        uid: str,
        chain: ImprovementChain,
        decision: ChainDecision,
        now: str,
    ) -> None:
        config_map = lineage_config_map_name(name)
        existing = None
        found = await self.kube.get_config_map(namespace, config_map)
        text = ((found or {}).get("data") or {}).get(LINEAGE_KEY)
        if text:
            try:
                existing = ChainLineage.model_validate(json.loads(text))
            except ValueError as error:
                logger.warning("ConfigMap %s/%s is unreadable (%s)", namespace, config_map, error)
                existing = None
        if existing is None and chain.status is not None and chain.status.lineage:
            # Never lose what the status still holds: start the artifact again from it.
            seed = [LineageEntry.from_record(r) for r in chain.status.lineage]
            existing = merged_lineage(None, chain, decision, now).model_copy(
                update={"entries": seed}
            )
        lineage = merged_lineage(existing, chain, decision, now)
        text = json.dumps(lineage.to_dict(), indent=1) + "\n"
        while len(text.encode()) > CONFIG_MAP_BUDGET and len(lineage.entries) > 1:
            # A ConfigMap holds at most 1 MiB: the oldest records go first (and a warning says so).
            dropped = max(1, len(lineage.entries) // 10)
            logger.warning(
                "Lineage of %s/%s too large: dropping %d oldest", namespace, name, dropped
            )
            lineage = lineage.model_copy(update={"entries": lineage.entries[dropped:]})
            text = json.dumps(lineage.to_dict(), indent=1) + "\n"
        await self.kube.put_config_map(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": config_map,
                    "namespace": namespace,
                    "labels": {
                        LABEL_CHAIN: name,
                        "app.kubernetes.io/managed-by": "kaizen-operator",
                    },
                    "ownerReferences": [owner_reference(CHAIN_KIND, name, uid)],
                },
                "data": {LINEAGE_KEY: text},
            }
        )

    def _post(self, body: Mapping[str, Any], event: CycleEvent) -> None:
        try:
            self.post_event(body, event.type, event.reason, event.message[:1024])
        except Exception as error:  # noqa: BLE001 - an Event is news, not state
            logger.warning("Posting event %s failed: %s", event.reason, error)


def _loose_status(raw: Any) -> ImprovementChainStatus | None:
    if not raw:
        return None
    try:
        return ImprovementChainStatus.model_validate(raw)
    except ValueError:
        return None


def seconds_until(moment: datetime | None, now: datetime, cap: float) -> float:
    """How long the chain's daemon sleeps: until `moment` (plus a margin), at most `cap`."""
    if moment is None:
        return cap
    return max(0.5, min(cap, (moment - now).total_seconds() + 0.5))


__all__ = [
    "ChainOutcome",
    "ChainReconciler",
    "cycle_manifest",
    "lineage_config_map_name",
    "observe_cycle",
    "seconds_until",
]
