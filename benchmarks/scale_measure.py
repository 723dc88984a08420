"""What benchmarks/scale.py measures and how: quantiles, processes' CPU, memory and scheduling
waits, the operator's metrics page, the load it is given (step durations, the event rate).

Nothing here starts a server or an operator; `scale.py` does, and reads its figures through
these functions.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import cast


class StepDurations:
    """How long each simulated step runs: one fixed duration (all steps of a wave end together:
    the burst), or one drawn uniformly from [low, high] per Job (a steady stream of ends).

    The draw is seeded by `seed` and the Job's name, so a run draws the same durations
    whatever order the job simulators start the Jobs in, and two runs with one seed match.
    """

    def __init__(self, bounds: Sequence[float], seed: int = 0) -> None:
        if len(bounds) not in (1, 2):
            raise ValueError(f"--step-seconds takes SECONDS or MIN MAX, got {list(bounds)}")
        if any(b < 0 for b in bounds):
            raise ValueError(f"--step-seconds must not be negative, got {list(bounds)}")
        self.low, self.high = float(bounds[0]), float(bounds[-1])
        if self.high < self.low:
            raise ValueError(f"--step-seconds MIN MAX needs MIN <= MAX, got {list(bounds)}")
        self.seed = seed

    @property
    def steady(self) -> bool:
        return self.high > self.low

    def __call__(self, job_name: str) -> float:
        if not self.steady:
            return self.low
        return random.Random(f"{self.seed}/{job_name}").uniform(self.low, self.high)

    def describe(self) -> dict[str, object]:
        if not self.steady:
            return {"mode": "burst", "seconds": self.low}
        return {"mode": "steady", "uniform": [self.low, self.high], "seed": self.seed}


def event_rate(times: Sequence[float], window: float = 10.0) -> dict[str, float]:
    """Events (here: Jobs reaching Complete) per second: over the span from the first to the
    last, and the busiest `window` seconds (the burst shows as a peak far above the mean)."""
    if len(times) < 2:
        return {"n": len(times)}
    ordered = sorted(times)
    span = ordered[-1] - ordered[0]
    peak, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        peak = max(peak, end - start + 1)
    return {
        "n": len(ordered),
        "span_seconds": round(span, 1),
        "mean_per_second": round(len(ordered) / span, 2) if span else float(len(ordered)),
        f"peak_per_second_over_{window:g}_s": round(peak / window, 2),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"n": len(values), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_seconds(pid: int, thread: int | None = None) -> tuple[float, float]:
    """(on a CPU, waiting for one) seconds of a process's threads, or of one of them
    (/proc/<pid>/task/<tid>/schedstat; (0, 0) where the kernel keeps no such statistics)."""
    cpu = waited = 0.0
    tasks = [thread] if thread is not None else [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            cpu, waited = cpu + int(fields[0]) / 1e9, waited + int(fields[1]) / 1e9
    return cpu, waited


def cpu_pressure_seconds() -> float:
    """Machine-wide: seconds in which some runnable task waited for a CPU (PSI; 0 if none)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rsplit("total=", 1)[1]) / 1e6
    return 0.0


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def cycles_gauge(port: int) -> float | None:
    """The operator's `kaizen_cycles` summed over phases (None while it cannot be read)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.decode().splitlines()
        if line.startswith("kaizen_cycles{")
    )


def scrape(port: int) -> str:
    return cast(
        bytes, urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
    ).decode()


def scrape_settled(port: int, name: str, count: int, patience: float = 15.0) -> str:
    """The metrics page once histogram `name` counts `count` observations (or after `patience`
    seconds, as it is then). The benchmark sees a status patch through its watch as soon as the
    API server applies it; the operator observes the step's timing only when the patch's
    response reaches it, a moment later on a loaded machine."""
    deadline = time.monotonic() + patience
    page = scrape(port)
    while histogram(page, name)["n"] < count and time.monotonic() < deadline:
        time.sleep(0.2)
        page = scrape(port)
    return page


def histogram(text: str, name: str, **labels: str) -> dict[str, float]:
    """Count, mean and estimated p50/p95/p99 (seconds) of histogram `name` in a metrics page
    (its series with these labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    by_bound: dict[float, float] = {}  # summed over the series that match
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == name + "_bucket":
                bound = float(sample.labels["le"])
                by_bound[bound] = by_bound.get(bound, 0.0) + sample.value
            elif sample.name == name + "_count":
                count += sample.value
            elif sample.name == name + "_sum":
                total += sample.value
    if not count:
        return {"n": 0}
    buckets = sorted(by_bound.items())

    def quantile(q: float) -> float:
        rank, lower, below = q * count, 0.0, 0.0
        for bound, cumulative in buckets:
            if cumulative >= rank:
                if bound == float("inf"):
                    return lower  # beyond the largest bucket: its bound (as Prometheus does)
                inside = cumulative - below
                return round(
                    lower + (bound - lower) * ((rank - below) / inside if inside else 1), 3
                )
            lower, below = bound, cumulative
        return lower

    return {
        "n": int(count),
        "mean": round(total / count, 3),
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "p99": quantile(0.99),
    }


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
