"""The emulator's write layer: create (with API server defaults), patches, apply and replace."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import kmock
from kmock._internal import rendering

from tests.kube.emulator.common import _error, is_custom, now_iso, random_suffix
from tests.kube.emulator.deletion import EmulatorDeletion
from tests.kube.emulator.patch import PatchTestFailed, json_patch, merge_patch


@attrs.define(kw_only=True)
class EmulatorWrites(EmulatorDeletion):
    """Serve ``create``, ``patch`` (all patch types and apply) and ``PUT`` (replace, pod logs)."""

    def _defaults(self, res: kmock.resource, obj: dict[str, Any]) -> None:
        if (res.group, res.plural) == ("", "pods"):
            obj["status"] = {"phase": "Pending"}
        elif (res.group, res.plural) == ("batch", "jobs"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("suspend", False)
            spec.setdefault("completionMode", "NonIndexed")
            uid = obj["metadata"]["uid"]
            name = obj["metadata"]["name"]
            tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
            labels = tmeta.setdefault("labels", {})
            labels.update(
                {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": name,
                    "controller-uid": uid,
                    "job-name": name,
                }
            )
            spec.setdefault(
                "selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            )
            tspec = spec["template"].setdefault("spec", {})
            tspec.setdefault("restartPolicy", "Never")
            for c in tspec.get("containers", []):
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("terminationMessagePolicy", "File")

    def _create(
        self, res: kmock.resource, info: kmock.ResourceInfo, ns: str | None, body: Any
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if info.namespaced is not False:
            if ns is not None and meta.get("namespace") not in (None, ns):
                raise _error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            ns = ns or meta.get("namespace") or "default"
            meta["namespace"] = ns
        else:
            ns = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _error(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                )
            for _ in range(100):
                candidate = meta["generateName"] + random_suffix()
                if self._get(res, ns, candidate) is None:
                    break
            meta["name"] = candidate
        name = meta["name"]
        if self._get(res, ns, name) is not None:
            raise _error(
                409,
                "AlreadyExists",
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                name=name,
                group=res.group,
                kind=res.plural,
            )
        obj["apiVersion"] = self._api_version(res)
        obj["kind"] = self._kind(res)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(key, None)
        if "status" in info.subresources:
            obj.pop("status", None)
        self._defaults(res, obj)
        created = self._store(res, obj, "ADDED")
        self._collect_if_dangling(res, created)
        return created

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        res = request.resource
        assert res is not None
        if request.subresource:
            raise _error(
                405, "MethodNotAllowed", f"create is not supported on {request.subresource}"
            )
        obj = self._create(res, info, self._namespace(request, info), self._body(request))
        return self._reply(request, obj, 201)

    def _write(
        self,
        res: kmock.resource,
        info: kmock.ResourceInfo,
        old: dict[str, Any],
        new: Any,
        subresource: str | None,
    ) -> dict[str, Any]:
        """Store a new full state computed by a patch/replace, with all the API server rules."""
        if not isinstance(new, dict):
            raise _error(422, "Invalid", "the resulting object is not a JSON object")
        self._check_rv(res, old, (new.get("metadata") or {}).get("resourceVersion"))
        has_status = "status" in info.subresources
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
        else:
            result = copy.deepcopy(new)
            if has_status:
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
            meta = result.setdefault("metadata", {})
            old_meta = old["metadata"]
            for key in (
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            result["apiVersion"] = old.get("apiVersion")
            result["kind"] = old.get("kind")
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:
            return old  # a no-op: no new resourceVersion, no event

        def body_of(o: Mapping[str, Any]) -> dict[str, Any]:
            skip = {"metadata", "apiVersion", "kind"} | ({"status"} if has_status else set())
            return {k: v for k, v in o.items() if k not in skip}

        if body_of(result) != body_of(old):
            result["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta = result["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(res, result)
        return self._store(res, result, "MODIFIED")

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        info = self._info(request)
        res = request.resource
        assert res is not None and request.name is not None
        body = self._body(request)
        if ctype == "application/apply-patch+yaml" and request.subresource is None:
            ns = self._namespace(request, info)
            if self._get(res, ns, request.name) is None:
                body = dict(body or {})
                body.setdefault("metadata", {})["name"] = request.name
                return self._reply(request, self._create(res, info, ns, body), 201)
        res, info, ns, old = self._load_for_write(request)
        try:
            if ctype == "application/json-patch+json":
                if not isinstance(body, list):
                    raise _error(400, "BadRequest", "a JSON patch must be a list of operations")
                new = json_patch(old, body)
            elif ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
                new = merge_patch(old, body)
            elif ctype == "application/strategic-merge-patch+json":
                if is_custom(res):
                    raise _error(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; accepted media types"
                        " include: application/json-patch+json, application/merge-patch+json,"
                        " application/apply-patch+yaml",
                    )
                new = merge_patch(old, body, strategic=True)
            else:
                raise _error(
                    415, "UnsupportedMediaType", f"the patch type {ctype!r} is not supported"
                )
        except PatchTestFailed as e:
            raise _error(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {e}",
            ) from e
        except ValueError as e:
            raise _error(422, "Invalid", f"the patch cannot be applied: {e}") from e
        return self._write(res, info, old, new, request.subresource)

    async def _serve_put(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        res = request.resource
        assert res is not None
        if request.name is None:
            raise _error(405, "MethodNotAllowed", "PUT needs an object name")
        ns = self._namespace(request, info)
        if request.subresource == "log" and "log" in info.subresources:
            if self._get(res, ns, request.name) is None:
                raise self._not_found(res, request.name)
            self.pod_logs[(ns or "", request.name)] = request.text
            return {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}
        res, info, ns, old = self._load_for_write(request)
        body = self._body(request)
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "the body must be a JSON object")
        body_name = (body.get("metadata") or {}).get("name")
        if body_name not in (None, request.name):
            raise _error(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        return self._write(res, info, old, body, request.subresource)
