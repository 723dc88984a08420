"""The chart's Kubeflow Trainer switch: RBAC for TrainJobs and KAIZEN_TRAINJOB only when on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.charts.helm import container_env, of_kind, operator_deployment, render

TRAINJOB_RULE = {
    "apiGroups": ["trainer.kubeflow.org"],
    "resources": ["trainjobs"],
    "verbs": ["create", "get", "list", "watch", "delete"],
}


def _roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(objects, "ClusterRole") + of_kind(objects, "Role")


@pytest.mark.parametrize("namespaces", [[], ["team-a", "team-b"]])
def test_trainjobs_get_rbac_and_the_setting_only_when_enabled(
    chart: Any, namespaces: list[str]
) -> None:
    base = {"watchNamespaces": namespaces} if namespaces else {}
    off = render(chart, base)
    on = render(chart, {**base, "trainJob": {"enabled": True}})
    for role in _roles(off):
        assert not any("trainer.kubeflow.org" in r["apiGroups"] for r in role["rules"])
    roles = _roles(on)
    assert len(roles) == max(1, len(namespaces))
    for role in roles:
        assert TRAINJOB_RULE in role["rules"]
        # Nothing else changes: the same rules plus this one.
        (before,) = [r for r in _roles(off) if r["metadata"] == role["metadata"]]
        assert [r for r in role["rules"] if r != TRAINJOB_RULE] == before["rules"]
    _, container = operator_deployment(on)
    assert container_env(container)["KAIZEN_TRAINJOB"] == "true"
    _, container = operator_deployment(off)
    assert "KAIZEN_TRAINJOB" not in container_env(container)
