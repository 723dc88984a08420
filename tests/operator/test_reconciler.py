"""The reconciler against a fake API: order of effects, idempotence, failures, invalid specs.

The fake keeps cycles, Jobs and pods in dicts and records every call, so the tests can check
what the operator would send to Kubernetes without a cluster (the emulator-backed tests in
`test_operator_integration.py` run the real kopf operator over HTTP).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kaizen.api import EXIT_CONFIG_ERROR, ScoreDigest, StepSummary
from kaizen.cycle.planner import job_name
from kaizen.operator.jobs import job_selector
from kaizen.operator.kube import JobOwnedByAnother
from kaizen.operator.reconciler import CycleReconciler, merge_patch
from kaizen.operator.settings import OperatorSettings

NS, NAME, UID = "ml", "demo", "uid-1"
NOW = "2026-11-25T10:00:00Z"
BASELINE_JOB = job_name(NAME, "evaluate-baseline", 1, UID)


class FakeKube:
    def __init__(self) -> None:
        self.cycles: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.status_patches: list[dict[str, Any]] = []

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_cycle", name))
        await asyncio.sleep(0)  # a real call suspends: let concurrent triggers interleave
        found = self.cycles.get((namespace, name))
        return copy.deepcopy(found) if found else None

    async def patch_cycle_status(self, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        self.calls.append(("patch_status", name))
        self.status_patches.append(copy.deepcopy(patch))
        obj = self.cycles[(namespace, name)]
        obj["status"] = _apply_merge_patch(obj.get("status") or {}, patch)
        return obj

    async def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list_jobs", label_selector))
        wanted = dict(part.split("=") for part in label_selector.split(","))
        return [
            copy.deepcopy(job)
            for (ns, _), job in self.jobs.items()
            if ns == namespace
            and all(job["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]

    async def list_job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        self.calls.append(("list_pods", job_name))
        return copy.deepcopy(self.pods.get(job_name, []))

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Pods by the labels a step Job's template gives them (its cycle) and the Job
        controller adds (`job-name`); here a cycle's Jobs are named after it."""
        self.calls.append(("list_cycle_pods", label_selector))
        wanted = dict(part.split("=") for part in label_selector.split(","))
        cycle = wanted.get("kaizen.dev/cycle", "")
        found = []
        for job, pods in self.pods.items():
            if cycle and job.startswith(f"{cycle}-"):
                for pod in copy.deepcopy(pods):
                    pod["metadata"].setdefault("labels", {})["job-name"] = job
                    found.append(pod)
        return found

    async def create_job(self, manifest: dict[str, Any], owner_uid: str) -> Any:
        name = manifest["metadata"]["name"]
        self.calls.append(("create_job", name))
        existing = self.jobs.get((manifest["metadata"]["namespace"], name))
        if existing is not None:
            if existing["metadata"]["ownerReferences"][0]["uid"] != owner_uid:
                raise JobOwnedByAnother(
                    f"Job {manifest['metadata']['namespace']}/{name} exists but is not owned by "
                    f"cycle uid {owner_uid}"
                )
            return existing
        self.jobs[(manifest["metadata"]["namespace"], name)] = copy.deepcopy(manifest)
        return manifest

    async def delete_jobs(self, namespace: str, names: Any) -> list[str]:
        names = list(names)
        self.calls.append(("delete_jobs", ",".join(names)))
        for name in names:
            self.jobs.pop((namespace, name), None)
        return names

    # --- test helpers

    def finish(
        self, job_name: str, *, exit_code: int, message: str, failed_reason: str = ""
    ) -> None:
        job = self.jobs[(NS, job_name)]
        condition = (
            {"type": "Failed", "status": "True", "reason": failed_reason}
            if failed_reason
            else {"type": "Complete", "status": "True"}
        )
        job["status"] = {"conditions": [condition]}
        terminated = {"exitCode": exit_code, "message": message}
        self.pods[job_name] = [
            {
                "metadata": {"name": f"{job_name}-x", "creationTimestamp": NOW},
                "status": {
                    "containerStatuses": [{"name": "step", "state": {"terminated": terminated}}]
                },
            }
        ]

    def start(self, job_name: str) -> None:
        self.jobs[(NS, job_name)]["status"] = {"active": 1}


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


def cycle_body(spec: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementCycle",
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": generation},
        "spec": spec if spec is not None else {"evaluation": {"limit": 2}},
    }


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.cycles[(NS, NAME)] = cycle_body()
    return fake


@pytest.fixture
def events() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def reconciler(kube: FakeKube, events: list[tuple[str, str, str]]) -> CycleReconciler:
    settings = OperatorSettings.from_env({"KAIZEN_ARTIFACT_ROOT": "/artifacts"})
    return CycleReconciler(
        kube,
        settings,
        post_event=lambda body, type_, reason, message: events.append((type_, reason, message)),
        clock=lambda: NOW,
    )


def status(kube: FakeKube) -> dict[str, Any]:
    return kube.cycles[(NS, NAME)].get("status") or {}


def baseline_summary() -> str:
    summary = StepSummary(
        step="evaluate-baseline",
        ok=True,
        artifacts_dir="/artifacts/ml/demo/evaluate-baseline",
        evaluation=ScoreDigest(
            overall=0.25,
            domains={"geography": 0.25},
            items=4,
            results_path="/artifacts/ml/demo/evaluate-baseline/results.json",
        ),
    )
    return summary.model_dump_json(by_alias=True, exclude_none=True)


async def test_first_reconcile_records_the_step_before_creating_its_job(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and outcome.created == [BASELINE_JOB]
    order = [call for call, _ in kube.calls]
    assert order.index("patch_status") < order.index("create_job")
    st = status(kube)
    assert st["phase"] == "Evaluating"
    assert st["observedGeneration"] == 1
    assert [s["name"] for s in st["steps"]] == ["evaluate-baseline"]
    job = kube.jobs[(NS, BASELINE_JOB)]
    assert job["metadata"]["ownerReferences"][0]["uid"] == UID
    assert ("Normal", "StepStarted") in [(t, r) for t, r, _ in events]


async def test_reconciling_again_changes_nothing(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    await reconciler.reconcile(NS, NAME)
    kube.start(BASELINE_JOB)
    await reconciler.reconcile(NS, NAME)  # records Running
    assert status(kube)["steps"][0]["state"] == "Running"
    kube.calls.clear()
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and not outcome.status_patched and not outcome.created
    assert [c for c, _ in kube.calls if c in ("patch_status", "create_job", "delete_jobs")] == []


async def test_a_finished_step_is_folded_in_and_the_next_one_starts(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    await reconciler.reconcile(NS, NAME)
    kube.finish(BASELINE_JOB, exit_code=0, message=baseline_summary())
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and outcome.created == [job_name(NAME, "analyze", 1, UID)]
    st = status(kube)
    assert st["baseline"]["overall"] == 0.25
    assert [(s["name"], s["state"]) for s in st["steps"]] == [
        ("evaluate-baseline", "Succeeded"),
        ("analyze", "Pending"),
    ]
    # The finished Job is TTL-collected: nothing is recreated, nothing is forgotten.
    del kube.jobs[(NS, BASELINE_JOB)]
    kube.calls.clear()
    await reconciler.reconcile(NS, NAME)
    assert ("create_job", BASELINE_JOB) not in kube.calls
    assert status(kube)["steps"][0]["state"] == "Succeeded"


class HeldKube(FakeKube):
    """Its reads of the cycle wait until the test lets them go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def get_cycle(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_cycle", name))
        await self.release.wait()
        found = self.cycles.get((namespace, name))
        return copy.deepcopy(found) if found else None


async def test_a_jobs_end_is_answered_after_one_round_of_reads() -> None:
    # The watch saw the Job end (MODIFIED): the run reads the cycle, its Jobs and their pods
    # (the ended Job's termination message) at the same time, then answers as a run that
    # read them one by one does.
    kube = HeldKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(
        kube, OperatorSettings.from_env({}), post_event=lambda *_: None, clock=lambda: NOW
    )
    kube.release.set()
    await reconciler.reconcile(NS, NAME)
    kube.finish(BASELINE_JOB, exit_code=0, message=baseline_summary())
    kube.release.clear()
    kube.calls.clear()

    job = kube.jobs[(NS, BASELINE_JOB)]
    assert reconciler.request(NS, NAME, job={**job, "kind": "Job"}, changed=True)
    for _ in range(20):  # the run starts and issues its reads; the cycle's is held
        await asyncio.sleep(0)
    assert kube.calls == [
        ("get_cycle", NAME),
        ("list_jobs", job_selector(NAME)),
        ("list_cycle_pods", job_selector(NAME)),
    ]
    kube.release.set()
    await reconciler.drain()
    assert [call for call, _ in kube.calls[3:]] == ["patch_status", "create_job"]
    steps = status(kube)["steps"]
    assert [(s["name"], s["state"]) for s in steps][0] == ("evaluate-baseline", "Succeeded")

    # A Job seen at start-up (listed, not changed) or a timer's run: the cycle alone first.
    kube.calls.clear()
    kube.release.clear()
    assert reconciler.request(NS, NAME, job={**job, "kind": "Job"})
    for _ in range(20):
        await asyncio.sleep(0)
    assert kube.calls == [("get_cycle", NAME)]
    kube.release.set()
    await reconciler.drain()


async def test_success_without_a_readable_summary_fails_the_cycle_clearly(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    await reconciler.reconcile(NS, NAME)
    kube.finish(BASELINE_JOB, exit_code=0, message="Loading model...\nDone")
    await reconciler.reconcile(NS, NAME)
    st = status(kube)
    assert st["phase"] == "Failed"
    assert "no readable summary" in st["message"]
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert any(t == "Warning" for t, _, _ in events)


async def test_configuration_error_fails_the_cycle_and_stops_siblings(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    await reconciler.reconcile(NS, NAME)
    bad = StepSummary(
        step="evaluate-baseline",
        ok=False,
        reason="ConfigurationError",
        message="unknown suite 'nope'",
    )
    # A sibling Job of this cycle that is still running gets deleted when the cycle fails.
    kube.jobs[(NS, "demo-train-x")] = {
        "metadata": {
            "name": "demo-train-x",
            "labels": copy.deepcopy(kube.jobs[(NS, BASELINE_JOB)]["metadata"]["labels"]),
            "ownerReferences": [{"uid": UID}],
        },
        "status": {"active": 1},
    }
    kube.status_patches.clear()
    status(kube)["steps"].append(
        {"name": "train-x", "jobName": "demo-train-x", "state": "Running", "attempt": 1}
    )
    kube.finish(
        BASELINE_JOB,
        exit_code=EXIT_CONFIG_ERROR,
        message=bad.model_dump_json(by_alias=True),
        failed_reason="PodFailurePolicy",
    )
    outcome = await reconciler.reconcile(NS, NAME)
    st = status(kube)
    assert st["phase"] == "Failed"
    assert st["failureReason"] == "ConfigurationError"
    assert "unknown suite 'nope'" in st["message"]
    assert outcome is not None and outcome.deleted == ["demo-train-x"]
    assert (NS, BASELINE_JOB) in kube.jobs  # finished Jobs stay for their logs


async def test_invalid_spec_fails_once_naming_the_field(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    kube.cycles[(NS, NAME)] = cycle_body({"evaluation": {"maxNewTokens": 0}})
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and not outcome.created
    st = status(kube)
    assert st["phase"] == "Failed"
    assert st["failureReason"] == "InvalidSpec"
    assert "spec.evaluation.maxNewTokens" in st["message"]
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Ready"]["status"] == "False"
    assert [(t, r) for t, r, _ in events] == [("Warning", "InvalidSpec")]
    assert not kube.jobs
    # Not retried: the same spec gives no new status and no new Event (the cycle is settled:
    # one read, nothing else).
    events.clear()
    kube.calls.clear()
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is None and events == [] and kube.calls == [("get_cycle", NAME)]


async def test_fixed_spec_after_invalid_spec_starts_afresh(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    kube.cycles[(NS, NAME)] = cycle_body({"evaluation": {"maxNewTokens": 0}})
    await reconciler.reconcile(NS, NAME)
    kube.cycles[(NS, NAME)].update(
        {
            "spec": {"evaluation": {"limit": 2}},
            "metadata": {**cycle_body()["metadata"], "generation": 2},
        }
    )
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and outcome.created == [BASELINE_JOB]
    st = status(kube)
    assert st["phase"] == "Evaluating" and st["observedGeneration"] == 2
    assert "failureReason" not in st and "completionTime" not in st


async def test_a_foreign_job_with_the_same_name_is_not_adopted_and_the_status_says_so(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    kube.jobs[(NS, BASELINE_JOB)] = {
        "metadata": {
            "name": BASELINE_JOB,
            "labels": {},
            "ownerReferences": [{"uid": "old"}],
        }
    }
    with pytest.raises(JobOwnedByAnother):
        await reconciler.reconcile(NS, NAME)
    # The status was written first anyway; the next try says why the step does not start.
    assert status(kube)["steps"][0]["name"] == "evaluate-baseline"
    assert ("Warning", "JobNameTaken") in [(t, r) for t, r, _ in events]
    with pytest.raises(JobOwnedByAnother):
        await reconciler.reconcile(NS, NAME)
    st = status(kube)
    (step,) = st["steps"]
    assert (step["state"], step["reason"]) == ("Pending", "JobNameTaken")
    assert BASELINE_JOB in step["message"] and "not owned by" in step["message"]
    reconciling = next(c for c in st["conditions"] if c["type"] == "Reconciling")
    assert reconciling["reason"] == "JobNameTaken" and BASELINE_JOB in reconciling["message"]
    assert "JobNameTaken" not in st["phase"] and BASELINE_JOB in st["message"]
    # Once the other Job is gone, the step's own Job is created and the reason goes.
    del kube.jobs[(NS, BASELINE_JOB)]
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and outcome.created == [BASELINE_JOB]
    kube.start(BASELINE_JOB)
    await reconciler.reconcile(NS, NAME)
    assert status(kube)["steps"][0]["reason"] == "Running"


async def test_deleted_or_deleting_cycles_are_left_alone(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    kube.cycles[(NS, NAME)]["metadata"]["deletionTimestamp"] = NOW
    assert await reconciler.reconcile(NS, NAME) is None
    assert await reconciler.reconcile(NS, "absent") is None
    assert not kube.jobs and not kube.status_patches


async def test_concurrent_triggers_do_not_overlap(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    results = await asyncio.gather(*(reconciler.reconcile(NS, NAME) for _ in range(5)))
    assert sum(1 for r in results if r is not None) == 2  # one runs, one waits, the rest fold in
    assert [c for c in kube.calls if c[0] == "create_job"] == [("create_job", BASELINE_JOB)]
    assert reconciler.busy == 0


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"y": None}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
    ],
)
def test_merge_patch(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(old, new) == patch
    assert _apply_merge_patch(old, patch) == new


class _Refused(Exception):
    status = 403
    reason = "Forbidden"
    body = "exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=2"


async def test_a_refused_job_is_retried_and_reported(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    async def refuse(manifest: dict[str, Any], owner_uid: str) -> Any:
        raise _Refused()

    kube.create_job = refuse  # type: ignore[method-assign]
    with pytest.raises(_Refused):
        await reconciler.reconcile(NS, NAME)
    assert status(kube)["steps"][0]["state"] == "Pending"  # recorded; relaunched on the next try
    (rejected,) = [e for e in events if e[1] == "JobRejected"]
    assert rejected[0] == "Warning" and "exceeded quota" in rejected[2]


async def test_a_refused_job_is_explained_in_the_step_status_and_retried_until_it_fits(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    real_create = kube.create_job
    refusing = True

    async def maybe_refuse(manifest: dict[str, Any], owner_uid: str) -> Any:
        if refusing:
            kube.calls.append(("create_job", manifest["metadata"]["name"]))
            raise _Refused()
        return await real_create(manifest, owner_uid)

    kube.create_job = maybe_refuse  # type: ignore[method-assign]
    with pytest.raises(_Refused):
        await reconciler.reconcile(NS, NAME)
    with pytest.raises(_Refused):
        await reconciler.reconcile(NS, NAME)  # retried: quota may free up
    step = status(kube)["steps"][0]
    assert (step["state"], step["reason"]) == ("Pending", "JobRejected")
    assert "exceeded quota" in step["message"]
    reconciling = next(c for c in status(kube)["conditions"] if c["type"] == "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "JobRejected")
    assert status(kube)["phase"] != "Failed"

    refusing = False  # the quota frees up: the Job is created and the step runs
    await reconciler.reconcile(NS, NAME)
    assert (NS, BASELINE_JOB) in kube.jobs
    kube.start(BASELINE_JOB)
    await reconciler.reconcile(NS, NAME)
    assert status(kube)["steps"][0]["reason"] == "Running"


class _Invalid(Exception):
    status = 422
    reason = "Unprocessable Entity"
    body = f'Job.batch "{BASELINE_JOB}" is invalid: spec.template.spec.containers[0]'


async def test_a_job_the_api_calls_invalid_fails_the_cycle_once(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    async def invalid(manifest: dict[str, Any], owner_uid: str) -> Any:
        kube.calls.append(("create_job", manifest["metadata"]["name"]))
        raise _Invalid()

    kube.create_job = invalid  # type: ignore[method-assign]
    with pytest.raises(_Invalid):
        await reconciler.reconcile(NS, NAME)
    await reconciler.reconcile(NS, NAME)  # the refusal is final: no new attempt, no error
    final = status(kube)
    assert final["phase"] == "Failed" and final["failureReason"] == "JobRejected"
    assert "422" in final["message"] and "is invalid" in final["message"]
    assert [c for c in kube.calls if c[0] == "create_job"] == [("create_job", BASELINE_JOB)]
    await reconciler.reconcile(NS, NAME)
    assert len([c for c in kube.calls if c[0] == "create_job"]) == 1
    assert any(e[1] == "CycleFailed" for e in events)


async def test_a_pod_that_cannot_pull_its_image_is_named_in_the_status(
    kube: FakeKube, reconciler: CycleReconciler
) -> None:
    await reconciler.reconcile(NS, NAME)
    kube.start(BASELINE_JOB)
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "kaizen:nope"'}
    kube.pods[BASELINE_JOB] = [
        {
            "metadata": {"name": BASELINE_JOB + "-x", "creationTimestamp": NOW},
            "status": {
                "phase": "Pending",
                "containerStatuses": [{"name": "step", "state": {"waiting": waiting}}],
            },
        }
    ]
    await reconciler.reconcile(NS, NAME)
    step = status(kube)["steps"][0]
    assert (step["state"], step["reason"]) == ("Running", "ImagePullBackOff")
    assert "kaizen:nope" in step["message"]
    reconciling = next(c for c in status(kube)["conditions"] if c["type"] == "Reconciling")
    assert reconciling["reason"] == "ImagePullBackOff"


async def test_an_invalid_edit_of_a_running_cycle_is_answered_not_run_and_reverting_recovers(
    kube: FakeKube, reconciler: CycleReconciler, events: list[Any]
) -> None:
    await reconciler.reconcile(NS, NAME)
    kube.start(BASELINE_JOB)
    await reconciler.reconcile(NS, NAME)
    stored = kube.cycles[(NS, NAME)]
    stored["spec"] = {"evaluation": {"limit": 2, "maxNewTokens": 0}}
    stored["metadata"]["generation"] = 2
    events.clear()
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and not outcome.deleted
    st = status(kube)
    # The cycle goes on with the spec it started with; the edit is named, not run.
    assert st["phase"] == "Evaluating" and st["steps"][0]["state"] == "Running"
    conditions = {c["type"]: c for c in st["conditions"]}
    assert (conditions["SpecApplied"]["status"], conditions["SpecApplied"]["reason"]) == (
        "False",
        "InvalidEdit",
    )
    assert "spec.evaluation.maxNewTokens" in conditions["SpecApplied"]["message"]
    assert {c["observedGeneration"] for c in st["conditions"]} == {2}
    assert [(t, r) for t, r, _ in events] == [("Warning", "InvalidEdit")]
    # The baseline finishes; the next step is built from the spec the cycle started with.
    kube.finish(BASELINE_JOB, exit_code=0, message=baseline_summary())
    outcome = await reconciler.reconcile(NS, NAME)
    assert outcome is not None and outcome.created == [job_name(NAME, "analyze", 1, UID)]
    # Reverting the edit recovers: applied again, nothing failed on the way.
    stored["spec"] = {"evaluation": {"limit": 2}}
    stored["metadata"]["generation"] = 3
    await reconciler.reconcile(NS, NAME)
    st = status(kube)
    conditions = {c["type"]: c for c in st["conditions"]}
    assert conditions["SpecApplied"]["status"] == "True" and st["phase"] == "Analyzing"
    assert "failureReason" not in st
