"""A more realistic Kubernetes API emulator on top of ``kmock.KubernetesEmulator`` (kmock 0.8).

Plain kmock stores objects as merged dicts and streams every stored object on every watch.
:class:`RealisticEmulator` keeps kmock's discovery, object store (``emulator.objects``, with the
history of every object) and reaction DSL, but serves all object reads and writes itself:

* ``metadata.uid``, ``resourceVersion`` (one global counter), ``creationTimestamp`` and
  ``generation`` are stamped on create; the namespace comes from the URL; ``generateName``
  generates a name; create answers ``201``.
* writes: JSON-patch (all RFC 6902 ops, ``test`` failures answer ``422``), merge-patch,
  strategic-merge-patch (approximated as a merge-patch: lists are replaced), server-side apply
  (approximated as create-or-merge-patch, no field managers), and ``PUT`` as a replace.
  A no-op write changes nothing (no new resourceVersion, no watch event).
* ``409 Conflict`` when a body carries a ``metadata.resourceVersion`` other than the stored one.
* ``generation`` is bumped only when the object outside ``metadata`` (and ``status`` for
  resources with a status subresource) changes.
* ``/status`` semantics for resources that declare the ``status`` subresource: writes to the
  main object keep the stored status; writes to ``/status`` change only ``status``; create drops
  ``status`` (Pods start as ``phase: Pending``).
* lists: ``kind: <Kind>List``, ``apiVersion``, a numeric ``resourceVersion``; ``labelSelector``
  (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) and ``fieldSelector`` (dotted
  paths, ``=``/``==``/``!=``) on lists, watches and delete-collection.
* watches: ``timeoutSeconds`` ends the stream; ``resourceVersion=N`` replays the recorded
  events after ``N`` (never older ones); no or ``0`` resourceVersion sends the current objects
  as ``ADDED`` first; a too-old resourceVersion gets an ``ERROR`` event with ``410 Gone``;
  ``allowWatchBookmarks`` gets a ``BOOKMARK`` before a timeout; streamed as ``application/json``.
* deletion: finalizers keep the object with a ``deletionTimestamp`` until the last finalizer is
  removed; ``preconditions`` are checked; ownerReference garbage collection on removal
  (``Background`` and ``Foreground`` remove dependents recursively, ``Orphan`` strips the
  ownerReference). As on a real API server, batch/v1 Jobs default to ``Orphan`` when no
  ``propagationPolicy`` is given (set :attr:`RealisticEmulator.job_default_orphan` to change).
* Jobs get the API server's defaults (``backoffLimit: 6``, ``completions``, ``parallelism``,
  ``suspend: false``, template labels).
* ``GET .../pods/<name>/log`` returns the stored log text; ``PUT`` to the same URL stores it
  (an emulator-only verb used by the job simulator).
* fault injection: :meth:`RealisticEmulator.add_fault` makes the Nth matching request answer an
  error without touching state; :meth:`RealisticEmulator.drop_watches` ends all open watches.

kmock's own reactions (``emulator['get /x'] << 404``) still take priority over this layer;
a request answered by such a reaction changes no state.

The emulator belongs to its own event loop: use it through HTTP; read ``emulator.objects`` only
for assertions (the cluster handle in ``tests.kube.cluster`` does it thread-safely).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import datetime
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps, enums, rendering

ALL_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as in apiserver's generateName


class ApiError(kmock.KubernetesError):
    """A Kubernetes ``Status`` failure with a proper reason (NotFound, Conflict, Invalid...)."""


def _error(code: int, reason: str, message: str, **details: Any) -> ApiError:
    return ApiError(status=code, reason=reason, message=message, details=details or None)


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_custom(res: kmock.resource) -> bool:
    """Custom resources (CRDs) have a dotted group outside ``*.k8s.io``."""
    group = res.group or ""
    return "." in group and not group.endswith(".k8s.io")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


# --------------------------------------------------------------------------------------------
# Patching
# --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge-patch (``None`` deletes; lists replace). Returns a new value."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue  # strategic-merge directives ($patch, $setElementOrder/...) are not emulated
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


class PatchTestFailed(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, list):
            doc = doc[int(token)]
        elif isinstance(doc, dict):
            doc = doc[token]
        else:
            raise KeyError(token)
    return doc


def json_patch(doc: Any, ops: list[Mapping[str, Any]]) -> Any:
    """RFC 6902 JSON patch. Raises PatchTestFailed on a failed ``test``, ValueError otherwise."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind = op.get("op")
        tokens = _pointer(op.get("path", ""))
        try:
            if kind == "test":
                if _walk(doc, tokens) != op.get("value"):
                    raise PatchTestFailed(f"test failed at {op.get('path')!r}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, tokens, value)
            elif kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, tokens)
            elif kind == "replace":
                doc = _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            else:
                raise ValueError(f"unknown op {kind!r}")
        except PatchTestFailed:
            raise
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{kind} {op.get('path')!r}: path not found ({e!r})") from e
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if not 0 <= index <= len(parent):
                raise IndexError(index)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError("cannot add into a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return None
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_SET_RE = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$")


def match_labels(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Match a label selector string (equality- and set-based) against labels."""
    if not selector:
        return True
    labels = labels or {}
    for req in _split_selector(selector):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in re.split(r"==?", req, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


def match_fields(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Match a field selector (``metadata.name=x,status.phase!=Running``) against an object."""
    if not selector:
        return True
    for req in _split_selector(selector):
        negate = "!=" in req
        path, value = (s.strip() for s in re.split(r"!=|==?", req, maxsplit=1))
        current: Any = obj
        for part in path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        current = "" if current is None else str(current)
        if (current == value) == negate:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Answer ``status`` to the ``nth`` (1-based) matching request, ``times`` times in a row."""

    method: str | None = None  # GET/POST/PATCH/PUT/DELETE, None for any
    resource: str | None = None  # e.g. "batch/v1/jobs", "v1/pods"; None for any
    subresource: str | None = None  # e.g. "status"; "" for main-object requests only
    name: str | None = None
    watch: bool | None = None  # True: only watch requests; False: no watch requests
    status: int = 500
    reason: str = "InternalError"
    message: str = "injected fault"
    nth: int = 1
    times: int = 1
    seen: int = 0
    fired: int = 0
    requests: list[str] = field(default_factory=list)

    def matches(self, request: rendering.Request) -> bool:
        if self.method and request.method.value.upper() != self.method.upper():
            return False
        if self.resource is not None and (
            request.resource is None or kmock.resource(self.resource) != request.resource
        ):
            return False
        if self.subresource is not None and (request.subresource or "") != self.subresource:
            return False
        if self.name is not None and request.name != self.name:
            return False
        is_watch = request.action == enums.action.WATCH
        return self.watch is None or self.watch == is_watch

    def check(self, request: rendering.Request) -> bool:
        if not self.matches(request):
            return False
        self.seen += 1
        if self.seen >= self.nth and self.fired < self.times:
            self.fired += 1
            self.requests.append(f"{request.method.value} {request.url.path_qs}")
            return True
        return False


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class RealisticEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the realism layer described in the module docstring."""

    max_events: int = 50_000  # watch-event history kept for resourceVersion replays
    default_watch_timeout: float = 1800.0
    job_default_orphan: bool = True

    _rv: int = attrs.field(default=0, init=False)
    _events: list[tuple[int, kmock.resource, dict[str, Any]]] = attrs.field(
        factory=list, init=False
    )
    _events_floor: int = attrs.field(default=0, init=False)  # events with rv <= floor are gone
    _wakeup: asyncio.Event | None = attrs.field(default=None, init=False)
    _watch_epoch: int = attrs.field(default=0, init=False)
    _pending_policy: dict[str, str] = attrs.field(factory=dict, init=False)
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    unexpected_errors: list[BaseException] = attrs.field(factory=list, init=False)
    _reply_meta: dict[int, tuple[int | None, dict[str, str]]] = attrs.field(
        factory=dict, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[enums.method.PUT] << self._serve_put
        self.fallback[enums.method.DELETE] << self._serve_delete_collection

    # ---------------------------------------------------------------- plumbing

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle (its state changes); the fallbacks below do it all.
        for fault in self.faults:
            if fault.check(request):
                raise _error(fault.status, fault.reason, fault.message)
        try:
            response = await apps.RawHandler._handle(self, request)
            status, headers = self._reply_meta.pop(id(request), (None, {}))
            if not response.prepared:
                if status is not None:
                    response.set_status(status)
                response.headers.update(headers)
            return response
        except (ApiError, kmock.KubernetesError, NotImplementedError):
            raise
        except rendering.StreamingError as e:
            if not isinstance(e.__cause__, ApiError | ConnectionError):
                self.unexpected_errors.append(e.__cause__ or e)
            raise
        except Exception as e:
            self.unexpected_errors.append(e)
            raise
        finally:
            self._reply_meta.pop(id(request), None)

    def _reply(
        self, request: rendering.Request, payload: Any, status: int | None = None, **headers: str
    ) -> Any:
        """Answer ``payload`` with a non-default status or headers (kmock's Response is shared)."""
        self._reply_meta[id(request)] = (status, headers)
        return payload

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, ApiError):
            return aiohttp.web.json_response(self._status(exc), status=exc.status)
        return await super()._render_error(exc)

    @staticmethod
    def _status(exc: ApiError) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": exc.message,
            "reason": exc.reason,
            "code": exc.status,
        }
        if exc.details:
            body["details"] = exc.details
        return body

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        result = await super()._serve_version(request)
        if isinstance(result, dict) and result.get("groupVersion", "").startswith("/"):
            result["groupVersion"] = result["groupVersion"][1:]  # core: "v1", not "/v1"
        return result

    def add_fault(self, **kwargs: Any) -> Fault:
        """Register a :class:`Fault` (call from the emulator's loop or before serving)."""
        fault = Fault(**kwargs)
        self.faults.append(fault)
        return fault

    def drop_watches(self) -> None:
        """End every open watch stream now (as an API server restart would)."""
        self._watch_epoch += 1
        self._notify()

    def _notify(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _info(self, request: rendering.Request) -> kmock.ResourceInfo:
        res = request.resource
        if res is None or res.plural is None or res not in self._resources:
            raise _error(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.url.path})",
            )
        return self._resources[res]

    @staticmethod
    def _api_version(res: kmock.resource) -> str:
        return f"{res.group}/{res.version}" if res.group else str(res.version)

    def _kind(self, res: kmock.resource) -> str:
        info = self._resources[res]
        return info.kind or (res.plural or "").capitalize()

    def _namespace(self, request: rendering.Request, info: kmock.ResourceInfo) -> str | None:
        return request.namespace if info.namespaced is not False else None

    def _get(self, res: kmock.resource, ns: str | None, name: str) -> dict[str, Any] | None:
        key = (res, ns, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def _not_found(self, res: kmock.resource, name: str) -> ApiError:
        return _error(
            404,
            "NotFound",
            f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
            name=name,
            group=res.group,
            kind=res.plural,
        )

    def _record(self, res: kmock.resource, etype: str, obj: dict[str, Any]) -> None:
        self._events.append(
            (
                int(obj["metadata"]["resourceVersion"]),
                res,
                {"type": etype, "object": copy.deepcopy(obj)},
            )
        )
        if len(self._events) > self.max_events:
            drop = len(self._events) - self.max_events
            self._events_floor = self._events[drop - 1][0]
            del self._events[:drop]
        self._notify()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, res: kmock.resource, obj: dict[str, Any], etype: str) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        key = (res, meta.get("namespace"), meta["name"])
        if key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        self._record(res, etype, obj)
        return obj

    @staticmethod
    def _body(request: rendering.Request) -> Any:
        if not request.body:
            return None
        try:
            return json.loads(request.body)
        except ValueError:
            try:
                import yaml

                return yaml.safe_load(request.text)
            except Exception as e:
                raise _error(400, "BadRequest", f"cannot parse the body: {e}") from e

    # ---------------------------------------------------------------- reads

    def _select(
        self, request: rendering.Request, res: kmock.resource, ns: str | None
    ) -> list[dict[str, Any]]:
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        result = []
        for (r, o_ns, o_name), obj in self._objects.items():
            if r != res or obj.deleted or (ns is not None and o_ns != ns):
                continue
            if request.name is not None and o_name != request.name:
                continue
            raw = obj.raw
            if match_labels(labels, raw.get("metadata", {}).get("labels")) and match_fields(
                fields, raw
            ):
                result.append((o_ns or "", o_name, copy.deepcopy(raw)))
        return [item for _, _, item in sorted(result, key=lambda t: (t[0], t[1]))]

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        res = request.resource
        assert res is not None
        items = self._select(request, res, self._namespace(request, info))
        return {
            "apiVersion": self._api_version(res),
            "kind": f"{self._kind(res)}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        res = request.resource
        assert res is not None and request.name is not None
        ns = self._namespace(request, info)
        sub = request.subresource
        obj = self._get(res, ns, request.name)
        if obj is None:
            raise self._not_found(res, request.name)
        if sub is None or (sub == "status" and "status" in info.subresources):
            return obj
        if sub == "log" and "log" in info.subresources:
            text = self.pod_logs.get((ns or "", request.name), "")
            if tail := request.params.get("tailLines"):
                text = "".join(text.splitlines(keepends=True)[-int(tail) :])
            return self._reply(request, text.encode(), **{"Content-Type": "text/plain"})
        raise _error(404, "NotFound", f"the server could not find the requested resource ({sub})")

    def _watch_matches(
        self,
        request: rendering.Request,
        res: kmock.resource,
        ns: str | None,
        obj: Mapping[str, Any],
    ) -> bool:
        meta = obj.get("metadata", {})
        if ns is not None and meta.get("namespace") != ns:
            return False
        if request.name is not None and meta.get("name") != request.name:
            return False
        return match_labels(
            request.params.get("labelSelector"), meta.get("labels")
        ) and match_fields(request.params.get("fieldSelector"), obj)

    async def _serve_watch(self, request: rendering.Request) -> rendering.Payload:
        info = self._info(request)
        return rendering.Response(
            headers={"Content-Type": "application/json"},
            payload=self._watch_stream(request, info),
        )

    async def _watch_stream(
        self, request: rendering.Request, info: kmock.ResourceInfo
    ) -> AsyncIterator[rendering.Payload]:
        res = request.resource
        assert res is not None
        ns = self._namespace(request, info)
        params = request.params
        timeout = float(params.get("timeoutSeconds") or self.default_watch_timeout)
        deadline = time.monotonic() + timeout
        bookmarks = params.get("allowWatchBookmarks") == "true"
        epoch = self._watch_epoch
        yield b""  # send the headers now, even if nothing happens for a while

        rv_param = params.get("resourceVersion") or ""
        if rv_param in ("", "0"):
            last_rv = self._rv
            for obj in self._select(request, res, ns):
                yield {"type": "ADDED", "object": obj}
        else:
            try:
                last_rv = int(rv_param)
            except ValueError:
                last_rv = -1
            if last_rv < self._events_floor or last_rv > self._rv:
                yield {
                    "type": "ERROR",
                    "object": self._status(
                        _error(410, "Expired", f"too old resource version: {rv_param} ({self._rv})")
                    ),
                }
                return

        while True:
            index = bisect.bisect_right(self._events, last_rv, key=lambda e: e[0])
            pending = self._events[index:]
            for rv, e_res, event in pending:
                last_rv = rv
                if e_res == res and self._watch_matches(request, res, ns, event["object"]):
                    yield event
            if self._watch_epoch != epoch:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._wakeup is None:
                self._notify()
            assert self._wakeup is not None
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=remaining)
            except TimeoutError:
                break
        if bookmarks:
            yield {
                "type": "BOOKMARK",
                "object": {
                    "apiVersion": self._api_version(res),
                    "kind": self._kind(res),
                    "metadata": {"resourceVersion": str(self._rv)},
                },
            }

    # ---------------------------------------------------------------- writes

    def _check_rv(self, res: kmock.resource, stored: Mapping[str, Any], given: Any) -> None:
        if given not in (None, "") and str(given) != stored["metadata"]["resourceVersion"]:
            name = stored["metadata"]["name"]
            raise _error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.plural}{"." + res.group if res.group else ""} "{name}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                name=name,
                group=res.group,
                kind=res.plural,
            )

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
        return self._store(res, obj, "ADDED")

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

    def _load_for_write(
        self, request: rendering.Request
    ) -> tuple[kmock.resource, kmock.ResourceInfo, str | None, dict[str, Any]]:
        info = self._info(request)
        res = request.resource
        assert res is not None and request.name is not None
        sub = request.subresource
        if sub is not None and not (sub == "status" and "status" in info.subresources):
            raise _error(
                404, "NotFound", f"the server could not find the requested resource ({sub})"
            )
        ns = self._namespace(request, info)
        old = self._get(res, ns, request.name)
        if old is None:
            raise self._not_found(res, request.name)
        return res, info, ns, old

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

    # ---------------------------------------------------------------- deletion

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


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------


def _info(
    kind: str,
    singular: str,
    *,
    namespaced: bool = True,
    subresources: Iterable[str] = (),
    shortnames: Iterable[str] = (),
) -> kmock.ResourceInfo:
    return kmock.ResourceInfo(
        kind=kind,
        singular=singular,
        namespaced=namespaced,
        subresources=set(subresources),
        shortnames=set(shortnames),
        verbs=set(ALL_VERBS),
    )


STANDARD_RESOURCES: dict[str, kmock.ResourceInfo] = {
    "kaizen.dev/v1alpha1/improvementcycles": _info(
        "ImprovementCycle", "improvementcycle", subresources={"status"}
    ),
    "batch/v1/jobs": _info("Job", "job", subresources={"status"}),
    "v1/pods": _info("Pod", "pod", subresources={"status", "log"}, shortnames={"po"}),
    "v1/events": _info("Event", "event", shortnames={"ev"}),
    "events.k8s.io/v1/events": _info("Event", "event", shortnames={"ev"}),
    "v1/secrets": _info("Secret", "secret"),
    "v1/configmaps": _info("ConfigMap", "configmap", shortnames={"cm"}),
    "v1/namespaces": _info("Namespace", "namespace", namespaced=False, shortnames={"ns"}),
}


def register_standard_resources(emulator: kmock.KubernetesEmulator) -> None:
    """Declare the resources the Kaizen operator uses, so discovery and requests know them."""
    for key, info in STANDARD_RESOURCES.items():
        emulator.resources[key] = copy.deepcopy(info)


def register_crd(emulator: kmock.KubernetesEmulator, crd: Mapping[str, Any]) -> list[str]:
    """Declare every served version of a CustomResourceDefinition manifest (a dict)."""
    spec = crd["spec"]
    names = spec["names"]
    keys = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        key = f"{spec['group']}/{version['name']}/{names['plural']}"
        emulator.resources[key] = _info(
            names["kind"],
            names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            subresources={s for s in (version.get("subresources") or {})},
            shortnames=names.get("shortNames") or (),
        )
        keys.append(key)
    return keys


def b64(text: str) -> str:
    """Base64 for Secret ``data`` values."""
    return base64.b64encode(text.encode()).decode()


def make_emulator(**kwargs: Any) -> RealisticEmulator:
    emulator = RealisticEmulator(**kwargs)
    register_standard_resources(emulator)
    return emulator


__all__ = [
    "ApiError",
    "Fault",
    "RealisticEmulator",
    "STANDARD_RESOURCES",
    "b64",
    "json_patch",
    "make_emulator",
    "match_fields",
    "match_labels",
    "merge_patch",
    "register_crd",
    "register_standard_resources",
]
