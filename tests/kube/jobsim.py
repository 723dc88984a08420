"""The job simulator: a kubelet + Job controller stand-in that talks HTTP to the emulator.

Usage::

    from tests.kube.cluster import running_cluster
    from tests.kube.jobsim import JobSimulator

    with running_cluster() as cluster, JobSimulator(cluster, "ns1") as sim:
        ...create Jobs over HTTP; sim.runs lists what ran (job, pod, argv, exit code)...

It watches batch/v1 Jobs (and their Pods) in one namespace with the official client. For each
new Job that is not suspended (``spec.suspend: true`` keeps it pending with a ``Suspended``
condition, as Kueue relies on), and within ``max_parallel`` running Jobs, it:

1. sets the Job's ``startTime``/``active``, creates a Pod ``<job>-<5 chars>`` (labels
   ``job-name``, ``batch.kubernetes.io/job-name``, ``controller-uid``, ...; a controller
   ownerReference to the Job) and marks it Running;
2. runs the first container's ``command`` + ``args`` as a local subprocess (``$(VAR)``
   expanded; a leading ``python`` becomes ``sys.executable``) in ``workdir`` (the repo root),
   with ``os.environ`` + the container's ``env`` (plain values, ``secretKeyRef``,
   ``configMapKeyRef``, ``fieldRef``) and ``envFrom``; a missing Secret/ConfigMap keeps the Pod
   waiting with ``CreateContainerConfigError``, as a kubelet does;
3. points the container's ``terminationMessagePath`` at a temp file: via the env var
   ``KAIZEN_SUMMARY_PATH``, and by substituting the path wherever it appears in argv or env;
4. stores stdout+stderr as the Pod's log (``GET .../pods/<pod>/log``), then writes the Pod's
   ``containerStatuses[0].state.terminated`` (exitCode, reason Completed/Error, message = the
   termination file, at most 4096 bytes; with ``FallbackToLogsOnError`` and a failed container
   with an empty file, the log's last 80 lines / 2048 bytes) and phase Succeeded/Failed;
5. then writes the Job's status: ``succeeded: 1`` with ``SuccessCriteriaMet`` then ``Complete``;
   or on failure applies ``podFailurePolicy`` (``FailJob`` / ``Ignore`` / ``Count`` rules with
   ``onExitCodes``) and ``backoffLimit`` (a new Pod per retry, ``failed: N``), ending with
   ``FailureTarget`` then ``Failed`` (reason ``PodFailurePolicy`` / ``BackoffLimitExceeded``).
   ``activeDeadlineSeconds`` kills the process and fails the Job with ``DeadlineExceeded``.

As on a real node, a process is killed when its Pod is deleted (a Job deleted with
``Background``/``Foreground`` propagation takes its Pods along). A Job deleted with the batch/v1
default (``Orphan``) leaves its Pod running to the end, as in a real cluster; pass
``kill_orphans=True`` to kill it anyway. Suspending a running Job kills it and deletes its Pod.

Errors inside the simulator are collected and re-raised by :meth:`JobSimulator.stop`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from tests.kube.emulator import now_iso, random_suffix

REPO_ROOT = Path(__file__).resolve().parents[2]
SUMMARY_ENV = "KAIZEN_SUMMARY_PATH"
MESSAGE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
T = TypeVar("T")


class _Gone(Exception):
    """The Job (or its Pod) no longer exists: stop quietly."""


class _ConfigError(Exception):
    """A referenced Secret/ConfigMap/key is missing (CreateContainerConfigError)."""


@dataclass
class Run:
    """One Pod attempt of a Job, for assertions."""

    job: str
    pod: str
    argv: list[str]
    exit_code: int | None = None
    message: str = ""
    log: str = ""


@dataclass
class _JobRun:
    job: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    pod: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None


def _condition(ctype: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    now = now_iso()
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def _tail(text: str) -> str:
    lines = text.splitlines(keepends=True)[-FALLBACK_LINES:]
    data = "".join(lines).encode()[-FALLBACK_BYTES:]
    return data.decode(errors="replace")


class JobSimulator:
    """See the module docstring. Use as a context manager, or call start()/stop()."""

    def __init__(
        self,
        cluster: Any,
        namespace: str,
        *,
        max_parallel: int = 4,
        workdir: Path | str = REPO_ROOT,
        extra_env: dict[str, str] | None = None,
        retry_delay: float = 0.0,
        kill_orphans: bool = False,
        api_client_factory: Callable[[], kubernetes.client.ApiClient] | None = None,
    ) -> None:
        self.namespace = namespace
        self.workdir = Path(workdir)
        self.extra_env = dict(extra_env or {})
        self.retry_delay = retry_delay
        self.kill_orphans = kill_orphans
        factory = api_client_factory or cluster.api_client
        self._factory = factory
        self._client = factory()
        self.batch = kubernetes.client.BatchV1Api(self._client)
        self.core = kubernetes.client.CoreV1Api(self._client)
        self.runs: list[Run] = []
        self.errors: list[str] = []
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._active: dict[str, _JobRun] = {}  # by Job uid
        self._done: set[str] = set()
        self._suspended_marked: set[str] = set()
        self._watch_resps: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._tmpdir = tempfile.TemporaryDirectory(prefix="jobsim-")

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> JobSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(raise_errors=exc[0] is None)

    def start(self) -> JobSimulator:
        for kind, target in (("jobs", self._watch_jobs), ("pods", self._watch_pods)):
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

    def _guard(self, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
        def target() -> None:
            try:
                fn(*args)
            except Exception:
                if not self._stop.is_set():
                    self.errors.append(traceback.format_exc())

        return target

    @staticmethod
    def _abort_response(resp: Any) -> None:
        """Unblock a thread that reads a watch stream."""
        with contextlib.suppress(Exception):
            sock = resp.connection.sock
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            resp.close()

    # ------------------------------------------------------------ API helpers

    def _api(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the API, retrying transient errors (409/429/5xx); 404 raises _Gone."""
        for attempt in range(20):
            try:
                return fn(*args, **kwargs)
            except ApiException as e:
                if e.status == 404:
                    raise _Gone(str(e.reason)) from e
                if e.status in (409, 429, 500, 502, 503, 504) and attempt < 19:
                    time.sleep(0.02 * (attempt + 1))
                    continue
                raise
        raise AssertionError("unreachable")

    def _put_log(self, pod: str, text: str) -> None:
        config = self._client.configuration
        url = f"{config.host}/api/v1/namespaces/{self.namespace}/pods/{pod}/log"
        resp = self._client.rest_client.pool_manager.request(
            "PUT", url, body=text.encode(), headers={"Content-Type": "text/plain"}
        )
        if resp.status == 404:
            raise _Gone(f"pod {pod} is gone")
        if resp.status >= 400:
            raise RuntimeError(f"PUT {url} answered {resp.status}: {resp.data[:500]!r}")

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
        if etype != "DELETED":
            return
        name = pod["metadata"]["name"]
        with self._lock:
            for run in self._active.values():
                if run.pod == name:
                    self._cancel(run, "pod deleted")

    def _cancel(self, run: _JobRun, reason: str) -> None:
        run.reason = run.reason or reason
        if reason in ("suspended", "simulator stopped"):
            run.reason = reason
        run.cancel.set()
        proc = run.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)

    # ------------------------------------------------------------ the Job controller part

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

    # ------------------------------------------------------------ the kubelet part

    def _run_pod(self, run: _JobRun, deadline: float | None) -> tuple[int | None, str, bool]:
        """Create a Pod, run it to the end. Returns (exit code, message, pod deleted)."""
        job = run.job
        jname, juid = job["metadata"]["name"], job["metadata"]["uid"]
        template = job["spec"]["template"]
        pod_spec = json.loads(json.dumps(template.get("spec") or {}))
        pod_spec["nodeName"] = "jobsim"
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "job-name": jname,
                "batch.kubernetes.io/job-name": jname,
                "controller-uid": juid,
                "batch.kubernetes.io/controller-uid": juid,
            }
        )
        pod_name = f"{jname}-{random_suffix()}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": jname,
                        "uid": juid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        self._api(self.core.create_namespaced_pod, self.namespace, body)
        run.pod = pod_name
        container = (pod_spec.get("containers") or [{}])[0]
        cname = container.get("name", "main")
        term_path = container.get("terminationMessagePath") or "/dev/termination-log"
        summary = Path(self._tmpdir.name) / f"{pod_name}.termination-log"
        summary.write_text("")

        # Resolve the environment; a missing reference keeps the Pod waiting, as a kubelet does.
        marked_waiting = False
        while True:
            try:
                env, container_env = self._environment(container, body, summary, term_path)
                break
            except _ConfigError as e:
                if not marked_waiting:
                    self._pod_status(
                        pod_name,
                        {
                            "phase": "Pending",
                            "containerStatuses": [
                                self._cstatus(
                                    cname,
                                    container,
                                    {
                                        "waiting": {
                                            "reason": "CreateContainerConfigError",
                                            "message": str(e),
                                        }
                                    },
                                )
                            ],
                        },
                    )
                    marked_waiting = True
                if run.cancel.wait(0.1) or (deadline is not None and time.monotonic() >= deadline):
                    return None, "", run.reason == "pod deleted"

        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        argv = [_expand(a, container_env).replace(term_path, str(summary)) for a in argv]
        if argv and re.fullmatch(r"python(\d(\.\d+)?)?", os.path.basename(argv[0])):
            argv[0] = sys.executable
        record = Run(job=jname, pod=pod_name, argv=argv)
        self.runs.append(record)

        started = now_iso()
        self._pod_status(
            pod_name,
            {
                "phase": "Running",
                "startTime": started,
                "podIP": "127.0.0.1",
                "hostIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
                "containerStatuses": [
                    self._cstatus(cname, container, {"running": {"startedAt": started}}, ready=True)
                ],
            },
        )
        if not argv:
            output, exit_code = (
                "no command in the container spec (image entrypoints are not emulated)\n",
                127,
            )
        else:
            output, exit_code = self._execute(run, argv, env, deadline, pod_spec)
        record.log, record.exit_code = output, exit_code
        pod_gone = run.reason == "pod deleted"
        message = (
            summary.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
            if summary.exists()
            else ""
        )
        if (
            exit_code != 0
            and not message.strip()
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            message = _tail(output)
        record.message = message
        if pod_gone:
            return exit_code, message, True
        try:
            self._put_log(pod_name, output)
            terminated: dict[str, Any] = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now_iso(),
                "containerID": f"jobsim://{pod_name}",
            }
            if message:
                terminated["message"] = message
            self._pod_status(
                pod_name,
                {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "PodCompleted",
                            "lastTransitionTime": now_iso(),
                        }
                    ],
                    "containerStatuses": [
                        self._cstatus(cname, container, {"terminated": terminated})
                    ],
                },
            )
        except _Gone:
            return exit_code, message, True
        if deadline is not None and time.monotonic() >= deadline:
            with contextlib.suppress(_Gone):
                self._api(
                    self.core.delete_namespaced_pod,
                    pod_name,
                    self.namespace,
                    propagation_policy="Background",
                )
        return exit_code, message, False

    @staticmethod
    def _cstatus(
        name: str, container: dict[str, Any], state: dict[str, Any], ready: bool = False
    ) -> dict[str, Any]:
        return {
            "name": name,
            "image": container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
            "lastState": {},
        }

    def _pod_status(self, pod: str, status: dict[str, Any]) -> None:
        self._api(self.core.patch_namespaced_pod_status, pod, self.namespace, {"status": status})

    def _environment(
        self, container: dict[str, Any], pod: dict[str, Any], summary: Path, term_path: str
    ) -> tuple[dict[str, str], dict[str, str]]:
        declared: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if ref := source.get("secretRef"):
                data = self._secret_data(ref["name"], optional=ref.get("optional", False))
            elif ref := source.get("configMapRef"):
                data = self._configmap_data(ref["name"], optional=ref.get("optional", False))
            else:
                continue
            declared.update({prefix + k: v for k, v in data.items()})
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                declared[name] = _expand(str(item["value"]), declared)
                continue
            source = item.get("valueFrom") or {}
            value: str | None = None
            if ref := source.get("secretKeyRef"):
                value = self._secret_data(ref["name"], optional=ref.get("optional", False)).get(
                    ref["key"]
                )
                if value is None and not ref.get("optional"):
                    raise _ConfigError(
                        f"couldn't find key {ref['key']} in Secret {self.namespace}/{ref['name']}"
                    )
            elif ref := source.get("configMapKeyRef"):
                value = self._configmap_data(ref["name"], optional=ref.get("optional", False)).get(
                    ref["key"]
                )
                if value is None and not ref.get("optional"):
                    raise _ConfigError(
                        f"couldn't find key {ref['key']} in ConfigMap {self.namespace}/{ref['name']}"
                    )
            elif ref := source.get("fieldRef"):
                value = _field(pod, ref.get("fieldPath", ""))
            if value is not None:
                declared[name] = value
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update({k: v.replace(term_path, str(summary)) for k, v in declared.items()})
        env[SUMMARY_ENV] = str(summary)
        env["HOSTNAME"] = pod["metadata"]["name"]
        return env, declared

    def _secret_data(self, name: str, optional: bool) -> dict[str, str]:
        try:
            secret = self._api(self.core.read_namespaced_secret, name, self.namespace)
        except _Gone:
            if optional:
                return {}
            raise _ConfigError(f'secret "{name}" not found') from None
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        data.update(secret.string_data or {})
        return data

    def _configmap_data(self, name: str, optional: bool) -> dict[str, str]:
        try:
            cm = self._api(self.core.read_namespaced_config_map, name, self.namespace)
        except _Gone:
            if optional:
                return {}
            raise _ConfigError(f'configmap "{name}" not found') from None
        return dict(cm.data or {})

    def _execute(
        self,
        run: _JobRun,
        argv: list[str],
        env: dict[str, str],
        deadline: float | None,
        pod_spec: dict[str, Any],
    ) -> tuple[str, int]:
        grace = min(float(pod_spec.get("terminationGracePeriodSeconds", 30)), 2.0)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            return f"failed to start the container process: {e}\n", 128
        run.proc = proc
        if run.cancel.is_set():
            self._cancel(run, run.reason)
        killed_at: float | None = None
        while True:
            try:
                out, _ = proc.communicate(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                expired = deadline is not None and now >= deadline
                if killed_at is None and (expired or run.cancel.is_set()):
                    killed_at = now
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGTERM)
                elif killed_at is not None and now - killed_at > grace:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.returncode
        if code < 0:
            code = 128 - code  # killed by a signal: 143 for SIGTERM, 137 for SIGKILL
        return out.decode(errors="replace"), code


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (``$$`` escapes; unknown references stay as they are)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


def _field(pod: dict[str, Any], path: str) -> str | None:
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return (pod["metadata"].get(m.group(1)) or {}).get(m.group(2))
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "spec.nodeName": "jobsim",
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    return simple.get(path)


__all__ = ["JobSimulator", "Run", "SUMMARY_ENV"]
