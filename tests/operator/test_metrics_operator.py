"""The Job-event latency metrics of the real kopf operator on the emulator, fast steps.

The operator runs in this process (`tests.kube.cluster.running_operator`), so its metrics are
read back from the default Prometheus registry; the scale benchmark (benchmarks/scale.py)
scrapes the same histograms from an operator process over HTTP.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.operator.test_faults import fault_env

pytestmark = pytest.mark.integration

TO_STATUS = "kaizen_job_event_to_status_seconds"
QUEUE = "kaizen_job_event_queue_seconds"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_steps_outcome_is_timed_once_from_when_the_operator_knew_its_job_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = ("watch", "list")
    with fault_env(tmp_path, monkeypatch, step_seconds=0.2) as env:
        counts = {how: sample(f"{TO_STATUS}_count", seen=how) for how in seen}
        sums = {how: sample(f"{TO_STATUS}_sum", seen=how) for how in seen}
        queued = sample(f"{QUEUE}_count", job="finished")
        started = time.monotonic()
        with env.operator():
            env.apply("timed")
            cycle = env.wait_phase("timed", "Succeeded")
        elapsed = time.monotonic() - started
    steps = cycle["status"]["steps"]
    assert len(steps) >= 7 and all(s["state"] == "Succeeded" for s in steps)
    timed = {how: sample(f"{TO_STATUS}_count", seen=how) - counts[how] for how in seen}
    # One observation per step outcome, whichever way the operator learnt of the Job's end.
    assert sum(timed.values()) == len(steps), timed
    spent = sum(sample(f"{TO_STATUS}_sum", seen=how) - sums[how] for how in seen)
    assert 0 < spent < elapsed * len(steps)
    # Finished Jobs' watch events reached the handler and were taken up by a reconciliation.
    assert sample(f"{QUEUE}_count", job="finished") > queued
