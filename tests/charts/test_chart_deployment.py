"""The chart's operator Deployment: kopf and its probes, settings from env, images, scheduling."""

from __future__ import annotations

import dataclasses
from typing import Any

from kaizen.operator.settings import OperatorSettings
from tests.charts.chart_values import VALUE_SETS
from tests.charts.helm import (
    container_env,
    one,
    operator_deployment,
    render,
)


def test_operator_runs_kopf_with_probes_on_its_health_endpoint(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    deployment, container = operator_deployment(objects)
    command = container["command"]
    assert command[:4] == ["kopf", "run", "-m", "kaizen.operator"]
    liveness = next(a for a in command if a.startswith("--liveness="))
    port = next(p for p in container["ports"] if p["name"] == "health")["containerPort"]
    assert liveness == f"--liveness=http://0.0.0.0:{port}/healthz"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    account = one(objects, "ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_operator_env_names_settings_that_parse(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    name, objects = rendered
    _, container = operator_deployment(objects)
    env = container_env(container)
    fields = {f"KAIZEN_{f.name.upper()}" for f in dataclasses.fields(OperatorSettings)}
    assert set(env) <= fields, set(env) - fields
    settings = OperatorSettings.from_env(env)
    values = VALUE_SETS[name]
    claim = values.get("artifacts", {}).get("existingClaim", "kaizen-artifacts")
    assert settings.artifact_pvc == claim
    metrics_port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert settings.metrics_port == metrics_port == 9090
    namespaces = tuple(values.get("watchNamespaces", ()))
    assert settings.namespaces == namespaces
    assert settings.scanning is not bool(namespaces)


def test_default_job_images_and_resources_are_the_operators_defaults(chart: Any) -> None:
    # One source of truth: the chart's defaults say what the operator would do without it.
    _, container = operator_deployment(render(chart))
    defaults = OperatorSettings()
    settings = OperatorSettings.from_env(container_env(container))
    for field in (
        "evaluator_image",
        "trainer_image",
        "artifact_root",
        "artifact_pvc",
        "image_pull_policy",
        "job_service_account",
        "job_ttl_seconds",
        "default_cpu",
        "default_memory",
        "reconcile_interval",
        "max_reconciliations",
        "list_chunk_size",
    ):
        assert getattr(settings, field) == getattr(defaults, field), field


def test_images_tags_and_digests(chart: Any) -> None:
    _, container = operator_deployment(render(chart, VALUE_SETS["gpu-cluster"]))
    assert container["image"] == "ghcr.io/kaizen-dev/kaizen-operator:0.1.0@sha256:" + "a" * 64
    env = container_env(container)
    assert env["KAIZEN_TRAINER_IMAGE"] == "registry.local/kaizen-trainer:cu124"
    assert env["KAIZEN_EVALUATOR_IMAGE"] == "ghcr.io/kaizen-dev/kaizen-evaluator:0.1.0"
    assert (env["KAIZEN_DEFAULT_CPU"], env["KAIZEN_DEFAULT_MEMORY"]) == ("4", "32Gi")
    assert env["KAIZEN_DEFAULT_QUEUE_NAME"] == "gpu-queue"
    assert env["KAIZEN_WANDB_API_KEY_SECRET"] == "wandb/api-key"
    assert env["KAIZEN_HUB_TOKEN_SECRET"] == "hf/token"
    # The operator parses what the chart renders.
    from kaizen.operator.settings import OperatorSettings

    settings = OperatorSettings.from_env({k: v for k, v in env.items() if k.startswith("KAIZEN_")})
    assert (settings.default_queue_name, settings.hub_token_secret) == ("gpu-queue", "hf/token")
    default_env = container_env(operator_deployment(render(chart))[1])
    assert not {"KAIZEN_DEFAULT_QUEUE_NAME", "KAIZEN_WANDB_API_KEY_SECRET"} & set(default_env)


def test_scheduling_values_reach_the_pod(chart: Any) -> None:
    values = VALUE_SETS["gpu-cluster"]
    deployment, _ = operator_deployment(render(chart, values))
    pod = deployment["spec"]["template"]["spec"]
    for key in ("priorityClassName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert pod[key] == values[key], key
    default_pod = operator_deployment(render(chart))[0]["spec"]["template"]["spec"]
    assert not {"priorityClassName", "nodeSelector", "tolerations", "affinity"} & set(default_pod)
