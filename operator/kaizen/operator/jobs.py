"""Pure builders between the engine and `batch/v1` Jobs: a step's Job manifest, and what a Job shows.

Nothing here talks to the API: `build_step_job` returns a dict, `observe_job` reads dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, cast

from kaizen.api.args import AnalyzeArgs, EvaluateArgs, JointArgs, TrainArgs, ValidateArgs
from kaizen.api.fields import parse_quantity
from kaizen.api.resource import API_VERSION, KIND
from kaizen.api.spec import ImprovementCycleSpec, SecretKeyRef, StepResources, Toleration
from kaizen.api.status import StepState
from kaizen.api.summary import EXIT_CONFIG_ERROR, SUMMARY_PATH_ENV, StepSummary, parse_summary
from kaizen.cycle.types import StepInvocation, StepObservation
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
#: torchrun, as a module of the image's Python (no console script on PATH needed).
TORCHRUN = ("-m", "torch.distributed.run")


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
    """A training step under torchrun: `python -m torch.distributed.run <launcher args> -m
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


# --- observing -------------------------------------------------------------------------------


def true_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The condition of `type_` whose status is True, if there is one."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cast(Mapping[str, Any], cond)
    return None


def terminated_state(
    pod: Mapping[str, Any], container: str = CONTAINER
) -> Mapping[str, Any] | None:
    """The step container's `terminated` state (current, else the last one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name", container) != container and len(statuses) > 1:
            continue
        for key in ("state", "lastState"):
            state = (status.get(key) or {}).get("terminated")
            if state:
                return cast(Mapping[str, Any], state)
    return None


def newest_first(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(pod: Mapping[str, Any]) -> tuple[str, str]:
        meta = pod.get("metadata") or {}
        return (meta.get("creationTimestamp") or "", meta.get("name") or "")

    return sorted(pods, key=key, reverse=True)


def read_summary(state: Mapping[str, Any] | None) -> tuple[StepSummary | None, str | None]:
    """The summary in a termination message, or None and why not."""
    if state is None:
        return None, "no terminated container found for the Job"
    text = state.get("message")
    if not text or not str(text).strip():
        return None, "the step left no summary (empty termination message)"
    try:
        return parse_summary(text), None
    except ValueError:
        excerpt = " ".join(str(text).split())[-200:]
        return None, f"the step's summary is unreadable: {excerpt}"


def observe_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> StepObservation:
    """What a Job and its pods say about a step: Queued, Running, Succeeded or Failed."""
    name = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_STEP) or (
        job.get("metadata") or {}
    ).get("name", "")
    status = job.get("status") or {}
    newest = newest_first(pods)

    if true_condition(job, "Complete") is not None:
        # Prefer the pod that succeeded; earlier attempts may have failed before it.
        terminated = next(
            (t for t in map(terminated_state, newest) if t is not None and t.get("exitCode") == 0),
            next((t for t in map(terminated_state, newest) if t is not None), None),
        )
        summary, problem = read_summary(terminated)
        exit_code = terminated.get("exitCode") if terminated else None
        return StepObservation(
            name=name,
            state=StepState.SUCCEEDED,
            exit_code=exit_code,
            summary=summary,
            message=problem,
        )

    failed = true_condition(job, "Failed")
    if failed is not None:
        terminated = next((t for t in map(terminated_state, newest) if t is not None), None)
        summary, problem = read_summary(terminated)
        exit_code = terminated.get("exitCode") if terminated else None
        reason = failed.get("reason") or "Failed"
        detail = failed.get("message") or ""
        parts = [f"Job failed ({reason})" + (f": {detail}" if detail else "")]
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        if summary is None and problem:
            parts.append(problem)
        return StepObservation(
            name=name,
            state=StepState.FAILED,
            exit_code=exit_code,
            summary=summary,
            message="; ".join(parts),
        )

    if (job.get("spec") or {}).get("suspend"):
        return suspended(name, job, "Job")
    waiting = stuck_pod(name, newest[0]) if newest else None
    if waiting is not None:
        return waiting
    if status.get("active") or pods:
        return StepObservation(name=name, state=StepState.RUNNING)
    return starting(name, "Job")


#: Reason of a step whose Job was deleted while its pod still runs.
ORPHANED_POD = "OrphanedPod"


def observe_orphaned_pods(
    name: str, job_name: str, pods: Sequence[Mapping[str, Any]]
) -> StepObservation | None:
    """What the pods left by a step's vanished Job say; None when nothing is left of it.

    A Job deleted with `propagationPolicy: Orphan` (the API's default for Jobs) leaves its pods
    running: relaunching then would run the step twice at once in the same folder. While a pod
    runs (or terminates) the step waits; a pod that succeeded with a readable summary is the
    step's result, adopted as is; otherwise the step is relaunched.
    """
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    if live:
        pod = (live[0].get("metadata") or {}).get("name", "?")
        message = (
            f"Job {job_name} was deleted but its pod {pod} still runs; relaunching after it ends"
        )
        return StepObservation(name, StepState.RUNNING, reason=ORPHANED_POD, message=message)
    for pod in newest_first(pods):
        state = terminated_state(pod)
        summary, _ = read_summary(state)
        if state is not None and state.get("exitCode") == 0 and summary is not None and summary.ok:
            return StepObservation(name, StepState.SUCCEEDED, exit_code=0, summary=summary)
    return None


def starting(name: str, kind: str) -> StepObservation:
    """A workload created but without a pod yet: starting, not waiting for quota.

    Only a suspended workload waits for quota; a step shown as Queued in this short gap made
    Argo CD show every step as "Suspended: waiting for quota".
    """
    return StepObservation(
        name=name, state=StepState.RUNNING, message=f"starting: the {kind} has no pod yet"
    )


def suspended(name: str, workload: Mapping[str, Any], kind: str) -> StepObservation:
    """A suspended Job or TrainJob: queued when Kueue holds it (not admitted yet, so waiting
    for quota), else suspended by hand (reason `Suspended`, not a quota wait)."""
    queue = ((workload.get("metadata") or {}).get("labels") or {}).get(LABEL_QUEUE)
    if queue:
        return StepObservation(
            name=name,
            state=StepState.QUEUED,
            message=f"waiting for quota: Kueue has not admitted the {kind} (queue {queue})",
        )
    return StepObservation(
        name=name,
        state=StepState.QUEUED,
        reason="Suspended",
        message=f"the {kind} is suspended and no Kueue queue holds it",
    )


#: Container waiting reasons that do not clear by themselves: someone has to act.
STUCK_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _one_line(text: Any, limit: int = 500) -> str:
    return " ".join(str(text or "").split())[:limit]


def stuck_pod(name: str, pod: Mapping[str, Any]) -> StepObservation | None:
    """Why the step's newest pod is not running, when it says.

    A pod the scheduler cannot place (no GPU node free, a missing volume claim, a taint) is
    Queued with the scheduler's reason; a container that cannot start (an image that cannot
    be pulled, a missing Secret) is reported with the kubelet's reason. The Job itself only
    shows such a pod as active, so without this a cycle would look Running for ever.
    """
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            detail = _one_line(condition.get("message")) or reason
            return StepObservation(
                name, StepState.QUEUED, reason=reason, message=f"waiting for a node: {detail}"
            )
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in STUCK_WAITING_REASONS:
            detail = _one_line(waiting.get("message"))
            message = f"container {container.get('name', CONTAINER)}: {reason}"
            return StepObservation(
                name,
                StepState.RUNNING,
                reason=reason,
                message=message + (f": {detail}" if detail else ""),
            )
    return None
