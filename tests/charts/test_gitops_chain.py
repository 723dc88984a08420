"""GitOps for chains: the Argo CD health check of ImprovementChain runs (LuaJIT, Lua 5.1) on the
status shapes the chain engine writes; the Application and the Flux Kustomization point at the
folder of chains, which renders with kustomize and validates against the chain CRD."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kaizen.api.chain import parse_chain
from kaizen.cycle.chain import ObservedCycle, invalid_chain, reconcile_chain
from tests.api.test_crd import _strip_openapi

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "manifests" / "gitops"
HEALTH_LUA = GITOPS / "argocd" / "improvementchain-health.lua"
HEALTH_KEY = "resource.customizations.health.kaizen.dev_ImprovementChain"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _chain(spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementChain",
        "metadata": {"name": "nightly", "generation": generation},
        "spec": spec,
    }


def _reconciled(spec: dict[str, Any], cycles: list[ObservedCycle] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """The chain object with the status the engine writes for it."""
    obj = _chain(spec)
    decision = reconcile_chain(parse_chain(obj), list(cycles), NOW)
    return {**obj, "status": decision.status.to_wire()}


def _health(obj: dict[str, Any]) -> tuple[str, str]:
    luajit = pytest.importorskip("lupa.luajit21", reason="lupa (LuaJIT) is not installed")
    lua = luajit.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return result["status"], result["message"]


def test_health_of_a_new_chain_is_progressing() -> None:
    assert _health(_chain({"afterPrevious": True}))[0] == "Progressing"
    stale = _reconciled({"afterPrevious": True})
    stale["metadata"]["generation"] = 2
    assert _health(stale)[0] == "Progressing"


def test_health_of_a_chain_running_or_waiting_is_healthy() -> None:
    status, message = _health(_reconciled({"afterPrevious": True}))
    assert status == "Healthy" and "running nightly-1" in message and "version 0" in message
    status, message = _health(_reconciled({"schedule": {"cron": "0 2 * * *"}}))
    assert status == "Healthy" and "waiting" in message


def test_health_of_a_suspended_chain() -> None:
    assert _health(_reconciled({"afterPrevious": True, "suspend": True}))[0] == "Suspended"


def test_health_of_a_stalled_chain_is_degraded() -> None:
    obj = _chain({"afterPrevious": True})
    decision = invalid_chain(None, 1, "spec.schedule.cron: not a cron schedule", NOW)
    status, message = _health({**obj, "status": decision.status.to_wire()})
    assert status == "Degraded" and "spec.schedule.cron" in message


def test_argocd_configmap_carries_both_health_checks_verbatim() -> None:
    (configmap,) = _docs(GITOPS / "argocd" / "argocd-cm-health.yaml")
    assert configmap["data"][HEALTH_KEY] == HEALTH_LUA.read_text()
    assert "resource.customizations.health.kaizen.dev_ImprovementCycle" in configmap["data"]


def test_the_documented_chain_health_check_is_the_shipped_one() -> None:
    lua = HEALTH_LUA.read_text()
    indented = "\n".join("    " + line if line else "" for line in lua.splitlines())
    assert indented in (REPO / "docs" / "deploy.md").read_text()


def test_argocd_application_and_flux_kustomization_point_at_the_chains() -> None:
    (app,) = _docs(GITOPS / "argocd" / "kaizen-chains.yaml")
    assert app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "manifests/gitops/chains"
    (kustomization,) = _docs(GITOPS / "flux" / "kaizen-chains.yaml")
    assert kustomization["spec"]["path"] == "./manifests/gitops/chains"
    assert kustomization["spec"]["wait"] is True
    assert (REPO / "manifests" / "gitops" / "chains").is_dir()


def test_folder_of_chains_renders_and_validates_against_the_crd() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(GITOPS / "chains")], capture_output=True, text=True, check=True
    ).stdout
    chains = [d for d in yaml.safe_load_all(out) if d]
    assert chains and all(c["kind"] == "ImprovementChain" for c in chains)
    crd = yaml.safe_load(
        (REPO / "manifests" / "crd" / "kaizen.dev_improvementchains.yaml").read_text()
    )
    schema = _strip_openapi(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    )
    for chain in chains:
        jsonschema.validate(chain["spec"], schema)
        parse_chain(chain)
