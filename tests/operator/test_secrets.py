"""Secret values never reach a cycle's status, its Events, the operator's logs or a step's output.

A cycle references both Secrets the spec can name (`hubTokenSecret`, `tracking.apiKeySecret`),
whose values are planted in the namespace, and writes Kubernetes variable references to them
wherever a user string reaches the step: the suite (a step argument, and the failure message
of the first step) and the W&B project and entity (environment values). The real operator runs
against the emulator; the job simulator resolves the Secrets and expands `$(VAR)` as a kubelet
does. Everything a user or a log collector can read afterwards is searched for the values.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import kubernetes
import pytest

from tests.kube.cluster import CYCLES, EVENTS, PODS, running_cluster, running_operator, wait_for
from tests.kube.emulator import random_suffix
from tests.kube.jobsim import JobSimulator

pytestmark = pytest.mark.integration

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
HUB_TOKEN = "hf_PLANTEDhubTOKENvalue0123456789"
WANDB_KEY = "PLANTEDwandbKEYvalue0123456789abcdef0123"


def test_secret_values_stay_out_of_status_events_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (tmp_path / "cluster").mkdir()
    namespace = f"test-{random_suffix()}"
    settings_env = {"KAIZEN_ARTIFACT_ROOT": str(artifacts), "KAIZEN_ARTIFACT_PVC": ""}
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    with (
        running_cluster(tmp_path / "cluster") as cluster,
        JobSimulator(cluster, namespace, extra_env={"OMP_NUM_THREADS": "1"}) as sim,
        running_operator(
            cluster, "kaizen.operator.handlers", namespace, env=settings_env, timeout=60
        ) as operator,
    ):
        core = kubernetes.client.CoreV1Api(cluster.api_client())
        for name, key, value in (("hf", "token", HUB_TOKEN), ("wandb", "api-key", WANDB_KEY)):
            core.create_namespaced_secret(
                namespace,
                {
                    "metadata": {"name": name},
                    "data": {key: base64.b64encode(value.encode()).decode()},
                },
            )
        spec = {
            "model": {"name": str(tiny_model_dir)},
            "evaluation": {"suite": "$(HF_TOKEN)", "limit": 1, "maxNewTokens": 4},
            "hubTokenSecret": {"name": "hf", "key": "token"},
            "tracking": {
                "mode": "online",
                "project": "$(WANDB_API_KEY)",
                "entity": "$(HF_TOKEN)",
                "apiKeySecret": {"name": "wandb", "key": "api-key"},
            },
        }
        kubernetes.client.CustomObjectsApi(cluster.api_client()).create_namespaced_custom_object(
            G,
            V,
            namespace,
            P,
            {
                "apiVersion": f"{G}/{V}",
                "kind": "ImprovementCycle",
                "metadata": {"name": "leak"},
                "spec": spec,
            },
        )
        cycle = wait_for(
            lambda: cluster.get(CYCLES, namespace, "leak"),
            until=lambda c: ((c or {}).get("status") or {}).get("phase") in ("Succeeded", "Failed"),
            timeout=180,
            what="the cycle to end",
        )
        # The step ran with both Secrets in its environment, and failed on the literal name.
        status = cycle["status"]
        assert status["phase"] == "Failed", status
        assert "$(HF_TOKEN)" in status["message"], status["message"]
        (run,) = sim.runs
        assert "$(HF_TOKEN)" in run.argv
        events = wait_for(
            lambda: [
                e
                for e in cluster.objects(EVENTS, namespace)
                if (e.get("involvedObject") or {}).get("name") == "leak"
            ],
            until=lambda evs: any(e["type"] == "Warning" for e in evs),
            what="the failure's Warning Event",
        )
        readable = {
            "status": json.dumps(status),
            "events": json.dumps(events),
            "pods": json.dumps(cluster.objects(PODS, namespace)),
            "operator log": "\n".join(operator.messages(logging.DEBUG)),
            "step output": "\n".join(r.log + r.message for r in sim.runs),
        }
    for secret in (HUB_TOKEN, WANDB_KEY):
        leaks = [where for where, text in readable.items() if secret in text]
        assert not leaks, f"a Secret's value is in: {', '.join(leaks)}"
