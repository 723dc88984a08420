"""Render charts/kaizen with Helm's own engine (helm-python-sdk binds Helm's Go SDK; no binary).

Tests that import this module skip when the SDK cannot load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) is not available")

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kaizen"
RELEASE = "kaizen"
NAMESPACE = "kaizen-system"
K8S_VERSION = "1.32"


def load_chart() -> Any:
    return helm.Chart.load(CHART)


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart's templates render for `values`, as an install would."""
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(chart: Any, values: dict[str, Any] | None = None) -> str:
    manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(objects, kind)
    return found


def operator_deployment(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rendered operator Deployment and its (only) container."""
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return deployment, container


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """A container's plain ``env`` values, by name."""
    return {e["name"]: e["value"] for e in container["env"]}
