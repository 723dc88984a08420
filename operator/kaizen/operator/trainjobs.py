"""Training steps (train, joint) as Kubeflow Trainer v2 `TrainJob`s (`spec.training.backend:
trainjob`).

A TrainJob (`trainer.kubeflow.org/v1alpha1`) names a training runtime (by default the
`torch-distributed` ClusterTrainingRuntime Kubeflow Trainer installs) and overrides its
trainer: image, command, environment, `numNodes` and `resourcesPerNode`. The Trainer
controller turns it into a JobSet with one indexed Job `node` whose pods each run torchrun;
its torch plugin sets `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`,
`PET_MASTER_ADDR` and `PET_MASTER_PORT`, which torchrun reads as its defaults, so the
command here is `python -m kaizen.trainer.launch -m kaizen.trainer train ...` (torchrun, with
the ranks' exit code) with no launcher arguments. What the TrainJob's own fields cannot say (the artifact volume, the
security contexts, node selector, tolerations, affinity, the ServiceAccount) goes into a
`runtimePatches` entry owned by the operator (manager `kaizen.dev/operator`).

Rank 0 of node 0 writes the step's summary to its container's termination message (the
container is the runtime's `node`; its default `terminationMessagePath` is
`/dev/termination-log`), so a TrainJob is observed like a Job: its `Complete`, `Failed` and
`Suspended` conditions, then the summary on the first node's pod.

The schema followed is Kubeflow Trainer v2.3.0's CRD; tests validate the rendered TrainJobs
against that CRD (vendored under `tests/operator/upstream/`). Nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.status import StepState
from kaizen.cycle.types import StepInvocation, StepObservation
from kaizen.operator.jobs import (
    LABEL_QUEUE,
    LABEL_STEP,
    CycleRef,
    container_resources,
    container_security_context,
    is_train_step,
    pod_security_context,
    scheduling,
    step_env,
    step_labels,
    step_metadata,
    step_resources,
    storage,
    torchrun_command,
)
from kaizen.operator.observe import (
    failed_step,
    newest_first,
    read_summary,
    starting,
    stuck_pod,
    suspended,
    terminated_state,
    true_condition,
)
from kaizen.operator.settings import OperatorSettings

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
KIND = "TrainJob"
API_VERSION = f"{GROUP}/{VERSION}"
#: The runtime's replicated job and container that run the trainer (Kubeflow's convention).
NODE = "node"
#: The `runtimePatches` entry the operator owns.
PATCH_MANAGER = "kaizen.dev/operator"
#: Labels JobSet puts on the pods of a TrainJob (the JobSet has the TrainJob's name).
LABEL_JOBSET = "jobset.sigs.k8s.io/jobset-name"
LABEL_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
LABEL_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
LABEL_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


class TrainJobDisabled(RuntimeError):
    """A cycle asks for `backend: trainjob` but this operator runs without TrainJob support."""


def uses_trainjob(invocation: StepInvocation, spec: ImprovementCycleSpec) -> bool:
    """Whether this step runs as a TrainJob: a training step (train, joint) of a cycle with
    `backend: trainjob`."""
    return spec.training.backend == "trainjob" and is_train_step(invocation)


def pod_selector(name: str) -> str:
    """Label selector of the pods of one TrainJob (those of its JobSet)."""
    return f"{LABEL_JOBSET}={name}"


def build_step_trainjob(
    cycle: CycleRef,
    invocation: StepInvocation,
    spec: ImprovementCycleSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The TrainJob that runs one train step of `cycle`; the same inputs give the same manifest."""
    if not settings.trainjob:
        raise TrainJobDisabled(
            f"step {invocation.name} asks for training.backend: trainjob, but the operator runs "
            "without TrainJob support (Helm value trainJob.enabled=true, or "
            "KAIZEN_TRAINJOB=true with RBAC for trainjobs.trainer.kubeflow.org)"
        )
    resources = step_resources(invocation, spec)
    settings_ = spec.training.train_job
    labels = step_labels(cycle, invocation)
    trainjob_labels = dict(labels)
    queue = spec.queue_name or settings.default_queue_name
    if queue:
        # Kueue's TrainJob integration suspends and admits it as it does a Job.
        trainjob_labels[LABEL_QUEUE] = queue

    volumes, mounts = storage(resources, settings)
    pod_spec: dict[str, Any] = {
        "volumes": volumes,
        "containers": [
            {
                "name": NODE,
                "volumeMounts": mounts,
                "securityContext": container_security_context(),
            }
        ],
        "securityContext": pod_security_context(),
    }
    if settings.job_service_account:
        pod_spec["serviceAccountName"] = settings.job_service_account
    pod_spec.update(scheduling(resources))

    trainer: dict[str, Any] = {
        "image": resources.image or settings.trainer_image,
        "command": torchrun_command(invocation, settings),
        "env": step_env(invocation, spec, settings),
        "numNodes": settings_.num_nodes,
        # One process per GPU; a CPU-only node runs one (the runtime's `auto` would start one
        # per CPU core, each with a full copy of the model).
        "numProcPerNode": max(1, resources.gpus),
        "resourcesPerNode": container_resources(resources, settings),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": step_metadata(cycle, invocation, trainjob_labels),
        "spec": {
            "runtimeRef": {
                "apiGroup": GROUP,
                "kind": settings_.runtime_ref.kind,
                "name": settings_.runtime_ref.name,
            },
            "trainer": trainer,
            "runtimePatches": [
                {
                    "manager": PATCH_MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": NODE,
                                        "template": {
                                            "spec": {
                                                "template": {
                                                    "metadata": {"labels": labels},
                                                    "spec": pod_spec,
                                                }
                                            }
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }


# --- observing -------------------------------------------------------------------------------


def _first_node(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pods of node 0 (job index 0, completion index 0), newest first: rank 0 runs there."""

    def is_first(pod: Mapping[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return bool(
            labels.get(LABEL_REPLICATED_JOB, NODE) == NODE
            and labels.get(LABEL_JOB_INDEX, "0") == "0"
            and labels.get(LABEL_COMPLETION_INDEX, "0") == "0"
        )

    return newest_first([pod for pod in pods if is_first(pod)])


def observe_trainjob(
    trainjob: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> StepObservation:
    """What a TrainJob and its pods say about a train step: Queued, Running, Succeeded or Failed."""
    meta = trainjob.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_STEP) or meta.get("name", "")
    first = _first_node(pods)
    terminated = next(
        (t for t in (terminated_state(p, NODE) for p in first) if t is not None), None
    )

    if true_condition(trainjob, "Complete") is not None:
        summary, problem = read_summary(terminated)
        return StepObservation(
            name=name,
            state=StepState.SUCCEEDED,
            exit_code=terminated.get("exitCode") if terminated else None,
            summary=summary,
            message=problem,
        )

    failed = true_condition(trainjob, "Failed")
    if failed is not None:
        return failed_step(name, "TrainJob", failed, terminated)

    if (trainjob.get("spec") or {}).get("suspend") or true_condition(trainjob, "Suspended"):
        return suspended(name, trainjob, "TrainJob")
    for pod in newest_first(pods):
        waiting = stuck_pod(name, pod)
        if waiting is not None:
            return waiting
    if not pods:
        return starting(name, "TrainJob")
    return StepObservation(name=name, state=StepState.RUNNING)
