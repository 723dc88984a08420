"""Opt-in memory diagnostics: where the operator's memory goes, from inside its process.

With `KAIZEN_MEMORY_REPORTS_DIR` set the operator writes, on each `SIGUSR2` and once when it
stops, `memory-<n>.txt` into that folder: its RSS; Python's small-object allocator (pymalloc:
the arenas it holds, the bytes in live blocks and the free bytes inside those arenas); the
Kubernetes objects held as parsed JSON, by kind, with what holds them; and the live objects
the garbage collector tracks, by type. That costs nothing until a report is asked for (then
passes over every live object, which block the event loop while they run).

With `KAIZEN_TRACEMALLOC_FRAMES` > 0 as well, `tracemalloc` runs from start-up (each allocation
remembers that many frames of its traceback), each report adds the size traced now and at its
peak and the largest allocation sites, and `memory-<n>.tracemalloc` holds the snapshot:

    kill -USR2 <operator pid>
    python -m kaizen.operator.diagnostics memory-0.tracemalloc memory-3.tracemalloc

compares two snapshots: what grew between them, by allocation site. Tracing costs CPU (every
allocation records its traceback; the operator ran several times slower at 200 cycles) and
memory: for measuring, not for production.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import re
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Frames of traceback worth keeping per allocation: enough to get from the json decoder or a
#: dict to the operator's or kopf's line that asked for it.
FRAMES = 12
#: Allocation sites listed in a report.
TOP = 25


def rss_mib(pid: int | str = "self") -> float:
    """The resident set size of a process, MiB (0.0 where /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def objects_by_type(limit: int = TOP) -> list[tuple[str, int]]:
    """The objects the garbage collector tracks, counted by type name, most first."""
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    return counts.most_common(limit)


_PYMALLOC_LINES = {
    "arenas_highwater": r"# arenas highwater mark\s*=\s*([\d,]+)",
    "arenas_bytes": r"\d+ arenas \* \d+ bytes/arena\s*=\s*([\d,]+)",
    "allocated_bytes": r"# bytes in allocated blocks\s*=\s*([\d,]+)",
    "available_bytes": r"# bytes in available blocks\s*=\s*([\d,]+)",
    "unused_pools_bytes": r"\d+ unused pools \* \d+ bytes\s*=\s*([\d,]+)",
}


def pymalloc_stats() -> dict[str, int]:
    """Python's small-object allocator now (`sys._debugmallocstats`, which writes to the C
    stderr): `arenas_bytes` held from the system, `allocated_bytes` in live blocks,
    `available_bytes` free in used pools, `unused_pools_bytes`, `arenas_highwater`. Empty
    where the interpreter has no such report."""
    dump = getattr(sys, "_debugmallocstats", None)
    if dump is None:
        return {}
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            dump()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    found = {}
    for key, pattern in _PYMALLOC_LINES.items():
        match = re.search(pattern, text)
        if match:
            found[key] = int(match.group(1).replace(",", ""))
    return found


def _kind(obj: dict[str, Any]) -> str:
    kind = obj.get("kind")
    if isinstance(kind, str):
        return kind
    # Items of a list of a built-in kind carry no kind: told apart by their spec.
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return "list item: ?"
    if "containers" in spec:
        return "list item: Pod"
    return "list item: " + ("Job" if "template" in spec or "backoffLimit" in spec else "?")


def api_objects(limit: int = TOP) -> list[tuple[str, int, int, str]]:
    """The Kubernetes objects alive in this process as parsed JSON (dicts with `metadata.uid`),
    by kind: (kind, copies, distinct objects by uid, what holds a copy: the types of the
    referrers of one of them, most common first), most copies first."""
    copies: collections.Counter[str] = collections.Counter()
    uids: dict[str, set[str]] = collections.defaultdict(set)
    sample: dict[str, dict[str, Any]] = {}
    for obj in gc.get_objects():
        if type(obj) is dict and isinstance(obj.get("metadata"), dict):
            uid = obj["metadata"].get("uid")
            if isinstance(uid, str):
                kind = _kind(obj)
                copies[kind] += 1
                uids[kind].add(uid)
                sample.setdefault(kind, obj)
    found = []
    for kind, count in copies.most_common(limit):
        holders = collections.Counter(
            type(r).__qualname__ for r in gc.get_referrers(sample[kind]) if r is not sample
        )
        held_by = ", ".join(h for h, _ in holders.most_common(3))
        found.append((kind, count, len(uids[kind]), held_by))
    return found


def report(snapshot: tracemalloc.Snapshot | None = None, *, label: str = "", top: int = TOP) -> str:
    """A text report of this process's memory now, with the largest sites of `snapshot`."""
    lines = [f"# {label}".rstrip(), f"rss_mib {rss_mib():.1f}"]
    for key, value in pymalloc_stats().items():
        if key.endswith("_bytes"):
            lines.append(f"pymalloc_{key.removesuffix('_bytes')}_mib {value / 2**20:.1f}")
        else:
            lines.append(f"pymalloc_{key} {value}")
    if snapshot is not None:
        current, peak = tracemalloc.get_traced_memory()
        lines += [
            f"traced_mib {current / 2**20:.1f}",
            f"traced_peak_mib {peak / 2**20:.1f}",
            f"tracemalloc_overhead_mib {tracemalloc.get_tracemalloc_memory() / 2**20:.1f}",
            "",
            f"## largest allocation sites (the innermost frame of {tracemalloc.get_traceback_limit()} kept)",
        ]
        for stat in snapshot.statistics("lineno")[:top]:
            frame = stat.traceback[0]
            lines.append(
                f"{stat.size / 2**20:9.2f} MiB {stat.count:9d} {frame.filename}:{frame.lineno}"
            )
    lines += ["", "## Kubernetes objects held as parsed JSON: kind, copies, distinct, held by"]
    lines += [f"{kind}: {n} {distinct} {held}" for kind, n, distinct, held in api_objects(top)]
    lines += ["", "## live objects tracked by the garbage collector, by type"]
    lines += [f"{count:9d} {name}" for name, count in objects_by_type(top)]
    return "\n".join(lines) + "\n"


class MemoryTracer:
    """Writes numbered memory reports into `folder`; with `frames` > 0, traces allocations
    and writes a tracemalloc snapshot beside each report."""

    def __init__(self, folder: Path, frames: int = 0) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dumps = 0
        self._started_here = frames > 0 and not tracemalloc.is_tracing()
        if self._started_here:
            tracemalloc.start(frames)

    def dump(self, label: str = "") -> Path:
        """Write the next report (and snapshot, when tracing); returns the report's path."""
        path = self.folder / f"memory-{self.dumps}.txt"
        self.dumps += 1
        snapshot = None
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            snapshot.dump(str(path.with_suffix(".tracemalloc")))
        path.write_text(report(snapshot, label=label or path.stem))
        logger.info("Memory report written to %s (RSS %.1f MiB)", path, rss_mib())
        return path

    def stop(self) -> None:
        if self._started_here and tracemalloc.is_tracing():
            tracemalloc.stop()


def compare(old: Path, new: Path, *, key: str = "lineno", top: int = TOP) -> str:
    """What grew from snapshot `old` to snapshot `new`, by allocation site (`key`: `lineno`,
    `filename` or `traceback`), largest growth first."""
    before = tracemalloc.Snapshot.load(str(old))
    after = tracemalloc.Snapshot.load(str(new))
    total_before = sum(t.size for t in before.traces)
    total_after = sum(t.size for t in after.traces)
    lines = [
        f"traced: {total_before / 2**20:.1f} MiB -> {total_after / 2**20:.1f} MiB "
        f"({(total_after - total_before) / 2**20:+.1f} MiB)"
    ]
    for stat in after.compare_to(before, key)[:top]:
        lines.append(
            f"{stat.size_diff / 2**20:+9.2f} MiB {stat.count_diff:+9d}  "
            f"(now {stat.size / 2**20:.2f} MiB)"
        )
        frames = stat.traceback if key == "traceback" else stat.traceback[:1]
        lines += [f"      {f.filename}:{f.lineno}" for f in frames]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare two operator memory snapshots.")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--key", choices=("lineno", "filename", "traceback"), default="lineno")
    parser.add_argument("--top", type=int, default=TOP)
    args = parser.parse_args(argv)
    for path in (args.old, args.new):
        if not path.is_file():
            parser.error(f"{path}: no such snapshot")
    sys.stdout.write(compare(args.old, args.new, key=args.key, top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
