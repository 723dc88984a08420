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

Starting in such a moment is another gap: kopf reads the served resources once, at start-up,
and would never serve the cycles. The last test starts the operator while the CRD exists but is
not Established (a CRD of the same group holds one of its names), so that discovery does not
list it (its group version answers 404, as right after a restart, or lists the chains alone);
the operator waits, saying so, and serves the cycles once the CRD is established.

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

from kaizen.operator import unserved
from tests.apiserver.backends import cycle
from tests.apiserver.operator_run import G, P, V, running_chart_operator
from tests.apiserver.server import CRD_MANIFEST, ApiServer
from tests.kube.cluster import CYCLES, JOBS, OperatorHandle, wait_for

CRD_NAME = yaml.safe_load(CRD_MANIFEST.read_text())["metadata"]["name"]
RESOURCE = "improvementcycles.v1alpha1.kaizen.dev"  # as kopf names it in its logs


def _apply(server: ApiServer, namespace: str, name: str) -> None:
    body = cycle(name, model={"name": "example/model"}, evaluation={"suite": "demo", "limit": 2})
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
    (its CRD scanning saw the CRD go: gone, or terminating and so no longer patchable; kopf
    may stop the watch at the second and, the resource already dropped, never log the first)."""
    return [
        m
        for m in operator.messages(logging.WARNING)
        if ("does not serve" in m and RESOURCE in m)
        or ("Unresolved resources" in m and "improvementcycles" in m)
        or ("Non-patchable resources will not be served" in m and RESOURCE in m)
    ]


@pytest.fixture(params=["off", "on"], ids=["scanning-off", "scanning-on"])
def chart_operator(
    request: pytest.FixtureRequest,
    apiserver: ApiServer,
    chart_identity: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, str], Path]:
    """The operator's settings (kopf's CRD scanning off, then on), also set in this process,
    and a kubeconfig of the chart's service account."""
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "KAIZEN_ARTIFACT_PVC": "",
        "KAIZEN_SCANNING": "true" if request.param == "on" else "false",
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    kubeconfig = apiserver.service_account_kubeconfig(
        *chart_identity, path=tmp_path / "operator.kubeconfig"
    )
    return settings_env, kubeconfig


def test_the_operator_outlives_its_crd_deleted_and_created_again(
    apiserver: ApiServer, namespace: str, chart_operator: tuple[dict[str, str], Path]
) -> None:
    settings_env, kubeconfig = chart_operator
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

    if settings_env["KAIZEN_SCANNING"] == "false":
        # kopf never learns that the CRD went: only the retried watch tells.
        assert all(RESOURCE in m and "does not serve" in m for m in notices), notices


# A CRD of the same group that claims the cycles' plural (as a short name): the cycles' CRD,
# created after it, exists with NamesAccepted=False and is not Established, and discovery does
# not list it: its group version answers `404 page not found` (while `/apis` lists it), as for
# a moment right after a restart, or lists only the chains when their CRD is installed.
# Deleting the blocker establishes the cycles' CRD.
BLOCKER = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"blockers.{G}"},
    "spec": {
        "group": G,
        "scope": "Namespaced",
        "names": {
            "plural": "blockers",
            "singular": "blocker",
            "kind": "Blocker",
            "shortNames": [P],
        },
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}


def _crd(server: ApiServer) -> dict[str, Any]:
    return server.raw("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")


def _crd_conditions(server: ApiServer) -> dict[str, str]:
    crd = _crd(server)
    return {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}


def _discovered(server: ApiServer) -> list[str] | None:
    """The resources discovery lists in the cycles' group version; None for a 404."""
    try:
        document = server.raw("GET", f"/apis/{G}/{V}")
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return [r["name"] for r in document.get("resources") or []]


@contextlib.contextmanager
def _crd_not_served(server: ApiServer) -> Iterator[Callable[[], None]]:
    """The cycles' CRD deleted and created again behind `BLOCKER`: it exists, not served.
    Yields `serve`, which deletes the blocker and waits until the CRD is established and
    published; on exit the blocker is gone and the CRD served whatever happened."""
    blocker = yaml.safe_dump(BLOCKER)
    with _crd_deleted(server) as restore:
        try:
            server.kubectl("apply", "-f", "-", input=blocker)
            server.kubectl("wait", "--for=condition=Established", f"crd/blockers.{G}")
            server.kubectl("apply", "-f", str(CRD_MANIFEST))
            conditions = wait_for(
                lambda: _crd_conditions(server),
                until=lambda found: found.get("NamesAccepted") == "False",
                what="the CRD's names to be refused",
            )
            assert conditions.get("Established") != "True", conditions
            # Not Established: kopf's scan that misses it is not made again.
            assert not unserved.crd_ready(_crd(server), V)
            wait_for(
                lambda: [
                    v["version"]
                    for g in server.raw("GET", "/apis")["groups"]
                    if g["name"] == G
                    for v in g["versions"]
                ],
                until=lambda versions: V in versions,
                what=f"/apis to list {G}/{V} (registered for the CRD, Established or not)",
            )
            # Discovery lags the CRD's deletion a moment: until then it still lists the cycles.
            # It answers 404 for the group version, or lists the chains alone where an earlier
            # test installed their CRD (tests/apiserver/test_crd_chain.py).
            wait_for(
                lambda: _discovered(server),
                until=lambda listed: P not in (listed or []),
                what=f"/apis/{G}/{V} to list no {P}",
            )

            def serve() -> None:
                server.kubectl("delete", "crd", f"blockers.{G}", "--timeout=60s")
                restore()

            yield serve
        finally:
            server.kubectl("delete", "crd", f"blockers.{G}", "--ignore-not-found", "--timeout=60s")


def test_the_operator_started_while_its_crd_is_not_served_serves_it_once_it_is(
    apiserver: ApiServer, namespace: str, chart_operator: tuple[dict[str, str], Path]
) -> None:
    settings_env, kubeconfig = chart_operator
    with (
        _crd_not_served(apiserver) as serve,
        running_chart_operator(kubeconfig, env=settings_env) as operator,
    ):
        # The operator says what it waits for (kopf alone would say "Unresolved resources
        # cannot be served" and, with scanning off, never serve the cycles).
        waiting = wait_for(
            lambda: [m for m in operator.messages(logging.WARNING) if "does not serve" in m],
            until=lambda found: len(found) >= 2,
            what="a warning for each look at discovery",
        )
        gaps = (f"/apis/{G}/{V} answers 404", f"/apis/{G}/{V} lists no {P}")
        assert all(RESOURCE in m and any(g in m for g in gaps) for m in waiting), waiting
        _alive(operator)
        serve()
        _apply(apiserver, namespace, "after")
        _reconciled(apiserver, namespace, "after")
        _alive(operator)
        assert any(f"{RESOURCE} is served after" in m for m in operator.messages(logging.INFO))
        # The real CRD object, as the scan's wrapper reads it: due to be listed.
        assert unserved.crd_ready(_crd(apiserver), V)
        # kopf's one scan found the cycles.
        unresolved = [m for m in operator.messages(logging.WARNING) if "Unresolved" in m]
        assert not [m for m in unresolved if f"any_name='{P}'" in m], unresolved
