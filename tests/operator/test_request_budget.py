"""The API requests a cycle costs the operator, pinned: a table per Job event and per cycle.

A whole cycle is driven through the real Job-event handler (`handlers.job_event`) and the real
reconciler over the fake API of `test_reconciler.py`, which records every call. Each step's
Job goes through the writes a Job controller makes (ADDED; a pod created, `active: 1`; the pod
ready, `ready: 1`; `SuccessCriteriaMet` with `active: 0`; `Complete`), steps that run side by
side get each write in turn, and the calls each write causes are counted by kind. The tables
below are exact: a change that adds a request to a step fails here, and one that removes
requests updates the table (docs/reliability.md, "Requests per step").

kopf's own requests (its finalizer and annotations on the cycle, the watches) and the Event
posts (counted apart, as `post_event` calls) are not the reconciler's and are not in the call
counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from types import SimpleNamespace
from typing import Any

from kaizen.api.summary import encode_summary
from kaizen.operator import handlers
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.settings import OperatorSettings
from tests.cycle.test_engine import ok_summary
from tests.operator.test_reconciler import NAME, NOW, NS, UID, FakeKube, cycle_body

#: The writes a Job controller makes to one step's Job, in order (Kubernetes ≥ 1.31).
WRITES = ("ADDED", "pod created", "pod ready", "SuccessCriteriaMet", "Complete")

#: Calls the reconciler makes for each write of a step's Job that runs alone (the baseline):
#: nothing for the ADDED event of the Job it created (a Job as created says nothing the
#: launch record does not) nor for SuccessCriteriaMet (the outcome is read at Complete); one
#: read of the cycle, one list
#: of its Jobs, at most one list of pods, the status patch when something changed, and the
#: next step's Job.
ALONE = {
    "ADDED": {},
    "pod created": {"get_cycle": 1, "list_jobs": 1, "list_pods": 1, "patch_status": 1},
    # A Job that counts a ready pod cannot be stuck: its pods are not read.
    "pod ready": {"get_cycle": 1, "list_jobs": 1},
    "SuccessCriteriaMet": {},
    "Complete": {
        "get_cycle": 1,
        "list_jobs": 1,
        "list_pods": 1,
        "patch_status": 1,
        "create_job": 1,
    },
}

#: The whole cycle (two priority domains: baseline, analyze, two train, two score, merge,
#: combine, candidate, validate; steps that run together get each write in turn).
CYCLE = {
    "steps": 10,
    "get_cycle": 31,
    "list_jobs": 31,
    "list_pods": 23,  # one request per reconciliation at most, whatever number of Jobs
    "patch_status": 21,
    "create_job": 10,
    "events": 21,
}


def _kube() -> FakeKube:
    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body({"analysis": {"maxPriorityDomains": 2}})
    return kube


def _job_body(kube: FakeKube, name: str, status: dict[str, Any]) -> dict[str, Any]:
    manifest = kube.jobs[(NS, name)]
    return {"metadata": manifest["metadata"], "spec": manifest["spec"], "status": status}


def _pod(name: str, state: dict[str, Any], phase: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-x", "creationTimestamp": NOW},
        "status": {"phase": phase, "containerStatuses": [{"name": "step", "state": state}]},
    }


def _write(kube: FakeKube, name: str, step: str, write: str) -> dict[str, Any]:
    """Apply one Job-controller write to the fake and return the Job's new body."""
    status: dict[str, Any] = {}
    if write in ("pod created", "pod ready"):
        status = {"active": 1, "ready": int(write == "pod ready")}
        kube.pods[name] = [_pod(name, {"running": {}}, "Running")]
    elif write in ("SuccessCriteriaMet", "Complete"):
        conditions = [{"type": "SuccessCriteriaMet", "status": "True"}]
        if write == "Complete":
            conditions.append({"type": "Complete", "status": "True"})
        status = {"active": 0, "ready": 0, "succeeded": 1, "conditions": conditions}
        message = encode_summary(ok_summary(step, domains=("geography", "science")))
        terminated = {"exitCode": 0, "message": message}
        kube.pods[name] = [_pod(name, {"terminated": terminated}, "Succeeded")]
    kube.jobs[(NS, name)]["status"] = status
    return _job_body(kube, name, status)


def _kind(call: str) -> str:
    return "list_pods" if call in ("list_pods", "list_cycle_pods") else call


async def _drive(kube: FakeKube) -> tuple[list[tuple[list[str], str, Counter[str]]], int]:
    """Run the cycle to its end; the calls of each (steps, write), and the Events posted."""
    posted: list[str] = []
    reconciler = CycleReconciler(
        kube,
        OperatorSettings.from_env({"KAIZEN_ARTIFACT_ROOT": "/artifacts"}),
        post_event=lambda _body, _type, reason, _message: posted.append(reason),
        clock=lambda: NOW,
    )
    memo = SimpleNamespace(kaizen=reconciler)
    await handlers.cycle_changed(namespace=NS, name=NAME, memo=memo, reason="create")
    table: list[tuple[list[str], str, Counter[str]]] = [
        ([], "cycle created", Counter(_kind(c) for c, _ in kube.calls))
    ]
    driven: set[str] = set()
    try:
        while kube.cycles[(NS, NAME)]["status"]["phase"] not in ("Succeeded", "Failed"):
            steps = kube.cycles[(NS, NAME)]["status"]["steps"]
            wave = [
                (s["jobName"], s["name"])
                for s in steps
                if s["state"] not in ("Succeeded", "Failed") and s["jobName"] not in driven
            ]
            assert wave, f"no Job to drive: {steps}"
            for write in WRITES:
                for name, step in wave:
                    kube.calls.clear()
                    await handlers.job_event(
                        namespace=NS,
                        labels={"kaizen.dev/cycle": NAME},
                        memo=memo,
                        logger=logging.getLogger("test"),
                        body=_write(kube, name, step, write),
                        type="ADDED" if write == "ADDED" else "MODIFIED",
                    )
                    await reconciler.drain()  # the run the event requested
                    table.append(([step], write, Counter(_kind(c) for c, _ in kube.calls)))
            driven.update(name for name, _ in wave)
    finally:
        await reconciler.close()
    return table, len(posted)


async def test_a_step_alone_costs_four_reads_and_writes_per_job_write_that_matters() -> None:
    kube = _kube()
    table, _ = await _drive(kube)
    baseline = {
        write: dict(calls) for steps, write, calls in table if steps == ["evaluate-baseline"]
    }
    assert baseline == ALONE


async def test_the_requests_of_a_whole_cycle_are_pinned() -> None:
    kube = _kube()
    table, events = await _drive(kube)
    assert kube.cycles[(NS, NAME)]["status"]["phase"] == "Succeeded"
    total: Counter[str] = Counter()
    for _, _, calls in table:
        total.update(calls)
    steps = len(kube.cycles[(NS, NAME)]["status"]["steps"])
    assert {"steps": steps, **dict(total), "events": events} == CYCLE
    # No pod list for a write the engine does not act on, and never two in one reconciliation.
    for steps_of, write, calls in table:
        assert calls["list_pods"] <= 1, (steps_of, write, calls)
        if write in ("ADDED", "SuccessCriteriaMet"):
            assert not calls, (steps_of, write, calls)
    # Every Job the reconciler creates is its own step's (no duplicate).
    assert total["create_job"] == steps == len(kube.jobs)
    assert all(owner == UID for owner in _owners(kube))


def _owners(kube: FakeKube) -> list[str]:
    return [job["metadata"]["ownerReferences"][0]["uid"] for job in kube.jobs.values()]
