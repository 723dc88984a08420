"""The job simulator itself: its lifecycle and the watches that start and stop Job runs.

See the :mod:`tests.kube.jobsim` package docstring for what it simulates.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.watch.watch import iter_resp_lines

from tests.kube.jobsim.common import _Gone, _JobRun
from tests.kube.jobsim.trainjobs import TrainJobController


class JobSimulator(TrainJobController):
    """See the package docstring. Use as a context manager, or call start()/stop()."""

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> JobSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(raise_errors=exc[0] is None)

    def start(self) -> JobSimulator:
        watches = [("jobs", self._watch_jobs), ("pods", self._watch_pods)]
        if self.trainjobs:
            watches.append(("trainjobs", self._watch_trainjobs))
        for kind, target in watches:
            thread = threading.Thread(
                target=self._guard(target), name=f"jobsim-watch-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, raise_errors: bool = True) -> None:
        self._stop.set()
        with self._lock:
            runs = list(self._active.values())
        for run in runs:
            self._cancel(run, "simulator stopped")
        for resp in list(self._watch_resps.values()):
            self._abort_response(resp)
        threads = self._threads + [r.thread for r in runs if r.thread is not None]
        for thread in threads:
            thread.join(timeout=10)
        alive = [t.name for t in threads if t.is_alive()]
        self._tmpdir.cleanup()
        if raise_errors and (self.errors or alive):
            raise AssertionError(
                f"job simulator errors: {self.errors}"
                + (f"; threads still alive: {alive}" if alive else "")
            )

    # ------------------------------------------------------------ watching

    def _watch(
        self,
        kind: str,
        list_fn: Callable[..., Any],
        on_event: Callable[[str, dict[str, Any]], None],
        **kwargs: Any,
    ) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            params: dict[str, Any] = dict(
                kwargs,
                watch=True,
                timeout_seconds=60,
                allow_watch_bookmarks=True,
                _preload_content=False,
            )
            if rv:
                params["resource_version"] = rv
            try:
                resp = list_fn(self.namespace, **params)
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            self._watch_resps[kind] = resp
            try:
                for line in iter_resp_lines(resp):
                    if self._stop.is_set():
                        return
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        rv = None  # 410 Gone or another failure: start over with a fresh list
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(event["type"], obj)
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # a dropped stream: re-watch from the last seen resourceVersion
            finally:
                with contextlib.suppress(Exception):
                    resp.release_conn()

    def _watch_jobs(self) -> None:
        self._watch("jobs", self.batch.list_namespaced_job, self._on_job)

    def _watch_pods(self) -> None:
        self._watch("pods", self.core.list_namespaced_pod, self._on_pod, label_selector="job-name")

    @staticmethod
    def _finished(job: dict[str, Any]) -> bool:
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )

    def _on_job(self, etype: str, job: dict[str, Any]) -> None:
        uid = job["metadata"]["uid"]
        with self._lock:
            run = self._active.get(uid)
            if etype == "DELETED":
                if run is not None:
                    run.reason = "job deleted"
                    if self.kill_orphans:
                        self._cancel(run, "job deleted")
                return
            if uid in self._done or self._finished(job):
                return
            suspended = bool((job.get("spec") or {}).get("suspend"))
            if run is not None:
                if suspended:
                    self._cancel(run, "suspended")
                return
            if suspended:
                if uid not in self._suspended_marked:
                    self._suspended_marked.add(uid)
                    threading.Thread(
                        target=self._guard(self._mark_suspended, job), daemon=True
                    ).start()
                return
            run = _JobRun(job=job)
            run.thread = threading.Thread(
                target=self._guard(self._run_job, run),
                name=f"jobsim-{job['metadata']['name']}",
                daemon=True,
            )
            self._active[uid] = run
            run.thread.start()

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        # A real API server deletes a Pod bound to a node gracefully: it stays, with a
        # deletionTimestamp, until the kubelet has stopped its containers and deletes it for
        # good (grace period 0). The emulator removes it at once (DELETED).
        name = pod["metadata"]["name"]
        terminating = etype != "DELETED" and bool(pod["metadata"].get("deletionTimestamp"))
        if etype != "DELETED" and not terminating:
            return
        with self._lock:
            runs = [run for run in self._active.values() if run.pod == name]
            for run in runs:
                self._cancel(run, "pod deleted")
            if not terminating or name in self._confirming:
                return
            self._confirming.add(name)
        threading.Thread(
            target=self._guard(self._confirm_deletion, name, runs),
            name=f"jobsim-delete-{name}",
            daemon=True,
        ).start()

    def _confirm_deletion(self, name: str, runs: list[_JobRun]) -> None:
        """As a kubelet: once the Pod's process has ended, remove the Pod (grace period 0)."""
        for run in runs:
            proc = run.proc
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
        with contextlib.suppress(_Gone):
            self._api(self.core.delete_namespaced_pod, name, self.namespace, grace_period_seconds=0)
