"""The emulator's deletion layer: finalizers, preconditions, propagation policies and the GC
(dependents of a removed object, and objects created with no owner left)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import attrs
import kmock
from kmock._internal import rendering

from tests.kube.emulator.common import _error, now_iso
from tests.kube.emulator.reads import EmulatorReads


@attrs.define(kw_only=True)
class EmulatorDeletion(EmulatorReads):
    """Serve ``delete`` and ``deletecollection``; remove objects and collect their dependents."""

    def _remove(self, res: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (res, meta.get("namespace"), meta["name"])
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key].history.append(copy.deepcopy(final))  # the last state, for assertions
        self._objects[key].delete()
        if (res.group, res.plural) == ("", "pods"):
            self.pod_logs.pop((meta.get("namespace") or "", meta["name"]), None)
        self._record(res, "DELETED", final)
        policy = self._pending_policy.pop(meta["uid"], "Background")
        self._collect(meta["uid"], policy)
        return final

    def _dependents(self, uid: str) -> list[tuple[kmock.resource, dict[str, Any]]]:
        found = []
        for (r, _ns, _name), obj in list(self._objects.items()):
            if obj.deleted:
                continue
            refs = obj.raw.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                found.append((r, copy.deepcopy(obj.raw)))
        return found

    def _collect(self, uid: str, policy: str) -> None:
        """The garbage collector's share of a removal: delete or orphan the dependents."""
        for res, dep in self._dependents(uid):
            meta = dep["metadata"]
            if policy == "Orphan":
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = [
                    r for r in meta.get("ownerReferences", []) if r.get("uid") != uid
                ]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._store(res, new, "MODIFIED")
            else:
                others = [r for r in meta.get("ownerReferences", []) if r.get("uid") != uid]
                if any(self._uid_alive(r.get("uid")) for r in others):
                    continue  # another owner keeps it alive
                self._delete(res, dep, "Background")

    def _collect_if_dangling(self, res: kmock.resource, obj: dict[str, Any]) -> None:
        """The garbage collector's share of a creation: an object created with owners that
        are all gone (a controller that read its owner just before the owner was deleted) is
        deleted, as the real garbage collector deletes a dependent with no owner left."""
        uids = [ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or []]
        if uids and all(uids) and not any(self._uid_alive(uid) for uid in uids):
            self._delete(res, obj, "Background")  # it copies what it stores

    def _uid_alive(self, uid: str | None) -> bool:
        return any(
            not obj.deleted and obj.raw.get("metadata", {}).get("uid") == uid
            for obj in self._objects.values()
        )

    def _delete(self, res: kmock.resource, obj: dict[str, Any], policy: str) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj
        if policy == "Foreground":
            for dep_res, dep in self._dependents(meta["uid"]):
                self._delete(dep_res, dep, "Foreground")
            policy = "Background"
        if meta.get("finalizers"):
            self._pending_policy[meta["uid"]] = policy
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._store(res, new, "MODIFIED")
        self._pending_policy[meta["uid"]] = policy
        return self._remove(res, obj)

    def _policy(
        self, request: rendering.Request, res: kmock.resource, options: Mapping[str, Any]
    ) -> str:
        policy = request.params.get("propagationPolicy") or options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:
            is_batch_v1_job = (res.group, res.version, res.plural) == ("batch", "v1", "jobs")
            policy = "Orphan" if is_batch_v1_job and self.job_default_orphan else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise _error(400, "BadRequest", f"invalid propagationPolicy {policy!r}")
        return policy

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        res, info, ns, old = self._load_for_write(request)
        options = self._body(request)
        options = options if isinstance(options, dict) else {}
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise _error(409, "Conflict", "Precondition failed: UID in precondition does not match")
        self._check_rv(res, old, pre.get("resourceVersion"))
        return self._delete(res, old, self._policy(request, res, options))

    async def _serve_delete_collection(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        res = request.resource
        assert res is not None
        if request.name is not None:
            raise NotImplementedError  # not ours: let other reactions answer
        options = self._body(request)
        options = options if isinstance(options, dict) else {}
        policy = self._policy(request, res, options)
        items = [
            self._delete(res, obj, policy)
            for obj in self._select(request, res, self._namespace(request, info))
        ]
        return {
            "apiVersion": self._api_version(res),
            "kind": f"{self._kind(res)}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }
