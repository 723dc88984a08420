"""The job simulator's base: its state, API calls with retries, thread guards, cancellation."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.rest import ApiException

from tests.kube.jobsim.common import REPO_ROOT, Run, _Gone, _JobRun

T = TypeVar("T")
#: Seconds the simulator keeps retrying a call while the API server cannot be reached.
OUTAGE_TIMEOUT = 60.0
#: What a 403 says when it comes from an API server restarting, not from RBAC: retried like
#: a refused connection, within OUTAGE_TIMEOUT.
RESTARTING_FORBIDDEN = ("connection refused", "cannot find RESTMapping")
#: Runs a container's command in this process instead of a subprocess: (argv, environment)
#: -> (log, exit code). It writes the termination message to ``environment[SUMMARY_ENV]``.
StepRunner = Callable[[list[str], dict[str, str]], tuple[str, int]]


class SimulatorBase:
    """State and shared helpers of :class:`~tests.kube.jobsim.JobSimulator`."""

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
        trainjobs: bool = False,
        step_runner: StepRunner | None = None,
        step_seconds: float | Callable[[str], float] = 0.0,
    ) -> None:
        self.namespace = namespace
        #: Also run Kubeflow Trainer TrainJobs (see :mod:`.trainjobs`).
        self.trainjobs = trainjobs
        self.workdir = Path(workdir)
        self.extra_env = dict(extra_env or {})
        self.retry_delay = retry_delay
        self.kill_orphans = kill_orphans
        #: Runs each container in this process (see ``StepRunner``); either way a container's
        #: command starts after ``step_seconds`` (or ``step_seconds(job_name)``: one duration
        #: per Job, e.g. drawn at random), a wait a deleted pod ends with exit code 143.
        self.step_runner = step_runner
        self.step_seconds = step_seconds
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
        self._confirming: set[str] = set()  # Pods being deleted for good (see _on_pod)
        self._watch_resps: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._tmpdir = tempfile.TemporaryDirectory(prefix="jobsim-")

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
        """Call the API, retrying transient errors (409/429/5xx); 404 raises _Gone.

        A refused or broken connection (an API server restarting) is retried for up to
        ``OUTAGE_TIMEOUT`` seconds, as a kubelet keeps trying.
        """
        outage_deadline: float | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except ApiException as e:
                if e.status == 404:
                    raise _Gone(str(e.reason)) from e
                if e.status in (409, 429, 500, 502, 503, 504) and attempt < 20:
                    time.sleep(0.02 * attempt)
                    continue
                if e.status == 403 and any(
                    transient in str(e.body or "") for transient in RESTARTING_FORBIDDEN
                ):
                    # An API server shutting down: its admission plugins cannot reach it any
                    # more ("pods is forbidden: Get .../limitranges: ... connection refused");
                    # or one just started, whose owner-reference admission has not yet
                    # discovered the Job kind ("cannot set blockOwnerDeletion … cannot find
                    # RESTMapping for … Kind Job", seen on a loaded machine). The Job
                    # controller retries, so does the simulator.
                    now = time.monotonic()
                    outage_deadline = outage_deadline or now + OUTAGE_TIMEOUT
                    if now < outage_deadline and not self._stop.is_set():
                        time.sleep(0.2)
                        continue
                raise
            except urllib3.exceptions.HTTPError:
                now = time.monotonic()
                outage_deadline = outage_deadline or now + OUTAGE_TIMEOUT
                if now >= outage_deadline or self._stop.is_set():
                    raise
                time.sleep(0.2)

    def _put_log(self, pod: str, text: str) -> None:
        config = self._client.configuration
        url = f"{config.host}/api/v1/namespaces/{self.namespace}/pods/{pod}/log"
        headers = {"Content-Type": "text/plain"}
        for auth in config.auth_settings().values():  # the client's own credentials
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        resp = self._api(
            self._client.rest_client.pool_manager.request,
            "PUT",
            url,
            body=text.encode(),
            headers=headers,
        )
        if resp.status == 404:
            raise _Gone(f"pod {pod} is gone")
        if resp.status == 405:
            return  # a real API server: logs live on the node, this store is the emulator's
        if resp.status >= 400:
            raise RuntimeError(f"PUT {url} answered {resp.status}: {resp.data[:500]!r}")

    def _cancel(self, run: _JobRun, reason: str) -> None:
        run.reason = run.reason or reason
        if reason in ("suspended", "simulator stopped"):
            run.reason = reason
        run.cancel.set()
        proc = run.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
