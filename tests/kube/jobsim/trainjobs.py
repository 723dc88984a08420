"""The job simulator's Kubeflow Trainer part: run a TrainJob's nodes, write its status.

What the Trainer controller, JobSet and the Job controller do for a TrainJob on the
`torch-distributed` runtime, shortened to what a step's owner can see:

1. a TrainJob that is not suspended gets one Pod per node (``spec.trainer.numNodes``), named
   ``<trainjob>-node-0-<index>-<5 chars>`` with JobSet's labels (``jobset.sigs.k8s.io/
   jobset-name``, ``replicatedjob-name: node``, ``job-index: 0``) and the node's
   ``batch.kubernetes.io/job-completion-index``; the pod template is the runtime's ``node``
   template with the TrainJob's ``runtimePatches`` for ``node`` applied (volumes, security
   contexts, scheduling, the container's mounts) and the trainer's image, command, env and
   ``resourcesPerNode``;
2. the torch plugin's variables are set as the runtime sets them, with a local rendezvous:
   ``PET_NNODES``, ``PET_NPROC_PER_NODE`` (``numProcPerNode``, else 1), ``PET_NODE_RANK`` (the
   index), ``PET_MASTER_ADDR=127.0.0.1`` and a free ``PET_MASTER_PORT`` shared by the nodes;
3. the nodes run concurrently as local processes (see :mod:`.kubelet`), within one of the
   simulator's slots; the runtime's Job has no retries (as a runtime with ``backoffLimit: 0``);
4. the TrainJob's status is written as the Trainer copies it from its JobSet: ``jobsStatus``
   while it runs, then ``Complete`` (reason ``AllJobsCompleted``) when every node exited 0, or
   ``Failed`` (reason ``FailedJobs``) as soon as one did not.

Deleting the TrainJob (or its Pods) kills the node processes, as for a Job. Enable it with
``JobSimulator(..., trainjobs=True)``; the emulator must know the TrainJob resource (register
the upstream CRD with ``running_cluster(crds=[...])``).
"""

from __future__ import annotations

import contextlib
import copy
import socket
import threading
from typing import Any

import kubernetes

from tests.kube.jobsim.common import _condition, _Gone, _JobRun
from tests.kube.jobsim.controller import JobController

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
NODE = "node"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node_patch(trainjob: dict[str, Any]) -> dict[str, Any]:
    """The pod template patch of replicated job ``node`` (the last manager's wins per field)."""
    merged: dict[str, Any] = {"metadata": {}, "spec": {}}
    for patch in (trainjob.get("spec") or {}).get("runtimePatches") or []:
        template = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec")
        for job in (template or {}).get("replicatedJobs") or []:
            if job.get("name") != NODE:
                continue
            pod = ((job.get("template") or {}).get("spec") or {}).get("template") or {}
            merged["metadata"].update(copy.deepcopy(pod.get("metadata") or {}))
            merged["spec"].update(copy.deepcopy(pod.get("spec") or {}))
    return merged


class TrainJobController(JobController):
    """Run TrainJobs' nodes as local processes and write TrainJob status."""

    def _custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self._client)

    def _node_job(self, trainjob: dict[str, Any], index: int, port: int) -> dict[str, Any]:
        """A stand-in for the Job of one node: what :meth:`_run_pod` needs (name, uid, template)."""
        meta = trainjob["metadata"]
        trainer = (trainjob.get("spec") or {}).get("trainer") or {}
        patch = _node_patch(trainjob)
        pod_spec = patch["spec"]
        patched = {c["name"]: c for c in pod_spec.pop("containers", []) or []}
        container: dict[str, Any] = {
            "name": NODE,
            "image": trainer.get("image", "pytorch/pytorch"),
            "command": list(trainer.get("command") or []),
            "args": list(trainer.get("args") or []),
            "resources": trainer.get("resourcesPerNode") or {},
            "terminationMessagePath": "/dev/termination-log",
            **{k: v for k, v in patched.get(NODE, {}).items() if k != "name"},
        }
        nprocs = trainer.get("numProcPerNode") or 1
        container["env"] = [
            *(e for e in trainer.get("env") or [] if not e["name"].startswith("PET_")),
            {"name": "PET_NNODES", "value": str(trainer.get("numNodes") or 1)},
            {"name": "PET_NPROC_PER_NODE", "value": str(nprocs)},
            {"name": "PET_NODE_RANK", "value": str(index)},
            {"name": "PET_MASTER_ADDR", "value": "127.0.0.1"},
            {"name": "PET_MASTER_PORT", "value": str(port)},
        ]
        labels = dict(patch["metadata"].get("labels") or {})
        labels.update(
            {
                "jobset.sigs.k8s.io/jobset-name": meta["name"],
                "jobset.sigs.k8s.io/replicatedjob-name": NODE,
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(index),
                "trainer.kubeflow.org/trainjob-ancestor-step": "trainer",
            }
        )
        return {
            "metadata": {"name": f"{meta['name']}-{NODE}-0-{index}", "uid": meta["uid"]},
            "spec": {
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {**pod_spec, "restartPolicy": "Never", "containers": [container]},
                }
            },
        }

    def _trainjob_status(self, name: str, status: dict[str, Any]) -> None:
        self._api(
            self._custom().patch_namespaced_custom_object_status,
            GROUP, VERSION, self.namespace, PLURAL, name, {"status": status},
        )  # fmt: skip

    def _run_trainjob(self, run: _JobRun) -> None:
        uid = run.job["metadata"]["uid"]
        try:
            while not run.cancel.is_set():
                if self._slots.acquire(timeout=0.05):
                    try:
                        self._run_trainjob_nodes(run)
                    finally:
                        self._slots.release()
                    break
        except _Gone:
            pass
        finally:
            with self._lock:
                self._active.pop(uid, None)
                self._done.add(uid)

    def _run_trainjob_nodes(self, run: _JobRun) -> None:
        trainjob = run.job
        name = trainjob["metadata"]["name"]
        nodes = int(((trainjob.get("spec") or {}).get("trainer") or {}).get("numNodes") or 1)
        port = _free_port()
        node_runs = [_JobRun(job=self._node_job(trainjob, i, port)) for i in range(nodes)]
        run.node_runs = node_runs  # type: ignore[attr-defined]
        results: list[tuple[int | None, str, bool] | None] = [None] * nodes

        def one(index: int) -> None:
            with contextlib.suppress(_Gone):
                results[index] = self._run_pod(node_runs[index], None)

        self._trainjob_status(name, {"jobsStatus": [_jobs_status(active=1)], "conditions": []})
        threads = [
            threading.Thread(
                target=self._guard(one, i), name=f"jobsim-{name}-node-{i}", daemon=True
            )
            for i in range(nodes)
        ]
        for thread in threads:
            thread.start()
        # One node failing fails the JobSet at once: stop the others (torchrun would wait).
        while any(t.is_alive() for t in threads):
            failed = any(r is not None and r[0] != 0 for r in results)
            if failed or run.cancel.is_set():
                for node_run in node_runs:
                    self._cancel(node_run, run.reason or "jobset failed")
            for thread in threads:
                thread.join(timeout=0.05)
        if run.cancel.is_set():
            return
        ok = all(r is not None and r[0] == 0 for r in results)
        if ok:
            condition = _condition("Complete", "AllJobsCompleted", "jobset completed successfully")
        else:
            condition = _condition(
                "Failed", "FailedJobs", "jobset failed due to one or more job failures"
            )
        condition.pop("lastProbeTime", None)
        self._trainjob_status(
            name,
            {
                "jobsStatus": [_jobs_status(succeeded=1 if ok else 0, failed=0 if ok else 1)],
                "conditions": [condition],
            },
        )

    def _on_trainjob(self, etype: str, trainjob: dict[str, Any]) -> None:
        uid = trainjob["metadata"]["uid"]
        with self._lock:
            run = self._active.get(uid)
            if etype == "DELETED":
                if run is not None:
                    run.reason = "job deleted"
                    run.cancel.set()
                    for node_run in getattr(run, "node_runs", []):
                        self._cancel(node_run, "job deleted")
                return
            finished = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in (trainjob.get("status") or {}).get("conditions") or []
            )
            if run is not None or uid in self._done or finished:
                return
            if (trainjob.get("spec") or {}).get("suspend"):
                return  # Kueue admits it by setting suspend: false; a MODIFIED event follows
            run = _JobRun(job=trainjob)
            run.thread = threading.Thread(
                target=self._guard(self._run_trainjob, run),
                name=f"jobsim-trainjob-{trainjob['metadata']['name']}",
                daemon=True,
            )
            self._active[uid] = run
            run.thread.start()

    def _watch_trainjobs(self) -> None:
        custom = self._custom()

        def list_fn(namespace: str, **params: Any) -> Any:
            return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **params)

        self._watch("trainjobs", list_fn, self._on_trainjob)  # type: ignore[attr-defined]


def _jobs_status(*, active: int = 0, succeeded: int = 0, failed: int = 0) -> dict[str, Any]:
    return {
        "name": NODE,
        "ready": active,
        "succeeded": succeeded,
        "failed": failed,
        "active": active,
        "suspended": 0,
    }
