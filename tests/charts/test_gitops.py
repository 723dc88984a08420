"""GitOps examples: the Argo CD health check runs (LuaJIT, Lua 5.1 like Argo CD's gopher-lua) on
the status shapes the engine writes; the Applications, HelmRelease and Kustomization point at
paths that exist; the folder of cycles renders with kustomize and validates against the CRD.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.api.test_crd import _strip_openapi

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "manifests" / "gitops"
HEALTH_LUA = GITOPS / "argocd" / "improvementcycle-health.lua"
HEALTH_KEY = "resource.customizations.health.kaizen.dev_ImprovementCycle"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _cycle(generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    cycle: dict[str, Any] = {"metadata": {"name": "demo", "generation": generation}}
    if status is not None:
        cycle["status"] = status
    return cycle


def _conditions(ready: str, stalled: str, reason: str) -> list[dict[str, str]]:
    return [
        {"type": "Succeeded", "status": "Unknown", "reason": reason},
        {"type": "Ready", "status": ready, "reason": reason},
        {
            "type": "Reconciling",
            "status": "True" if ready == stalled else "False",
            "reason": reason,
        },
        {"type": "Stalled", "status": stalled, "reason": reason},
    ]


HEALTH_CASES = [
    ("new", _cycle(1, None), "Progressing", "latest spec"),
    ("spec changed", _cycle(2, {"observedGeneration": 1, "phase": "Succeeded"}), "Progressing", ""),
    (
        "training",
        _cycle(
            1,
            {
                "observedGeneration": 1,
                "phase": "Training",
                "conditions": _conditions("False", "False", "Running"),
            },
        ),
        "Progressing",
        "Training",
    ),
    (
        "queued by kueue",
        _cycle(
            1,
            {
                "observedGeneration": 1,
                "phase": "Evaluating",
                "conditions": _conditions("False", "False", "Queued"),
            },
        ),
        "Suspended",
        "queued",
    ),
    (
        "succeeded",
        _cycle(
            3,
            {
                "observedGeneration": 3,
                "phase": "Succeeded",
                "validation": {"verdict": "Promote"},
                "conditions": _conditions("True", "False", "Promoted"),
            },
        ),
        "Healthy",
        "Succeeded (Promote)",
    ),
    (
        "failed",
        _cycle(
            1,
            {
                "observedGeneration": 1,
                "phase": "Failed",
                "message": "step train-geography failed: OOMKilled",
                "conditions": _conditions("False", "True", "StepFailed"),
            },
        ),
        "Degraded",
        "OOMKilled",
    ),
    (
        # Edited after it finished: the results are not those of the spec shown (issue 11, 9).
        "finished, edit not run",
        _cycle(
            2,
            {
                "observedGeneration": 2,
                "phase": "Succeeded",
                "message": "candidate promoted",
                "validation": {"verdict": "Promote"},
                "conditions": [
                    {"type": "Succeeded", "status": "True", "reason": "Promoted"},
                    {"type": "Ready", "status": "False", "reason": "EditNotRun"},
                    {"type": "Reconciling", "status": "False", "reason": "Promoted"},
                    {
                        "type": "Stalled",
                        "status": "True",
                        "reason": "EditNotRun",
                        "message": "the spec of generation 2 changes spec.evaluation.maxNewTokens; "
                        "it was not run",
                    },
                ],
            },
        ),
        "Degraded",
        "was not run",
    ),
]


@pytest.mark.parametrize(
    ("case", "obj", "health", "message"), HEALTH_CASES, ids=[c[0] for c in HEALTH_CASES]
)
def test_argocd_health_check(case: str, obj: dict[str, Any], health: str, message: str) -> None:
    luajit = pytest.importorskip("lupa.luajit21", reason="lupa (LuaJIT) is not installed")
    lua = luajit.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    assert result["status"] == health, case
    assert message in result["message"], case


def test_argocd_configmap_carries_the_health_check_verbatim() -> None:
    (configmap,) = _docs(GITOPS / "argocd" / "argocd-cm-health.yaml")
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "argocd-cm"
    assert configmap["data"][HEALTH_KEY] == HEALTH_LUA.read_text()
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(configmap, "1.32", strict=True)


def test_argocd_applications_point_at_the_chart_and_the_cycles() -> None:
    operator = _docs(GITOPS / "argocd" / "kaizen-operator.yaml")[0]
    cycles = _docs(GITOPS / "argocd" / "kaizen-cycles.yaml")[0]
    for app in (operator, cycles):
        assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
        assert (REPO / app["spec"]["source"]["path"]).is_dir()
    assert operator["spec"]["source"]["path"] == "charts/kaizen"
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    assert cycles["spec"]["source"]["path"] == "manifests/gitops/cycles"
    # The chart accepts the values the Application sets.
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(REPO / "charts" / "kaizen")
    chart.validate_schema(chart.merge_values(operator["spec"]["source"]["helm"]["valuesObject"]))


def test_flux_release_and_kustomization() -> None:
    source, release = _docs(GITOPS / "flux" / "kaizen-operator.yaml")
    (kustomization,) = _docs(GITOPS / "flux" / "kaizen-cycles.yaml")
    assert source["kind"] == "GitRepository" and release["kind"] == "HelmRelease"
    assert (REPO / release["spec"]["chart"]["spec"]["chart"]).is_dir()
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
    assert (
        release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    )
    assert (REPO / kustomization["spec"]["path"]).is_dir()
    assert (
        kustomization["spec"]["wait"] is True
    )  # kstatus reads Ready / Stalled / observedGeneration
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(REPO / "charts" / "kaizen")
    chart.validate_schema(chart.merge_values(release["spec"]["values"]))


def test_folder_of_cycles_renders_and_validates_against_the_crd() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(GITOPS / "cycles")], capture_output=True, text=True, check=True
    ).stdout
    cycles = [d for d in yaml.safe_load_all(out) if d]
    assert cycles and all(c["kind"] == "ImprovementCycle" for c in cycles)
    crd = yaml.safe_load(
        (REPO / "manifests" / "crd" / "kaizen.dev_improvementcycles.yaml").read_text()
    )
    schema = _strip_openapi(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    )
    for cycle in cycles:
        jsonschema.validate(_strip_openapi(cycle["spec"]), schema)


def _health(obj: dict[str, Any]) -> Any:
    luajit = pytest.importorskip("lupa.luajit21", reason="lupa (LuaJIT) is not installed")
    lua = luajit.LuaRuntime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return lua.execute(HEALTH_LUA.read_text())


def test_argocd_shows_a_quota_wait_only_for_a_job_kueue_has_not_admitted() -> None:
    # The status the reconciler writes, read by the health check: a step whose Job exists but
    # has no pod yet is starting (Progressing); only a Job Kueue holds suspended is Suspended.
    import asyncio

    from kaizen.operator.reconciler import CycleReconciler
    from kaizen.operator.settings import OperatorSettings
    from tests.operator.test_reconciler import NAME, NS, FakeKube, cycle_body

    kube = FakeKube()
    kube.cycles[(NS, NAME)] = cycle_body()
    reconciler = CycleReconciler(
        kube,
        OperatorSettings.from_env({"KAIZEN_ARTIFACT_ROOT": "/artifacts"}),
        post_event=lambda *_: None,
        clock=lambda: "2026-11-25T10:00:00Z",
    )

    def reconciled() -> dict[str, Any]:
        asyncio.run(reconciler.reconcile(NS, NAME))
        return kube.cycles[(NS, NAME)]

    reconciled()  # records the first step and creates its Job
    ((_, job_name),) = kube.jobs
    starting = _health(reconciled())
    assert (starting["status"], starting["message"]) == ("Progressing", "Evaluating")

    job = kube.jobs[(NS, job_name)]
    job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = "team-a"
    job["spec"]["suspend"] = True  # Kueue's webhook suspends it until the Workload is admitted
    queued = _health(reconciled())
    assert queued["status"] == "Suspended" and "waiting for quota" in queued["message"]

    del job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]  # suspended by hand, no queue
    by_hand = _health(reconciled())
    assert by_hand["status"] == "Progressing" and "quota" not in by_hand["message"]
