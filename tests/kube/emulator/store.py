"""The emulator's base layer: state, the object store, resourceVersions and the event history.

:class:`EmulatorStore` holds every field of the emulator and the helpers the other layers share
(resource lookup, reading and storing objects, recording watch events, selecting objects,
resourceVersion checks). The layers on top: :mod:`.reads`, :mod:`.deletion`, :mod:`.writes`,
and :class:`~tests.kube.emulator.realistic.RealisticEmulator`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Mapping
from typing import Any

import attrs
import kmock
from kmock._internal import rendering

from tests.kube.emulator.common import ApiError, _error
from tests.kube.emulator.faults import Fault
from tests.kube.emulator.selector import match_fields, match_labels


@attrs.define(kw_only=True)
class EmulatorStore(kmock.KubernetesEmulator):
    """State and shared helpers of :class:`~tests.kube.emulator.RealisticEmulator`."""

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
    _clock_offset: float = attrs.field(default=0.0, init=False)  # see advance_clock()
    _pending_policy: dict[str, str] = attrs.field(factory=dict, init=False)
    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)
    # The keys of ``_objects`` by (resource, namespace), in insertion order: a list or watch
    # reads one namespace's objects, as a real API server's namespace index does, instead
    # of scanning every object of every kind (thousands of Events and Pods in a benchmark).
    _index: dict[tuple[kmock.resource, str | None], dict[Any, None]] = attrs.field(
        factory=dict, init=False
    )
    faults: list[Fault] = attrs.field(factory=list, init=False)
    unexpected_errors: list[BaseException] = attrs.field(factory=list, init=False)
    _reply_meta: dict[int, tuple[int | None, dict[str, str]]] = attrs.field(
        factory=dict, init=False
    )

    def _reply(
        self, request: rendering.Request, payload: Any, status: int | None = None, **headers: str
    ) -> Any:
        """Answer ``payload`` with a non-default status or headers (kmock's Response is shared)."""
        self._reply_meta[id(request)] = (status, headers)
        return payload

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

    def _now(self) -> float:
        """The clock of watch timeouts: monotonic time, moved on by ``advance_clock``."""
        return time.monotonic() + self._clock_offset

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
            self._index.setdefault((res, meta.get("namespace")), {})[key] = None
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

    def _select(
        self, request: rendering.Request, res: kmock.resource, ns: str | None
    ) -> list[dict[str, Any]]:
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        result = []
        if ns is not None:
            keys: list[Any] = list(self._index.get((res, ns), ()))
        else:
            keys = [k for (r, _), index in self._index.items() if r == res for k in index]
        for key in keys:
            r, o_ns, o_name = key
            obj = self._objects[key]
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
