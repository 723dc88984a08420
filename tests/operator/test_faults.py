"""Fault injection: the real kopf operator on the emulator, with steps that report at once.

Each test breaks one thing a cluster breaks (the operator restarted in every phase; 409s and
500s on writes; dropped watches and an API server restart; a Job deleted by hand, with and
without its pods; an evicted pod) and asserts what users rely on: the cycle finishes, one
Job per step (plus one per relaunch the fault calls for), no step run twice at once, no
result lost. The job simulator runs steps in process (`tests.kube.fast_steps`), so these tests
measure the operator. The safety-net timer is set to an hour: nothing here may rely on it.
docs/reliability.md maps each fault to its test.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.kube.cluster import (
    CYCLES,
    EVENTS,
    JOBS,
    PODS,
    Cluster,
    running_cluster,
    running_operator,
    wait_for,
)
from tests.kube.emulator import random_suffix
from tests.kube.fast_steps import run_fast_step
from tests.kube.jobsim import JobSimulator

pytestmark = pytest.mark.integration

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
OPERATOR_MODULE = "kaizen.operator.handlers"


class FaultEnv:
    """An emulator, a job simulator with fast steps, and an operator that can be restarted."""

    def __init__(self, cluster: Cluster, namespace: str, sim: JobSimulator, env: dict[str, str]):
        self.cluster = cluster
        self.namespace = namespace
        self.sim = sim
        self.settings_env = env
        self.api = kubernetes.client.CustomObjectsApi(cluster.api_client())
        self.batch = kubernetes.client.BatchV1Api(cluster.api_client())
        self.core = kubernetes.client.CoreV1Api(cluster.api_client())

    def operator(self) -> contextlib.AbstractContextManager[Any]:
        # kopf logs each retried handler as an error: the faults here cause exactly that.
        return running_operator(
            self.cluster, OPERATOR_MODULE, self.namespace, env=self.settings_env, timeout=60
        )

    def apply(self, name: str, **spec: Any) -> None:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "ImprovementCycle",
            "metadata": {"name": name},
            "spec": {
                "model": {"name": "fast/model"},
                "evaluation": {"suite": "demo", "limit": 2},
                "analysis": {"scoreThreshold": 1.0, "maxPriorityDomains": 2},
                **spec,
            },
        }
        self.api.create_namespaced_custom_object(G, V, self.namespace, P, body)

    def cycle(self, name: str) -> dict[str, Any]:
        return self.cluster.get(CYCLES, self.namespace, name) or {}

    def wait(self, name: str, until: Any, what: str, timeout: float = 120) -> dict[str, Any]:
        return wait_for(lambda: self.cycle(name), until=until, timeout=timeout, what=what)

    def wait_phase(self, name: str, phase: str, timeout: float = 120) -> dict[str, Any]:
        cycle = self.wait(
            name,
            lambda c: (c.get("status") or {}).get("phase") in (phase, "Succeeded", "Failed"),
            f"{name} to reach {phase}",
            timeout,
        )
        assert cycle["status"]["phase"] == phase, cycle["status"].get("message")
        return cycle

    def step(self, name: str, step: str) -> dict[str, Any]:
        steps = (self.cycle(name).get("status") or {}).get("steps") or []
        return next((s for s in steps if s["name"] == step), {})

    def running_job(self, name: str, step: str) -> str:
        record = wait_for(
            lambda: self.step(name, step),
            until=lambda s: (
                s.get("state") == "Running"
                and any(p["metadata"]["name"].startswith(s["jobName"]) for p in self.pods())
            ),
            what=f"step {step} running",
        )
        return str(record["jobName"])

    def pods(self) -> list[dict[str, Any]]:
        return self.cluster.objects(PODS, self.namespace)

    def jobs(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.cluster.objects(JOBS, self.namespace))

    def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.cluster.objects(EVENTS, self.namespace)
            if (e.get("involvedObject") or {}).get("name") == name and e["reason"] == reason
        ]

    def assert_finished_once_per_step(self, name: str) -> dict[str, Any]:
        """Succeeded; every step Succeeded in one attempt, and each Job ran exactly once."""
        cycle = self.wait_phase(name, "Succeeded")
        steps = cycle["status"]["steps"]
        assert len(steps) >= 7 and all(s["state"] == "Succeeded" for s in steps), steps
        assert all(s["attempt"] == 1 for s in steps), steps
        job_names = sorted(s["jobName"] for s in steps)
        assert self.jobs() == job_names  # one Job per step, no duplicate
        runs = sorted(run.job for run in self.sim.runs if run.exit_code == 0)
        assert runs == job_names, "a step ran twice or not at all"
        # Every result reached the status (none lost to a restart or a failed write).
        status = cycle["status"]
        assert status["baseline"]["overall"] == 0.5 and status["candidate"]["overall"] == 0.6
        assert len(status["adapters"]) == 2 and status["combination"]["path"]
        assert status["validation"]["verdict"] == "Promote"
        return cycle


@contextlib.contextmanager
def fault_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, step_seconds: float = 0.3
) -> Iterator[FaultEnv]:
    (tmp_path / "cluster").mkdir()
    namespace = f"faults-{random_suffix()}"
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "KAIZEN_ARTIFACT_PVC": "",
        # An hour: a cycle that finishes here did not wait for the safety-net timer.
        "KAIZEN_RECONCILE_INTERVAL": "3600",
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    with (
        running_cluster(tmp_path / "cluster") as cluster,
        JobSimulator(
            cluster,
            namespace,
            max_parallel=8,
            step_runner=run_fast_step,
            step_seconds=step_seconds,
        ) as sim,
    ):
        yield FaultEnv(cluster, namespace, sim, settings_env)


def test_the_operator_restarted_in_every_phase_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fault_env(tmp_path, monkeypatch, step_seconds=1.0) as env:
        with env.operator():
            env.apply("restarts")
            env.wait_phase("restarts", "Evaluating")
        # Down while the step finishes, up again in the next phase: every phase is resumed.
        shown = _phases(env, "restarts")
        while shown[-1] not in ("Succeeded", "Failed"):
            count = len(shown)
            with env.operator():
                shown = wait_for(
                    functools.partial(_phases, env, "restarts"),
                    until=functools.partial(_longer_than, count),
                    timeout=120,
                    what=f"the phase after {shown}",
                )
        with env.operator():
            env.assert_finished_once_per_step("restarts")
        phases = _phases(env, "restarts")
        assert phases[0] == "Evaluating" and phases[-1] == "Succeeded" and len(phases) >= 7
        assert "Failed" not in phases


def _longer_than(count: int, phases: list[str]) -> bool:
    return len(phases) > count


def _phases(env: FaultEnv, name: str) -> list[str]:
    shown: list[str] = []
    for version in env.cluster.history(CYCLES, env.namespace, name):
        phase = ((version or {}).get("status") or {}).get("phase")
        if phase and (not shown or shown[-1] != phase):
            shown.append(phase)
    return shown


def test_conflicts_and_server_errors_on_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fault_env(tmp_path, monkeypatch) as env:
        status = {"method": "PATCH", "resource": CYCLES, "subresource": "status"}
        env.cluster.add_fault(**status, status=409, reason="Conflict", nth=2, times=3)
        env.cluster.add_fault(**status, status=500, nth=8, times=2)
        # Five Job creations in a row fail from the second on (the analyze step's, created
        # from a Job event, which kopf never retries): retried within seconds, not the hour.
        jobs = env.cluster.add_fault(method="POST", resource=JOBS, status=500, nth=2, times=5)
        env.cluster.add_fault(method="POST", resource=EVENTS, status=500, times=3)
        with env.operator():
            env.apply("faulty")
            env.assert_finished_once_per_step("faulty")
        assert env.cluster.call(lambda: jobs.fired) == 5


def test_dropped_watches_and_an_api_server_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fault_env(tmp_path, monkeypatch, step_seconds=0.5) as env, env.operator():
        env.apply("watched")
        env.wait_phase("watched", "Analyzing")
        env.cluster.drop_watches()  # every open watch ends; kopf watches again from its rv
        env.wait_phase("watched", "Training")
        env.cluster.restart_apiserver()  # watches end and old resourceVersions are 410 Gone
        env.assert_finished_once_per_step("watched")


def test_cycles_not_served_for_a_while_after_an_api_server_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restarted API server may answer 404 ("404 page not found") to a custom resource until
    # its CRD handler knows the CRD. kopf alone stops the operator on it; the operator lists
    # and watches the cycles again (after 1 s, then 2 s), saying so, and misses nothing.
    with fault_env(tmp_path, monkeypatch, step_seconds=0.5) as env, env.operator() as operator:
        env.apply("before")
        env.wait_phase("before", "Analyzing")
        unserved = env.cluster.add_fault(
            method="GET",
            resource=CYCLES,
            watch=True,
            status=404,
            reason="NotFound",
            message="404 page not found",
            times=2,
        )
        env.cluster.restart_apiserver()  # every watch ends; the next two of cycles answer 404
        stopped = operator.runner.future.done
        wait_for(
            lambda: (env.cluster.call(lambda: unserved.fired), stopped()),
            until=lambda seen: seen == (2, False) or seen[1],
            what="two 404s",
        )
        assert not stopped(), f"the operator stopped: {operator.runner.exception!r}"
        warnings = wait_for(
            lambda: [m for m in operator.messages(logging.WARNING) if "does not serve" in m],
            until=lambda found: len(found) == 2,
            what="a warning for each 404",
        )
        assert all("improvementcycles.v1alpha1.kaizen.dev" in m for m in warnings), warnings
        # The cycle created once they are served again runs, and so does the one before.
        env.apply("after")
        steps = [
            step
            for name in ("after", "before")
            for step in env.wait_phase(name, "Succeeded")["status"]["steps"]
        ]
        assert all(s["state"] == "Succeeded" and s["attempt"] == 1 for s in steps), steps
        assert env.jobs() == sorted(s["jobName"] for s in steps)  # one Job per step
        assert any("served again" in m for m in operator.messages(logging.INFO))
        assert not stopped()


def test_the_operator_started_while_the_cycles_are_not_served_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started in that moment, kopf alone would read the served resources once, find no cycles
    # and never serve them. The operator waits until discovery lists them, saying so.
    with fault_env(tmp_path, monkeypatch) as env:
        emulator = env.cluster.emulator
        keys = [f"{G}/{V}/{plural}" for plural in (P, "improvementchains")]
        unserved = env.cluster.call(lambda: {key: emulator.resources.pop(key) for key in keys})
        with env.operator() as operator:
            waiting = wait_for(
                lambda: [m for m in operator.messages(logging.WARNING) if "does not serve" in m],
                until=lambda found: len(found) >= 2,
                what="a warning for each look at discovery",
            )
            assert all(f"{P}.{V}.{G} yet (/apis lists no {G}/{V}" in m for m in waiting), waiting
            env.cluster.call(lambda: emulator.resources.update(unserved))
            env.apply("after")
            env.assert_finished_once_per_step("after")
            assert any("is served after" in m for m in operator.messages(logging.INFO))
            unresolved = [m for m in operator.messages(logging.WARNING) if "Unresolved" in m]
            assert not unresolved, unresolved


@pytest.mark.parametrize("propagation", ["Background", "Orphan"])
def test_a_job_deleted_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, propagation: str
) -> None:
    with fault_env(tmp_path, monkeypatch, step_seconds=1.5) as env, env.operator():
        env.apply("handled")
        job = env.running_job("handled", "merge")
        env.batch.delete_namespaced_job(job, env.namespace, propagation_policy=propagation)
        cycle = env.wait_phase("handled", "Succeeded")
        merge = next(s for s in cycle["status"]["steps"] if s["name"] == "merge")
        # The old pod's process ends in its own time (SIGTERM, then its handler): its exit code
        # may come after the relaunched step has finished, on a busy machine.
        old_runs = wait_for(
            lambda: [r.exit_code for r in env.sim.runs if r.job == job],
            until=lambda codes: bool(codes) and None not in codes,
            what=f"the exit code of {job}'s pod",
        )
        if propagation == "Background":
            # Its pod went with it: relaunched as a new attempt, under a new name.
            assert merge["attempt"] == 2 and merge["jobName"] != job
            assert old_runs == [143]
            assert [r.exit_code for r in env.sim.runs if r.job == merge["jobName"]] == [0]
            assert env.events("handled", "JobLost")
        else:
            # Its pod kept running: no second pod of the same step in the same folder; the
            # orphan's result is the step's.
            assert merge["attempt"] == 1 and merge["jobName"] == job
            assert old_runs == [0]
            assert not [r for r in env.sim.runs if "merge" in r.job and r.job != job]
            assert not env.events("handled", "JobLost")
        assert merge["state"] == "Succeeded"


def test_an_evicted_pod_is_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No retries at all: a counted failure would fail the cycle. A pod deleted under a
    # running Job (an eviction, a preemption, a drained node) is a disruption the Job's
    # podFailurePolicy ignores: the Job makes a new pod and the step goes on.
    with fault_env(tmp_path, monkeypatch, step_seconds=1.5) as env, env.operator():
        env.apply("evicted", maxStepRetries=0)
        job = env.running_job("evicted", "analyze")
        (pod,) = [p for p in env.pods() if p["metadata"]["labels"].get("job-name") == job]
        env.core.delete_namespaced_pod(pod["metadata"]["name"], env.namespace)
        cycle = env.wait_phase("evicted", "Succeeded")
        analyze = next(s for s in cycle["status"]["steps"] if s["name"] == "analyze")
        assert (analyze["state"], analyze["attempt"]) == ("Succeeded", 1)
        assert [r.exit_code for r in env.sim.runs if r.job == job] == [143, 0]
        stored = env.batch.read_namespaced_job(job, env.namespace)
        assert (
            stored.status is not None and not stored.status.failed
        )  # not counted against the step's retries
