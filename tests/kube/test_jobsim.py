"""The job simulator: Jobs run as local processes, with Pod and Job status written over HTTP."""

from __future__ import annotations

import json
import textwrap

import kubernetes
import pytest

from tests.kube.cluster import JOBS, PODS, Cluster, wait_for
from tests.kube.emulator import b64
from tests.kube.jobsim import JobSimulator


def job(name: str, code: str, **spec: object) -> dict:
    container = {
        "name": "main",
        "image": "kaizen:test",
        "command": ["python", "-c", textwrap.dedent(code)],
    }
    container.update(spec.pop("container", {}))  # type: ignore[arg-type]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"kaizen.dev/cycle": "c1"}},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            **spec,
        },
    }


def conditions(obj: dict | None) -> dict[str, dict]:
    return {
        c["type"]: c
        for c in ((obj or {}).get("status") or {}).get("conditions") or []
        if c["status"] == "True"
    }


def finished(cluster: Cluster, namespace: str, name: str) -> dict:
    return wait_for(
        lambda: cluster.get(JOBS, namespace, name),
        lambda j: {"Complete", "Failed"} & set(conditions(j)),
        what=f"job {name} to finish",
    )


def pods_of(cluster: Cluster, namespace: str, name: str) -> list[dict]:
    return [
        p
        for p in cluster.objects(PODS, namespace)
        if p["metadata"]["labels"].get("job-name") == name
    ]


@pytest.fixture
def batch(cluster: Cluster) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(cluster.api_client())


SUMMARY = """
    import json, os
    print("evaluating...")
    with open(os.environ["KAIZEN_SUMMARY_PATH"], "w") as f:
        json.dump({"step": "baseline", "overall": 0.61}, f)
"""


def test_successful_job_reports_the_summary(cluster, jobsim, batch, namespace):
    batch.create_namespaced_job(namespace, job("j1", SUMMARY))
    done = finished(cluster, namespace, "j1")
    assert set(conditions(done)) == {"SuccessCriteriaMet", "Complete"}
    assert done["status"]["succeeded"] == 1 and done["status"]["completionTime"]
    [pod] = pods_of(cluster, namespace, "j1")
    assert pod["metadata"]["name"].startswith("j1-") and len(pod["metadata"]["name"]) == 8
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j1"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert json.loads(terminated["message"]) == {"step": "baseline", "overall": 0.61}
    assert pod["status"]["phase"] == "Succeeded"
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    assert core.read_namespaced_pod_log(pod["metadata"]["name"], namespace) == "evaluating...\n"
    # Pod status is written before the Job's: whoever sees Complete can read the message.
    history = [v for v in cluster.history(JOBS, namespace, "j1") if v]
    assert history[-1]["status"]["conditions"][-1]["type"] == "Complete"


def test_termination_message_path_is_substituted(cluster, jobsim, batch, namespace):
    code = "import sys; open(sys.argv[1], 'w').write('via argv')"
    spec = job("j1", code, container={"args": ["/dev/termination-log"]})
    batch.create_namespaced_job(namespace, spec)
    finished(cluster, namespace, "j1")
    [pod] = pods_of(cluster, namespace, "j1")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "via argv"


def test_backoff_limit_retries_then_fails(cluster, jobsim, batch, namespace):
    batch.create_namespaced_job(namespace, job("j1", "raise SystemExit(1)", backoffLimit=1))
    done = finished(cluster, namespace, "j1")
    assert conditions(done)["Failed"]["reason"] == "BackoffLimitExceeded"
    assert "FailureTarget" in conditions(done)
    assert done["status"]["failed"] == 2
    pods = pods_of(cluster, namespace, "j1")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}


def test_pod_failure_policy_fail_job(cluster, jobsim, batch, namespace):
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]},
            },
        ]
    }
    batch.create_namespaced_job(
        namespace, job("j1", "raise SystemExit(3)", backoffLimit=5, podFailurePolicy=policy)
    )
    done = finished(cluster, namespace, "j1")
    failed = conditions(done)["Failed"]
    assert failed["reason"] == "PodFailurePolicy" and "exit code 3" in failed["message"]
    assert len(pods_of(cluster, namespace, "j1")) == 1 and done["status"]["failed"] == 1


def test_fallback_to_logs_on_error(cluster, jobsim, batch, namespace):
    code = "import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(2)"
    spec = job(
        "j1", code, backoffLimit=0, container={"terminationMessagePolicy": "FallbackToLogsOnError"}
    )
    batch.create_namespaced_job(namespace, spec)
    finished(cluster, namespace, "j1")
    [pod] = pods_of(cluster, namespace, "j1")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 2 and terminated["reason"] == "Error"
    lines = terminated["message"].splitlines()
    assert len(lines) == 80 and lines[0] == "line 20" and lines[-1] == "line 99"


def test_suspended_job_stays_pending_until_resumed(cluster, jobsim, batch, namespace):
    batch.create_namespaced_job(namespace, job("j1", SUMMARY, suspend=True))
    marked = wait_for(
        lambda: cluster.get(JOBS, namespace, "j1"), lambda j: "Suspended" in conditions(j)
    )
    assert "startTime" not in marked["status"]
    assert pods_of(cluster, namespace, "j1") == [] and jobsim.runs == []
    batch.patch_namespaced_job("j1", namespace, {"spec": {"suspend": False}})
    done = finished(cluster, namespace, "j1")
    assert "Complete" in conditions(done) and "Suspended" not in conditions(done)


def test_env_from_secret_and_active_deadline(cluster, jobsim, batch, namespace):
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "data": {"token": b64("s3cret")}}
    )
    code = """
        import os, time
        open(os.environ["KAIZEN_SUMMARY_PATH"], "w").write(os.environ["TOKEN"] + "/" + os.environ["PLAIN"])
        time.sleep(float(os.environ["NAP"]))
    """
    env = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "PLAIN", "value": "p-$(TOKEN)"},
        {"name": "NAP", "value": "0"},
    ]
    batch.create_namespaced_job(namespace, job("ok", code, container={"env": env}))
    finished(cluster, namespace, "ok")
    [pod] = pods_of(cluster, namespace, "ok")
    assert (
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == "s3cret/p-s3cret"
    )

    env[2]["value"] = "60"
    batch.create_namespaced_job(
        namespace, job("slow", code, activeDeadlineSeconds=1, container={"env": env})
    )
    done = finished(cluster, namespace, "slow")
    assert conditions(done)["Failed"]["reason"] == "DeadlineExceeded"
    assert pods_of(cluster, namespace, "slow") == []  # the controller removes the pods


def test_deleting_a_running_job_kills_its_process(cluster, jobsim, batch, namespace):
    batch.create_namespaced_job(namespace, job("j1", "import time; time.sleep(60)"))
    wait_for(
        lambda: pods_of(cluster, namespace, "j1"),
        lambda ps: ps and ps[0]["status"]["phase"] == "Running",
    )
    batch.delete_namespaced_job("j1", namespace, propagation_policy="Background")
    runs = wait_for(lambda: list(jobsim.runs), lambda rs: rs and rs[0].exit_code is not None)
    assert runs[0].exit_code == 143  # SIGTERM
    assert cluster.objects(PODS, namespace) == []


def test_jobs_run_concurrently_with_a_limit(cluster, namespace, batch, tmp_path):
    # Every job runs until the test opens the gate, so the two running ones overlap for as long
    # as the test looks (no guess at how long a process takes to start).
    gate = tmp_path / "gate"
    code = f"""
        import os, time
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.01)
    """
    with JobSimulator(cluster, namespace, max_parallel=2) as sim:
        for i in range(3):
            batch.create_namespaced_job(namespace, job(f"j{i}", code))
        running = wait_for(
            lambda: [
                p for p in cluster.objects(PODS, namespace) if p["status"]["phase"] == "Running"
            ],
            lambda ps: len(ps) == 2,
        )
        assert len(running) == 2
        # The third job waits for a free slot: no pod of it yet.
        assert len(cluster.objects(PODS, namespace)) == 2
        gate.touch()
        for i in range(3):
            finished(cluster, namespace, f"j{i}")
        assert len(sim.runs) == 3
