"""Every row of the CRD-level table of bad inputs (tests/apiserver/bad_inputs.py), column by column.

The `kaizen check` column, the CRD schema (tests/api/kube_schema.py: what a server does from
the schema alone) and the docs need no server (fast tier); the API server and kubectl columns
run against the real server, which must do what the schema says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from kaizen.api.resource import SpecError
from kaizen.local.executor import load_cycle_file
from tests.api.kube_schema import ABSENT as SCHEMA_ABSENT
from tests.api.kube_schema import admit
from tests.api.kube_schema import lookup as schema_lookup
from tests.apiserver.bad_inputs import (
    ABSENT,
    BAD_INPUTS,
    REPO_ROOT,
    BadInput,
    lookup,
    markdown_table,
)
from tests.apiserver.server import CRD_MANIFEST, ApiServer

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
ROWS = [pytest.param(row, id=row.id) for row in BAD_INPUTS]


def _schema_default(path: str) -> object:
    crd = yaml.safe_load(CRD_MANIFEST.read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path.split("."):
        node = node["properties"][key]
    return node["default"]


@pytest.mark.parametrize("row", ROWS)
def test_kaizen_check(row: BadInput, tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(yaml.safe_dump(row.document()))
    if row.check is None:
        load_cycle_file(path)  # valid for `kaizen check`
        return
    with pytest.raises(SpecError) as error:
        load_cycle_file(path)
    assert row.check in str(error.value)


def _crd() -> dict[str, object]:
    crd: dict[str, object] = yaml.safe_load(CRD_MANIFEST.read_text())
    return crd


@pytest.mark.parametrize("row", ROWS)
def test_the_crd_schema(row: BadInput) -> None:
    """The `api` column from the generated CRD's schema alone (tests/api/kube_schema.py)."""
    stored, errors = admit(_crd(), row.document())
    if row.api == "reject":
        assert stored is None, f"the schema takes it: {row.value!r}"
        field = f"spec.{row.path}" if row.path else "spec"
        assert any(e.startswith(field) for e in errors), errors
        return
    assert not errors, errors
    assert stored is not None
    value = schema_lookup(stored["spec"], row.path)
    if row.api == "prune":
        assert value is SCHEMA_ABSENT
    elif row.api == "default":
        assert value == _schema_default(row.path)
    else:
        assert value == row.value


@pytest.mark.parametrize("row", ROWS)
def test_kaizen_check_refuses_all_the_schema_refuses_and_more(row: BadInput) -> None:
    """`kaizen check` and the CRD agree: every bad input is refused by `kaizen check` naming
    its field; what the schema cannot express is refused by the operator (`InvalidSpec`, the
    same models), never run."""
    assert row.check is not None, "kaizen check must refuse every bad input"
    field = f"spec.{row.path}" if row.path else "spec"
    assert row.check.startswith(field.split("[")[0]), (row.check, field)
    assert row.api in ("reject", "accept", "default")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("resources.trainer.cpu", 4),
        ("resources.trainer.cpu", "500m"),
        ("resources.trainer.memory", "1.5Gi"),
        ("resources.trainer.memory", "1e9"),
        ("resources.trainer.nodeSelector", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),
        ("queueName", "q" * 63),
        ("evaluation.suite", "/data/suites/my-suite"),
        ("evaluation.domains", ["geography", "lmeval:arc_easy"]),
        ("hubTokenSecret", {"name": "hf.token", "key": "HF_TOKEN"}),
    ],
)
def test_valid_inputs_pass_both(path: str, value: object, tmp_path: Path) -> None:
    row = BadInput("valid", "valid", path, value, check=None, api="accept", kubectl="accept")
    stored, errors = admit(_crd(), row.document())
    assert stored is not None, errors
    file = tmp_path / "cycle.yaml"
    file.write_text(yaml.safe_dump(row.document()))
    load_cycle_file(file)


def test_the_docs_show_the_table() -> None:
    docs = (REPO_ROOT / "docs" / "kube-testing.md").read_text()
    assert markdown_table() in docs, (
        "docs/kube-testing.md: paste tests.apiserver.bad_inputs.markdown_table()"
    )


@pytest.fixture(scope="module")
def bad_inputs_namespace(apiserver: ApiServer) -> Iterator[str]:
    name = "bad-inputs"
    kubernetes.client.CoreV1Api(apiserver.api_client()).create_namespace(
        {"metadata": {"name": name}}
    )
    yield name
    apiserver.delete_cycles(name)


@pytest.mark.parametrize("row", ROWS)
def test_the_api_server(row: BadInput, apiserver: ApiServer, bad_inputs_namespace: str) -> None:
    api = kubernetes.client.CustomObjectsApi(apiserver.api_client())
    name = f"api-{row.id}"
    try:
        created = api.create_namespaced_custom_object(
            G, V, bad_inputs_namespace, P, row.document(name)
        )
    except kubernetes.client.ApiException as error:
        assert error.status == 422, error
        message = json.loads(error.body)["message"]
        assert row.api == "reject", f"the server rejected it: {message}"
        assert row.api_says in message
        return
    assert row.api != "reject", f"the server took it: {created['spec']}"
    stored = lookup(created["spec"], row.path)
    read_back = api.get_namespaced_custom_object(G, V, bad_inputs_namespace, P, name)
    assert lookup(read_back["spec"], row.path) == stored
    if row.api == "prune":
        assert stored is ABSENT
    elif row.api == "default":
        assert stored == _schema_default(row.path)
    else:
        assert stored == row.value


@pytest.mark.parametrize("row", ROWS)
def test_kubectl_apply(
    row: BadInput, apiserver: ApiServer, bad_inputs_namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(yaml.safe_dump(row.document(f"kubectl-{row.id}")))
    result = apiserver.kubectl("apply", "-n", bad_inputs_namespace, "-f", str(path), check=False)
    if row.kubectl == "reject":
        assert result.returncode != 0, result.stdout
        field = row.path.rsplit(".", 1)[-1] if row.path else "spec"
        assert field in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr
