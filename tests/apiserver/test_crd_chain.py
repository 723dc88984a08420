"""The ImprovementChain CRD on a real API server: installed, structural, bad specs refused naming
the field, printer columns served with the status the chain engine writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kubernetes
import pytest
import yaml

from kaizen.api.chain import parse_chain, parse_time, rfc3339
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import MergeDigest, ScoreDigest, ValidationDigest
from kaizen.cycle.chain import ObservedCycle, reconcile_chain
from tests.apiserver.server import ApiServer
from tests.kube.cluster import REPO_ROOT

G, V, P = "kaizen.dev", "v1alpha1", "improvementchains"
CHAIN_CRD = REPO_ROOT / "manifests" / "crd" / "kaizen.dev_improvementchains.yaml"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture(scope="module")
def chains(apiserver: ApiServer) -> Iterator[ApiServer]:
    """The server with the chain CRD installed (the package's server has the cycle's only)."""
    apiserver.kubectl("apply", "-f", str(CHAIN_CRD))
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/{P}.{G}", "--timeout=60s")
    apiserver.wait_published(yaml.safe_load(CHAIN_CRD.read_text()))
    yield apiserver


def chain(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementChain",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_the_chain_crd_is_established_and_structural(chains: ApiServer) -> None:
    crd = chains.raw("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{P}.{G}")
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and "NonStructuralSchema" not in conditions
    chains.kubectl("get", "chain", "-A")
    explained = chains.kubectl("explain", "improvementchain.spec.stop").stdout
    assert "plateauCycles" in explained and "maxCycles" in explained


BAD = [
    ({"afterPrevious": True, "concurrencyPolicy": "Allow"}, "spec.concurrencyPolicy"),
    ({"afterPrevious": True, "stop": {"maxCycles": 0}}, "spec.stop.maxCycles"),
    ({"schedule": {"cron": "every night"}}, "spec.schedule.cron"),
    ({"afterPrevious": True, "failedCyclesHistoryLimit": -1}, "spec.failedCyclesHistoryLimit"),
    (
        {"afterPrevious": True, "template": {"spec": {"training": {"rank": 0}}}},
        "spec.template.spec.training.rank",
    ),
    ({"suspend": True}, "spec"),  # no trigger: neither schedule nor afterPrevious
]


@pytest.mark.parametrize(("spec", "field"), BAD, ids=[b[1] for b in BAD])
def test_the_server_refuses_a_bad_chain_naming_the_field(
    chains: ApiServer, namespace: str, spec: dict[str, Any], field: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "chain.yaml"
    manifest.write_text(yaml.safe_dump(chain("bad", spec)))
    refused = chains.kubectl("apply", "-n", namespace, "-f", str(manifest), check=False)
    assert refused.returncode != 0
    assert field in refused.stderr, refused.stderr


def _promoted(index: int, start: list[str], before: float, after: float) -> ObservedCycle:
    merged = f"/artifacts/ml/nightly-{index}/merge/adapter"
    return ObservedCycle(
        f"nightly-{index}",
        index,
        ImprovementCycleStatus(
            phase=Phase.SUCCEEDED,
            baseline=ScoreDigest(overall=before, domains={"geography": before}),
            candidate=ScoreDigest(overall=after, domains={"geography": after}),
            merged=MergeDigest(path=merged, combination="ties"),
            validation=ValidationDigest(
                verdict="Promote",
                overall_delta=after - before,
                p_value=0.002,
                # The gate's figures on the test items (held out from training).
                baseline_score=before - 0.05,
                candidate_score=after - 0.05,
            ),
            promoted_adapters=[*start, merged],
        ),
    )


def test_printer_columns_show_the_status_the_engine_writes(
    chains: ApiServer, namespace: str
) -> None:
    co = kubernetes.client.CustomObjectsApi(chains.api_client())
    spec = {"schedule": {"cron": "0 2 * * *", "timeZone": "Europe/Berlin"}}
    created = co.create_namespaced_custom_object(G, V, namespace, P, chain("nightly", spec))
    # Two nights: the engine folds a promoted cycle and starts the next one on schedule.
    obj = parse_chain({**created, "status": None})
    # 02:00 in Berlin is 01:00 UTC in winter (and 00:00 UTC in summer): the first night after
    # the chain was created.
    created_at = parse_time(created["metadata"]["creationTimestamp"])
    night = created_at.replace(hour=0, minute=0, second=5) + timedelta(days=1)
    zone = ZoneInfo("Europe/Berlin")
    night += timedelta(hours=2) - night.astimezone(zone).utcoffset()  # type: ignore[operator]
    following = rfc3339(night - timedelta(seconds=5) + timedelta(days=1))
    first = _promoted(1, [], 0.42, 0.55)
    status = reconcile_chain(obj, [first], night).status
    assert status.current_cycle == "nightly-2" and status.version == 1
    co.patch_namespaced_custom_object_status(
        G, V, namespace, P, "nightly", {"status": status.to_wire()}
    )
    table = chains.raw("GET", f"/apis/{G}/{V}/namespaces/{namespace}/{P}", accept=TABLE)
    columns = [c["name"] for c in table["columnDefinitions"] if not c.get("priority")]
    assert columns == [
        "Name", "Version", "Last", "Best", "Test", "Current", "Next", "Ready", "Age"
    ]  # fmt: skip
    (row,) = table["rows"]
    cells = dict(zip([c["name"] for c in table["columnDefinitions"]], row["cells"], strict=True))
    assert cells == {
        "Name": "nightly",
        "Version": 1,
        "Last": "Promoted",
        "Best": 0.55,
        "Test": 0.5,  # the current version's test-item score: what stop.targetScore reads
        "Score": 0.55,
        "Current": "nightly-2",
        "Next": following,
        "Ready": "True",
        "Phase": "Running",
        "Schedule": "0 2 * * *",
        "Suspend": False,
        "Age": cells["Age"],
    }
    out = chains.kubectl("get", "improvementchains", "-n", namespace).stdout.splitlines()
    assert out[0].split() == [
        "NAME", "VERSION", "LAST", "BEST", "TEST", "CURRENT", "NEXT", "READY", "AGE"
    ]  # fmt: skip
    assert out[1].split()[:8] == [
        "nightly",
        "1",
        "Promoted",
        "0.55",
        "0.5",
        "nightly-2",
        following,
        "True",
    ]
    wide = chains.kubectl("get", "chain", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME", "VERSION", "LAST", "BEST", "TEST", "SCORE", "CURRENT", "NEXT", "READY", "PHASE",
        "SCHEDULE", "SUSPEND", "AGE",
    ]  # fmt: skip
    assert wide[1].split()[:12] == [
        "nightly", "1", "Promoted", "0.55", "0.5", "0.55", "nightly-2", following, "True",
        "Running",
        "0", "2",  # the schedule "0 2 * * *" splits in five
    ]  # fmt: skip
