"""The sample Grafana dashboard: off by default, a sidecar-labelled ConfigMap when enabled, and
every metric it queries is one the operator defines (a renamed metric breaks this test)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.charts.helm import CHART, NAMESPACE, load_chart, of_kind, render

DASHBOARD = CHART / "dashboards" / "kaizen-operator.json"


@pytest.fixture(scope="module")
def chart() -> Any:
    return load_chart()


def _dashboards(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in of_kind(objects, "ConfigMap") if "kaizen-operator.json" in o["data"]]


def test_off_by_default(chart: Any) -> None:
    assert _dashboards(render(chart)) == []


def test_enabled_the_sidecar_finds_the_dashboard_verbatim(chart: Any) -> None:
    values = {
        "metrics": {
            "grafanaDashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Kaizen"},
            }
        }
    }
    (configmap,) = _dashboards(render(chart, values))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Kaizen"}
    assert json.loads(configmap["data"]["kaizen-operator.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    (default_ns,) = _dashboards(render(chart, {"metrics": {"grafanaDashboard": {"enabled": True}}}))
    assert default_ns["metadata"]["namespace"] == NAMESPACE
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(configmap, "1.32", strict=True)


def _exported_names() -> set[str]:
    """Every sample name the operator's metrics export (counters add _total, histograms more)."""
    from prometheus_client import REGISTRY

    from kaizen.operator import metrics  # noqa: F401 - registers the metrics

    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("kaizen_"):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def test_the_dashboard_queries_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {name for expr in expressions for name in re.findall(r"\bkaizen_\w+", expr)}
    assert queried, "the dashboard queries nothing"
    assert queried <= _exported_names(), queried - _exported_names()
    # The four: reconcile latency, cycles by phase, step outcomes, API errors.
    for needed in (
        "kaizen_reconcile_duration_seconds_bucket",
        "kaizen_cycles",
        "kaizen_step_outcomes_total",
        "kaizen_api_errors_total",
        # the bound on reconciliations in flight, and what waits for it
        "kaizen_reconciliations_in_flight",
        "kaizen_reconciliations_waiting",
    ):
        assert needed in queried
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
