"""The memory of a restarted operator on the real API server: finished step Jobs, a fresh operator.

`NAMESPACES` namespaces of `--jobs` Jobs each, labelled as the operator's, each with its status
written twice by other field managers (started, then SuccessCriteriaMet and Complete), so
that the Jobs carry the `managedFields` a Job controller leaves; then the operator starts
afresh, watching those namespaces, and its RSS is sampled every 0.25 s for `--seconds`, with
a memory report (`kaizen.operator.diagnostics`) every 3 s into `--reports`. Their cycles do
not exist: each Job's event costs at most one read of its cycle. This isolates what kopf's
first lists and its per-object processing cost, which `benchmarks/scale.py` measures only as
a whole (its resync).

    python benchmarks/restart_memory.py --namespaces 10 --jobs 500 --chunk 100

Needs the real kube-apiserver of the `apiserver` test tier (`make kube-apiserver`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from scale import OPERATOR_TOKEN, operator_process  # noqa: E402
from scale_apiserver import running_metered_apiserver  # noqa: E402
from scale_measure import rss_mib  # noqa: E402

LABELS = {"app.kubernetes.io/managed-by": "kaizen-operator"}
WHEN = "2026-12-05T12:00:00Z"


def step_job(cycle: str, step: int) -> dict[str, Any]:
    """A Job shaped as the operator's step Jobs are (labels, an env, resources)."""
    labels = {**LABELS, "kaizen.dev/cycle": cycle, "kaizen.dev/step": f"s{step}"}
    container = {
        "name": "step",
        "image": "ghcr.io/kaizen-dev/kaizen-evaluator:0.1.0",
        "command": ["python", "-m", "kaizen.evaluator", "evaluate", "--out", f"/artifacts/{cycle}"],
        "env": [{"name": f"KAIZEN_VAR_{k}", "value": "x" * 40} for k in range(12)],
        "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
    }
    return {
        "metadata": {"name": f"{cycle}-step-{step}", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def finished(batch: kubernetes.client.BatchV1Api, namespace: str, name: str) -> None:
    """Write a Job's status as a Job controller would: started, then complete."""
    batch.patch_namespaced_job_status(
        name, namespace, {"status": {"active": 1, "startTime": WHEN}}, field_manager="job-sim"
    )
    ended = {"status": "True", "lastProbeTime": WHEN, "lastTransitionTime": WHEN}
    status = {
        "active": 0,
        "succeeded": 1,
        "completionTime": WHEN,
        "conditions": [
            {**ended, "type": "SuccessCriteriaMet", "reason": "CompletionsReached"},
            {**ended, "type": "Complete", "reason": "CompletionsReached"},
        ],
    }
    batch.patch_namespaced_job_status(name, namespace, {"status": status}, field_manager="kubelet")


def catches_sigusr2(pid: int) -> bool:
    """Whether the process has its SIGUSR2 handler yet (the operator sets it when it starts):
    before that the signal would kill it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGUSR2 - 1) & 1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=500, help="Jobs per namespace")
    parser.add_argument("--chunk", type=int, default=100, help="KAIZEN_LIST_CHUNK_SIZE")
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--reports", type=Path, help="memory reports folder (default: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    namespaces = [f"restart-{k}" for k in range(args.namespaces)]
    with (
        tempfile.TemporaryDirectory(prefix="kaizen-restart-") as tmp,
        running_metered_apiserver(Path(tmp), OPERATOR_TOKEN) as server,
    ):
        client = server.api_client()
        core = kubernetes.client.CoreV1Api(client)
        batch = kubernetes.client.BatchV1Api(client)
        for namespace in namespaces:
            core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))

        def create(where: tuple[str, int]) -> None:
            namespace, n = where
            job = step_job(f"c{n // 10:04d}", n % 10)
            batch.create_namespaced_job(namespace, cast(Any, job))
            finished(batch, namespace, job["metadata"]["name"])

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, [(ns, n) for ns in namespaces for n in range(args.jobs)]))
        created = time.monotonic() - started
        # One Job as a list returns it: the size of JSON the operator parses per Job.
        raw = batch.list_namespaced_job(namespaces[0], limit=1, _preload_content=False)
        listed = cast(Any, raw).data
        env = {"KAIZEN_LIST_CHUNK_SIZE": str(args.chunk)}
        if args.reports:
            env["KAIZEN_MEMORY_REPORTS_DIR"] = str(args.reports)
        samples: list[tuple[float, float]] = []
        fresh = operator_process(cast(Any, server), Path(tmp), namespaces, 19091, extra_env=env)
        with fresh as operator:
            t0 = time.monotonic()
            while (since := time.monotonic() - t0) < args.seconds:
                if operator.poll() is not None:
                    log = (Path(tmp) / "operator.log").read_text()[-3000:]
                    raise SystemExit(f"the operator exited ({operator.returncode}):\n{log}")
                samples.append((round(since, 2), round(rss_mib(operator.pid)[0], 1)))
                if args.reports and len(samples) % 12 == 0 and catches_sigusr2(operator.pid):
                    operator.send_signal(signal.SIGUSR2)
                time.sleep(0.25)
    result = {
        "namespaces": args.namespaces,
        "jobs_per_namespace": args.jobs,
        "chunk": args.chunk,
        "job_json_bytes": len(listed),
        "create_seconds": round(created, 1),
        "operator_rss_mib": {"peak": max(rss for _, rss in samples), "end": samples[-1][1]},
        "operator_rss_timeline": samples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "operator_rss_timeline"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
