"""The Kaizen operator on a real API server, with the Helm chart's ServiceAccount and ClusterRole.

RBAC is enforced: the operator authenticates with a TokenRequest token of the chart's
ServiceAccount, so every call it makes must be granted by the chart's ClusterRole (and
OwnerReferencesPermissionEnforcement checks the ``blockOwnerDeletion`` of its Jobs). The job
simulator plays kubelet and Job controller (as admin); the real kube-controller-manager
collects garbage. A whole cycle runs through the real step programs on the tiny model, as in
tests/operator/test_operator_integration.py, here across an API server restart and an operator
restart.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.apiserver.operator_run import (
    G,
    P,
    PhaseRecorder,
    V,
    forbidden,
    forbidden_in,
    running_chart_operator,
)
from tests.apiserver.server import ApiServer
from tests.kube.cluster import CYCLES, EVENTS, JOBS, PODS, OperatorHandle, wait_for
from tests.kube.jobsim import JobSimulator
from tests.operator.test_operator_integration import STEPS, tiny_spec

GOLDEN_JOB = Path(__file__).resolve().parents[1] / "operator" / "golden" / "evaluator-cpu.yaml"


@dataclass
class Env:
    server: ApiServer
    namespace: str
    artifacts: Path
    sim: JobSimulator
    kubeconfig: Path
    settings_env: dict[str, str]

    @property
    def api(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.server.api_client())

    def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "ImprovementCycle",
            "metadata": {"name": name},
            "spec": spec,
        }
        return self.api.create_namespaced_custom_object(G, V, self.namespace, P, body)

    def cycle(self, name: str) -> dict[str, Any] | None:
        return self.server.get(CYCLES, self.namespace, name)

    def wait_phase(self, name: str, phase: str, timeout: float) -> dict[str, Any]:
        return wait_for(
            lambda: self.cycle(name),
            until=lambda c: bool(c) and (c.get("status") or {}).get("phase") == phase,
            timeout=timeout,
            interval=0.2,
            what=f"cycle {name} to reach {phase}",
        )

    def jobs(self) -> list[dict[str, Any]]:
        return self.server.objects(JOBS, self.namespace)

    def job(self, name: str) -> dict[str, Any] | None:
        return self.server.get(JOBS, self.namespace, name)

    def step_job(self, step: str) -> dict[str, Any] | None:
        """The Job of a step (its name ends in a digest: found by its step label)."""
        found = [
            job
            for job in self.server.objects(JOBS, self.namespace)
            if job["metadata"].get("labels", {}).get("kaizen.dev/step") == step
        ]
        return found[0] if found else None

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.server.objects(EVENTS, self.namespace)
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def operator(
        self, *, check_errors: bool = True
    ) -> contextlib.AbstractContextManager[OperatorHandle]:
        return running_chart_operator(
            self.kubeconfig, env=self.settings_env, check_errors=check_errors
        )


@pytest.fixture
def env(
    apiserver: ApiServer,
    chart_identity: tuple[str, str],
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(artifacts),
        "KAIZEN_ARTIFACT_PVC": "",
        # The safety-net timer is registered when the handlers module is (re)loaded.
        "KAIZEN_RECONCILE_INTERVAL": "3",
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    kubeconfig = apiserver.service_account_kubeconfig(
        *chart_identity, path=tmp_path / "operator.kubeconfig"
    )
    with JobSimulator(
        apiserver, namespace, max_parallel=4, extra_env={"OMP_NUM_THREADS": "1"}
    ) as sim:
        yield Env(apiserver, namespace, artifacts, sim, kubeconfig, settings_env)
        apiserver.delete_cycles(namespace)


def _can_i(env: Env, verb: str, resource: str, namespace: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    result = env.server.kubectl(*args, check=False, kubeconfig=env.kubeconfig)
    return result.stdout.strip() == "yes"


def install_chain_crd(env: Env) -> None:
    """The ImprovementChain CRD, established and published (kubectl resolves its name)."""
    env.server.kubectl("apply", "-f", str(CHAIN_CRD))
    env.server.kubectl(
        "wait", "--for=condition=Established", "crd/improvementchains.kaizen.dev", "--timeout=60s"
    )
    env.server.wait_published(yaml.safe_load(CHAIN_CRD.read_text()))


def test_the_charts_service_account_gets_only_what_the_chart_grants(env: Env) -> None:
    ns = env.namespace
    install_chain_crd(env)  # kubectl auth can-i resolves improvementchains through discovery
    granted = [
        ("watch", "improvementcycles.kaizen.dev"),
        ("patch", "improvementcycles.kaizen.dev"),
        ("patch", "improvementcycles.kaizen.dev/status"),
        ("update", "improvementcycles.kaizen.dev/finalizers"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("watch", "jobs.batch"),
        ("list", "pods"),
        ("get", "pods/log"),
        ("create", "events"),
        ("create", "events.events.k8s.io"),
    ]
    for verb, resource in granted:
        assert _can_i(env, verb, resource, ns), f"{verb} {resource} should be granted"
    assert _can_i(env, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    # An ImprovementChain creates and deletes its cycles, and keeps its lineage in a ConfigMap.
    for verb, resource in [
        ("create", "improvementcycles.kaizen.dev"),
        ("delete", "improvementcycles.kaizen.dev"),
        ("patch", "improvementchains.kaizen.dev/status"),
        ("create", "configmaps"),
    ]:
        assert _can_i(env, verb, resource, ns), f"{verb} {resource} should be granted"
    refused = [
        ("create", "improvementchains.kaizen.dev"),
        ("delete", "configmaps"),
        ("create", "pods"),
        ("get", "secrets"),
        ("update", "jobs.batch/status"),
    ]
    for verb, resource in refused:
        assert not _can_i(env, verb, resource, ns), f"{verb} {resource} should be refused"
    # Not system:masters: a real call outside the grant is refused by the server.
    core = kubernetes.client.CoreV1Api(env.server.api_client(env.kubeconfig))
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_namespaced_secret(ns)
    assert error.value.status == 403


@pytest.mark.cycle
def test_a_cycle_runs_to_succeeded_across_api_server_and_operator_restarts(
    env: Env, tiny_model_dir: Path
) -> None:
    recorder = PhaseRecorder(env.server, env.namespace)
    try:
        # Around the API server's restart kopf logs its failed watch requests as errors.
        with env.operator(check_errors=False) as operator:
            env.apply("tiny", tiny_spec(tiny_model_dir))
            # The API server restarts while the first step runs: every watch (the operator's,
            # the job simulator's) ends and starts again from its last resourceVersion.
            wait_for(lambda: env.step_job("evaluate-baseline"), what="the first Job")
            restarted_at = time.time()
            env.server.restart_apiserver()
            # The operator restarts while a training step runs, and that step finishes while no
            # operator runs: the new one resumes the cycle from what it finds.
            train = wait_for(
                lambda: [j for j in env.jobs() if "-train-" in j["metadata"]["name"]],
                what="a training Job",
                timeout=300,
            )
        # Until the restart, RBAC refused nothing. (Right after it, a 1.20 server refuses
        # service accounts for a moment: its /readyz does not wait for the authorizer's caches;
        # kopf and the safety net retry.)
        before = [r for r in operator.records if r.created < restarted_at]
        assert not forbidden_in(before), "\n".join(forbidden_in(before))
        wait_for(
            lambda: env.job(train[0]["metadata"]["name"]),
            until=lambda j: bool(j) and (j.get("status") or {}).get("succeeded") == 1,
            what="the training Job to finish without an operator",
            timeout=300,
        )
        # The resumed operator runs the cycle to its end without a single error.
        with env.operator(check_errors=True):
            cycle = env.wait_phase("tiny", "Succeeded", timeout=420)
            # kopf posts Events in the background: the last ones may land after the status.
            events = wait_for(
                lambda: env.events("tiny"),
                until=lambda evs: (
                    {"Promoted", "Rejected", "Inconclusive"} & {e["reason"] for e in evs}
                ),
                what="the verdict Event",
            )
    finally:
        recorder.stop()

    # The same assertions as the emulator's whole-cycle test.
    status = cycle["status"]
    assert status["observedGeneration"] == cycle["metadata"]["generation"]
    conditions = {c["type"]: c for c in status["conditions"]}
    for ctype in ("Succeeded", "Ready"):
        assert conditions[ctype]["status"] == "True"
    for ctype in ("Reconciling", "Stalled"):
        assert conditions[ctype]["status"] == "False"
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

    steps = {s["name"]: s for s in status["steps"]}
    train_steps = sorted(s for s in steps if s.startswith("train-"))
    assert len(train_steps) == 2
    assert all(s["state"] == "Succeeded" for s in steps.values()), steps
    assert set(steps) == {*STEPS[:2], *train_steps, *STEPS[4:]}

    # The phases shown on the way, in order. A watch does not survive an API server restart on
    # 1.20 (410 Gone, then a new list; requests may also hang while the server starts): a phase
    # shown only while the recorder listed again can be missed. The stage conditions above show
    # that every stage was passed.
    expected = [
        "Evaluating",
        "Analyzing",
        "Training",
        "Merging",
        "Evaluating",
        "Validating",
        "Succeeded",
    ]
    seen = recorder.phases["tiny"]
    rest = iter(expected)
    assert all(phase in rest for phase in seen), (seen, recorder.errors)  # in order, none twice
    assert seen[0] == "Evaluating" and seen[-1] == "Succeeded", seen
    if not recorder.relists:
        assert seen == expected, recorder.errors

    # One Job per step, owned by the cycle, each run exactly once despite both restarts.
    jobs = {j["metadata"]["name"]: j for j in env.jobs()}
    assert sorted(jobs) == sorted(s["jobName"] for s in steps.values())
    for job in jobs.values():
        (owner,) = job["metadata"]["ownerReferences"]
        assert owner["uid"] == cycle["metadata"]["uid"] and owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True  # allowed by improvementcycles/finalizers
    runs = sorted(run.job for run in env.sim.runs)
    assert runs == sorted(jobs), "a step ran twice or not at all"
    assert all(run.exit_code == 0 for run in env.sim.runs)

    cycle_dir = env.artifacts / env.namespace / "tiny"
    assert status["artifactsPath"] == str(cycle_dir)
    for step in steps:
        assert (cycle_dir / step / "summary.json").is_file(), step

    # kopf posts Events best-effort: those queued when the operator stopped, or posted while
    # the API server restarted (or refused the new token for a moment), are lost. None twice.
    reasons = [e["reason"] for e in events]
    assert 0 < reasons.count("StepStarted") <= len(steps)
    assert 0 < reasons.count("StepSucceeded") <= len(steps)
    # The only warnings come from the restart: kopf's copies of the handlers' retry notices
    # ("Logging": calls that failed while the server was down), and `JobRejected` for a Job
    # whose creation the restarted server refused during its RBAC window (403, retried: the
    # operator reports refusals that may clear and goes on). No step failed.
    warnings = [e for e in events if e["type"] == "Warning"]
    unexpected = [
        e
        for e in warnings
        if e["reason"] != "Logging"
        and not (e["reason"] == "JobRejected" and "forbidden" in e["message"].lower())
    ]
    assert not unexpected, [(e["reason"], e["message"]) for e in unexpected]

    # kubectl shows the printer columns of the finished cycle.
    out = env.server.kubectl("get", "ic", "tiny", "-n", env.namespace).stdout.splitlines()
    assert out[1].split()[:3] == ["tiny", "Succeeded", status["validation"]["verdict"]]

    # Deleting the cycle: the operator deletes its Jobs, the garbage collector their Pods, the
    # job simulator (as kubelet) confirms each Pod's graceful deletion.
    with env.operator() as operator:
        env.api.delete_namespaced_custom_object(G, V, env.namespace, P, "tiny")
        wait_for(lambda: env.cycle("tiny"), until=lambda c: c is None, what="the cycle to go")
        wait_for(env.jobs, until=lambda jobs: jobs == [], what="its Jobs to go")
        wait_for(
            lambda: env.server.objects(PODS, env.namespace),
            until=lambda pods: pods == [],
            what="its Pods to go",
        )
    assert not forbidden(operator)


def test_deleting_a_cycle_without_an_operator_garbage_collects_its_jobs(
    env: Env, tiny_model_dir: Path
) -> None:
    # The operator starts the first step and stops; the garbage collector alone then removes
    # the Job (owned by the cycle) and its Pod (owned by the Job) when the cycle is deleted.
    # The step's container waits before its command runs, so the Pod's deletion ends it
    # (the tiny model's evaluation could otherwise finish first).
    env.sim.step_seconds = 600.0
    with env.operator():
        env.apply("orphaned", tiny_spec(tiny_model_dir))
        wait_for(lambda: env.jobs(), until=lambda jobs: len(jobs) == 1, what="the first Job")
        wait_for(
            lambda: env.server.objects(PODS, env.namespace),
            until=lambda pods: len(pods) == 1,
            what="its Pod",
        )
    cycle = env.cycle("orphaned")
    assert cycle is not None and cycle["metadata"]["finalizers"] == ["kaizen.dev/finalizer"]
    # Without the operator nobody removes its finalizer: take it off, as an admin would.
    env.api.patch_namespaced_custom_object(
        G, V, env.namespace, P, "orphaned", {"metadata": {"finalizers": None}}
    )
    env.api.delete_namespaced_custom_object(G, V, env.namespace, P, "orphaned")
    wait_for(
        env.jobs, until=lambda jobs: jobs == [], what="the garbage collector to delete the Job"
    )
    wait_for(
        lambda: env.server.objects(PODS, env.namespace),
        until=lambda pods: pods == [],
        what="the garbage collector to delete the Pod",
    )
    assert [run.exit_code for run in env.sim.runs] in ([143], [137], [None], [])  # killed


def test_a_spec_the_schema_accepts_but_the_models_refuse_fails_the_cycle(env: Env) -> None:
    # `model.name: "a b"` passes the CRD's schema (no pattern there), so the API server takes
    # it; the operator's own check fails the cycle at once, naming the field.
    with env.operator():
        env.apply("invalid", {"model": {"name": "a b"}})
        cycle = env.wait_phase("invalid", "Failed", timeout=60)
        warnings = wait_for(
            lambda: [e for e in env.events("invalid") if e["reason"] == "InvalidSpec"],
            what="an InvalidSpec Event",
        )
    status = cycle["status"]
    assert status["failureReason"] == "InvalidSpec"
    assert "spec.model" in status["message"]
    assert warnings[0]["type"] == "Warning"
    assert env.jobs() == [] and env.sim.runs == []


def _server_minor(server: ApiServer) -> int:
    return int("".join(ch for ch in server.raw("GET", "/version")["minor"] if ch.isdigit()))


def test_a_failing_step_fails_the_cycle_with_its_reason(env: Env, tiny_model_dir: Path) -> None:
    spec = tiny_spec(tiny_model_dir)
    spec["evaluation"]["suite"] = "no-such-suite"
    with env.operator():
        env.apply("broken", spec)
        cycle = env.wait_phase("broken", "Failed", timeout=120)
        warnings = wait_for(
            lambda: [e for e in env.events("broken") if e["type"] == "Warning"],
            what="a Warning Event",
        )
    status = cycle["status"]
    assert status["failureReason"] == "ConfigurationError"
    assert "no-such-suite" in status["message"]
    (step,) = status["steps"]
    assert step["state"] == "Failed" and step["reason"] == "ConfigurationError"
    assert any("no-such-suite" in e["message"] for e in warnings)
    assert len(env.jobs()) == 1
    # The Job's podFailurePolicy fails it at the first configuration error. A server older than
    # 1.26 drops the field (see test_what_the_server_keeps_of_a_step_job): the Job is then
    # retried up to its backoffLimit (maxStepRetries, 1) before it fails, with the same outcome.
    codes = [run.exit_code for run in env.sim.runs]
    assert codes == ([3] if _server_minor(env.server) >= 26 else [3, 3])


def test_what_the_server_keeps_of_a_step_job(apiserver: ApiServer, namespace: str) -> None:
    """The golden evaluator Job, as this server stores it: the fields it does not know are
    dropped without a word (see docs/kube-testing.md for how each is tested instead)."""
    job = yaml.safe_load(GOLDEN_JOB.read_text())
    job["metadata"]["namespace"] = namespace
    job["metadata"].pop("ownerReferences")
    batch = kubernetes.client.BatchV1Api(apiserver.api_client())
    batch.create_namespaced_job(namespace, copy.deepcopy(job))
    stored = apiserver.get(JOBS, namespace, job["metadata"]["name"])
    assert stored is not None
    minor = _server_minor(apiserver)
    spec = stored["spec"]
    assert ("podFailurePolicy" in spec) == (minor >= 26)  # beta (on) from 1.26
    assert ("ttlSecondsAfterFinished" in spec) == (minor >= 21)  # beta (on) from 1.21
    # Everything else is kept as built.
    assert spec["backoffLimit"] == job["spec"]["backoffLimit"]
    container = spec["template"]["spec"]["containers"][0]
    built = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == built["command"]
    assert container["securityContext"] == built["securityContext"]
    assert (
        spec["template"]["spec"]["securityContext"]
        == job["spec"]["template"]["spec"]["securityContext"]
    )
    assert stored["metadata"]["labels"] == job["metadata"]["labels"]


CHAIN_CRD = (
    Path(__file__).resolve().parents[2] / "manifests" / "crd" / "kaizen.dev_improvementchains.yaml"
)


def test_a_chain_runs_its_cycles_with_the_charts_rbac(env: Env, tiny_model_dir: Path) -> None:
    # Everything a chain does goes through the chart's ClusterRole: create its cycles (whose
    # blockOwnerDeletion needs improvementchains/finalizers), write its status and the lineage
    # ConfigMap, and delete a cycle beyond its history limit.
    install_chain_crd(env)
    template = tiny_spec(tiny_model_dir)
    template["analysis"]["scoreThreshold"] = 0.0  # nothing to improve: two short cycles
    template["evaluation"]["domains"] = ["arithmetic"]
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementChain",
        "metadata": {"name": "loop"},
        "spec": {
            "template": {"spec": template},
            "afterPrevious": True,
            # plateauCycles: two cycles though the first had nothing to train (Exhausted else)
            "stop": {"maxCycles": 2, "plateauCycles": 5},
            "successfulCyclesHistoryLimit": 1,
        },
    }
    with env.operator() as operator:
        env.api.create_namespaced_custom_object(G, V, env.namespace, "improvementchains", body)
        chain = wait_for(
            lambda: env.server.get(f"{G}/{V}/improvementchains", env.namespace, "loop"),
            until=lambda c: (
                bool(c) and (c.get("status") or {}).get("phase") in ("Completed", "Stalled")
            ),
            timeout=300,
            interval=0.5,
            what="the chain to complete",
        )
        # loop-1 goes by the history limit (once the operator removed its finalizer).
        remaining = wait_for(
            lambda: sorted(
                c["metadata"]["name"] for c in env.server.objects(CYCLES, env.namespace)
            ),
            until=lambda names: names == ["loop-2"],
            timeout=60,
            what="the history limit to delete loop-1",
        )
        (owner,) = env.cycle("loop-2")["metadata"]["ownerReferences"]  # type: ignore[index]
        assert owner["kind"] == "ImprovementChain" and owner["blockOwnerDeletion"] is True
        configmap = kubernetes.client.CoreV1Api(env.server.api_client()).read_namespaced_config_map(
            "loop-lineage", env.namespace
        )
        assert "loop-2" in configmap.data["lineage.json"]
        # Deleting the chain deletes its cycles (the garbage collector; the operator removes
        # each cycle's finalizer) and its ConfigMap.
        env.api.delete_namespaced_custom_object(G, V, env.namespace, "improvementchains", "loop")
        wait_for(
            lambda: env.server.objects(CYCLES, env.namespace),
            until=lambda cycles: cycles == [],
            timeout=120,
            what="the chain's cycles to go",
        )
        assert forbidden(operator) == []
    status = chain["status"]
    assert status["phase"] == "Completed", status.get("message")
    assert [r["cycle"] for r in status["lineage"]] == ["loop-1", "loop-2"]
    assert remaining == ["loop-2"]
    assert status["lineageConfigMap"] == "loop-lineage"
