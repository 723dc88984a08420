"""Train steps as Kubeflow Trainer TrainJobs: the builder (golden YAML, validated against the
upstream CRD's schema) and `observe_trainjob` (a table of TrainJob and pod states).

Regenerate the golden file after an intended change with
`KAIZEN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/operator/test_trainjobs.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gzip
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kaizen.api import EXIT_CONFIG_ERROR, SpecError, StepState, StepSummary, parse_spec
from kaizen.cycle.planner import StepPlanner
from kaizen.operator.jobs import build_step_job
from kaizen.operator.settings import OperatorSettings
from kaizen.operator.trainjobs import (
    TrainJobDisabled,
    build_step_trainjob,
    observe_trainjob,
    uses_trainjob,
)
from tests.api.test_crd import _strip_openapi
from tests.operator.test_jobs import CYCLE, GPU_SPEC

GOLDEN = Path(__file__).parent / "golden"
#: Kubeflow Trainer v2.3.0's TrainJob CRD (manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml
#: at commit 658725bdae5c7e3a0854d93ac6ff492e109a22ab), gzipped as published.
UPSTREAM_CRD = Path(__file__).parent / "upstream" / "trainer.kubeflow.org_trainjobs.v2.3.0.yaml.gz"
SETTINGS = OperatorSettings.from_env({"KAIZEN_TRAINJOB": "true"})

TRAINJOB_SPEC: dict[str, Any] = {
    **copy.deepcopy(GPU_SPEC),
    "training": {
        "steps": 100,
        "backend": "trainjob",
        "trainJob": {"numNodes": 4, "runtimeRef": {"name": "torch-distributed"}},
    },
}


@functools.cache
def upstream_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(gzip.decompress(UPSTREAM_CRD.read_bytes()))
    return crd


def validate_trainjob(manifest: dict[str, Any]) -> None:
    """Validate a TrainJob as the API server would: the CRD's OpenAPI schema (every field, type
    and bound) and the two CEL rules on the object itself (an RFC 1035 name of at most 63)."""
    crd = upstream_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _strip_openapi(version["schema"]["openAPIV3Schema"])
    assert manifest["apiVersion"] == f"{crd['spec']['group']}/v1alpha1"
    assert manifest["kind"] == crd["spec"]["names"]["kind"]
    try:
        jsonschema.validate(manifest, schema)
    except jsonschema.ValidationError as error:
        path = ".".join(str(p) for p in error.absolute_path)
        raise AssertionError(f"TrainJob invalid at {path}: {error.message}") from None
    name = manifest["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name
    _no_unknown_fields(manifest["spec"], version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _no_unknown_fields(value: Any, schema: dict[str, Any], path: str = "spec") -> None:
    """The API server prunes fields its schema does not declare: none of ours may be pruned."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            assert key in schema["properties"], f"{path}.{key} is not in the TrainJob schema"
            _no_unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            _no_unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _no_unknown_fields(item, schema["items"], f"{path}[{index}]")


def _planner(spec_dict: dict[str, Any]) -> tuple[Any, StepPlanner]:
    spec = parse_spec(spec_dict)
    return spec, StepPlanner(
        spec, namespace=CYCLE.namespace, cycle=CYCLE.name, artifact_root="/artifacts"
    )


def _trainjob(spec_dict: dict[str, Any] = TRAINJOB_SPEC) -> dict[str, Any]:
    spec, planner = _planner(spec_dict)
    return build_step_trainjob(
        CYCLE, planner.train("geography", planner.plan_path()), spec, SETTINGS
    )


def test_trainjob_matches_golden() -> None:
    manifest = _trainjob()
    path = GOLDEN / "trainer-trainjob.yaml"
    if os.environ.get("KAIZEN_UPDATE_GOLDEN"):
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=100))
    assert yaml.safe_load(path.read_text()) == manifest, f"{path} is stale (module docstring)"


def test_the_golden_trainjob_and_a_cpu_one_validate_against_the_upstream_crd() -> None:
    validate_trainjob(_trainjob())
    cpu = {"training": {"backend": "trainjob", "steps": 3}, "evaluation": {"limit": 2}}
    validate_trainjob(_trainjob(cpu))


def test_the_validation_catches_what_the_api_server_would_refuse() -> None:
    """The check above can fail: a field out of place, a wrong type, a bad name."""
    unknown = _trainjob()
    unknown["spec"]["trainer"]["gpus"] = 4
    with pytest.raises(AssertionError, match=r"spec\.trainer\.gpus"):
        validate_trainjob(unknown)
    wrong_type = _trainjob()
    wrong_type["spec"]["trainer"]["numNodes"] = "4"
    with pytest.raises(AssertionError, match="numNodes"):
        validate_trainjob(wrong_type)
    bad_name = _trainjob()
    bad_name["metadata"]["name"] = "9-demo-train-geography"
    with pytest.raises(AssertionError, match="9-demo"):
        validate_trainjob(bad_name)
    no_manager = _trainjob()
    del no_manager["spec"]["runtimePatches"][0]["manager"]
    with pytest.raises(AssertionError, match="manager"):
        validate_trainjob(no_manager)


def test_trainjob_essentials() -> None:
    manifest = _trainjob()
    meta, spec = manifest["metadata"], manifest["spec"]
    assert meta["name"].startswith("demo-train-geography")
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert meta["labels"]["kaizen.dev/step"] == "train-geography"
    assert meta["ownerReferences"][0]["uid"] == CYCLE.uid
    assert meta["ownerReferences"][0]["controller"] is True
    assert spec["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 4
    assert trainer["numProcPerNode"] == 2  # one process per GPU of each node
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "2"
    assert trainer["image"] == "registry.example.com/kaizen-trainer:dev"
    # torchrun takes nodes, ranks and the master from the PET_* variables the runtime sets.
    assert trainer["command"][:6] == [
        "python",
        "-m",
        "kaizen.trainer.launch",
        "-m",
        "kaizen.trainer",
        "train",
    ]
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["KAIZEN_SUMMARY_PATH"] == "/dev/termination-log"
    (patch,) = spec["runtimePatches"]
    assert patch["manager"] == "kaizen.dev/operator"
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["pool"] == "gpu"
    assert pod["tolerations"][0] == {
        "key": "nvidia.com/gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert "nodeAffinity" in pod["affinity"]
    assert {v["name"] for v in pod["volumes"]} == {"artifacts", "tmp", "dshm"}
    (container,) = pod["containers"]
    assert container["name"] == "node"
    assert {m["name"] for m in container["volumeMounts"]} == {"artifacts", "tmp", "dshm"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_only_train_steps_become_trainjobs() -> None:
    spec, planner = _planner(TRAINJOB_SPEC)
    train = planner.train("geography", planner.plan_path())
    merge = planner.invocation(planner.merge_args([("geography", "/a")]))
    assert uses_trainjob(train, spec)
    assert not uses_trainjob(merge, spec)
    assert not uses_trainjob(planner.evaluate_baseline(), spec)
    # The merge Job keeps the spec's priority class; the TrainJob cannot carry one.
    merge_job = build_step_job(CYCLE, merge, spec, SETTINGS)
    assert merge_job["spec"]["template"]["spec"]["priorityClassName"] == "ml-training"
    job_spec, job_planner = _planner({**TRAINJOB_SPEC, "training": {"steps": 100}})
    assert not uses_trainjob(job_planner.train("geography", None), job_spec)


def test_the_joint_step_runs_as_a_trainjob_placed_as_the_train_steps() -> None:
    # The joint adapter trains like the domain adapters (`training.backend` decides for
    # both): a TrainJob with the same nodes, processes, resources and pod, its torchrun
    # running `kaizen.trainer joint` with the spec's training options.
    training = {**TRAINJOB_SPEC["training"], "parallelism": "fsdp", "gradientCheckpointing": True}
    spec_dict = {
        **TRAINJOB_SPEC,
        "training": training,
        "merge": {"combination": "auto", "candidates": ["ties", "joint"]},
    }
    spec, planner = _planner(spec_dict)
    joint = planner.invocation(planner.joint_args(["geography", "history"]))
    train = planner.train("geography", planner.plan_path())
    assert uses_trainjob(joint, spec)
    manifests = [build_step_trainjob(CYCLE, step, spec, SETTINGS) for step in (train, joint)]
    for manifest in manifests:
        validate_trainjob(manifest)
    train_job, joint_job = (m["spec"] for m in manifests)
    assert joint_job["runtimeRef"] == train_job["runtimeRef"]
    patch = [
        m["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
        for m in (train_job, joint_job)
    ]
    pods = [p["replicatedJobs"][0]["template"]["spec"]["template"]["spec"] for p in patch]
    assert pods[1] == pods[0]
    for key in ("image", "numNodes", "numProcPerNode", "resourcesPerNode"):
        assert joint_job["trainer"][key] == train_job["trainer"][key], key
    assert joint_job["trainer"]["numNodes"] == 4
    command = joint_job["trainer"]["command"]
    assert command[:6] == ["python", "-m", "kaizen.trainer.launch", "-m", "kaizen.trainer", "joint"]
    assert command[command.index("--parallelism") + 1] == "fsdp"
    assert "--gradient-checkpointing" in command
    # With the Job backend the joint step is a Job, as the train steps are.
    job_spec, job_planner = _planner({**spec_dict, "training": {"steps": 100}})
    assert not uses_trainjob(
        job_planner.invocation(job_planner.joint_args(["geography", "history"])), job_spec
    )


def test_without_trainjob_support_the_builder_says_how_to_enable_it() -> None:
    spec, planner = _planner(TRAINJOB_SPEC)
    with pytest.raises(TrainJobDisabled, match="trainJob.enabled=true"):
        build_step_trainjob(
            CYCLE, planner.train("geography", None), spec, OperatorSettings.from_env({})
        )


def test_the_settings_read_the_trainjob_switch() -> None:
    assert OperatorSettings.from_env({}).trainjob is False
    assert OperatorSettings.from_env({"KAIZEN_TRAINJOB": "true"}).trainjob is True
    with pytest.raises(ValueError, match="KAIZEN_TRAINJOB"):
        OperatorSettings.from_env({"KAIZEN_TRAINJOB": "perhaps"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"training": {"trainJob": {"numNodes": 2}}}, "needs training.backend: trainjob"),
        ({"training": {"backend": "slurm"}}, "training.backend"),
        ({"training": {"trainJob": {"numNodes": 0}}}, "numNodes"),
        (
            {"resources": {"trainer": {"tolerations": [{"operator": "Exists", "value": "x"}]}}},
            "must not set value",
        ),
        (
            {"resources": {"trainer": {"tolerations": [{"value": "x"}]}}},
            "without key must use operator Exists",
        ),
        (
            {"resources": {"trainer": {"tolerations": [{"key": "a", "tolerationSeconds": 5}]}}},
            "needs effect NoExecute",
        ),
        ({"resources": {"trainer": {"priorityClassName": "High Priority"}}}, "priorityClassName"),
        ({"resources": {"trainer": {"affinity": {"nodeAfinity": {}}}}}, "nodeAfinity"),
        ({"training": {"parallelism": "tp"}}, "training.parallelism"),
        (
            {"training": {"parallelism": "fsdp", "quantization": "4bit"}},
            "training.parallelism fsdp cannot be combined with training.quantization 4bit",
        ),
        (
            {"training": {"parallelism": "fsdp", "teacher": {"mode": "context"}}},
            "training.parallelism fsdp cannot be combined with a training.teacher",
        ),
        (
            {"training": {"parallelism": "fsdp", "teacher": {"tokenLevel": {}}}},
            "training.parallelism fsdp cannot be combined with a training.teacher",
        ),
        (
            {"training": {"replayFraction": 0, "preserveWeight": 1}},
            "training.preserveWeight needs rehearsal lines",
        ),
        (
            {"training": {"packing": True, "preserveWeight": 1}},
            "training.packing cannot be combined with training.preserveWeight",
        ),
        (
            {"training": {"parallelism": "fsdp", "preserveWeight": 1}},
            "training.parallelism fsdp cannot be combined with training.preserveWeight",
        ),
        (
            {"training": {"parallelism": "fsdp", "anchorRatio": 0.5}},
            "training.parallelism fsdp cannot be combined with training.preserveWeight or "
            "training.anchorRatio",
        ),
        ({"training": {"preserveWeight": -1}}, "training.preserveWeight"),
        (
            {"training": {"parallelism": "fsdp", "emaDecay": 0.9}},
            "training.parallelism fsdp cannot be combined with training.emaDecay",
        ),
        ({"training": {"emaDecay": 1}}, "training.emaDecay"),
        ({"training": {"lrSchedule": "step"}}, "training.lrSchedule"),
        (
            {"training": {"teacher": {"paraphrases": 2}}},
            "training.teacher.paraphrases needs training.teacher.mode context",
        ),
        ({"training": {"teacher": {"mode": "context", "paraphrases": 4}}}, "paraphrases"),
        ({"training": {"warmupRatio": 1}}, "training.warmupRatio"),
        ({"evaluation": {"deviceMap": "balanced"}}, "evaluation.deviceMap"),
        ({"evaluation": {"maxGpuMemory": "60Gi"}}, "evaluation.maxGpuMemory needs"),
        ({"evaluation": {"deviceMap": "auto", "maxGpuMemory": "lots"}}, "maxGpuMemory"),
        ({"merge": {"similarRoutes": True}}, "merge.similarRoutes needs the routed candidate"),
        (
            {"merge": {"combination": "auto", "candidates": ["ties"], "similarRoutes": True}},
            "merge.similarRoutes needs the routed candidate",
        ),
    ],
)
def test_bad_placement_and_backend_settings_are_refused_naming_the_field(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(spec)


# --- observe_trainjob ---------------------------------------------------------------------------

OK = StepSummary(step="train-geography", ok=True, message="trained")
CONFIG = StepSummary(step="train-geography", ok=False, reason="ConfigurationError", message="x")


def _tj(conditions: list[tuple[str, str, str]] = (), suspend: bool = False) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "metadata": {
            "name": "demo-train-geography",
            "labels": {"kaizen.dev/step": "train-geography"},
        },
        "spec": {"suspend": suspend},
        "status": {
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in conditions
            ]
        },
    }


def _node_pod(
    node: int,
    *,
    exit_code: int | None = None,
    message: str = "",
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "message": message}}
    return {
        "metadata": {
            "name": f"demo-train-geography-node-0-{node}-abcde",
            "creationTimestamp": created,
            "labels": {
                "jobset.sigs.k8s.io/jobset-name": "demo-train-geography",
                "jobset.sigs.k8s.io/replicatedjob-name": "node",
                "jobset.sigs.k8s.io/job-index": "0",
                "batch.kubernetes.io/job-completion-index": str(node),
            },
        },
        "status": {"phase": "Running", "containerStatuses": [{"name": "node", "state": state}]},
    }


OK_JSON = OK.model_dump_json(by_alias=True)
TRAINJOB_CASES = [
    ("suspended by Kueue", _tj(suspend=True), [], StepState.QUEUED, None, None, "suspended"),
    (
        "suspended condition",
        _tj([("Suspended", "Suspended", "")]),
        [],
        StepState.QUEUED,
        None,
        None,
        "suspended",
    ),
    ("no pods yet", _tj(), [], StepState.RUNNING, None, None, "no pod yet"),
    ("running", _tj(), [_node_pod(0), _node_pod(1)], StepState.RUNNING, None, None, None),
    (
        "complete: rank 0's node speaks, not the others",
        _tj([("Complete", "JobsCompleted", "")]),
        [_node_pod(1, exit_code=0, message=""), _node_pod(0, exit_code=0, message=OK_JSON)],
        StepState.SUCCEEDED,
        0,
        OK,
        None,
    ),
    (
        "failed with a configuration error",
        _tj([("Failed", "JobsFailed", "jobset failed")]),
        [_node_pod(0, exit_code=EXIT_CONFIG_ERROR, message=CONFIG.model_dump_json(by_alias=True))],
        StepState.FAILED,
        EXIT_CONFIG_ERROR,
        CONFIG,
        "TrainJob failed (JobsFailed): jobset failed",
    ),
    (
        "the runtime does not exist",
        _tj([("Failed", "TrainingRuntimeNotSupported", "runtime torch-x not found")]),
        [],
        StepState.FAILED,
        None,
        None,
        "TrainingRuntimeNotSupported",
    ),
    (
        "complete but the summary is missing",
        _tj([("Complete", "JobsCompleted", "")]),
        [_node_pod(0, exit_code=0, message="")],
        StepState.SUCCEEDED,
        0,
        None,
        "no summary",
    ),
]


@pytest.mark.parametrize(
    ("trainjob", "pods", "state", "exit_code", "summary", "message"),
    [case[1:] for case in TRAINJOB_CASES],
    ids=[case[0] for case in TRAINJOB_CASES],
)
def test_observe_trainjob(
    trainjob: dict[str, Any],
    pods: list[dict[str, Any]],
    state: StepState,
    exit_code: int | None,
    summary: StepSummary | None,
    message: str | None,
) -> None:
    seen = observe_trainjob(trainjob, pods)
    assert seen.name == "train-geography"
    assert seen.state == state
    assert seen.exit_code == exit_code
    assert seen.summary == summary
    if message is None:
        assert seen.message is None
    else:
        assert seen.message is not None and message in seen.message


def test_a_node_that_cannot_be_scheduled_is_named() -> None:
    pending = _node_pod(1)
    pending["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/8 nodes are available: 8 Insufficient nvidia.com/gpu.",
            }
        ],
    }
    seen = observe_trainjob(_tj(), [_node_pod(0), pending])
    assert seen.state == StepState.QUEUED
    assert seen.message is not None and "Insufficient nvidia.com/gpu" in seen.message


def _registry_with(monkeypatch: pytest.MonkeyPatch, trainjob: bool) -> Any:
    import importlib

    import kopf

    from kaizen.operator import handlers

    monkeypatch.setenv("KAIZEN_TRAINJOB", str(trainjob).lower())
    fresh = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(fresh)
    try:
        importlib.reload(handlers)
    finally:
        kopf.set_default_registry(previous)
        monkeypatch.delenv("KAIZEN_TRAINJOB")
        importlib.reload(handlers)
    return fresh


@pytest.mark.parametrize("enabled", [False, True])
def test_trainjobs_are_watched_only_with_trainjob_support(
    monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    """Without Kubeflow Trainer (or RBAC for it) a TrainJob watch would fail for ever."""
    import kopf

    from kaizen.operator.handlers import configure_kopf

    registry = _registry_with(monkeypatch, enabled)
    watched = {h.selector.group for h in registry._watching.get_all_handlers() if h.selector}
    assert "batch" in watched
    assert ("trainer.kubeflow.org" in watched) is enabled
    settings = kopf.OperatorSettings()
    configure_kopf(settings, OperatorSettings(trainjob=enabled), pod_name="op-0")
    selectors = settings.watching.label_selectors  # type: ignore[attr-defined]
    assert (("trainer.kubeflow.org", "v1alpha1", "trainjobs") in selectors) is enabled


def test_the_70b_sample_renders_jobs_and_trainjobs_their_schemas_accept() -> None:
    """Every workload of the 70B sample: the Jobs against Kubernetes' own schemas (strict), the
    TrainJobs against Kubeflow Trainer's CRD."""
    kv = pytest.importorskip("kubernetes_validate")
    from tests.operator.test_manifests import K8S_VERSION, MANIFESTS

    doc = yaml.safe_load(
        (
            MANIFESTS / "samples" / "kaizen.dev_v1alpha1_improvementcycle_70b-trainjob.yaml"
        ).read_text()
    )
    spec, planner = _planner(doc["spec"])
    cycle = dataclasses.replace(CYCLE, name=doc["metadata"]["name"])
    planner = StepPlanner(
        spec, namespace=cycle.namespace, cycle=cycle.name, artifact_root="/artifacts"
    )
    train = planner.train("geography", planner.plan_path())
    trainjob = build_step_trainjob(cycle, train, spec, SETTINGS)
    validate_trainjob(trainjob)
    trainer = trainjob["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    command = trainer["command"]
    assert command[command.index("--parallelism") + 1] == "fsdp"  # the base sharded, bf16
    assert command[command.index("--quantization") + 1] == "none"
    assert "--gradient-checkpointing" in command
    jobs = [
        planner.evaluate_baseline(),
        planner.invocation(planner.merge_args([("geography", "/a"), ("science", "/b")])),
    ]
    for invocation in jobs:
        assert not uses_trainjob(invocation, spec)
        job = build_step_job(cycle, invocation, spec, SETTINGS)
        kv.validate(job, K8S_VERSION, strict=True)
    # The evaluation spreads the model over the evaluator's four GPUs.
    (evaluate,) = build_step_job(cycle, jobs[0], spec, SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ]
    assert evaluate["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert evaluate["command"][evaluate["command"].index("--device-map") + 1] == "auto"
    merge_pod = build_step_job(cycle, jobs[1], spec, SETTINGS)["spec"]["template"]["spec"]
    assert merge_pod["priorityClassName"] == "ml-batch"
    assert "podAntiAffinity" in merge_pod["affinity"]
