"""The job simulator's kubelet part: create a Job's Pod, run its container as a local process.

The environment (``env``, ``envFrom``, Secret/ConfigMap/field references) is resolved as a
kubelet does; the termination message file and the log end up in the Pod's status and log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.kube.emulator import now_iso, random_suffix
from tests.kube.jobsim.base import SimulatorBase
from tests.kube.jobsim.common import (
    MESSAGE_LIMIT,
    SUMMARY_ENV,
    Run,
    _ConfigError,
    _Gone,
    _JobRun,
    _tail,
)


class Kubelet(SimulatorBase):
    """Run one Pod attempt of a Job to the end (see :meth:`_run_pod`)."""

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
        elif self.step_runner is not None:
            output, exit_code = self._run_in_process(run, argv, env, deadline)
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

    def _run_in_process(
        self, run: _JobRun, argv: list[str], env: dict[str, str], deadline: float | None
    ) -> tuple[str, int]:
        """The container as ``step_runner``, after ``step_seconds`` (a deleted pod or the
        deadline ends it first, as SIGTERM would: exit code 143)."""
        assert self.step_runner is not None
        if ended := self._hold(run, deadline):
            return ended
        return self.step_runner(argv, env)

    def _hold(self, run: _JobRun, deadline: float | None) -> tuple[str, int] | None:
        """Waits ``step_seconds`` before the container's command runs; the log and exit code
        (143, as SIGTERM) when a deleted pod or the deadline ends the wait, else None."""
        hold = (
            self.step_seconds(str(run.job["metadata"]["name"]))
            if callable(self.step_seconds)
            else self.step_seconds
        )
        if deadline is not None:
            hold = min(hold, max(0.0, deadline - time.monotonic()))
        if (hold > 0 and run.cancel.wait(hold)) or run.cancel.is_set():
            return "terminated\n", 143
        if deadline is not None and time.monotonic() >= deadline:
            return "deadline exceeded\n", 143
        return None

    def _execute(
        self,
        run: _JobRun,
        argv: list[str],
        env: dict[str, str],
        deadline: float | None,
        pod_spec: dict[str, Any],
    ) -> tuple[str, int]:
        if ended := self._hold(run, deadline):
            return ended
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
