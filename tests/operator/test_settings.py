"""Operator settings: every default pinned, every field read from its `KAIZEN_*` variable."""

from __future__ import annotations

import dataclasses

import pytest

from kaizen.operator.settings import OperatorSettings

DEFAULTS = {
    "evaluator_image": "ghcr.io/kaizen-dev/kaizen-evaluator:0.1.0",
    "trainer_image": "ghcr.io/kaizen-dev/kaizen-trainer:0.1.0",
    "artifact_root": "/artifacts",
    "artifact_pvc": "kaizen-artifacts",
    "namespaces": (),
    "image_pull_policy": "IfNotPresent",
    "job_service_account": "",
    "job_ttl_seconds": 86400,
    "default_cpu": "1",
    "default_memory": "4Gi",
    "python": "python",
    "reconcile_interval": 60.0,
    "max_reconciliations": 32,
    "list_chunk_size": 100,
    "metrics_port": None,
    "scanning": True,
    "default_queue_name": "",
    "wandb_api_key_secret": "",
    "hub_token_secret": "",
    "trainjob": False,
    "memory_reports_dir": "",
    "tracemalloc_frames": 0,
}


def test_every_default_is_pinned() -> None:
    settings = OperatorSettings.from_env({})
    assert dataclasses.asdict(settings) == DEFAULTS
    assert {f.name for f in dataclasses.fields(OperatorSettings)} == set(DEFAULTS)


def test_every_field_has_a_docstring() -> None:
    import ast
    import inspect

    from kaizen.operator import settings as module

    tree = ast.parse(inspect.getsource(module.OperatorSettings))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        stmt.target.id
        for stmt, nxt in zip(body, body[1:], strict=False)
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(nxt, ast.Expr)
        and isinstance(nxt.value, ast.Constant)
    }
    assert documented == set(DEFAULTS)


def test_values_come_from_the_environment() -> None:
    env = {
        "KAIZEN_EVALUATOR_IMAGE": "registry.local/ev:1",
        "KAIZEN_TRAINER_IMAGE": "registry.local/tr:1",
        "KAIZEN_ARTIFACT_ROOT": "/data",
        "KAIZEN_ARTIFACT_PVC": "",
        "KAIZEN_DEFAULT_CPU": "",
        "KAIZEN_NAMESPACES": "team-a, team-b,",
        "KAIZEN_JOB_TTL_SECONDS": "600",
        "KAIZEN_PYTHON": "/usr/bin/python3",
        "KAIZEN_RECONCILE_INTERVAL": "2.5",
        "KAIZEN_METRICS_PORT": "9090",
        "KAIZEN_SCANNING": "false",
        "KAIZEN_MAX_RECONCILIATIONS": "8",
        "KAIZEN_LIST_CHUNK_SIZE": "0",
    }
    settings = OperatorSettings.from_env(env)
    assert settings.evaluator_image == "registry.local/ev:1"
    assert settings.trainer_image == "registry.local/tr:1"
    assert settings.artifact_root == "/data"
    assert settings.artifact_pvc == ""  # set empty: no volume
    assert settings.default_cpu == "1"  # set empty: the default
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.job_ttl_seconds == 600
    assert settings.python == "/usr/bin/python3"
    assert settings.reconcile_interval == 2.5
    assert settings.metrics_port == 9090
    assert settings.scanning is False
    assert settings.max_reconciliations == 8
    assert settings.list_chunk_size == 0  # one response


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KAIZEN_JOB_TTL_SECONDS", "a day"),
        ("KAIZEN_RECONCILE_INTERVAL", "0"),
        ("KAIZEN_SCANNING", "maybe"),
        ("KAIZEN_MAX_RECONCILIATIONS", "0"),
        ("KAIZEN_MAX_RECONCILIATIONS", "many"),
        ("KAIZEN_LIST_CHUNK_SIZE", "-1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        OperatorSettings.from_env({name: value})


def test_secret_references_must_name_secret_and_key() -> None:
    assert (
        OperatorSettings.from_env({"KAIZEN_HUB_TOKEN_SECRET": "hf/token"}).hub_token_secret
        == "hf/token"
    )
    with pytest.raises(ValueError, match="KAIZEN_WANDB_API_KEY_SECRET"):
        OperatorSettings.from_env({"KAIZEN_WANDB_API_KEY_SECRET": "wandb"})
