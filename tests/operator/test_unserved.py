"""kopf's watch stream, wrapped so that a 404 (a resource not served for a while) is retried
(kaizen.operator.unserved). The operator outliving it: tests/operator/test_faults.py (the
emulator) and tests/apiserver/test_operator_unserved.py (a real API server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kaizen.operator import handlers, unserved


def test_the_retries_back_off_to_every_30_seconds_and_go_on() -> None:
    assert [unserved.retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert unserved.retry_delay(10**6) == unserved.MAX_DELAY == 30  # a year of tries


def test_installed_once_by_the_handlers_module_beside_the_arrival_stamps() -> None:
    from kopf._cogs.clients import watching

    assert handlers.unserved is unserved  # the import installed it
    assert unserved.retry_unserved_watches() and unserved.retry_unserved_watches()
    layers, layer = [], watching.infinite_watch
    while layer is not None:
        layers.append(layer)
        layer = getattr(layer, "__wrapped__", None)
    # kopf's own function under exactly one retrying layer and one stamping layer.
    assert getattr(layers[-1], "__module__", "") == "kopf._cogs.clients.watching"
    assert len(layers) == 3, layers


async def test_a_404_restarts_the_stream_after_a_delay_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from kopf._cogs.clients import errors

    slept: list[float] = []

    async def no_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(unserved.asyncio, "sleep", no_sleep)
    starts = 0

    async def stream(**_: Any) -> AsyncIterator[Any]:
        nonlocal starts
        starts += 1
        if starts <= 3:
            raise errors.APINotFoundError("404 page not found", status=404, headers={})
        yield {"type": None, "object": {"metadata": {"name": "c"}}}
        if starts == 4:  # served again, then gone again: the backoff starts over
            raise errors.APINotFoundError("404 page not found", status=404, headers={})

    wrapped = unserved._retrying(stream, errors.APINotFoundError)
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        events = [e async for e in wrapped(resource="cycles.v1.kaizen.dev", namespace=None)]
    assert len(events) == 2 and starts == 5
    assert slept == [1, 2, 4, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert all(
        "cycles.v1.kaizen.dev cluster-wide" in w and "404 page not found" in w for w in warnings
    )
    assert sum("served again" in r.getMessage() for r in caplog.records) == 2


async def test_other_errors_still_stop_the_stream() -> None:
    from kopf._cogs.clients import errors

    async def stream(**_: Any) -> AsyncIterator[Any]:
        raise errors.APIForbiddenError("forbidden", status=403, headers={})
        yield  # an async generator

    wrapped = unserved._retrying(stream, errors.APINotFoundError)
    with pytest.raises(errors.APIForbiddenError):
        [e async for e in wrapped(resource="cycles.v1.kaizen.dev", namespace="ns")]
