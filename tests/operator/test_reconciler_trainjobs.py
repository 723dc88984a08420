"""The reconciler with `training.backend: trainjob`: train steps become TrainJobs, observed,
failed and deleted like Jobs; without the operator's TrainJob support the step fails clearly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kaizen.cycle.planner import job_name
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from tests.cycle.test_engine import ok_summary
from tests.operator.test_reconciler import NAME, NOW, NS, UID, FakeKube, cycle_body

SPEC: dict[str, Any] = {
    "evaluation": {"limit": 2},
    "training": {"backend": "trainjob", "trainJob": {"numNodes": 2}},
    "resources": {"trainer": {"gpus": 8}},
}


class TrainJobKube(FakeKube):
    """The fake API with TrainJobs beside Jobs (their list items carry no `kind`, as on a
    real server's lists of built-in kinds; the reconciler must not rely on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.trainjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.selected_pods: dict[str, list[dict[str, Any]]] = {}

    async def create_job(self, manifest: dict[str, Any], owner_uid: str) -> Any:
        if manifest["kind"] != "TrainJob":
            return await super().create_job(manifest, owner_uid)
        name = manifest["metadata"]["name"]
        self.calls.append(("create_trainjob", name))
        self.trainjobs[(manifest["metadata"]["namespace"], name)] = copy.deepcopy(manifest)
        return manifest

    async def list_trainjobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list_trainjobs", label_selector))
        wanted = dict(part.split("=") for part in label_selector.split(","))
        return [
            {k: copy.deepcopy(v) for k, v in tj.items() if k != "kind"}
            for (ns, _), tj in self.trainjobs.items()
            if ns == namespace
            and all(tj["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        if label_selector not in self.selected_pods and "kaizen.dev/cycle=" in label_selector:
            return await super().list_pods(namespace, label_selector)  # plain Jobs' pods
        self.calls.append(("list_pods_selected", label_selector))
        return copy.deepcopy(self.selected_pods.get(label_selector, []))

    async def delete_trainjobs(self, namespace: str, names: Any) -> list[str]:
        names = list(names)
        self.calls.append(("delete_trainjobs", ",".join(names)))
        for name in names:
            self.trainjobs.pop((namespace, name), None)
        return names

    def finish_trainjob(self, name: str, *, message: str, failed: bool = False) -> None:
        kind = "Failed" if failed else "Complete"
        self.trainjobs[(NS, name)]["status"] = {
            "conditions": [{"type": kind, "status": "True", "reason": "x", "message": "m"}]
        }
        self.selected_pods[f"jobset.sigs.k8s.io/jobset-name={name}"] = [
            {
                "metadata": {
                    "name": f"{name}-node-0-0-abcde",
                    "creationTimestamp": NOW,
                    "labels": {"batch.kubernetes.io/job-completion-index": "0"},
                },
                "status": {
                    "containerStatuses": [
                        {
                            "name": "node",
                            "state": {
                                "terminated": {"exitCode": 1 if failed else 0, "message": message}
                            },
                        }
                    ]
                },
            }
        ]


def _reconciler(kube: FakeKube, events: list[Any], *, trainjob: bool) -> CycleReconciler:
    env = {"KAIZEN_ARTIFACT_ROOT": "/artifacts", "KAIZEN_TRAINJOB": str(trainjob).lower()}
    return CycleReconciler(
        kube,
        OperatorSettings.from_env(env),
        post_event=lambda body, type_, reason, message: events.append((type_, reason, message)),
        clock=lambda: NOW,
    )


async def _to_training(kube: TrainJobKube, reconciler: CycleReconciler) -> list[str]:
    """Run the baseline and the analysis through the fake; return the train steps' names."""
    await reconciler.reconcile(NS, NAME)
    for step in ("evaluate-baseline", "analyze"):
        name = job_name(NAME, step, 1, UID)
        summary = ok_summary(step, domains=("geography", "science"))
        kube.finish(name, exit_code=0, message=summary.model_dump_json(by_alias=True))
        await reconciler.reconcile(NS, NAME)
    steps = kube.cycles[(NS, NAME)]["status"]["steps"]
    return [s["jobName"] for s in steps if s["name"].startswith("train-")]


@pytest.fixture
def kube() -> TrainJobKube:
    fake = TrainJobKube()
    fake.cycles[(NS, NAME)] = cycle_body(copy.deepcopy(SPEC))
    return fake


async def test_train_steps_run_as_trainjobs_and_their_outcome_is_folded_in(
    kube: TrainJobKube,
) -> None:
    events: list[Any] = []
    reconciler = _reconciler(kube, events, trainjob=True)
    train_jobs = await _to_training(kube, reconciler)
    assert len(train_jobs) == 2
    assert sorted(name for _, name in kube.trainjobs) == sorted(train_jobs)
    assert not any(name in train_jobs for _, name in kube.jobs)  # no batch Job for them
    manifest = kube.trainjobs[(NS, train_jobs[0])]
    assert manifest["spec"]["trainer"]["numNodes"] == 2
    assert manifest["spec"]["trainer"]["numProcPerNode"] == 8
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == UID

    for name in train_jobs:
        domain = name.split("train-")[1].split("-")[0]
        summary = ok_summary(f"train-{domain}")
        kube.finish_trainjob(name, message=summary.model_dump_json(by_alias=True))
    await reconciler.reconcile(NS, NAME)
    status = kube.cycles[(NS, NAME)]["status"]
    states = {s["name"]: s["state"] for s in status["steps"]}
    assert states["train-geography"] == states["train-science"] == "Succeeded"
    assert status["phase"] == "Merging"
    # The merge step is a plain Job even with backend trainjob.
    assert (NS, job_name(NAME, "merge", 1, UID)) in kube.jobs


async def test_a_failed_trainjob_fails_the_cycle_and_its_running_sibling_is_deleted(
    kube: TrainJobKube,
) -> None:
    reconciler = _reconciler(kube, [], trainjob=True)
    first, second = await _to_training(kube, reconciler)
    kube.trainjobs[(NS, second)]["status"] = {"jobsStatus": [{"name": "node", "active": 1}]}
    kube.finish_trainjob(first, message="Traceback: CUDA out of memory", failed=True)
    outcome = await reconciler.reconcile(NS, NAME)
    status = kube.cycles[(NS, NAME)]["status"]
    assert status["phase"] == "Failed"
    assert "TrainJob failed" in status["message"]
    assert outcome is not None and outcome.deleted == [second]
    assert (NS, second) not in kube.trainjobs and (NS, first) in kube.trainjobs


async def test_without_trainjob_support_the_train_step_fails_saying_how_to_enable_it(
    kube: TrainJobKube,
) -> None:
    events: list[Any] = []
    reconciler = _reconciler(kube, events, trainjob=False)
    await _to_training(kube, reconciler)
    await reconciler.reconcile(NS, NAME)
    status = kube.cycles[(NS, NAME)]["status"]
    assert status["phase"] == "Failed" and status["failureReason"] == "JobRejected"
    assert "trainJob.enabled=true" in status["message"]
    assert not kube.trainjobs
    assert not any(call == "list_trainjobs" for call, _ in kube.calls)  # no RBAC for it
    assert any(reason == "JobRejected" for _, reason, _ in events)
