"""benchmarks/scale.py: its reading of the operator's histograms, and a small run on the
emulator and on the real API server (no timing checks: figures are for docs/reliability.md,
measured by hand)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "scale.py"
sys.path.insert(0, str(REPO / "benchmarks"))

import scale  # noqa: E402
import scale_measure  # noqa: E402


def test_histogram_quantiles_are_estimated_as_prometheus_does_and_series_are_summed() -> None:
    registry = CollectorRegistry()
    latency = Histogram("t_seconds", "test", ["seen"], buckets=(1.0, 2.0, 4.0), registry=registry)
    for value in (0.5, 0.5, 1.5, 1.5):
        latency.labels(seen="watch").observe(value)
    for value in (3.0, 3.0, 3.0, 3.0, 10.0):
        latency.labels(seen="list").observe(value)
    page = generate_latest(registry).decode()

    watch = scale.histogram(page, "t_seconds", seen="watch")
    # rank 2 of 4 ends the first bucket: 1.0; rank 3.8 is 90 % into (1, 2]: 1.9.
    assert watch == {"n": 4, "mean": 1.0, "p50": 1.0, "p95": 1.9, "p99": 1.98}
    both = scale.histogram(page, "t_seconds")
    assert both["n"] == 9 and both["mean"] == pytest.approx(26.0 / 9, abs=1e-3)
    # rank 4.5 of 9 is an eighth into (2, 4] (4 below it, 4 in it): 2.25; beyond the largest
    # bucket the estimate is that bucket's bound.
    assert both["p50"] == 2.25 and both["p99"] == 4.0
    assert scale.histogram(page, "t_seconds", seen="nowhere") == {"n": 0}
    assert scale.histogram(page, "absent_seconds") == {"n": 0}


def test_step_durations_are_fixed_for_the_burst_and_seeded_per_job_for_the_steady_load() -> None:
    burst = scale_measure.StepDurations([0.05])
    assert not burst.steady and burst("a-job") == burst("b-job") == 0.05
    steady = scale_measure.StepDurations([20, 60], seed=7)
    drawn = [steady(f"c{i:04d}-train-x-1") for i in range(200)]
    assert steady.steady and all(20 <= d <= 60 for d in drawn)
    assert len(set(drawn)) == len(drawn) and 35 < sum(drawn) / len(drawn) < 45
    # The same Job gets the same duration whatever the order, and another seed differs.
    again = scale_measure.StepDurations([20, 60], seed=7)
    assert [again(f"c{i:04d}-train-x-1") for i in reversed(range(200))] == drawn[::-1]
    assert scale_measure.StepDurations([20, 60], seed=8)("c0000-train-x-1") != drawn[0]
    assert steady.describe() == {"mode": "steady", "uniform": [20.0, 60.0], "seed": 7}
    for bad in ([], [1, 2, 3], [5, 1], [-1]):
        with pytest.raises(ValueError, match="--step-seconds"):
            scale_measure.StepDurations(bad)


def test_bad_step_seconds_are_refused_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        scale.parse_args(["--step-seconds", "60", "20"])
    assert "--step-seconds MIN MAX needs MIN <= MAX" in capsys.readouterr().err


def test_the_event_rate_tells_a_burst_from_a_stream() -> None:
    burst = scale_measure.event_rate([0.0] * 50 + [100.0] * 50)
    stream = scale_measure.event_rate([i for i in range(100)])
    assert burst["n"] == stream["n"] == 100
    assert burst["mean_per_second"] == 1.0 and stream["mean_per_second"] == pytest.approx(1.01)
    assert burst["peak_per_second_over_10_s"] == 5.0  # 50 ends at once
    assert stream["peak_per_second_over_10_s"] == 1.1  # 11 ends in any 10 s
    assert scale_measure.event_rate([3.0]) == {"n": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    port = _free_port()
    out = tmp_path / "scale.json"
    argv = [sys.executable, str(SCRIPT), "--cycles", "2", "--per-namespace", "1",
            "--metrics-port", str(port), "--json", str(out), *args]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(out.read_text())
    return dict(result)


def _assert_measured(result: dict[str, Any]) -> None:
    assert result["succeeded"] == 2 and result["failed"] == 0
    steps = result["event_to_status"]["n"]
    assert steps >= 2 * 7
    # The operator timed each step's outcome once, from its watch event or its own listing.
    timed = result["operator_event_to_status"]
    assert timed["all"]["n"] == steps == timed["watch"]["n"] + timed["list"]["n"]
    assert result["operator_requests"] > 0 and result["resync"]["operator_requests"] > 0
    assert result["resync"]["seconds_to_all_cycles_known"] > 0
    assert result["job_end_rate"]["n"] == steps


@pytest.mark.integration
def test_two_cycles_on_the_emulator_with_steady_steps(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = _run(
        tmp_path, "--step-seconds", "0.05", "0.3", "--seed", "3",
        "--memory-reports", str(reports), "--report-every", "1",
    )  # fmt: skip
    assert result["server"] == "emulator"
    assert result["step_seconds"] == {"mode": "steady", "uniform": [0.05, 0.3], "seed": 3}
    _assert_measured(result)
    # The operator's RSS over the run, and its memory reports (on SIGUSR2 every second, the
    # last one with every cycle finished): each names its RSS and the objects it holds.
    timeline = result["operator_rss_timeline"]
    assert timeline and all(rss > 0 for _, rss in timeline)
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)
    written = sorted(reports.glob("emulator-2/memory-*.txt"))
    assert len(written) >= 2
    last = written[-1].read_text()
    assert "rss_mib " in last and "pymalloc_allocated_mib " in last
    assert "ImprovementCycle: " in last  # the cycles' bodies kopf keeps, found by kind
    assert not list(reports.glob("emulator-2/*.tracemalloc"))  # no tracing asked for
    # The operator's requests by kind, per step: it reads the cycle and lists Jobs and pods,
    # patches the status and creates one Job per step.
    per_step = result["operator_requests_per_step"]
    assert per_step["POST batch/v1/jobs"] == 1.0
    assert {"GET kaizen.dev/v1alpha1/improvementcycles", "GET batch/v1/jobs", "GET v1/pods",
            "PATCH kaizen.dev/v1alpha1/improvementcycles/status"} <= set(per_step)  # fmt: skip


@pytest.mark.apiserver
def test_two_cycles_on_the_real_api_server(tmp_path: Path) -> None:
    from tests.apiserver.server import find_binaries

    found = find_binaries()
    if isinstance(found, str):
        pytest.skip(f"no real kube-apiserver (the apiserver tier): {found}")
    result = _run(tmp_path, "--server", "apiserver")
    assert result["server"] == "apiserver"
    _assert_measured(result)
    assert result["server_processes_cpu_seconds"] > 0
    assert result["step_seconds"] == {"mode": "burst", "seconds": 0.05}
    per_step = result["operator_requests_per_step"]
    assert per_step["create batch/v1/jobs"] == 1.0, per_step
    assert per_step["patch kaizen.dev/v1alpha1/improvementcycles/status"] > 0
