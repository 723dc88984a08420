"""The opt-in memory diagnostics: snapshots on SIGUSR2, reports, and the comparison of two."""

from __future__ import annotations

import asyncio
import os
import signal
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kaizen.operator import diagnostics, handlers
from kaizen.operator.settings import OperatorSettings


def _held(n: int) -> list[str]:
    return [f"held-{i:08d}" * 4 for i in range(n)]  # the allocation site the tests look for


def _values(report: str) -> dict[str, float]:
    lines = report.splitlines()
    return {
        line.split()[0]: float(line.split()[1])
        for line in lines[1 : lines.index("")]  # the figures between the title and the lists
    }


@pytest.fixture
def tracer(tmp_path: Path) -> Any:
    was_tracing = tracemalloc.is_tracing()
    tracer = diagnostics.MemoryTracer(tmp_path / "memory", frames=diagnostics.FRAMES)
    yield tracer
    tracer.stop()
    assert tracemalloc.is_tracing() == was_tracing


def test_a_report_without_tracing_counts_python_s_allocator_and_objects(tmp_path: Path) -> None:
    reporter = diagnostics.MemoryTracer(tmp_path / "reports")
    assert not tracemalloc.is_tracing()
    before = _values(reporter.dump("before").read_text())
    held = _held(100_000)  # about 10 MiB of 100-byte strings: pymalloc's
    path = reporter.dump("after a hundred thousand strings")
    assert path.name == "memory-1.txt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["memory-0.txt", "memory-1.txt"]
    report = path.read_text()
    after = _values(report)
    assert report.startswith("# after a hundred thousand strings\n")
    assert after["rss_mib"] > after["pymalloc_arenas_mib"] > 0
    grown = after["pymalloc_allocated_mib"] - before["pymalloc_allocated_mib"]
    assert grown >= 100_000 * 80 / 2**20
    assert "traced_mib" not in after
    lines = report.splitlines()
    objects = lines[lines.index("## live objects tracked by the garbage collector, by type") + 1 :]
    assert objects and all(int(line.split()[0]) > 0 for line in objects)
    assert len(held) == 100_000


def test_a_traced_report_names_the_largest_sites_beside_its_snapshot(tracer: Any) -> None:
    held = _held(20_000)
    path = tracer.dump("after twenty thousand strings")
    assert path.name == "memory-0.txt"
    lines = path.read_text().splitlines()
    assert lines[0] == "# after twenty thousand strings"
    values = _values(path.read_text())
    assert values["rss_mib"] > values["traced_mib"] > 0
    sites = lines[lines.index(next(x for x in lines if x.startswith("## largest"))) + 1 :]
    assert Path(__file__).name in sites[0]  # _held's list comprehension is the largest site
    snapshot = path.with_suffix(".tracemalloc")
    assert tracemalloc.Snapshot.load(str(snapshot)).statistics("filename")
    assert len(held) == 20_000


def test_the_comparison_puts_what_grew_first(tracer: Any, tmp_path: Path) -> None:
    first = tracer.dump().with_suffix(".tracemalloc")
    held = _held(50_000)
    second = tracer.dump().with_suffix(".tracemalloc")
    assert second.name == "memory-1.tracemalloc"
    diff = diagnostics.compare(first, second, top=3)
    header, growth = diff.splitlines()[:2]
    assert header.startswith("traced: ")
    grew = float(growth.split()[0])
    assert grew >= 50_000 * 80 / 2**20  # each string holds 80 characters and a header
    assert Path(__file__).name in diff.splitlines()[2]
    assert diagnostics.main([str(first), str(second), "--top", "1"]) == 0
    with pytest.raises(SystemExit):
        diagnostics.main([str(first), str(tmp_path / "absent.tracemalloc")])
    assert len(held) == 50_000


def test_the_settings_are_read_from_the_environment_and_off_by_default(tmp_path: Path) -> None:
    off = OperatorSettings.from_env({})
    assert (off.memory_reports_dir, off.tracemalloc_frames) == ("", 0)
    on = OperatorSettings.from_env(
        {"KAIZEN_MEMORY_REPORTS_DIR": str(tmp_path), "KAIZEN_TRACEMALLOC_FRAMES": "12"}
    )
    assert (on.memory_reports_dir, on.tracemalloc_frames) == (str(tmp_path), 12)
    with pytest.raises(ValueError, match="KAIZEN_TRACEMALLOC_FRAMES"):
        OperatorSettings.from_env({"KAIZEN_TRACEMALLOC_FRAMES": "-1"})


def test_sigusr2_writes_a_snapshot_and_cleanup_writes_the_last(tmp_path: Path) -> None:
    was_tracing = tracemalloc.is_tracing()
    folder = tmp_path / "snapshots"

    async def scenario() -> list[str]:
        memo = SimpleNamespace(kaizen_tracer=handlers.report_memory(folder, diagnostics.FRAMES))
        loop = asyncio.get_running_loop()
        written = asyncio.Event()
        dump = memo.kaizen_tracer.dump

        def dump_and_tell(label: str = "") -> Path:
            path = dump(label)
            written.set()
            return path

        memo.kaizen_tracer.dump = dump_and_tell
        os.kill(os.getpid(), signal.SIGUSR2)
        await written.wait()
        await handlers.cleanup(memo=memo)
        assert not loop.remove_signal_handler(signal.SIGUSR2)  # cleanup removed it
        return sorted(p.name for p in folder.iterdir())

    names = asyncio.run(scenario())
    assert names == [
        "memory-0.tracemalloc", "memory-0.txt", "memory-1.tracemalloc", "memory-1.txt"
    ]  # fmt: skip
    assert (folder / "memory-0.txt").read_text().startswith("# SIGUSR2 0\n")
    assert (folder / "memory-1.txt").read_text().startswith("# at exit\n")
    assert tracemalloc.is_tracing() == was_tracing
