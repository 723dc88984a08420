"""Pure builders between the engine and `batch/v1` Jobs: a step's Job manifest.

Nothing here talks to the API: `build_step_job` returns a dict. What a Job shows is read
back by `kaizen.operator.observe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from kaizen.api.args import AnalyzeArgs, EvaluateArgs, ValidateArgs
from kaizen.api.args_combination import JointArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.fields import parse_quantity
from kaizen.api.resource import API_VERSION, KIND
from kaizen.api.spec import ImprovementCycleSpec, SecretKeyRef
from kaizen.api.spec_resources import StepResources, Toleration
from kaizen.api.summary import EXIT_CONFIG_ERROR, SUMMARY_PATH_ENV
from kaizen.cycle.types import StepInvocation
from kaizen.operator.settings import OperatorSettings

#: The container that runs the step in every Job (named in the podFailurePolicy too).
CONTAINER = "step"
TERMINATION_LOG = "/dev/termination-log"
#: Labels the operator selects its Jobs by.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_CYCLE = "kaizen.dev/cycle"
LABEL_STEP = "kaizen.dev/step"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_ATTEMPT = "kaizen.dev/attempt"
ANNOTATION_ARTIFACTS = "kaizen.dev/artifacts-dir"
MANAGED_BY = "kaizen-operator"
GPU_RESOURCE = "nvidia.com/gpu"
#: The UID and GID the images create for the non-root user.
RUN_AS = 1000
#: torchrun, as a module of the image's Python (no console script on PATH needed), through the
#: trainer's launcher: torchrun's options, its run, and the ranks' exit code (3 for a
#: configuration error, which torchrun alone reports as 1; `kaizen.trainer.launch`).
TORCHRUN = ("-m", "kaizen.trainer.launch")


@dataclass(frozen=True)
class CycleRef:
    """The owner of a Job: the cycle's name, namespace and uid."""

    name: str
    namespace: str
    uid: str


def owner_reference(cycle: CycleRef) -> dict[str, Any]:
    """A controller ownerReference to the cycle: garbage collection deletes its Jobs with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": cycle.name,
        "uid": cycle.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_selector(cycle_name: str) -> str:
    """Label selector of one cycle's Jobs (equality-based only)."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_CYCLE}={cycle_name}"


def cpu_threads(quantity: str) -> int:
    """Whole CPUs in a Kubernetes CPU quantity (`2`, `1.5`, `500m`, `2k`), at least 1.

    The spec's quantities are validated (`kaizen.api.fields.Quantity`); an operator setting
    that is not a quantity raises `ValueError` instead of quietly meaning one thread.
    """
    return max(1, int(parse_quantity(quantity.strip())))


def escape_expansion(text: str) -> str:
    """`text` as Kubernetes passes it on literally in a container's command, args and env values.

    The kubelet expands `$(NAME)` there from the container's environment (which holds the
    Secrets: `$(HF_TOKEN)` in a suite name would hand the token to the step, and the step's
    error message would carry it into the status and Events) and reduces `$$` to `$`.
    Doubling every `$` is the exact inverse: the program receives `text` unchanged.
    """
    return text.replace("$", "$$")


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def step_env(
    invocation: StepInvocation, spec: ImprovementCycleSpec, settings: OperatorSettings
) -> list[dict[str, Any]]:
    """The environment of a step container: the summary path, caches, threads and secrets."""
    cache = PurePosixPath(settings.artifact_root) / ".cache"
    tracking = spec.tracking
    env: list[dict[str, Any]] = [
        {"name": SUMMARY_PATH_ENV, "value": TERMINATION_LOG},
        {"name": "KAIZEN_CACHE", "value": str(cache / "kaizen")},
        {"name": "HF_HOME", "value": str(cache / "huggingface")},
        # The root filesystem is read-only: everything that wants $HOME gets the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "WANDB_MODE", "value": tracking.mode},
        {"name": "WANDB_PROJECT", "value": tracking.project},
    ]
    resources = step_resources(invocation, spec)
    threads = cpu_threads(resources.cpu or settings.default_cpu)
    # torch sizes its thread pool by the node's cores, not the pod's CPU: on a shared node that
    # oversubscribes the cores (parallel CPU steps ran ten times slower that way).
    env.append({"name": "OMP_NUM_THREADS", "value": str(threads)})
    if tracking.entity:
        env.append({"name": "WANDB_ENTITY", "value": tracking.entity})
    # Offline W&B runs land beside the step's other artifacts, on the volume.
    env.append({"name": "WANDB_DIR", "value": invocation.artifacts_dir})
    # A cycle's own Secret references win over the operator-wide defaults.
    wandb_key = tracking.api_key_secret or _secret_ref(settings.wandb_api_key_secret)
    if wandb_key is not None and tracking.mode != "disabled":
        env.append(_secret_env("WANDB_API_KEY", wandb_key))
    hub_token = spec.hub_token_secret or _secret_ref(settings.hub_token_secret)
    if hub_token is not None:
        env.append(_secret_env("HF_TOKEN", hub_token))
    # Plain values are expanded like the command (`$(VAR)` of the variables above them).
    return [
        {**item, "value": escape_expansion(item["value"])} if "value" in item else item
        for item in env
    ]


def _secret_ref(value: str) -> SecretKeyRef | None:
    """`<secret>/<key>` (an operator setting) as a reference; None when unset."""
    if not value:
        return None
    name, _, key = value.partition("/")
    return SecretKeyRef(name=name, key=key)


def _command(argv: Sequence[str], settings: OperatorSettings) -> list[str]:
    command = list(argv)
    if command and command[0] == "python":
        command[0] = settings.python
    # No step argument ever means a variable reference: every one is passed on literally.
    return [escape_expansion(arg) for arg in command]


#: The trainer commands that train an adapter: placed alike (torchrun, TrainJob).
TRAINING_COMMANDS = frozenset({TrainArgs.COMMAND, JointArgs.COMMAND})


def is_train_step(invocation: StepInvocation) -> bool:
    """Whether the invocation trains an adapter: `python -m kaizen.trainer train|joint`."""
    argv = tuple(invocation.argv[1:4])
    return (
        invocation.kind == "trainer"
        and argv[:2] == ("-m", TrainArgs.PROGRAM)
        and (len(argv) == 3 and argv[2] in TRAINING_COMMANDS)
    )


def torchrun_command(
    invocation: StepInvocation, settings: OperatorSettings, launcher_args: Sequence[str] = ()
) -> list[str]:
    """A training step under torchrun: `python -m kaizen.trainer.launch <torchrun options> -m
    kaizen.trainer train|joint ...`; the trainer's own arguments are unchanged."""
    command = _command(invocation.argv, settings)
    return [command[0], *TORCHRUN, *launcher_args, *command[1:]]


def step_command(
    invocation: StepInvocation, resources: StepResources, settings: OperatorSettings
) -> list[str]:
    """The container command of a step's Job: a training step (train, joint) with more than
    one GPU runs one process per GPU under torchrun on this one node; every other step runs
    as is."""
    if resources.gpus > 1 and is_train_step(invocation):
        return torchrun_command(
            invocation, settings, ("--standalone", f"--nproc-per-node={resources.gpus}")
        )
    return _command(invocation.argv, settings)


#: Evaluator steps that read results and load no model: their pods need no GPU.
MODEL_FREE_STEPS = frozenset({AnalyzeArgs.COMMAND, ValidateArgs.COMMAND})


def step_resources(invocation: StepInvocation, spec: ImprovementCycleSpec) -> StepResources:
    """The spec's resources of the kind of image that runs the step.

    An evaluator step that loads a model (evaluate, combine) gets all of
    `resources.evaluator.gpus` (with `evaluation.deviceMap: auto` the model is spread over
    them); analyze and validate, which only read results, get none, but keep the GPU
    toleration so that they may still run on the GPU nodes the spec's node selector names.
    """
    if invocation.kind != "evaluator":
        return spec.resources.trainer
    resources = spec.resources.evaluator
    program = tuple(invocation.argv[1:3]) == ("-m", EvaluateArgs.PROGRAM)
    command = invocation.argv[3] if len(invocation.argv) > 3 else ""
    if program and command in MODEL_FREE_STEPS and resources.gpus:
        gpu_taint = Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")
        tolerations = [gpu_taint, *resources.tolerations]
        return resources.model_copy(update={"gpus": 0, "tolerations": tolerations})
    return resources


def container_resources(resources: StepResources, settings: OperatorSettings) -> dict[str, Any]:
    """`requests` and `limits` of the step container (memory limited, GPUs requested = limited)."""
    memory = resources.memory or settings.default_memory
    requests: dict[str, Any] = {"cpu": resources.cpu or settings.default_cpu, "memory": memory}
    limits: dict[str, Any] = {"memory": memory}
    if resources.gpus > 0:
        requests[GPU_RESOURCE] = str(resources.gpus)
        limits[GPU_RESOURCE] = str(resources.gpus)
    return {"requests": requests, "limits": limits}


def storage(
    resources: StepResources, settings: OperatorSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The step's volumes and their mounts: the artifact claim, /tmp, and /dev/shm for GPUs."""
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if settings.artifact_pvc:
        mounts.insert(0, {"name": "artifacts", "mountPath": settings.artifact_root})
        volumes.insert(
            0, {"name": "artifacts", "persistentVolumeClaim": {"claimName": settings.artifact_pvc}}
        )
    if resources.gpus > 0:
        # NCCL and DataLoader workers need more shared memory than the runtime's 64 MiB default.
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    return volumes, mounts


def container_security_context() -> dict[str, Any]:
    """Non-root, read-only root filesystem, no capabilities (the restricted Pod Security level)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scheduling(resources: StepResources) -> dict[str, Any]:
    """`nodeSelector`, `tolerations` and `affinity` of the step's pods (only those that are set).

    GPU steps tolerate the `nvidia.com/gpu` taint GPU node pools usually carry; the spec's
    tolerations come after it (an identical one only once).
    """
    placement: dict[str, Any] = {}
    if resources.node_selector:
        placement["nodeSelector"] = dict(sorted(resources.node_selector.items()))
    tolerations: list[dict[str, Any]] = []
    if resources.gpus > 0:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    for toleration in resources.tolerations:
        wire = toleration.to_wire()
        if wire not in tolerations:
            tolerations.append(wire)
    if tolerations:
        placement["tolerations"] = tolerations
    if resources.affinity is not None and resources.affinity.to_wire():
        placement["affinity"] = resources.affinity.to_wire()
    return placement


def step_labels(cycle: CycleRef, invocation: StepInvocation) -> dict[str, str]:
    """The labels of a step's Job (or TrainJob) and its pods."""
    return {
        LABEL_NAME: "kaizen",
        LABEL_COMPONENT: invocation.kind,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_CYCLE: cycle.name,
        LABEL_STEP: invocation.name,
    }


def step_metadata(
    cycle: CycleRef, invocation: StepInvocation, labels: Mapping[str, str]
) -> dict[str, Any]:
    """`metadata` of a step's Job or TrainJob: name, labels, the attempt, the owner."""
    return {
        "name": invocation.job_name,
        "namespace": cycle.namespace,
        "labels": dict(labels),
        "annotations": {
            ANNOTATION_ATTEMPT: str(invocation.attempt),
            ANNOTATION_ARTIFACTS: invocation.artifacts_dir,
        },
        "ownerReferences": [owner_reference(cycle)],
    }


def build_step_job(
    cycle: CycleRef,
    invocation: StepInvocation,
    spec: ImprovementCycleSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The `batch/v1` Job that runs one step of `cycle`; the same inputs give the same manifest."""
    resources = step_resources(invocation, spec)
    default_image = (
        settings.evaluator_image if invocation.kind == "evaluator" else settings.trainer_image
    )
    labels = step_labels(cycle, invocation)
    job_labels = dict(labels)
    queue = spec.queue_name or settings.default_queue_name
    if queue:
        # Kueue admits (unsuspends) the Job; the operator never touches `suspend` itself.
        job_labels[LABEL_QUEUE] = queue

    volumes, mounts = storage(resources, settings)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": resources.image or default_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": step_command(invocation, resources, settings),
        "workingDir": "/tmp",
        "env": step_env(invocation, spec, settings),
        "resources": container_resources(resources, settings),
        "volumeMounts": mounts,
        # The summary is the termination message; a step that dies before writing one leaves
        # its last log lines there instead, which the operator reports as unreadable.
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.job_service_account:
        pod_spec["serviceAccountName"] = settings.job_service_account
    pod_spec.update(scheduling(resources))
    if resources.priority_class_name:
        pod_spec["priorityClassName"] = resources.priority_class_name

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": invocation.job_name,
            "namespace": cycle.namespace,
            "labels": job_labels,
            "annotations": {
                ANNOTATION_ATTEMPT: str(invocation.attempt),
                ANNOTATION_ARTIFACTS: invocation.artifacts_dir,
            },
            "ownerReferences": [owner_reference(cycle)],
        },
        "spec": {
            "backoffLimit": spec.max_step_retries,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "podFailurePolicy": {
                "rules": [
                    # A configuration error fails the same way on every retry: stop at once.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_CONFIG_ERROR],
                        },
                    },
                    # Node drains and preemption are not the step's fault: retry without counting.
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
