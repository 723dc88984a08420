"""The emulator's read layer: lists, single-object reads (``/status``, ``/log``) and watches.

Lists honour ``limit`` and ``continue`` as a real API server does (kopf lists in chunks with
``settings.watching.chunk_size``, kubectl in chunks of 500): a chunk ends with a ``continue``
token and ``remainingItemCount``, and every chunk reports the first one's resourceVersion.
Unlike a real server, a later chunk shows the objects as they are now, not as of that
resourceVersion (a watch from it replays the changes anyway).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import json
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
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit, after = _chunking(request.params)
        if after is not None:  # items sort by (namespace, name): the chunk after the last one
            meta["resourceVersion"] = after[0]
            items = [i for i in items if _sort_key(i) > (after[1], after[2])]
        if limit and len(items) > limit:
            last = _sort_key(items[limit - 1])
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([meta["resourceVersion"], *last]).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "apiVersion": self._api_version(res),
            "kind": f"{self._kind(res)}List",
            "metadata": meta,
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


def _sort_key(item: Mapping[str, Any]) -> tuple[str, str]:
    meta = item.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _chunking(params: Mapping[str, str]) -> tuple[int, tuple[str, str, str] | None]:
    """``limit`` (0: none) and where ``continue`` resumes: (resourceVersion, namespace, name)."""
    try:
        limit = int(params.get("limit") or 0)
    except ValueError:
        raise _error(400, "BadRequest", f"limit: invalid value {params.get('limit')!r}") from None
    token = params.get("continue") or ""
    if not token:
        return max(0, limit), None
    try:
        rv, ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise _error(400, "BadRequest", "continue key is not valid") from None
    return max(0, limit), (str(rv), str(ns), str(name))
