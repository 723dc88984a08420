"""kopf's watch stream, wrapped so that a 404 (a resource not served for a while) is retried, and
the start-up wait until discovery lists the cycles (kaizen.operator.unserved). The operator
outliving it, and started in it: tests/operator/test_faults.py (the emulator) and
tests/apiserver/test_operator_unserved.py (a real API server)."""

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


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the retries would have slept, in order (they sleep none)."""
    delays: list[float] = []

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(unserved.asyncio, "sleep", no_sleep)
    return delays


async def test_a_404_restarts_the_stream_after_a_delay_and_says_so(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    from kopf._cogs.clients import errors

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


class Discovery:
    """Discovery answers in turn: (versions /apis lists, the group version's resources or None
    for a 404), or an exception to raise."""

    def __init__(self, *answers: tuple[list[str], list[str] | None] | Exception) -> None:
        self.answers = list(answers)
        self.current: tuple[list[str], list[str] | None] | Exception = ([], None)

    async def api_group_versions(self, group: str) -> list[str]:
        assert group == "kaizen.dev"
        self.current = self.answers.pop(0)
        if isinstance(self.current, Exception):
            raise self.current
        return self.current[0]

    async def api_resources(self, group: str, version: str) -> list[str] | None:
        assert (group, version) == ("kaizen.dev", "v1alpha1")
        assert not isinstance(self.current, Exception)
        return self.current[1]


SERVED = (["v1alpha1"], ["improvementcycles", "improvementcycles/status"])


@pytest.mark.parametrize(
    ("answer", "gap"),
    [
        (([], None), "/apis lists no kaizen.dev/v1alpha1"),
        ((["v1beta1"], ["blockers"]), "/apis lists no kaizen.dev/v1alpha1"),
        ((["v1alpha1"], None), "/apis/kaizen.dev/v1alpha1 answers 404"),
        (
            (["v1alpha1"], ["improvementchains"]),
            "/apis/kaizen.dev/v1alpha1 lists no improvementcycles",
        ),
        (SERVED, None),
    ],
)
async def test_the_cycles_are_served_when_kopfs_scan_would_find_them(
    answer: tuple[list[str], list[str] | None], gap: str | None
) -> None:
    found = await unserved.discovery_gap(
        Discovery(answer), "kaizen.dev", "v1alpha1", "improvementcycles"
    )
    assert found == gap


async def test_the_start_waits_until_the_cycles_are_served_and_says_so(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    from kubernetes.client.exceptions import ApiException

    discovery = Discovery(
        (["v1alpha1"], None),
        ApiException(status=503, reason="Service Unavailable"),
        ConnectionRefusedError("connection refused"),
        ([], None),
        SERVED,
    )
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        await unserved.wait_until_served(discovery, "kaizen.dev", "v1alpha1", "improvementcycles")
    assert slept == [1, 2, 4, 8]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert all("does not serve improvementcycles.v1alpha1.kaizen.dev yet" in w for w in warnings)
    for warning, reason in zip(
        warnings,
        ["answers 404", "discovery answers 503", "does not answer", "/apis lists no"],
        strict=True,
    ):
        assert reason in warning, warning
    assert any("is served after" in r.getMessage() for r in caplog.records)


async def test_served_at_once_the_start_goes_on_in_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        await unserved.wait_until_served(
            Discovery(SERVED), "kaizen.dev", "v1alpha1", "improvementcycles"
        )
    assert not caplog.records


async def test_a_refusal_of_discovery_is_not_waited_out() -> None:
    from kubernetes.client.exceptions import ApiException

    refused = Discovery(ApiException(status=403, reason="Forbidden"))
    with pytest.raises(ApiException):
        await unserved.wait_until_served(refused, "kaizen.dev", "v1alpha1", "improvementcycles")
