"""The operator's Prometheus metrics, read back from the default registry after real work."""

from __future__ import annotations

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
