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


# kopf's scan, wrapped: a scan made while discovery lags a CRD created again is made again.

CRD = {
    "metadata": {"name": "improvementcycles.kaizen.dev"},
    "spec": {"versions": [{"name": "v1alpha1", "served": True, "storage": True}]},
    "status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]},
}
ESTABLISHED = {
    **CRD,
    "status": {"conditions": [{"type": "Established", "status": "True"}]},
}


@pytest.mark.parametrize(
    ("crd", "ready"),
    [
        (None, False),
        (CRD, False),  # names accepted, not Established yet
        (ESTABLISHED, True),
        ({**ESTABLISHED, "metadata": {"deletionTimestamp": "2026-12-06T09:00:00Z"}}, False),
        (
            {**ESTABLISHED, "spec": {"versions": [{"name": "v1alpha1", "served": False}]}},
            False,
        ),
        ({**ESTABLISHED, "spec": {"versions": [{"name": "v1", "served": True}]}}, False),
    ],
    ids=["none", "not-established", "established", "deleting", "not-served", "other-version"],
)
def test_discovery_is_due_to_list_a_crd_that_is_established_and_serves_the_version(
    crd: dict[str, Any] | None, ready: bool
) -> None:
    assert unserved.crd_ready(crd, "v1alpha1") is ready


def _resource(plural: str, group: str = "kaizen.dev", version: str = "v1alpha1") -> Any:
    from kopf._cogs.structs import references

    return references.Resource(group=group, version=version, plural=plural, namespaced=True)


class Scans:
    """kopf's scan answering in turn the given plurals of kaizen.dev/v1alpha1, and CRDs whose
    readiness is given per scan ({plural: ready})."""

    def __init__(self, *answers: tuple[list[str], dict[str, bool]]) -> None:
        self.answers = list(answers)
        self.ready: dict[str, bool] = {}
        self.groups: list[Any] = []
        self.asked: list[str] = []

    async def scan(self, *, settings: Any, logger: Any, groups: Any = None) -> set[Any]:
        self.groups.append(groups)
        plurals, self.ready = self.answers.pop(0)
        return {_resource(p) for p in plurals} | {_resource("jobs", group="batch", version="v1")}

    async def crd_ready(self, settings: Any, logger: Any, plural: str) -> bool:
        self.asked.append(plural)
        return self.ready.get(plural, False)

    def wrapped(self) -> Any:
        return unserved._rescanning(
            self.scan,
            "kaizen.dev",
            "v1alpha1",
            ("improvementcycles", "improvementchains"),
            self.crd_ready,
        )


async def test_a_scan_that_misses_an_established_crd_scans_again_until_discovery_lists_it(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    lagging = ["improvementchains"], {"improvementcycles": True}
    scans = Scans(lagging, lagging, (["improvementchains", "improvementcycles"], {}))
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        found = await scans.wrapped()(settings=None, logger=None, groups={"kaizen.dev"})
    assert {r.plural for r in found} == {"improvementchains", "improvementcycles", "jobs"}
    assert scans.groups == [{"kaizen.dev"}] * 3
    assert slept == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(
        "Discovery does not list improvementcycles.v1alpha1.kaizen.dev yet" in w
        and "improvementchains" not in w
        for w in warnings
    ), warnings
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "Discovery lists improvementcycles.v1alpha1.kaizen.dev after 0 s: serving it"
    ], infos


async def test_a_crd_that_goes_while_waited_for_is_not_waited_for_any_more(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    scans = Scans(([], {"improvementcycles": True}), ([], {}))
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        found = await scans.wrapped()(settings=None, logger=None, groups=None)
    assert {r.plural for r in found} == {"jobs"}
    assert slept == [1]
    assert "Not waiting for improvementcycles.v1alpha1.kaizen.dev any more" in caplog.text


async def test_a_scan_is_taken_as_it_is_when_no_missing_crd_is_established(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    # Missing and not ready (gone, terminating, not Established): kopf's next CRD event scans.
    scans = Scans((["improvementcycles"], {}))
    with caplog.at_level(logging.DEBUG, logger=unserved.__name__):
        found = await scans.wrapped()(settings=None, logger=None, groups={"kaizen.dev"})
    assert {r.plural for r in found} == {"improvementcycles", "jobs"}
    assert scans.asked == ["improvementchains"] and slept == [] and not caplog.records
    # A scan of other groups is not looked at.
    other = Scans(([], {"improvementcycles": True}))
    await other.wrapped()(settings=None, logger=None, groups={"batch"})
    assert other.asked == [] and slept == []


def test_kopfs_scan_is_wrapped_once_by_the_handlers_module() -> None:
    from kopf._cogs.clients import scanning

    assert handlers.unserved is unserved
    assert unserved.rescan_lagging_discovery("kaizen.dev", "v1alpha1", ["improvementcycles"])
    wrapper = scanning.scan_resources
    assert getattr(wrapper, "__wrapped__", None) is not None
    assert wrapper.__wrapped__.__module__ == "kopf._cogs.clients.scanning"  # one layer


async def test_a_discovery_that_lags_past_the_limit_is_not_waited_for_ever(
    slept: list[float], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(unserved.asyncio, "sleep", sleep)
    monkeypatch.setattr(unserved.time, "monotonic", lambda: now[0])
    lagging = ([], {"improvementcycles": True})
    scans = Scans(*[lagging] * 20)
    wrapped = unserved._rescanning(
        scans.scan, "kaizen.dev", "v1alpha1", ["improvementcycles"], scans.crd_ready, limit=60
    )
    with caplog.at_level(logging.INFO, logger=unserved.__name__):
        found = await wrapped(settings=None, logger=None, groups={"kaizen.dev"})
    assert {r.plural for r in found} == {"jobs"}
    assert slept == [1, 2, 4, 8, 16, 30]  # 61 s waited: the next look gives up
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "has not listed improvementcycles.v1alpha1.kaizen.dev for 61 s" in errors[0]
    assert unserved.LAG_WAIT_LIMIT == 300
