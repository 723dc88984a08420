"""The emulator itself: request plumbing (faults, replies, errors) on top of the layers.

See the :mod:`tests.kube.emulator` package docstring for what it emulates.
"""

from __future__ import annotations

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

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback[enums.method.PUT] << self._serve_put
        self.fallback[enums.method.DELETE] << self._serve_delete_collection

    # ---------------------------------------------------------------- plumbing

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle (its state changes); the layers' _serve_* do it all.
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


def make_emulator(**kwargs: Any) -> RealisticEmulator:
    emulator = RealisticEmulator(**kwargs)
    register_standard_resources(emulator)
    return emulator
