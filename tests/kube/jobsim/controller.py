"""The job simulator's Job controller part: Job status, retries, podFailurePolicy, deadlines."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from tests.kube.emulator import now_iso
from tests.kube.jobsim.common import _condition, _Gone, _JobRun
from tests.kube.jobsim.kubelet import Kubelet


class JobController(Kubelet):
    """Drive a Job through its Pod attempts and write its status, as the Job controller does."""

    def _mark_suspended(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        conditions = [
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") != "Suspended"
        ]
        conditions.append(_condition("Suspended", "JobSuspended", "Job suspended"))
        with contextlib.suppress(_Gone):
            self._api(
                self.batch.patch_namespaced_job_status,
                name,
                self.namespace,
                {"status": {"conditions": conditions}},
            )

    def _run_job(self, run: _JobRun) -> None:
        uid = run.job["metadata"]["uid"]
        try:
            while not run.cancel.is_set():
                if self._slots.acquire(timeout=0.05):
                    try:
                        self._run_job_slot(run)
                    finally:
                        self._slots.release()
                    break
        except _Gone:
            pass
        finally:
            with self._lock:
                self._active.pop(uid, None)
                if run.reason == "suspended":
                    self._suspended_marked.discard(uid)
                else:
                    self._done.add(uid)

    def _run_job_slot(self, run: _JobRun) -> None:
        job = run.job
        name = job["metadata"]["name"]
        spec = job.get("spec") or {}
        backoff_limit = int(spec.get("backoffLimit", 6))
        deadline_s = spec.get("activeDeadlineSeconds")
        deadline = time.monotonic() + float(deadline_s) if deadline_s else None
        status: dict[str, Any] = dict(job.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or []]
        for c in conditions:
            if c.get("type") == "Suspended" and c.get("status") == "True":
                c.update(_condition("Suspended", "JobResumed", "Job resumed", status="False"))
        status.update(
            startTime=status.get("startTime") or now_iso(), active=1, ready=0, conditions=conditions
        )
        failed = int(status.get("failed") or 0)

        def write_status() -> None:
            self._api(
                self.batch.patch_namespaced_job_status, name, self.namespace, {"status": status}
            )

        write_status()
        while True:
            exit_code, message, pod_gone = self._run_pod(run, deadline)
            if run.cancel.is_set() and run.reason in (
                "suspended",
                "simulator stopped",
                "job deleted",
            ):
                if run.reason == "suspended":
                    status.update(active=0)
                    status["conditions"] = [
                        c for c in status["conditions"] if c.get("type") != "Suspended"
                    ]
                    status["conditions"].append(
                        _condition("Suspended", "JobSuspended", "Job suspended")
                    )
                    with contextlib.suppress(_Gone):
                        write_status()
                return
            if deadline is not None and time.monotonic() >= deadline:
                failed += 1
                self._finish(
                    status,
                    failed,
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    write_status,
                )
                return
            if exit_code == 0:
                status.update(active=0, ready=0, succeeded=1)
                msg = "Reached expected number of succeeded pods"
                status["conditions"].append(
                    _condition("SuccessCriteriaMet", "CompletionsReached", msg)
                )
                write_status()
                status["conditions"].append(_condition("Complete", "CompletionsReached", msg))
                status["completionTime"] = now_iso()
                write_status()
                return
            action, index = self._failure_policy(spec, job, exit_code, pod_gone)
            if action == "FailJob":
                failed += 1
                container = self._container(job).get("name", "")
                msg = (
                    f"Container {container} for pod {self.namespace}/{run.pod} failed with exit code"
                    f" {exit_code} matching FailJob rule at index {index}"
                )
                self._finish(status, failed, "PodFailurePolicy", msg, write_status)
                return
            if action != "Ignore":
                failed += 1
            if failed > backoff_limit:
                self._finish(
                    status,
                    failed,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    write_status,
                )
                return
            status.update(active=0, failed=failed)
            write_status()
            if self.retry_delay:
                run.cancel.wait(self.retry_delay)
            if run.cancel.is_set() and run.reason != "pod deleted":
                return
            run.cancel.clear()
            run.reason = ""
            status.update(active=1)

    @staticmethod
    def _finish(
        status: dict[str, Any], failed: int, reason: str, message: str, write: Callable[[], None]
    ) -> None:
        status.update(active=0, ready=0, failed=failed)
        status["conditions"].append(_condition("FailureTarget", reason, message))
        write()
        status["conditions"].append(_condition("Failed", reason, message))
        write()

    @staticmethod
    def _container(job: dict[str, Any]) -> dict[str, Any]:
        containers = job["spec"]["template"]["spec"].get("containers") or [{}]
        return containers[0]

    def _failure_policy(
        self, spec: dict[str, Any], job: dict[str, Any], exit_code: int | None, pod_gone: bool
    ) -> tuple[str, int]:
        rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
        container = self._container(job).get("name")
        for index, rule in enumerate(rules):
            on_codes = rule.get("onExitCodes")
            if on_codes and exit_code is not None and not pod_gone:
                if on_codes.get("containerName") not in (None, container):
                    continue
                values = set(on_codes.get("values") or [])
                hit = (
                    exit_code in values
                    if on_codes.get("operator", "In") == "In"
                    else exit_code not in values
                )
                if hit:
                    return rule.get("action", "Count"), index
            for cond in rule.get("onPodConditions") or []:
                if (
                    pod_gone
                    and cond.get("type") == "DisruptionTarget"
                    and cond.get("status", "True") == "True"
                ):
                    return rule.get("action", "Count"), index
        return "Count", -1
