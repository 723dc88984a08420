"""The Job builder (golden YAML) and `observe_job` (a table of Job and pod states).

Regenerate the golden files after an intended change with
`KAIZEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/operator/test_jobs.py` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api import EXIT_CONFIG_ERROR, parse_spec
from kaizen.cycle.planner import StepPlanner
from kaizen.operator.jobs import CycleRef, build_step_job
from kaizen.operator.settings import OperatorSettings

GOLDEN = Path(__file__).parent / "golden"
CYCLE = CycleRef(name="demo", namespace="team-a", uid="3f6c1d2e-0000-4000-8000-000000000001")
SETTINGS = OperatorSettings.from_env({})

GPU_SPEC = {
    "model": {
        "name": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "adapters": ["/artifacts/team-a/prev/merge/adapter"],
    },
    "evaluation": {"suite": "demo", "limit": 10},
    "training": {"steps": 100},
    "resources": {
        "trainer": {
            "image": "registry.example.com/kaizen-trainer:dev",
            "gpus": 2,
            "cpu": "8",
            "memory": "64Gi",
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "gpu"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                # The toleration GPU steps get anyway: kept once.
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "preference": {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["eu-1a"]}
                                ]
                            },
                        }
                    ]
                }
            },
            "priorityClassName": "ml-training",
        }
    },
    "tracking": {
        "mode": "online",
        "project": "kaizen-prod",
        "entity": "ml-team",
        "apiKeySecret": {"name": "wandb", "key": "api-key"},
    },
    "hubTokenSecret": {"name": "hf", "key": "token"},
    "queueName": "gpu-queue",
    "maxStepRetries": 2,
}


def _cpu_evaluator_job() -> dict[str, Any]:
    spec = parse_spec({"evaluation": {"suite": "demo", "limit": 2}})
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    return build_step_job(CYCLE, planner.evaluate_baseline(), spec, SETTINGS)


def _gpu_trainer_job() -> dict[str, Any]:
    spec = parse_spec(GPU_SPEC)
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    invocation = planner.train("geography", planner.plan_path())
    return build_step_job(CYCLE, invocation, spec, SETTINGS)


@pytest.mark.parametrize(
    ("golden", "build"),
    [("evaluator-cpu.yaml", _cpu_evaluator_job), ("trainer-gpu.yaml", _gpu_trainer_job)],
)
def test_job_matches_golden(golden: str, build: Any) -> None:
    job = build()
    path = GOLDEN / golden
    rendered = yaml.safe_dump(job, sort_keys=False, width=100)
    if os.environ.get("KAIZEN_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert yaml.safe_load(path.read_text()) == job, f"{path} is stale (see the module docstring)"


def test_builder_is_deterministic() -> None:
    assert json.dumps(_gpu_trainer_job()) == json.dumps(_gpu_trainer_job())


def test_cpu_job_essentials() -> None:
    job = _cpu_evaluator_job()
    meta, spec = job["metadata"], job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    # Readable, then a digest that makes it unique to the cycle and step (issue 11, item 6).
    assert re.fullmatch(r"demo-evaluate-baseline-[0-9a-f]{8}", meta["name"])
    assert meta["labels"]["kaizen.dev/step"] == "evaluate-baseline"
    assert "kueue.x-k8s.io/queue-name" not in meta["labels"]
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementCycle",
            "name": "demo",
            "uid": CYCLE.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert spec["backoffLimit"] == 1
    assert pod["restartPolicy"] == "Never"
    assert container["command"][:3] == ["python", "-m", "kaizen.evaluator"]
    assert "args" not in container
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAIZEN_SUMMARY_PATH"] == "/dev/termination-log"
    assert env["WANDB_DIR"] == "/artifacts/team-a/demo/evaluate-baseline"
    assert "WANDB_API_KEY" not in env and "HF_TOKEN" not in env
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert "tolerations" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"artifacts", "tmp"}


def test_gpu_job_essentials() -> None:
    job = _gpu_trainer_job()
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"
    assert spec["backoffLimit"] == 2
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"]["values"] == [EXIT_CONFIG_ERROR]
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert container["image"] == "registry.example.com/kaizen-trainer:dev"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
    ]
    assert pod["nodeSelector"]["pool"] == "gpu"
    assert pod["priorityClassName"] == "ml-training"
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"][0]["values"] == ["eu-1a"]
    # Two GPUs: one training process per GPU, on this node, through torchrun (by the trainer's
    # launcher, which keeps a rank's configuration error as exit code 3).
    assert container["command"][:7] == [
        "python",
        "-m",
        "kaizen.trainer.launch",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "kaizen.trainer",
    ]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    assert secrets == {
        "WANDB_API_KEY": {"name": "wandb", "key": "api-key"},
        "HF_TOKEN": {"name": "hf", "key": "token"},
    }
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_settings_change_images_python_and_volume() -> None:
    settings = OperatorSettings.from_env(
        {
            "KAIZEN_EVALUATOR_IMAGE": "local/ev:1",
            "KAIZEN_PYTHON": "/venv/bin/python",
            "KAIZEN_ARTIFACT_PVC": "",
            "KAIZEN_ARTIFACT_ROOT": "/data",
            "KAIZEN_JOB_SERVICE_ACCOUNT": "kaizen-step",
        }
    )
    spec = parse_spec({})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/data")
    job = build_step_job(CycleRef("c", "ns", "u"), planner.evaluate_baseline(), spec, settings)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "local/ev:1"
    assert container["command"][0] == "/venv/bin/python"
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert pod["serviceAccountName"] == "kaizen-step"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAIZEN_CACHE"] == "/data/.cache/kaizen"
    assert env["HF_HOME"] == "/data/.cache/huggingface"


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_operator_defaults_fill_queue_and_secrets_a_cycle_leaves_unset() -> None:
    settings = OperatorSettings.from_env(
        {
            "KAIZEN_DEFAULT_QUEUE_NAME": "team-queue",
            "KAIZEN_WANDB_API_KEY_SECRET": "wandb-default/key",
            "KAIZEN_HUB_TOKEN_SECRET": "hf-default/token",
        }
    )
    spec = parse_spec({})
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    job = build_step_job(CYCLE, planner.evaluate_baseline(), spec, settings)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-queue"
    env = _env(job)
    assert env["WANDB_API_KEY"] == {"secretKeyRef": {"name": "wandb-default", "key": "key"}}
    assert env["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-default", "key": "token"}}
    # The cycle's own choices win.
    own = parse_spec(GPU_SPEC)
    job = build_step_job(
        CYCLE,
        StepPlanner(
            own, namespace="team-a", cycle="demo", artifact_root="/artifacts"
        ).evaluate_baseline(),
        own,
        settings,
    )
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert _env(job)["WANDB_API_KEY"] == {"secretKeyRef": {"name": "wandb", "key": "api-key"}}


def test_no_wandb_key_when_tracking_is_disabled() -> None:
    settings = OperatorSettings.from_env({"KAIZEN_WANDB_API_KEY_SECRET": "wandb-default/key"})
    spec = parse_spec({"tracking": {"mode": "disabled"}})
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    assert "WANDB_API_KEY" not in _env(
        build_step_job(CYCLE, planner.evaluate_baseline(), spec, settings)
    )


@pytest.mark.parametrize(
    ("quantity", "threads"), [("2", 2), ("1.5", 1), ("500m", 1), ("4000m", 4), ("8", 8)]
)
def test_torch_threads_follow_the_cpu_request(quantity: str, threads: int) -> None:
    from kaizen.operator.jobs import cpu_threads

    assert cpu_threads(quantity) == threads


def test_jobs_limit_torch_threads_to_their_cpu_request() -> None:
    assert _env(_gpu_trainer_job())["OMP_NUM_THREADS"] == "8"
    assert _env(_cpu_evaluator_job())["OMP_NUM_THREADS"] == "1"  # the operator's default cpu


def test_a_sharded_evaluation_gets_the_evaluators_gpus_and_result_readers_get_none() -> None:
    """`deviceMap: auto` spreads the model over the evaluate pod's GPUs, and over the combine
    pod's as well; analyze and validate load no model, so their pods hold no GPU."""
    spec = parse_spec(
        {
            "evaluation": {"deviceMap": "auto", "maxGpuMemory": "60Gi"},
            "resources": {"evaluator": {"gpus": 4, "memory": "256Gi"}},
        }
    )
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    evaluate = build_step_job(CYCLE, planner.evaluate_baseline(), spec, SETTINGS)
    pod = evaluate["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    command = container["command"]
    assert command[:4] == ["python", "-m", "kaizen.evaluator", "evaluate"]  # one process
    assert command[command.index("--device-map") + 1] == "auto"
    assert command[command.index("--max-gpu-memory") + 1] == "60Gi"
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    # The combine step evaluates every candidate on the dev items: the same model, as sharded.
    combine_args = planner.combine_args(
        "/artifacts/b/results.json",
        [("geography", "/artifacts/s/results.json")],
        [("ties", "/artifacts/m/adapter"), ("joint", "/artifacts/j/adapter")],
    )
    combine = build_step_job(CYCLE, planner.invocation(combine_args), spec, SETTINGS)
    (combine_container,) = combine["spec"]["template"]["spec"]["containers"]
    assert combine_container["resources"] == container["resources"]
    combine_command = combine_container["command"]
    assert combine_command[:4] == ["python", "-m", "kaizen.evaluator", "combine"]
    for flag in ("--attention", "--precision", "--device-map", "--max-gpu-memory"):
        assert combine_command[combine_command.index(flag) + 1] == command[command.index(flag) + 1]
    for args in (
        planner.analyze_args("/artifacts/x/results.json"),
        planner.validate_args("/artifacts/b/results.json", "/artifacts/c/results.json"),
    ):
        job = build_step_job(CYCLE, planner.invocation(args), spec, SETTINGS)
        step_pod = job["spec"]["template"]["spec"]
        (step_container,) = step_pod["containers"]
        assert "nvidia.com/gpu" not in step_container["resources"]["limits"], args.COMMAND
        # Still allowed onto tainted GPU nodes, where a node selector may pin evaluator steps.
        assert step_pod["tolerations"] == pod["tolerations"], args.COMMAND


def _train_and_joint_jobs(spec_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Jobs of a train step and of the joint step of the same cycle."""
    spec = parse_spec(spec_dict)
    planner = StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )
    train = planner.train("geography", planner.plan_path())
    joint = planner.invocation(planner.joint_args(["geography", "history"]))
    return (
        build_step_job(CYCLE, train, spec, SETTINGS),
        build_step_job(CYCLE, joint, spec, SETTINGS),
    )


@pytest.mark.parametrize("gpus", [0, 1, 2, 8])
def test_the_joint_job_is_placed_and_launched_as_a_train_job(gpus: int) -> None:
    # The joint adapter trains the same model as the domain adapters: the same GPUs, node,
    # tolerations and volumes, and under torchrun with a process per GPU when there are
    # several; only the trainer's subcommand and its arguments differ.
    spec = {
        **GPU_SPEC,
        "training": {"steps": 100, "precision": "bf16", "parallelism": "fsdp", "packing": True},
        "merge": {"combination": "auto", "candidates": ["ties", "joint"]},
        "resources": {"trainer": {**GPU_SPEC["resources"]["trainer"], "gpus": gpus}},
    }
    train, joint = _train_and_joint_jobs(spec)
    train_pod, joint_pod = (job["spec"]["template"]["spec"] for job in (train, joint))
    (train_container,), (joint_container,) = train_pod["containers"], joint_pod["containers"]
    assert {k: v for k, v in joint_pod.items() if k != "containers"} == {
        k: v for k, v in train_pod.items() if k != "containers"
    }
    for key in ("image", "resources", "volumeMounts", "securityContext"):
        assert joint_container[key] == train_container[key], key
    assert joint_container["resources"]["limits"].get("nvidia.com/gpu") == (
        str(gpus) if gpus else None
    )
    train_command, joint_command = train_container["command"], joint_container["command"]
    at = train_command.index("kaizen.trainer")
    assert joint_command[: at + 1] == train_command[: at + 1]
    assert (train_command[at + 1], joint_command[at + 1]) == ("train", "joint")
    launcher = ["kaizen.trainer.launch", "--standalone", f"--nproc-per-node={gpus}"]
    assert (joint_command[2:5] == launcher) == (gpus > 1)
    for flag, value in (("--precision", "bf16"), ("--parallelism", "fsdp")):
        assert joint_command[joint_command.index(flag) + 1] == value
    assert "--packing" in joint_command
