"""The operator's Prometheus metrics, read back from the default registry after real work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kaizen.operator import kube as kube_module
from kaizen.operator import metrics
from kaizen.operator.kube import ApiException
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from tests.operator.test_reconciler import NAME, NS, FakeKube, baseline_summary, cycle_body


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_reconcile_latency_phases_and_step_outcomes() -> None:
    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    metrics.record_phase(NS, NAME, None)  # other tests reconciled a cycle of this name
    count = sample("kaizen_reconcile_duration_seconds_count")
    evaluating = sample("kaizen_cycles", phase="Evaluating")
    analyzing = sample("kaizen_cycles", phase="Analyzing")
    succeeded = sample(
        "kaizen_step_outcomes_total",
        step="evaluate-baseline",
        outcome="Succeeded",
        reason="StepSucceeded",
    )

    await reconciler.reconcile(NS, NAME)
    assert sample("kaizen_reconcile_duration_seconds_count") == count + 1
    assert sample("kaizen_cycles", phase="Evaluating") == evaluating + 1

    ((_, job_name),) = kube.jobs
    kube.finish(job_name, exit_code=0, message=baseline_summary())
    await reconciler.reconcile(NS, NAME)
    await reconciler.reconcile(NS, NAME)  # the same outcome is counted once
    assert sample("kaizen_reconcile_duration_seconds_count") == count + 3
    # The cycle moved on: counted in its new phase only.
    assert sample("kaizen_cycles", phase="Evaluating") == evaluating
    assert sample("kaizen_cycles", phase="Analyzing") == analyzing + 1
    assert (
        sample(
            "kaizen_step_outcomes_total",
            step="evaluate-baseline",
            outcome="Succeeded",
            reason="StepSucceeded",
        )
        == succeeded + 1
    )
    del kube.cycles[(NS, NAME)]
    await reconciler.reconcile(NS, NAME)  # gone: no longer counted
    assert sample("kaizen_cycles", phase="Analyzing") == analyzing


def test_train_steps_share_one_label() -> None:
    assert metrics.step_label("train-geography") == "train"
    assert metrics.step_label("score-geography") == "score"
    assert metrics.step_label("merge") == "merge"
    assert metrics.step_label("combine") == "combine"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ApiException(status=409, reason="Conflict"), "409"),
        (ConnectionRefusedError(), "connection"),
    ],
)
async def test_failed_api_calls_are_counted_by_call_and_code(error: Exception, code: str) -> None:
    def create_namespaced_custom_object(*_: Any, **__: Any) -> Any:
        raise error

    before = sample("kaizen_api_errors_total", call="create_namespaced_custom_object", code=code)
    with pytest.raises(type(error)):
        await kube_module._call(create_namespaced_custom_object)
    after = sample("kaizen_api_errors_total", call="create_namespaced_custom_object", code=code)
    assert after == before + 1


async def test_api_calls_run_concurrently_beyond_the_default_thread_pool() -> None:
    # asyncio's default pool has cpu_count + 4 threads (6 on two cores): with slow answers
    # it capped the operator's requests. Twenty calls that each wait for all twenty to have
    # started can only finish when that many run at once.
    import asyncio
    import threading

    barrier = threading.Barrier(20, timeout=30)

    def call(**_: Any) -> int:
        return barrier.wait()

    results = await asyncio.gather(*(kube_module._call(call) for _ in range(20)))
    assert sorted(results) == list(range(20))
    assert kube_module.API_CONCURRENCY >= 20


# --- Job-event latency ---------------------------------------------------------------------

TO_STATUS = "kaizen_job_event_to_status_seconds"
QUEUE = "kaizen_job_event_queue_seconds"


def latency_counts() -> dict[str, float]:
    return {
        "watch": sample(f"{TO_STATUS}_count", seen="watch"),
        "list": sample(f"{TO_STATUS}_count", seen="list"),
        "queue_finished": sample(f"{QUEUE}_count", job="finished"),
        "queue_running": sample(f"{QUEUE}_count", job="running"),
    }


def added(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in latency_counts().items() if v != before[k]}


async def started_baseline(kube: FakeKube | None = None) -> tuple[CycleReconciler, FakeKube, str]:
    kube = kube or FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    await reconciler.reconcile(NS, NAME)
    ((_, job_name),) = kube.jobs
    return reconciler, kube, job_name


async def test_a_finished_jobs_watch_event_is_timed_to_the_patch_that_records_its_step() -> None:
    reconciler, kube, job_name = await started_baseline()
    kube.finish(job_name, exit_code=0, message=baseline_summary())
    arrived = time.monotonic()
    before = latency_counts()
    sum_before = sample(f"{TO_STATUS}_sum", seen="watch")

    await reconciler.reconcile(NS, NAME, job_event=metrics.JobEvent(arrived, "finished", job_name))
    done = time.monotonic()
    assert added(before) == {"watch": 1, "queue_finished": 1}
    assert 0 <= sample(f"{TO_STATUS}_sum", seen="watch") - sum_before <= done - arrived
    # Its Job's events after the outcome is recorded time nothing more.
    before = latency_counts()
    await reconciler.reconcile(
        NS, NAME, job_event=metrics.JobEvent(time.monotonic(), "finished", job_name)
    )
    assert added(before) == {"queue_finished": 1}


async def test_a_job_end_the_operators_own_listing_saw_first_counts_as_list() -> None:
    # A reconciliation started by something else (an earlier event, the timer) finds the Job
    # ended before its watch event arrives; the event that then arrives times nothing.
    reconciler, kube, job_name = await started_baseline()
    kube.finish(job_name, exit_code=0, message=baseline_summary())
    before = latency_counts()
    await reconciler.reconcile(NS, NAME)
    await reconciler.reconcile(
        NS, NAME, job_event=metrics.JobEvent(time.monotonic(), "finished", job_name)
    )
    assert added(before) == {"list": 1, "queue_finished": 1}


class _PatchFailsOnce(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next_patch = False

    async def patch_cycle_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        if self.fail_next_patch:
            self.fail_next_patch = False
            raise ApiException(status=500, reason="boom")
        return await super().patch_cycle_status(namespace, name, patch)


async def test_a_failed_reconciliation_leaves_the_event_to_the_retry_that_answers_it() -> None:
    reconciler, kube, job_name = await started_baseline(_PatchFailsOnce())
    assert isinstance(kube, _PatchFailsOnce)
    kube.finish(job_name, exit_code=0, message=baseline_summary())
    kube.fail_next_patch = True
    arrived = time.monotonic()
    before = latency_counts()
    with pytest.raises(ApiException):
        await reconciler.reconcile(
            NS, NAME, job_event=metrics.JobEvent(arrived, "finished", job_name)
        )
    assert added(before) == {"queue_finished": 1}
    await reconciler.reconcile(NS, NAME)  # the retry: no event of its own
    # Timed from the event's arrival, and queued twice (once per run that took it up).
    assert added(before) == {"watch": 1, "queue_finished": 2}


class _GatedKube(FakeKube):
    """get_cycle waits for `gate` once: a reconciliation that is in progress."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            await gate.wait()
        return await super().get_cycle(namespace, name)


async def test_events_folded_into_a_waiting_run_are_each_answered_by_it() -> None:
    reconciler, kube, job_name = await started_baseline(_GatedKube())
    assert isinstance(kube, _GatedKube)
    kube.gate = gate = asyncio.Event()
    before = latency_counts()
    running = asyncio.create_task(reconciler.reconcile(NS, NAME))  # holds the cycle's lock
    await asyncio.sleep(0)
    waiting = asyncio.create_task(
        reconciler.reconcile(
            NS, NAME, job_event=metrics.JobEvent(time.monotonic(), "running", job_name)
        )
    )
    await asyncio.sleep(0)
    kube.finish(job_name, exit_code=0, message=baseline_summary())
    folded = await reconciler.reconcile(
        NS, NAME, job_event=metrics.JobEvent(time.monotonic(), "finished", job_name)
    )
    assert folded is None  # the waiting run answers it
    gate.set()
    await asyncio.gather(running, waiting)
    assert added(before) == {"queue_running": 1, "queue_finished": 1, "watch": 1}


async def test_kopfs_watch_stream_stamps_each_event_with_its_arrival() -> None:
    from kopf._cogs.clients import watching

    async def stream(**_: Any) -> AsyncIterator[Any]:
        yield {"type": "ADDED", "object": {"metadata": {"name": "j"}}}
        yield "a bookmark"  # not an event: passed through untouched
        yield {
            "type": "MODIFIED",
            "object": {"metadata": {"name": "j", "managedFields": [{"manager": "kube"}]}},
        }

    before = time.monotonic()
    events = [event async for event in metrics._stamped(stream)(resource="jobs")]
    assert events[1] == "a bookmark"
    assert events[2]["object"] == {"metadata": {"name": "j"}}  # slimmed before kopf queues it
    stamps = [events[0][metrics.ARRIVED], events[2][metrics.ARRIVED]]
    assert before <= stamps[0] <= stamps[1] <= time.monotonic()
    assert metrics.job_event(events[2], "j", True) == metrics.JobEvent(stamps[1], "finished", "j")
    # Installed once (the handlers module does it on import), however often it is asked.
    assert metrics.stamp_watch_arrivals() and metrics.stamp_watch_arrivals()
    assert getattr(watching.infinite_watch, "_kaizen_stamped", False)
    assert not getattr(watching.infinite_watch.__wrapped__, "_kaizen_stamped", False)
