"""The real kopf operator against the HTTP Kubernetes emulator, with REAL steps.

`tests/kube/` provides the emulator (real HTTP, the official client), a kopf runner, and a
job simulator that plays kubelet and the Job controller by running each Job's container
command line as a local process. Cycles are applied over HTTP; the operator's artifact root
is a temporary folder, so the steps write there directly. The model is the tiny random llama
of `tests/conftest.py`, the suite the shipped `demo` suite with two items per domain.
"""

from __future__ import annotations

import contextlib
import os
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
from tests.kube.jobsim import JobSimulator

pytestmark = pytest.mark.integration

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
OPERATOR_MODULE = "kaizen.operator.handlers"
ENDED = ("Succeeded", "Failed")  # a cycle's final phases
STEPS = [
    "evaluate-baseline",
    "analyze",
    "train-arithmetic",
    "train-geography",
    "score-arithmetic",
    "score-geography",
    "merge",
    "combine",
    "evaluate-candidate",
    "validate",
]


class Env:
    """A running emulator, job simulator and operator for one namespace."""

    def __init__(self, cluster: Cluster, namespace: str, artifacts: Path, sim: JobSimulator):
        self.cluster = cluster
        self.namespace = namespace
        self.artifacts = artifacts
        self.sim = sim
        self.api = kubernetes.client.CustomObjectsApi(cluster.api_client())

    def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "ImprovementCycle",
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.api.create_namespaced_custom_object(G, V, self.namespace, P, body)

    def cycle(self, name: str) -> dict[str, Any] | None:
        return self.cluster.get(CYCLES, self.namespace, name)

    def wait_phase(self, name: str, phase: str, timeout: float) -> dict[str, Any]:
        """The cycle once it reaches ``phase``; fails as soon as it ends in another phase."""
        cycle = wait_for(
            lambda: self.cycle(name),
            until=lambda c: bool(c) and (c.get("status") or {}).get("phase") in {phase, *ENDED},
            timeout=timeout,
            interval=0.2,
            what=f"cycle {name} to reach {phase}",
        )
        status = cycle["status"]
        assert status["phase"] == phase, (
            f"cycle {name} ended {status['phase']}, not {phase}: {status.get('message')}"
        )
        return cycle

    def jobs(self) -> list[dict[str, Any]]:
        return self.cluster.objects(JOBS, self.namespace)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.cluster.objects(EVENTS, self.namespace)
            if (e.get("involvedObject") or {}).get("name") == name
        ]


@contextlib.contextmanager
def operator_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    check_errors: bool,
    reconcile_interval: float = 3,
) -> Iterator[Env]:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (tmp_path / "cluster").mkdir()
    namespace = f"test-{random_suffix()}"
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(artifacts),
        "KAIZEN_ARTIFACT_PVC": "",
        # The safety-net timer is registered when the handlers module is (re)loaded.
        "KAIZEN_RECONCILE_INTERVAL": str(reconcile_interval),
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    with (
        running_cluster(tmp_path / "cluster") as cluster,
        # Steps run concurrently on a small CI machine: one torch thread each avoids the
        # oversubscription that made parallel train steps ten times slower.
        JobSimulator(cluster, namespace, max_parallel=4, extra_env={"OMP_NUM_THREADS": "1"}) as sim,
        running_operator(
            cluster,
            OPERATOR_MODULE,
            namespace,
            env=settings_env,
            check_errors=check_errors,
            timeout=60,
        ),
    ):
        yield Env(cluster, namespace, artifacts, sim)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """The operator must log no error at all."""
    with operator_env(tmp_path, monkeypatch, check_errors=True) as handle:
        yield handle


@pytest.fixture
def retrying_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """For tests where kopf retries a handler (it logs each retry as an error)."""
    with operator_env(tmp_path, monkeypatch, check_errors=False) as handle:
        yield handle


def tiny_spec(model: Path, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": str(model)},
        "evaluation": {"suite": "demo", "limit": 2, "maxNewTokens": 8, "batchSize": 8},
        # The random model scores below 1.0 everywhere, so there is always a plan.
        "analysis": {"scoreThreshold": 1.0, "maxPriorityDomains": 2},
        "training": {"steps": 2, "batchSize": 2, "maxSeqLength": 64},
    }
    spec.update(overrides)
    return spec


@pytest.mark.cycle
def test_a_cycle_runs_every_real_step_to_succeeded(env: Env, tiny_model_dir: Path) -> None:
    env.apply("tiny", tiny_spec(tiny_model_dir))
    cycle = env.wait_phase("tiny", "Succeeded", timeout=420)
    status = cycle["status"]

    assert status["observedGeneration"] == cycle["metadata"]["generation"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "False"
    for stage in (
        "BaselineEvaluated",
        "WeaknessAnalyzed",
        "AdaptersTrained",
        "AdaptersMerged",
        "CandidateEvaluated",
        "Validated",
    ):
        assert conditions[stage]["status"] == "True", conditions[stage]
    assert status["validation"]["verdict"] in ("Promote", "Reject", "Inconclusive")
    assert status["baseline"]["items"] > 0 and status["candidate"]["items"] > 0
    assert len(status["plan"]["priorityDomains"]) == 2
    assert len(status["adapters"]) == 2 and status["merged"]["path"]
    assert status["combination"]["path"] and set(status["alone"]) == set(
        status["plan"]["priorityDomains"]
    )

    steps = {s["name"]: s for s in status["steps"]}
    train_steps = sorted(s for s in steps if s.startswith("train-"))
    score_steps = sorted(s for s in steps if s.startswith("score-"))
    assert len(train_steps) == 2 and len(score_steps) == 2
    assert all(s["state"] == "Succeeded" for s in steps.values()), steps
    assert set(steps) == {*STEPS[:2], *train_steps, *score_steps, *STEPS[6:]}

    # Every phase was shown on the way, in order.
    phases: list[str] = []
    for version in env.cluster.history(CYCLES, env.namespace, "tiny"):
        phase = ((version or {}).get("status") or {}).get("phase")
        if phase and (not phases or phases[-1] != phase):
            phases.append(phase)
    assert phases == [
        "Evaluating",
        "Analyzing",
        "Training",
        "Merging",
        "Evaluating",
        "Validating",
        "Succeeded",
    ]

    # One Job per step, owned by the cycle, each run exactly once by the simulator.
    jobs = {j["metadata"]["name"]: j for j in env.jobs()}
    assert sorted(jobs) == sorted(s["jobName"] for s in steps.values())
    for job in jobs.values():
        (owner,) = job["metadata"]["ownerReferences"]
        assert owner["uid"] == cycle["metadata"]["uid"] and owner["controller"] is True
    runs = sorted(run.job for run in env.sim.runs)
    assert runs == sorted(jobs), "a step ran twice or not at all"
    assert all(run.exit_code == 0 for run in env.sim.runs)

    # The steps wrote under <root>/<namespace>/<cycle>/<step>/.
    cycle_dir = env.artifacts / env.namespace / "tiny"
    assert status["artifactsPath"] == str(cycle_dir)
    for step in steps:
        assert (cycle_dir / step / "summary.json").is_file(), step

    # kopf posts Events in the background: the last ones may land after the final status.
    events = wait_for(
        lambda: env.events("tiny"),
        until=lambda evs: {"Promoted", "Rejected", "Inconclusive"} & {e["reason"] for e in evs},
        what="the verdict Event",
    )
    reasons = [e["reason"] for e in events]
    assert reasons.count("StepStarted") == len(steps)
    assert reasons.count("StepSucceeded") == len(steps)
    assert not [e for e in events if e["type"] == "Warning"]


def test_a_failing_step_fails_the_cycle_with_its_reason(env: Env, tiny_model_dir: Path) -> None:
    spec = tiny_spec(tiny_model_dir)
    spec["evaluation"]["suite"] = "no-such-suite"
    env.apply("broken", spec)
    cycle = env.wait_phase("broken", "Failed", timeout=120)
    status = cycle["status"]
    assert status["failureReason"] == "ConfigurationError"
    assert "no-such-suite" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["BaselineEvaluated"]["status"] == "False"
    (step,) = status["steps"]
    assert step["state"] == "Failed" and step["reason"] == "ConfigurationError"
    # The configuration-error exit code fails the Job at once: no retry despite backoffLimit.
    assert [run.exit_code for run in env.sim.runs] == [3]
    warnings = wait_for(
        lambda: [e for e in env.events("broken") if e["type"] == "Warning"],
        what="a Warning Event",
    )
    assert any("no-such-suite" in e["message"] for e in warnings)
    assert len(env.jobs()) == 1  # nothing further was started


def test_an_invalid_spec_fails_at_once_naming_the_field(env: Env, tiny_model_dir: Path) -> None:
    # The emulator does no OpenAPI validation, so the operator's own check is what runs here.
    spec = tiny_spec(tiny_model_dir)
    spec["evaluation"]["maxNewTokens"] = 0
    env.apply("invalid", spec)
    cycle = env.wait_phase("invalid", "Failed", timeout=60)
    status = cycle["status"]
    assert status["failureReason"] == "InvalidSpec"
    assert "spec.evaluation.maxNewTokens" in status["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "InvalidSpec"
    warnings = wait_for(
        lambda: [e for e in env.events("invalid") if e["reason"] == "InvalidSpec"],
        what="an InvalidSpec Event",
    )
    assert warnings[0]["type"] == "Warning"
    assert env.jobs() == [] and env.sim.runs == []


def test_a_job_the_api_refuses_as_invalid_fails_the_cycle(
    retrying_env: Env, tiny_model_dir: Path
) -> None:
    env = retrying_env
    # An admission chain that calls the Job invalid, whatever is retried.
    env.cluster.add_fault(
        method="POST",
        resource="batch/v1/jobs",
        status=422,
        reason="Invalid",
        message='Job.batch "refused-evaluate-baseline" is invalid: spec.template: forbidden',
        times=1000,
    )
    env.apply("refused", tiny_spec(tiny_model_dir))
    cycle = env.wait_phase("refused", "Failed", timeout=60)
    status = cycle["status"]
    assert status["failureReason"] == "JobRejected"
    assert "422" in status["message"] and "is invalid" in status["message"]
    (step,) = status["steps"]
    assert (step["state"], step["reason"]) == ("Failed", "JobRejected")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Stalled"]["status"], conditions["Stalled"]["reason"]) == (
        "True",
        "JobRejected",
    )
    rejected = wait_for(
        lambda: [e for e in env.events("refused") if e["reason"] == "JobRejected"],
        what="a JobRejected Event",
    )
    assert rejected[0]["type"] == "Warning" and "is invalid" in rejected[0]["message"]
    assert env.jobs() == [] and env.sim.runs == []


def test_deleting_a_cycle_removes_its_jobs(env: Env, tiny_model_dir: Path) -> None:
    env.apply("doomed", tiny_spec(tiny_model_dir))
    wait_for(env.jobs, until=lambda jobs: len(jobs) == 1, what="the first Job", timeout=60)
    env.api.delete_namespaced_custom_object(G, V, env.namespace, P, "doomed")
    wait_for(lambda: env.cycle("doomed"), until=lambda c: c is None, what="the cycle to go")
    wait_for(env.jobs, until=lambda jobs: jobs == [], what="its Jobs to go")
    wait_for(
        lambda: env.cluster.objects(PODS, env.namespace),
        until=lambda pods: pods == [],
        what="its Pods to go",
    )
    assert os.environ.get("KAIZEN_ARTIFACT_PVC") == ""
