"""How the operator scales: N concurrent cycles on the API emulator or a real API server.

    python benchmarks/scale.py                        # N = 100, 500, 1000, the burst
    python benchmarks/scale.py --cycles 100 --json scale.json
    python benchmarks/scale.py --cycles 100 --server apiserver   # the real kube-apiserver tier
    python benchmarks/scale.py --cycles 500 --step-seconds 20 60  # steady: steps of 20-60 s

Two loads. The burst (`--step-seconds 0.05`, the default): every step ends 0.05 s after its
pod starts, so all cycles move in lockstep and their Job ends arrive in waves as fast as the
stack can take them; its latency is queueing. The steady load (`--step-seconds MIN MAX`):
each Job runs for a duration drawn uniformly from [MIN, MAX] (seeded by --seed and the Job's
name), so the cycles drift apart and Job ends arrive as a stream at about
N x steps per cycle / cycle length a second (the rate is reported), as real steps of
minutes give.

For each N: an emulator (tests/kube/emulator) and a job simulator (tests/kube/jobsim) whose
steps report at once (tests/kube/fast_steps.py, after their duration) run in this process; the
operator runs as its own process (`python -m kaizen.operator`, kopf, standalone) with its own
token, so its requests, CPU time and memory are counted apart from the emulator's. Cycles are
spread over namespaces of --per-namespace cycles (one job simulator each) and created at once.
With `--server apiserver` the API is the real etcd + kube-apiserver of the `apiserver` test
tier (benchmarks/scale_apiserver.py: requests counted from its audit log, its CPU apart) and
the job simulators play the Job controller and kubelet against it.

Reported, per N:
  * create -> Succeeded: p50 / p95 / p99 over all cycles (seconds);
  * event -> status: from a Job's Complete condition to the step's Succeeded record in the
    cycle's status, p50 / p95 / p99 over all steps (seconds), both seen by this process's
    watches: it includes the server's queueing and its delivery of both watch events;
  * the operator's own share, scraped from its metrics at the end:
    `kaizen_job_event_to_status_seconds` (the operator first knowing that a step's Job ended,
    from its watch event or its own listing -> the status patch with the step's outcome
    acknowledged; all, and by how it knew) and `kaizen_job_event_queue_seconds` (a Job event
    reaching the operator -> the reconciliation answering it starts); quantiles estimated
    from the buckets as Prometheus' histogram_quantile does (linear within a bucket), the mean
    from _sum / _count;
  * the operator's reconciliations (`kaizen_reconcile_duration_seconds`, same estimate);
  * operator RSS (peak and at the end, MiB), operator CPU seconds, this process's CPU (the
    emulator if it is the server, the job simulators, the recorder), the API server's;
  * how long the operator was runnable but waiting for a CPU (its event loop's thread and all
    its threads, from /proc/<pid>/task/*/schedstat), and the machine's CPU pressure (the share
    of the run in which some task waited for a CPU, /proc/pressure/cpu); the load average;
  * the rate of Job ends (per second over the run, and in the busiest 10 s);
  * API requests: the operator's, per second of the run, per cycle, and per step by kind
    (verb and resource); everyone's;
  * resync after a restart: the operator killed (SIGKILL) and started again with every cycle
    finished; seconds until its `kaizen_cycles` gauge counts every cycle, and its requests.

Timings depend on the machine (and on who else uses it): compare figures from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402
from kubernetes.watch.watch import iter_resp_lines  # noqa: E402

from tests.kube.cluster import CYCLES, JOBS, Cluster, running_cluster  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from scale_measure import (  # noqa: E402
    StepDurations,
    cpu_pressure_seconds,
    cpu_seconds,
    cycles_gauge,
    event_rate,
    histogram,
    load_average,
    percentiles,
    rss_mib,
    sched_seconds,
    scrape_settled,
)

from tests.kube.fast_steps import run_fast_step  # noqa: E402
from tests.kube.jobsim import JobSimulator  # noqa: E402

__all__ = ["histogram", "percentiles"]  # read by tests/benchmarks/test_scale_benchmark.py

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
OPERATOR_TOKEN = "kaizen-operator"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--per-namespace", type=int, default=50)
    parser.add_argument(
        "--step-seconds",
        type=float,
        nargs="+",
        default=[0.05],
        metavar="SECONDS",
        help="how long each simulated step runs: SECONDS (every step alike: the Job ends of a "
        "wave arrive as one burst) or MIN MAX (drawn uniformly per Job, seeded by --seed: a "
        "steady stream of Job ends, as real steps of minutes give)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the step durations (MIN MAX)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per N, seconds")
    parser.add_argument("--metrics-port", type=int, default=19090)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--logs",
        type=Path,
        help="copy each run's logs (the operator's; the API server's and its audit log) to "
        "<LOGS>/<server>-<N>/ before its working folder is removed",
    )
    parser.add_argument(
        "--memory-reports",
        type=Path,
        metavar="DIR",
        help="the operator writes a memory report (kaizen.operator.diagnostics: RSS, Python's "
        "allocator, objects by type) into DIR/<server>-<N>/ every --report-every seconds of "
        "the run and once every cycle finished",
    )
    parser.add_argument("--report-every", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="with --memory-reports: trace the operator's allocations with FRAMES frames each "
        "and write a tracemalloc snapshot with each report; tracing slows the operator several "
        "times and costs memory, so its RSS and latency are not those of an untraced run",
    )
    parser.add_argument(
        "--server",
        choices=("emulator", "apiserver"),
        default="emulator",
        help="the API emulator in this process, or the real kube-apiserver tier",
    )
    parser.add_argument(
        "--finished",
        type=int,
        default=0,
        help="instead: the cost of an operator restart with this many finished cycles "
        "(copies of one cycle run to the end, with its Jobs)",
    )
    args = parser.parse_args(argv)
    try:
        args.durations = StepDurations(args.step_seconds, args.seed)
    except ValueError as error:
        parser.error(str(error))
    return args


class Recorder:
    """Watches cycles and Jobs in every namespace: when each cycle and each step finished."""

    def __init__(self, cluster: Cluster) -> None:
        self.client = cluster.api_client()
        self.created: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}
        self.step_recorded: dict[str, float] = {}
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(kind,), daemon=True)
            for kind in ("cycles", "jobs")
        ]

    def start(self) -> Recorder:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, kind: str) -> None:
        api = kubernetes.client.CustomObjectsApi(self.client)
        rv = ""
        while not self._stop.is_set():
            args = (G, V, P) if kind == "cycles" else ("batch", "v1", "jobs")
            try:
                resp = api.list_cluster_custom_object(
                    *args,
                    watch=True,
                    resource_version=rv or None,
                    timeout_seconds=30,
                    _preload_content=False,
                )
                for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        rv = ""
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    now = time.monotonic()
                    (self._on_cycle if kind == "cycles" else self._on_job)(obj, now)
            except Exception:  # noqa: BLE001 - watch again
                time.sleep(0.1)

    def _on_cycle(self, cycle: dict[str, Any], now: float) -> None:
        key = f"{cycle['metadata']['namespace']}/{cycle['metadata']['name']}"
        status = cycle.get("status") or {}
        for step in status.get("steps") or []:
            if step.get("state") == "Succeeded":
                self.step_recorded.setdefault(f"{key.split('/')[0]}/{step['jobName']}", now)
        if status.get("phase") == "Succeeded":
            self.succeeded.setdefault(key, now)
        elif status.get("phase") == "Failed" and key not in self.failed:
            self.failed.append(key)

    def _on_job(self, job: dict[str, Any], now: float) -> None:
        conditions = (job.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions):
            key = f"{job['metadata']['namespace']}/{job['metadata']['name']}"
            self.job_complete.setdefault(key, now)


@contextlib.contextmanager
def operator_process(
    cluster: Cluster,
    workdir: Path,
    namespaces: list[str],
    metrics_port: int,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    kubeconfig = cluster.write_kubeconfig(workdir / "operator.kubeconfig", OPERATOR_TOKEN)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KAIZEN_ARTIFACT_ROOT": str(workdir / "artifacts"),
        "KAIZEN_ARTIFACT_PVC": "",
        "KAIZEN_SCANNING": "false",
        "KAIZEN_METRICS_PORT": str(metrics_port),
        "KAIZEN_NAMESPACES": ",".join(namespaces),
        **(extra_env or {}),
    }
    log = (workdir / "operator.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kaizen.operator", "--standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def report_now(folder: Path, operator: subprocess.Popen[bytes]) -> None:
    """Ask the operator for a memory report and wait until it is written (after the
    tracemalloc snapshot, if any: a snapshot of a few hundred MiB takes seconds)."""
    reports = len(list(folder.glob("memory-*.txt")))
    operator.send_signal(signal.SIGUSR2)
    while operator.poll() is None and len(list(folder.glob("memory-*.txt"))) <= reports:
        time.sleep(0.5)


def cycle_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "bench/model"},
            "evaluation": {"suite": "demo", "limit": 2},
            "analysis": {"scoreThreshold": 1.0, "maxPriorityDomains": 2},
        },
    }


@contextlib.contextmanager
def running_server(kind: str, workdir: Path) -> Iterator[Any]:
    """The emulator (`tests.kube.cluster.Cluster`) or the metered real API server."""
    if kind == "emulator":
        with running_cluster(workdir) as cluster:
            yield cluster
        return
    from scale_apiserver import running_metered_apiserver

    with running_metered_apiserver(workdir / "apiserver", OPERATOR_TOKEN) as server:
        yield server


def server_cpu_seconds(server: Any) -> float:
    """CPU of API server processes apart from this one (the emulator's is this process's)."""
    return float(server.server_cpu_seconds()) if hasattr(server, "server_cpu_seconds") else 0.0


def run(n: int, args: argparse.Namespace) -> dict[str, Any]:
    namespaces = [
        f"scale-{i:03d}" for i in range((n + args.per_namespace - 1) // args.per_namespace)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="kaizen-scale-") as tmp,
        running_server(args.server, Path(tmp)) as cluster,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        for namespace in namespaces:
            if hasattr(cluster, "prepare_namespace"):
                cluster.prepare_namespace(namespace)
            stack.enter_context(
                JobSimulator(
                    cluster,
                    namespace,
                    max_parallel=2 * args.per_namespace,
                    step_runner=run_fast_step,
                    step_seconds=args.durations,
                )
            )
        recorder = Recorder(cluster).start()
        bench_pid = os.getpid()
        api = kubernetes.client.CustomObjectsApi(cluster.api_client())
        result: dict[str, Any] = {
            "server": args.server,
            "cycles": n,
            "namespaces": len(namespaces),
            "step_seconds": args.durations.describe(),
        }
        reports = args.memory_reports / f"{args.server}-{n}" if args.memory_reports else None
        extra_env = (
            {
                "KAIZEN_MEMORY_REPORTS_DIR": str(reports),
                "KAIZEN_TRACEMALLOC_FRAMES": str(args.tracemalloc),
            }
            if reports
            else {}
        )
        with operator_process(
            cluster, workdir, namespaces, args.metrics_port, extra_env
        ) as operator:
            while cycles_gauge(args.metrics_port) is None and operator.poll() is None:
                time.sleep(0.2)  # the metrics server is up once startup ran
            requests0 = cluster.requests_by_token().get(OPERATOR_TOKEN, 0)
            kinds0 = cluster.requests_of(OPERATOR_TOKEN)
            total0 = cluster.requests_served()
            op_cpu0, bench_cpu0 = cpu_seconds(operator.pid), cpu_seconds(bench_pid)
            server_cpu0 = server_cpu_seconds(cluster)
            loop0, threads0 = sched_seconds(operator.pid, operator.pid), sched_seconds(operator.pid)
            pressure0 = cpu_pressure_seconds()
            started = time.monotonic()
            result["load_average_at_start"] = load_average()
            peak_rss, peak_load = 0.0, 0.0
            # The operator's RSS every 15 s of the run (seconds, MiB): where the peak is.
            rss_timeline: list[tuple[float, float]] = []
            next_rss, next_report = 0.0, args.report_every
            for i in range(n):
                name = f"c{i:04d}"
                namespace = namespaces[i // args.per_namespace]
                recorder.created[f"{namespace}/{name}"] = time.monotonic()
                api.create_namespaced_custom_object(G, V, namespace, P, cycle_body(name))
            result["create_seconds"] = round(time.monotonic() - started, 1)
            while len(recorder.succeeded) + len(recorder.failed) < n:
                if time.monotonic() - started > args.timeout or operator.poll() is not None:
                    break
                peak_rss = max(peak_rss, rss_mib(operator.pid)[0])
                peak_load = max(peak_load, load_average()[0])
                time.sleep(0.5)
                since = time.monotonic() - started
                if since >= next_rss:
                    rss_timeline.append((round(since), round(rss_mib(operator.pid)[0], 1)))
                    next_rss = since + 15.0
                if reports and since >= next_report:
                    operator.send_signal(signal.SIGUSR2)
                    next_report += args.report_every
                if int(time.monotonic() - started) % 15 == 0:
                    print(
                        f"  {time.monotonic() - started:5.0f} s: {len(recorder.succeeded)} "
                        f"succeeded, {len(recorder.failed)} failed, "
                        f"{len(recorder.job_complete)} Jobs complete",
                        file=sys.stderr,
                        flush=True,
                    )
            elapsed = time.monotonic() - started
            if reports:  # the last report, every cycle finished
                report_now(reports, operator)
            rss, hwm = rss_mib(operator.pid)
            recorded = sum(1 for k in recorder.job_complete if k in recorder.step_recorded)
            page = scrape_settled(args.metrics_port, "kaizen_job_event_to_status_seconds", recorded)
            loop1, threads1 = sched_seconds(operator.pid, operator.pid), sched_seconds(operator.pid)
            op_requests = cluster.requests_by_token().get(OPERATOR_TOKEN, 0) - requests0
            steps = max(1, len(recorder.step_recorded))
            kinds = cluster.requests_of(OPERATOR_TOKEN)
            by_kind = {k: v - kinds0.get(k, 0) for k, v in sorted(kinds.items())}
            result.update(
                succeeded=len(recorder.succeeded),
                failed=len(recorder.failed),
                wall_seconds=round(elapsed, 1),
                create_to_succeeded=percentiles(
                    [t - recorder.created[k] for k, t in recorder.succeeded.items()]
                ),
                job_end_rate=event_rate(list(recorder.job_complete.values())),
                event_to_status=percentiles(
                    [
                        recorder.step_recorded[k] - t
                        for k, t in recorder.job_complete.items()
                        if k in recorder.step_recorded
                    ]
                ),
                operator_event_to_status={
                    "all": histogram(page, "kaizen_job_event_to_status_seconds"),
                    **{
                        seen: histogram(page, "kaizen_job_event_to_status_seconds", seen=seen)
                        for seen in ("watch", "list")
                    },
                },
                operator_event_queue={
                    job: histogram(page, "kaizen_job_event_queue_seconds", job=job)
                    for job in ("finished", "running")
                },
                reconcile=histogram(page, "kaizen_reconcile_duration_seconds"),
                # How much the operator waited for a CPU while it was runnable: its event loop's
                # thread (kopf, the handlers) and all its threads (also the API-call pool).
                operator_sched_seconds={
                    "event_loop_thread": {
                        "on_cpu": round(loop1[0] - loop0[0], 1),
                        "waiting_for_cpu": round(loop1[1] - loop0[1], 1),
                    },
                    "all_threads": {
                        "on_cpu": round(threads1[0] - threads0[0], 1),
                        "waiting_for_cpu": round(threads1[1] - threads0[1], 1),
                    },
                },
                machine_cpu_pressure=round((cpu_pressure_seconds() - pressure0) / elapsed, 2),
                load_average_at_end=load_average(),
                load_average_1min_peak=peak_load,
                operator_rss_mib={"end": round(rss, 1), "peak": round(max(hwm, peak_rss), 1)},
                operator_rss_timeline=rss_timeline,
                operator_cpu_seconds=round(cpu_seconds(operator.pid) - op_cpu0, 1),
                # The emulator (if it is the server), the job simulators and the recorder.
                benchmark_process_cpu_seconds=round(cpu_seconds(bench_pid) - bench_cpu0, 1),
                server_processes_cpu_seconds=round(server_cpu_seconds(cluster) - server_cpu0, 1),
                operator_requests=op_requests,
                operator_requests_per_second=round(op_requests / elapsed, 1),
                operator_requests_per_cycle=round(op_requests / n, 1),
                # By kind, per step that reached the status (emulator: "<METHOD> <resource>",
                # the real server: "<verb> <resource>" from its audit log; watches included).
                operator_requests_per_step={
                    k: round(v / steps, 2) for k, v in by_kind.items() if v > 0
                },
                all_requests_per_second=round((cluster.requests_served() - total0) / elapsed, 1),
            )
            operator.send_signal(signal.SIGKILL)
            operator.wait()
        recorder.stop()
        # Resync: a fresh operator with every cycle finished (the restart-cost of item 13).
        with operator_process(cluster, workdir, namespaces, args.metrics_port + 1) as operator:
            requests0 = cluster.requests_by_token().get(OPERATOR_TOKEN, 0)
            t0 = time.monotonic()
            while (cycles_gauge(args.metrics_port + 1) or 0) < n and time.monotonic() - t0 < 600:
                if operator.poll() is not None:
                    break
                time.sleep(0.1)
            resync = time.monotonic() - t0
            time.sleep(2.0)  # what else the restart costs once every cycle is known
            result["resync"] = {
                "seconds_to_all_cycles_known": round(resync, 1),
                "operator_requests": cluster.requests_by_token().get(OPERATOR_TOKEN, 0) - requests0,
                "operator_rss_mib": round(rss_mib(operator.pid)[0], 1),
            }
        if args.logs:
            keep = args.logs / f"{args.server}-{n}"
            keep.mkdir(parents=True, exist_ok=True)
            for log in workdir.rglob("*.log"):
                shutil.copy2(log, keep / log.name)
    return result


def restart_cost(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Requests and seconds an operator restart costs with `n` finished cycles and their Jobs."""
    namespace = "resync"
    with (
        tempfile.TemporaryDirectory(prefix="kaizen-scale-") as tmp,
        running_cluster(Path(tmp)) as cluster,
    ):
        workdir = Path(tmp)
        api = kubernetes.client.CustomObjectsApi(cluster.api_client())
        with (
            JobSimulator(
                cluster, namespace, step_runner=run_fast_step, step_seconds=args.durations
            ),
            operator_process(cluster, workdir, [namespace], args.metrics_port),
        ):
            api.create_namespaced_custom_object(G, V, namespace, P, cycle_body("seed"))
            while (cluster.get(CYCLES, namespace, "seed") or {}).get("status", {}).get(
                "phase"
            ) not in ("Succeeded", "Failed"):
                time.sleep(0.5)
        seed = cluster.get(CYCLES, namespace, "seed") or {}
        jobs = cluster.objects(JOBS, namespace)
        for i in range(n):
            name = f"done-{i:04d}"
            body = cycle_body(name)
            # As the operator left the seed: kopf's finalizer and annotations (a cycle created
            # while no operator ran would get them at the restart, which is not its cost).
            body["metadata"]["finalizers"] = seed["metadata"].get("finalizers") or []
            body["metadata"]["annotations"] = seed["metadata"].get("annotations") or {}
            created = cast(
                dict[str, Any], api.create_namespaced_custom_object(G, V, namespace, P, body)
            )
            api.patch_namespaced_custom_object_status(
                G, V, namespace, P, name, {"status": seed["status"]}
            )
            for job in jobs:
                copy = {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": job["metadata"]["name"].replace("seed", name, 1),
                        "labels": {**job["metadata"]["labels"], "kaizen.dev/cycle": name},
                        "ownerReferences": [
                            {
                                **job["metadata"]["ownerReferences"][0],
                                "name": name,
                                "uid": created["metadata"]["uid"],
                            }
                        ],
                    },
                    "spec": job["spec"],
                }
                api.create_namespaced_custom_object("batch", "v1", namespace, "jobs", copy)
                api.patch_namespaced_custom_object_status(
                    "batch", "v1", namespace, "jobs", copy["metadata"]["name"],
                    {"status": job["status"]},
                )  # fmt: skip
        before = cluster.requests_by_token().get(OPERATOR_TOKEN, 0)
        counts_before = cluster.request_counts()
        with operator_process(cluster, workdir, [namespace], args.metrics_port + 1) as operator:
            t0 = time.monotonic()
            last, last_change = before, time.monotonic()
            while time.monotonic() - last_change < 5.0 and operator.poll() is None:
                time.sleep(0.2)
                now = cluster.requests_by_token().get(OPERATOR_TOKEN, 0)
                if now != last:
                    last, last_change = now, time.monotonic()
            counts = cluster.request_counts()
        return {
            "finished_cycles": n + 1,
            "jobs": len(jobs) * (n + 1),
            "operator_requests": last - before,
            "seconds_until_quiet": round(last_change - t0, 1),
            "requests_by_kind": {
                k: v - counts_before.get(k, 0)
                for k, v in counts.items()
                if v != counts_before.get(k, 0)
            },
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.finished and args.server != "emulator":
        raise SystemExit("--finished reads the emulator's objects: it needs --server emulator")
    if args.finished:
        result = restart_cost(args.finished, args)
        print(json.dumps(result, indent=2), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    results = []
    for n in args.cycles:
        print(f"--- {n} cycles", flush=True)
        result = run(n, args)
        print(json.dumps(result, indent=2), flush=True)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["succeeded"] == r["cycles"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
