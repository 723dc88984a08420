"""The emulator's read layer: lists, single-object reads (``/status``, ``/log``) and watches."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import kmock
from kmock._internal import rendering

from tests.kube.emulator.common import _error
from tests.kube.emulator.selector import match_fields, match_labels
from tests.kube.emulator.store import EmulatorStore


@attrs.define(kw_only=True)
class EmulatorReads(EmulatorStore):
    """Serve ``list``, ``get`` and ``watch`` from the store and its event history."""

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
        deadline = self._now() + timeout
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
            remaining = deadline - self._now()
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
