"""The real kopf operator with `training.backend: trainjob`, over HTTP, against the emulator and
the job simulator playing Kubeflow Trainer (REAL steps: the train steps run under torchrun with
the torch runtime's `PET_*` variables, as on a cluster).

The emulator serves the TrainJob resource from Kubeflow Trainer v2.3.0's own CRD.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.kube.cluster import JOBS, PODS, running_cluster, running_operator, wait_for
from tests.kube.emulator import random_suffix
from tests.kube.jobsim import JobSimulator
from tests.operator.test_operator_integration import OPERATOR_MODULE, Env, tiny_spec
from tests.operator.test_trainjobs import UPSTREAM_CRD, validate_trainjob

pytestmark = pytest.mark.integration

TG, TV, TP = "trainer.kubeflow.org", "v1alpha1", "trainjobs"


@contextlib.contextmanager
def trainjob_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (tmp_path / "cluster").mkdir()
    namespace = f"test-{random_suffix()}"
    settings_env = {
        "KAIZEN_ARTIFACT_ROOT": str(artifacts),
        "KAIZEN_ARTIFACT_PVC": "",
        "KAIZEN_RECONCILE_INTERVAL": "3",
        # Read when the handlers module is (re)loaded: registers the TrainJob watch.
        "KAIZEN_TRAINJOB": "true",
    }
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    crd = yaml.safe_load(gzip.decompress(UPSTREAM_CRD.read_bytes()))
    with (
        running_cluster(tmp_path / "cluster", crds=[crd]) as cluster,
        JobSimulator(
            cluster,
            namespace,
            max_parallel=4,
            extra_env={"OMP_NUM_THREADS": "1"},
            trainjobs=True,
        ) as sim,
        running_operator(
            cluster, OPERATOR_MODULE, namespace, env=settings_env, check_errors=True, timeout=60
        ),
    ):
        yield Env(cluster, namespace, artifacts, sim)


def _trainjobs(env: Env) -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(env.cluster.api_client())
    return list(api.list_namespaced_custom_object(TG, TV, env.namespace, TP)["items"])


@pytest.mark.cycle
def test_a_cycle_trains_its_adapters_in_trainjobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    with trainjob_env(tmp_path, monkeypatch) as env:
        spec = tiny_spec(tiny_model_dir)
        spec["training"] = {**spec["training"], "backend": "trainjob"}
        env.apply("tj", spec)
        cycle = env.wait_phase("tj", "Succeeded", timeout=600)
        trainjobs = _trainjobs(env)
        job_names = {j["metadata"]["name"] for j in env.cluster.objects(JOBS, env.namespace)}

    status = cycle["status"]
    train_steps = [s for s in status["steps"] if s["name"].startswith("train-")]
    assert len(train_steps) == 2 and all(s["state"] == "Succeeded" for s in train_steps)
    assert len(status["adapters"]) == 2
    # Each train step ran as a TrainJob (validated as the API server would), none as a Job.
    assert sorted(t["metadata"]["name"] for t in trainjobs) == sorted(
        s["jobName"] for s in train_steps
    )
    for trainjob in trainjobs:
        validate_trainjob({k: v for k, v in trainjob.items() if k != "status"})
        (complete,) = trainjob["status"]["conditions"]
        assert complete["type"] == "Complete"
    assert not job_names & {s["jobName"] for s in train_steps}
    # The nodes ran torchrun around the trainer, with the runtime's variables.
    train_runs = [r for r in env.sim.runs if "-node-0-" in r.pod]
    assert len(train_runs) == 2
    for run in train_runs:
        assert run.argv[1:5] == ["-m", "kaizen.trainer.launch", "-m", "kaizen.trainer"]
        assert run.exit_code == 0
    adapters = [Path(a["path"]) for a in status["adapters"]]
    assert all((path / "adapter_config.json").is_file() for path in adapters)


def test_a_failing_trainjob_fails_the_cycle_and_deleting_the_cycle_removes_trainjobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    with trainjob_env(tmp_path, monkeypatch) as env:
        spec = tiny_spec(tiny_model_dir)
        # A training file that does not exist: the train step exits with a configuration error.
        spec["training"] = {
            **spec["training"],
            "backend": "trainjob",
            "extraData": str(tmp_path / "missing.jsonl"),
        }
        env.apply("tjfail", spec)
        cycle = env.wait_phase("tjfail", "Failed", timeout=600)
        status = cycle["status"]
        failed = [s for s in status["steps"] if s["state"] == "Failed"]
        assert failed and failed[0]["name"].startswith("train-")
        assert "missing.jsonl" in status["message"]
        assert _trainjobs(env)  # finished TrainJobs stay (for their logs) until the cycle goes

        kubernetes.client.CustomObjectsApi(
            env.cluster.api_client()
        ).delete_namespaced_custom_object(
            "kaizen.dev", "v1alpha1", env.namespace, "improvementcycles", "tjfail"
        )
        wait_for(lambda: _trainjobs(env), until=lambda t: t == [], what="its TrainJobs to go")
        wait_for(
            lambda: env.cluster.objects(PODS, env.namespace),
            until=lambda pods: pods == [],
            what="their Pods to go",
        )
