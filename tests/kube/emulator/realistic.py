"""The emulator itself: request plumbing (faults, replies, errors) on top of the layers.

See the :mod:`tests.kube.emulator` package docstring for what it emulates.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps, enums, rendering

from tests.kube.emulator.common import ApiError, _error
from tests.kube.emulator.faults import Fault
from tests.kube.emulator.resources import register_standard_resources
from tests.kube.emulator.writes import EmulatorWrites


@attrs.define(kw_only=True)
class RealisticEmulator(EmulatorWrites):
    """kmock's emulator with the realism layer described in the package docstring."""

    #: Requests kept in kmock's request log (the DSL's views and reactions route by scanning it).
    request_log_limit: int = 8
    #: Every request served, by ``"<METHOD> <resource>[/<subresource>]"`` (``watch`` for watches).
    request_counts: Counter[str] = attrs.field(factory=Counter, init=False)
    #: Every request served, by the bearer token it came with (which client sent it).
    requests_by_token: Counter[str] = attrs.field(factory=Counter, init=False)
    #: Every request served, by token and kind: ``(token, "<METHOD> <resource>[/<sub>]")``.
    requests_by_token_and_kind: Counter[tuple[str, str]] = attrs.field(factory=Counter, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[enums.method.PUT] << self._serve_put
        self.fallback[enums.method.DELETE] << self._serve_delete_collection

    # ---------------------------------------------------------------- plumbing

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle (its state changes); the layers' _serve_* do it all.
        key = _request_key(request)
        self.request_counts[key] += 1
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        token = auth.removeprefix("Bearer ").strip()
        self.requests_by_token[token] += 1
        self.requests_by_token_and_kind[token, key] += 1
        self._bound_request_log()
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

    def _bound_request_log(self) -> None:
        """Keep kmock's request log (and each reaction's) to the newest ``request_log_limit``.

        kmock routes a request by asking every reaction whether its view contains it, and a
        view answers by scanning the whole log: unbounded, a GET grew from 22 ms to 155 ms
        over 3,000 requests and the emulator, not the operator, set the pace of every test
        with many requests. The request being routed is the newest, so it is always kept;
        only reactions with slices over old requests (``emulator[...][0:2]``) would notice.
        """
        limit = max(1, self.request_log_limit)
        if len(self._requests) > 2 * limit:
            del self._requests[:-limit]
            for payload in self._payloads:
                log = getattr(payload, "_requests", None)
                if log is not None and len(log) > limit:
                    del log[:-limit]

    @property
    def requests_served(self) -> int:
        """How many requests the emulator has served (the log keeps only the newest)."""
        return sum(self.request_counts.values())

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, ApiError):
            return aiohttp.web.json_response(self._status(exc), status=exc.status)
        return await super()._render_error(exc)

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
        """End every open watch stream now (a dropped connection); a client that watches again
        from its last resourceVersion misses nothing. See :meth:`restart` for a restart."""
        self._watch_epoch += 1
        self._notify()

    def restart(self) -> None:
        """As an API server restart: every open watch ends and the watch history is gone.

        Objects and resourceVersions stay (etcd keeps them), but a real server's watch cache
        starts empty: a watch from a resourceVersion older than the restart's gets ``410 Gone``
        (the client must list again); one from the current resourceVersion goes on.
        """
        self._events_floor = self._rv
        self.drop_watches()

    def advance_clock(self, seconds: float) -> None:
        """Move the clock of watch timeouts on by ``seconds``; due watches end now."""
        self._clock_offset += seconds
        self._notify()


def _request_key(request: rendering.Request) -> str:
    method = request.method.value.upper()
    if request.action == enums.action.WATCH:
        method = "WATCH"
    res = request.resource
    if res is None or res.plural is None:
        return f"{method} {request.url.path}"
    group = f"{res.group}/{res.version}" if res.group else str(res.version)
    sub = f"/{request.subresource}" if request.subresource else ""
    return f"{method} {group}/{res.plural}{sub}"


def make_emulator(**kwargs: Any) -> RealisticEmulator:
    emulator = RealisticEmulator(**kwargs)
    register_standard_resources(emulator)
    return emulator
