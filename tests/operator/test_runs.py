"""When a cycle is reconciled and how many at once (`kaizen.operator.runs`, `pacing.Slots`).

The memory at 500 cycles on a saturated API server went to work waiting: Job watch events kept
by kopf while the handler awaited its cycle's reconciliation, and the cycles, Jobs and pods
that ~500 reconciliations in flight had read while they waited for the server. These tests
pin the two cuts: a Job event is let go of before its reconciliation runs, and a
reconciliation beyond the bound waits before it reads anything. The real reconciler runs over
the fake API of `test_reconciler.py`, whose reads here wait until the test lets them go on.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from kaizen.operator import handlers, pacing
from kaizen.operator.pacing import Slots
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from tests.operator.test_reconciler import NS, UID, FakeKube, cycle_body

#: Turns of the event loop that let every runnable task run as far as it can (no sleeping).
TURNS = 50


class _HeldKube(FakeKube):
    """Reads of a cycle wait for `go` once it is cleared: the API server is slow to answer."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()
        self.go.set()
        self.reading = 0
        self.most_reading = 0

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reading += 1
        self.most_reading = max(self.most_reading, self.reading)
        try:
            await self.go.wait()
            return await super().get_cycle(namespace, name)
        finally:
            self.reading -= 1


def _cycle(name: str) -> dict[str, Any]:
    body = cycle_body()
    body["metadata"] = {**body["metadata"], "name": name, "uid": f"{UID}-{name}"}
    return body


def _job(cycle: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    owner = [{"uid": f"{UID}-{cycle}", "controller": True}]
    meta = {"name": name, "uid": f"job-{name}", "ownerReferences": owner}
    return {"metadata": meta, "spec": {}, "status": status}


def _reconciler(kube: FakeKube, **env: str) -> CycleReconciler:
    settings = OperatorSettings.from_env({f"KAIZEN_{k.upper()}": v for k, v in env.items()})
    return CycleReconciler(kube, settings, post_event=lambda *_: None)


async def _turns(n: int = TURNS) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_job_event_is_let_go_of_before_its_cycles_reconciliation_reads() -> None:
    kube = _HeldKube()
    kube.cycles[(NS, "a")] = _cycle("a")
    reconciler = _reconciler(kube)
    memo = SimpleNamespace(kaizen=reconciler)
    kube.go.clear()
    log = logging.getLogger("test")

    def event(job: str, status: dict[str, Any]) -> asyncio.Task[None]:
        return asyncio.create_task(
            handlers.job_event(
                namespace=NS,
                labels={"kaizen.dev/cycle": "a"},
                memo=memo,
                logger=log,
                body=_job("a", job, status),
                type="MODIFIED",
            )
        )

    # kopf runs one handler call at a time per Job: each must end while the server is slow,
    # or kopf keeps the event and queues the Job's later ones behind it.
    first = event("a-baseline", {"active": 1})
    await _turns()
    assert first.done() and first.exception() is None
    assert kube.reading == 1  # the run it asked for is reading the cycle
    later = [
        event("a-baseline", {"active": 1, "ready": 1}),
        event("a-analyze", {"active": 1}),
        event("a-baseline", {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
    ]  # fmt: skip
    await _turns()
    assert all(task.done() for task in later)
    # One run is in progress; the three later events fold into the one run that waits for it.
    assert kube.reading == 1 and reconciler.slots.in_flight == 1
    kube.go.set()
    await reconciler.drain()
    assert [call for call in kube.calls if call[0] == "get_cycle"] == [("get_cycle", "a")] * 2
    # The Jobs as the events showed them are recorded once a run that read after them went
    # through: the same writes again cost nothing.
    kube.calls.clear()
    again = event("a-analyze", {"active": 1})
    await again
    await reconciler.drain()
    assert kube.calls == []
    await reconciler.close()


async def test_reconciliations_in_flight_are_bounded_and_those_waiting_have_read_nothing() -> None:
    kube = _HeldKube()
    names = [f"c{n}" for n in range(7)]
    for name in names:
        kube.cycles[(NS, name)] = _cycle(name)
    reconciler = _reconciler(kube, max_reconciliations="3")
    kube.go.clear()
    for name in names:
        assert reconciler.request(NS, name)
    timer = asyncio.create_task(reconciler.reconcile(NS, "c6"))  # folds into the waiting run
    await _turns()
    assert timer.done() and timer.result() is None
    # Three runs read (and would hold their cycle, Jobs and pods); four wait, having read nothing.
    assert kube.reading == 3
    assert (reconciler.slots.in_flight, reconciler.slots.waiting) == (3, 4)
    assert reconciler.busy == 3
    kube.go.set()
    await reconciler.drain()
    assert sorted(name for call, name in kube.calls if call == "get_cycle") == names
    assert kube.most_reading == 3 and reconciler.slots.peak == 3
    assert (reconciler.slots.in_flight, reconciler.slots.waiting) == (0, 0)
    # Every cycle ran its first step: a waiting run was delayed, not dropped.
    assert sorted(job.partition("-evaluate-baseline")[0] for _, job in kube.jobs) == names
    await reconciler.close()


async def test_a_run_cancelled_while_it_waits_lets_the_next_request_start_one() -> None:
    kube = _HeldKube()
    for name in ("a", "b"):
        kube.cycles[(NS, name)] = _cycle(name)
    reconciler = _reconciler(kube, max_reconciliations="1")
    kube.go.clear()
    reconciler.request(NS, "a")
    waiting = asyncio.create_task(reconciler.reconcile(NS, "b"))
    await _turns()
    assert reconciler.slots.waiting == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert reconciler.slots.waiting == 0
    assert reconciler.request(NS, "b")  # not folded into the cancelled run: a run of its own
    kube.go.set()
    await reconciler.drain()
    assert sorted(name for call, name in kube.calls if call == "get_cycle") == ["a", "b"]
    await reconciler.close()


async def test_a_failed_requested_run_is_retried_and_answers_its_events() -> None:
    kube = FakeKube()
    kube.cycles[(NS, "a")] = _cycle("a")
    reconciler = _reconciler(kube)
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    reconciler.retries = pacing.Retries(reconciler.reconcile, sleep=no_wait)
    get_cycle = kube.get_cycle
    failures = 2

    async def flaky(namespace: str, name: str) -> dict[str, Any] | None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the API server went away")
        return await get_cycle(namespace, name)

    kube.get_cycle = flaky  # type: ignore[method-assign]
    job = _job("a", "a-baseline", {"active": 1})
    reconciler.request(NS, "a", job=copy.deepcopy(job))
    await reconciler.drain()
    await _turns()
    assert delays == pytest.approx([0.2, 0.4]) and reconciler.retries.pending == 0
    assert len(kube.jobs) == 1
    # The failed runs left the Job's signature to the retry, which read after the event.
    assert reconciler.job_signatures.unchanged(NS, job)
    await reconciler.close()


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Slots(0)
