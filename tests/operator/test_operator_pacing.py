"""The real kopf operator on the emulator with its memory bounds: one reconciliation in flight
at a time, and kopf's first lists in chunks (docs/reliability.md, memory)."""

from __future__ import annotations

import math
from pathlib import Path

import kubernetes
import pytest

from tests.kube.cluster import JOBS, running_cluster, running_operator, wait_for
from tests.kube.emulator import random_suffix
from tests.operator.test_faults import OPERATOR_MODULE, fault_env

pytestmark = pytest.mark.integration


def test_cycles_run_to_the_end_with_one_reconciliation_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Job events request runs and return; with a bound of one, every other run waits for the
    # slot, none is lost, and no step runs twice.
    with fault_env(tmp_path, monkeypatch, step_seconds=0.2) as env:
        env.settings_env["KAIZEN_MAX_RECONCILIATIONS"] = "1"
        names = ["one", "two", "three"]
        with env.operator():
            for name in names:
                env.apply(name)
            cycles = [env.wait_phase(name, "Succeeded", timeout=240) for name in names]
        steps = [step for cycle in cycles for step in cycle["status"]["steps"]]
        assert all(s["state"] == "Succeeded" and s["attempt"] == 1 for s in steps), steps
        assert env.jobs() == sorted(s["jobName"] for s in steps)  # one Job per step
        runs = sorted(run.job for run in env.sim.runs if run.exit_code == 0)
        assert runs == env.jobs(), "a step ran twice or not at all"


def _job(name: str, cycle: str) -> dict[str, object]:
    labels = {"kaizen.dev/cycle": cycle, "app.kubernetes.io/managed-by": "kaizen-operator"}
    container = {"name": "step", "image": "busybox", "command": ["true"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


@pytest.mark.parametrize(("chunk", "jobs"), [(5, 12), (0, 12)])
def test_kopf_lists_the_jobs_in_chunks_at_start_up(tmp_path: Path, chunk: int, jobs: int) -> None:
    # A restarted operator lists every Job it manages before it watches them: in one response
    # of 5,000 Jobs that was ~210 MB parsed, before anything is slimmed. Chunked, it holds one
    # chunk's worth at a time.
    namespace = f"chunks-{random_suffix()}"
    with running_cluster(tmp_path) as cluster:
        batch = kubernetes.client.BatchV1Api(cluster.api_client())
        for n in range(jobs):
            batch.create_namespaced_job(namespace, _job(f"gone-step-{n:02d}", "gone"))
        before = cluster.request_counts()
        env = {"KAIZEN_LIST_CHUNK_SIZE": str(chunk), "KAIZEN_ARTIFACT_PVC": ""}
        with running_operator(cluster, OPERATOR_MODULE, namespace, env=env):
            # kopf watches the Jobs once it has listed them all.
            wait_for(
                lambda: (
                    cluster.request_counts().get(f"WATCH {JOBS}", 0)
                    > before.get(f"WATCH {JOBS}", 0)
                ),
                what="kopf watching the Jobs",
            )
            lists = cluster.request_counts().get(f"GET {JOBS}", 0) - before.get(f"GET {JOBS}", 0)
    assert lists == (math.ceil(jobs / chunk) if chunk else 1)
