"""The kopf wiring: which handlers exist, the kopf settings, errors per trigger, the CLI entry point."""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from kopf._core.intents import causes

from kaizen.operator import handlers, pacing
from kaizen.operator.__main__ import kopf_args
from kaizen.operator.kube import ApiException
from kaizen.operator.pacing import Retries
from kaizen.operator.reconciler import CycleReconciler
from kaizen.operator.runs import CycleRuns
from kaizen.operator.settings import OperatorSettings


@pytest.fixture(scope="module")
def registry() -> kopf.OperatorRegistry:
    fresh = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(fresh)
    try:
        importlib.reload(handlers)
    finally:
        kopf.set_default_registry(previous)
    return fresh


def test_cycles_are_reconciled_on_create_resume_and_spec_update(
    registry: kopf.OperatorRegistry,
) -> None:
    found = {
        (h.reason, h.field): h
        for h in registry._changing.get_all_handlers()
        if h.selector is not None and h.selector.group == "kaizen.dev"
    }
    assert set(found) == {
        (causes.Reason.CREATE, None),
        (None, None),  # on.resume
        (causes.Reason.UPDATE, ("spec",)),
        (causes.Reason.DELETE, None),
    }
    # The delete handler frees Jobs early but never blocks deletion.
    assert found[(causes.Reason.DELETE, None)].requires_finalizer is False


def test_job_events_and_the_safety_net_timer(registry: kopf.OperatorRegistry) -> None:
    # Job events of cycles (chains watch their cycles too; TrainJobs only when enabled).
    (watcher,) = [h for h in registry._watching.get_all_handlers() if h.selector.group == "batch"]
    assert (watcher.selector.group, watcher.selector.version) == ("batch", "v1")
    assert watcher.labels == {
        "kaizen.dev/cycle": kopf.PRESENT,
        "app.kubernetes.io/managed-by": "kaizen-operator",
    }
    (timer,) = [h for h in registry._spawning.get_all_handlers() if h.id == "safety_net"]
    assert timer.selector.group == "kaizen.dev"
    assert timer.interval == timer.idle == OperatorSettings.from_env().reconcile_interval
    assert timer.when is not None
    assert timer.when(status={"phase": "Training"}) is True
    assert timer.when(status={"phase": "Succeeded"}) is False
    assert timer.when(status={}) is True


def test_activities(registry: kopf.OperatorRegistry) -> None:
    activities = {h.activity for h in registry._activities.get_all_handlers()}
    assert {
        causes.Activity.STARTUP,
        causes.Activity.CLEANUP,
        causes.Activity.AUTHENTICATION,
        causes.Activity.PROBE,
    } <= activities


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True  # as a test harness sets it
    handlers.configure_kopf(settings, OperatorSettings.from_env({}))
    progress = settings.persistence.progress_storage
    diffbase = settings.persistence.diffbase_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert isinstance(diffbase, kopf.AnnotationsDiffBaseStorage)
    assert progress.prefix == diffbase.prefix == "kaizen.dev"
    assert settings.persistence.finalizer == "kaizen.dev/finalizer"
    assert settings.posting.level == logging.WARNING
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (30, 60)
    selectors = list(settings.watching.label_selectors.items())
    assert [value for _, value in selectors] == ["app.kubernetes.io/managed-by=kaizen-operator"]
    assert settings.scanning.disabled is True  # never switched back on

    production = kopf.OperatorSettings()
    handlers.configure_kopf(production, OperatorSettings.from_env({}))
    assert production.scanning.disabled is False
    handlers.configure_kopf(production, OperatorSettings.from_env({"KAIZEN_SCANNING": "false"}))
    assert production.scanning.disabled is True


class _Failing(CycleRuns[None]):
    """Every reconciliation fails with `error`; retries wait until the test ends."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(limit=4)
        self.error = error
        self.calls: list[tuple[str, str]] = []
        self.delays: list[float] = []
        self.retries = Retries(self.reconcile, sleep=self._sleep)
        self.settings = OperatorSettings.from_env({})

    async def _sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.Event().wait()  # cancelled by close()

    async def _reconcile(self, namespace: str, name: str) -> None:
        self.calls.append((namespace, name))
        raise self.error


@pytest.mark.parametrize(("retry", "delay"), [(0, 0.2), (1, 0.4), (3, 1.6), (10, 15.0)])
async def test_api_errors_in_cycle_handlers_are_retried_soon_then_less_often(
    retry: int, delay: float
) -> None:
    memo = SimpleNamespace(kaizen=_Failing(ApiException(status=500, reason="boom")))
    with pytest.raises(kopf.TemporaryError) as caught:
        await handlers.cycle_changed(namespace="ns", name="c", memo=memo, retry=retry)
    assert caught.value.delay == pytest.approx(delay)
    assert handlers.RETRY_DELAY == 15.0


async def test_job_events_never_raise() -> None:
    failing = _Failing(RuntimeError("boom"))
    logger = logging.getLogger("test")
    await handlers.job_event(
        namespace="ns",
        labels={"kaizen.dev/cycle": "c"},
        memo=SimpleNamespace(kaizen=failing),
        logger=logger,
    )
    await failing.drain()  # the run it requested failed, and a retry is pending
    assert failing.calls == [("ns", "c")] and failing.delays == [0.2]
    await handlers.safety_net(
        namespace="ns", name="c", memo=SimpleNamespace(kaizen=failing), logger=logger
    )
    assert failing.calls == [("ns", "c")] * 2
    await failing.close()


async def test_a_failed_job_event_is_retried_within_seconds_not_by_the_timer() -> None:
    # Five Job creations in a row fail (an API outage); kopf does not retry event handlers,
    # and the safety-net timer would come a minute later. The retries come at once, backing off.
    from tests.operator.test_reconciler import NAME, NS, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    create = kube.create_job
    failures = 5

    async def flaky_create(manifest: dict[str, Any], owner_uid: str) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise ApiException(status=500, reason="InternalError")
        return await create(manifest, owner_uid)

    kube.create_job = flaky_create  # type: ignore[method-assign]
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    reconciler.retries = Retries(reconciler.reconcile, sleep=no_wait)
    memo = SimpleNamespace(kaizen=reconciler)
    await handlers.job_event(
        namespace=NS, labels={"kaizen.dev/cycle": NAME}, memo=memo, logger=logging.getLogger("t")
    )
    for _ in range(1000):  # the retries need no time, only turns of the loop
        if kube.jobs:
            break
        await asyncio.sleep(0)
    assert len(kube.jobs) == 1, "the Job was not created by the retries"
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])  # about 6 s in all, not 60
    assert sum(delays) < OperatorSettings().reconcile_interval / 5
    assert reconciler.retries.pending == 0
    # A success resets the backoff: the next failure is retried after the first delay again.
    assert pacing.backoff(1) == delays[0]


async def test_job_events_of_a_settled_cycle_cost_nothing() -> None:
    from tests.operator.test_reconciler import NAME, NS, UID, FakeKube, cycle_body

    kube = FakeKube()
    body = cycle_body()
    body["status"] = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}],
    }
    kube.cycles[(NS, NAME)] = body
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    memo = SimpleNamespace(kaizen=reconciler)
    job = {"metadata": {"ownerReferences": [{"uid": UID, "controller": True}]}}
    logger = logging.getLogger("t")
    # Resuming a finished cycle (operator restart) reads nothing: kopf gave the body.
    await handlers.cycle_changed(namespace=NS, name=NAME, memo=memo, reason="resume", body=body)
    assert kube.calls == []
    for _ in range(3):  # TTL deletions, status updates of its Jobs
        await handlers.job_event(
            namespace=NS, labels={"kaizen.dev/cycle": NAME}, memo=memo, logger=logger, body=job
        )
    await reconciler.drain()
    assert kube.calls == []
    # A Job of a cycle recreated under the same name (another uid) is not covered.
    other = {
        "metadata": {"ownerReferences": [{"uid": "uid-2", "controller": True}]},
        "status": {"active": 1},
    }
    await handlers.job_event(
        namespace=NS, labels={"kaizen.dev/cycle": NAME}, memo=memo, logger=logger, body=other
    )
    await reconciler.drain()
    assert kube.calls == [("get_cycle", NAME)]
    # An edited finished cycle is not settled: the edit must be answered.
    edited = {**body, "metadata": {**body["metadata"], "generation": 2}}
    assert not pacing.settled(edited)
    stale_condition = copy.deepcopy(body)
    stale_condition["status"]["conditions"][0]["observedGeneration"] = 0
    assert not pacing.settled(stale_condition)


async def test_handlers_wait_for_startup() -> None:
    with pytest.raises(kopf.TemporaryError):
        await handlers.cycle_changed(namespace="ns", name="c", memo=SimpleNamespace())


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, ["--all-namespaces"]),
        ([], {"KAIZEN_NAMESPACES": "a,b"}, ["--namespace", "a", "--namespace", "b"]),
        (["-n", "x", "--standalone"], {"KAIZEN_NAMESPACES": "a"}, ["-n", "x", "--standalone"]),
        (["-A"], {}, ["-A"]),
    ],
)
def test_python_dash_m_kaizen_operator_arguments(
    argv: list[str], env: dict[str, str], expected: list[str]
) -> None:
    args = kopf_args(argv, OperatorSettings.from_env(env))
    assert args[:3] == ["run", "-m", "kaizen.operator"]
    assert sorted(args[3:]) == sorted(expected)


def test_operator_imports_no_ml_stack() -> None:
    # The operator image installs only the `operator` extra: nothing here may need torch.
    code = (
        "import sys, kaizen.operator\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft')]\n"
        "steps = [m for m in sys.modules if m.startswith(('kaizen.evaluator', 'kaizen.trainer'))]\n"
        "assert not heavy and not steps, (heavy, steps)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_kube_imports_the_kubernetes_client() -> None:
    from pathlib import Path

    package = Path(handlers.__file__).parent
    importers = sorted(
        path.name
        for path in package.glob("*.py")
        if any(
            line.startswith(("import kubernetes", "from kubernetes"))
            for line in path.read_text().splitlines()
        )
    )
    assert importers == ["kube.py"]


async def test_job_writes_the_engine_does_not_act_on_cost_no_reconciliation() -> None:
    # The Job controller writes a step's status about four times (started, success criteria
    # met, complete); kopf reports each. Only the writes that can change a decision reconcile
    # (a Job as created, with no status yet, tells nothing: its step is recorded as launched).
    from tests.operator.test_reconciler import NAME, NS, UID, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    memo = SimpleNamespace(kaizen=reconciler)
    labels = {"kaizen.dev/cycle": NAME}
    meta = {"name": "demo-x", "uid": "job-1", "ownerReferences": [{"uid": UID, "controller": True}]}
    versions = [
        ("ADDED", {}, False),  # as created: the step was recorded as launched then
        ("MODIFIED", {"active": 1}, True),
        ("MODIFIED", {"active": 1}, False),  # a write that changed nothing it reads
        (
            "MODIFIED",
            {"succeeded": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]},
            False,  # active went to 0, but the end is not written yet: nothing to act on
        ),
        (
            "MODIFIED",
            {
                "succeeded": 1,
                "completionTime": "2026-11-25T10:00:05Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}],
            },
            False,
        ),
        (
            "MODIFIED",
            {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
            True,
        ),
        ("DELETED", {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, True),
    ]
    for event, job_status, reconciles in versions:
        kube.calls.clear()
        body = {"metadata": meta, "spec": {}, "status": job_status}
        await handlers.job_event(
            namespace=NS,
            labels=labels,
            memo=memo,
            logger=logging.getLogger("t"),
            body=body,
            type=event,
        )
        await reconciler.drain()
        assert (("get_cycle", NAME) in kube.calls) == reconciles, (event, job_status)
    assert len(reconciler.job_signatures) == 0  # forgotten with the Job


async def test_a_job_created_suspended_is_news_and_its_step_waits_for_quota() -> None:
    # Kueue holds a Job suspended from its creation: its ADDED event is what says so.
    from tests.operator.test_reconciler import NAME, NS, UID, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    memo = SimpleNamespace(kaizen=reconciler)
    await reconciler.reconcile(NS, NAME)
    ((_, name),) = kube.jobs
    job = kube.jobs[(NS, name)]
    job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "gpus"
    job["spec"]["suspend"] = True
    job["metadata"]["ownerReferences"] = [{"uid": UID, "controller": True}]
    kube.calls.clear()
    await handlers.job_event(
        namespace=NS,
        labels={"kaizen.dev/cycle": NAME},
        memo=memo,
        logger=logging.getLogger("t"),
        body=copy.deepcopy(job),
        type="ADDED",
    )
    await reconciler.drain()
    assert ("get_cycle", NAME) in kube.calls
    (step,) = kube.cycles[(NS, NAME)]["status"]["steps"]
    assert step["state"] == "Queued" and "waiting for quota" in step["message"]


async def test_the_safety_net_skips_a_cycle_its_job_events_reconciled_within_the_interval() -> None:
    # kopf's timer fires every interval while a cycle runs (its idle time counts spec changes,
    # not status ones): a cycle reconciled since is not quiet, and costs no request.
    from tests.operator.test_reconciler import NAME, NS, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    now = [1000.0]
    settings = OperatorSettings.from_env({"KAIZEN_RECONCILE_INTERVAL": "60"})
    reconciler = CycleReconciler(
        kube, settings, post_event=lambda *_: None, monotonic=lambda: now[0]
    )
    memo = SimpleNamespace(kaizen=reconciler)
    logger = logging.getLogger("t")

    async def tick() -> bool:
        kube.calls.clear()
        await handlers.safety_net(namespace=NS, name=NAME, memo=memo, logger=logger)
        return ("get_cycle", NAME) in kube.calls

    assert await tick()  # never reconciled by this operator: reconciled
    now[0] += 59.0
    assert not await tick()  # the timer's own run 59 s ago
    await reconciler.reconcile(NS, NAME)  # a Job event's, at 1059 s
    now[0] += 59.0
    assert not await tick()
    now[0] += 1.0  # quiet for the whole interval
    assert await tick()
    await reconciler.retries.close()


async def test_a_deleted_trainjob_is_forgotten_like_a_deleted_job() -> None:
    # TrainJob events are handled by the Job-event handler itself, kopf's event type
    # included: a deleted TrainJob's signature goes, and a TrainJob of the same name later
    # is news again.
    from tests.operator.test_reconciler import NAME, NS, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(kube, OperatorSettings.from_env({}), post_event=lambda *_: None)
    trainjob = {"kind": "TrainJob", "metadata": {"name": f"{NAME}-train-x", "uid": "tj"}}
    reconciler.job_signatures.record(NS, f"{NAME}-train-x", pacing.job_signature(trainjob))
    assert reconciler.job_signatures.unchanged(NS, trainjob)

    await handlers.job_event(
        namespace=NS,
        labels={"kaizen.dev/cycle": NAME},
        memo=SimpleNamespace(kaizen=reconciler),
        logger=logging.getLogger("t"),
        body=trainjob,
        type="DELETED",
    )
    await reconciler.drain()

    assert not reconciler.job_signatures.unchanged(NS, trainjob)
    assert len(reconciler.job_signatures) == 0
