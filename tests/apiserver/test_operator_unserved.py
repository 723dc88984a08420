"""The operator outlives a moment in which the real API server does not serve its cycles.

Right after an API server restart a 1.20 server may answer ``404 page not found`` for a custom
resource although ``/readyz`` answered (its CRD handler does not know the CRD yet); kopf alone
then stops the operator ("Multidimensional multitasker has failed: 404 page not found"). The
window is too short to hit on purpose, so these tests make a longer one that reaches the
same code path: the CRD is deleted and created again while the operator (the chart's command
line and RBAC) runs. With kopf's CRD scanning off, kopf does not notice and its watch of the
cycles gets the 404 (``kaizen.operator.unserved`` retries it); with scanning on, as the chart
deploys, kopf may notice the deletion first and stop that watch itself. Either way the
operator keeps running and reconciles a cycle created once the CRD is back.

Deleting the CRD deletes every cycle of the package's server: this module runs last.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.apiserver.operator_run import G, P, V, running_chart_operator
from tests.apiserver.server import CRD_MANIFEST, ApiServer
from tests.kube.cluster import CYCLES, JOBS, OperatorHandle, wait_for

CRD_NAME = yaml.safe_load(CRD_MANIFEST.read_text())["metadata"]["name"]
RESOURCE = "improvementcycles.v1alpha1.kaizen.dev"  # as kopf names it in its logs


def _apply(server: ApiServer, namespace: str, name: str) -> None:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "metadata": {"name": name},
        "spec": {"model": {"name": "example/model"}, "evaluation": {"suite": "demo", "limit": 2}},
    }
    co = kubernetes.client.CustomObjectsApi(server.api_client())
    co.create_namespaced_custom_object(G, V, namespace, P, body)


def _reconciled(server: ApiServer, namespace: str, name: str) -> dict[str, Any]:
    """The cycle once the operator has started its first step: Evaluating, with a Job."""
    cycle = wait_for(
        lambda: server.get(CYCLES, namespace, name),
        until=lambda c: bool(c) and (c.get("status") or {}).get("phase") == "Evaluating",
        what=f"cycle {name} to be Evaluating",
    )
    wait_for(
        lambda: [
            j
            for j in server.objects(JOBS, namespace)
            if j["metadata"].get("labels", {}).get("kaizen.dev/cycle") == name
        ],
        what=f"the first Job of {name}",
    )
    return cycle


@contextlib.contextmanager
def _crd_deleted(server: ApiServer) -> Iterator[Callable[[], None]]:
    """Delete the cycles' CRD; yields `restore`, which creates it again and waits until it is
    established and published. On exit it is restored if it is not back: later tests need it."""
    restored = False

    def restore() -> None:
        nonlocal restored
        server.kubectl("apply", "-f", str(CRD_MANIFEST))
        server.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        server.wait_published(yaml.safe_load(CRD_MANIFEST.read_text()))
        restored = True

    server.kubectl("delete", "crd", CRD_NAME, "--timeout=60s")
    try:
        yield restore
    finally:
        if not restored:
            restore()


def _alive(operator: OperatorHandle) -> None:
    future = operator.runner.future
    assert not future.done(), f"the operator stopped: {future.result().exception!r}"


def _unserved_notices(operator: OperatorHandle) -> list[str]:
    """Warnings that say the cycles are not served: ours (a watch answered 404) or kopf's
    (its CRD scanning saw the CRD go)."""
    return [
        m
        for m in operator.messages(logging.WARNING)
        if ("does not serve" in m and RESOURCE in m)
        or ("Unresolved resources" in m and "improvementcycles" in m)
    ]


@pytest.mark.parametrize("scanning", ["off", "on"])
def test_the_operator_outlives_its_crd_deleted_and_created_again(
    apiserver: ApiServer,
    chart_identity: tuple[str, str],
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scanning: str,
) -> None:
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "KAIZEN_ARTIFACT_PVC": "",
        "KAIZEN_SCANNING": "true" if scanning == "on" else "false",
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    kubeconfig = apiserver.service_account_kubeconfig(
        *chart_identity, path=tmp_path / "operator.kubeconfig"
    )
    # No job simulator: the Jobs stay pending, a reconciled cycle stays Evaluating.
    with running_chart_operator(kubeconfig, env=settings_env) as operator:
        _apply(apiserver, namespace, "before")
        _reconciled(apiserver, namespace, "before")
        # Deleted first, and finalized by the operator: a terminating CRD is served without
        # `patch`, so kopf's scanning stops serving it and its finalizers would hold the CRD.
        co = kubernetes.client.CustomObjectsApi(apiserver.api_client())
        co.delete_namespaced_custom_object(G, V, namespace, P, "before")
        wait_for(
            lambda: apiserver.get(CYCLES, namespace, "before"),
            until=lambda c: c is None,
            what="the cycle to be finalized and gone",
        )

        with _crd_deleted(apiserver) as restore:
            notices, _ = wait_for(
                lambda: (_unserved_notices(operator), operator.runner.future.done()),
                until=lambda seen: seen[0] or seen[1],
                what="a warning that the cycles are not served",
            )
            _alive(operator)
            restore()
        _apply(apiserver, namespace, "after")
        _reconciled(apiserver, namespace, "after")
        _alive(operator)

    if scanning == "off":
        # kopf never learns that the CRD went: only the retried watch tells.
        assert all(RESOURCE in m and "does not serve" in m for m in notices), notices
