"""The local chain runner with a stand-in for the cycle executor (cycles that finish at once):
what it runs, in which order, what it writes, and how it resumes. The real executor runs real
cycles in tests/local/test_local_chain.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api import SpecError
from kaizen.api.artifacts import read_artifact
from kaizen.api.chain import ImprovementChain, parse_chain
from kaizen.api.lineage import ChainLineage
from kaizen.api.resource import ImprovementCycle
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import MergeDigest, ScoreDigest, ValidationDigest
from kaizen.local.chain import LocalChainRunner
from kaizen.local.executor import CycleResult


class CycleStandIn:
    """Plays LocalExecutor: each cycle promotes its candidate (score +0.1), or is interrupted."""

    def __init__(self, root: Path, interrupt: str | None = None) -> None:
        self.root = root
        self.echoed: list[str] = []
        self.ran: list[tuple[str, list[str]]] = []
        self.restarted: list[str] = []
        self.interrupt = interrupt

    def echo(self, line: str) -> None:
        self.echoed.append(line)

    def run(self, cycle: ImprovementCycle, *, restart: bool = False) -> CycleResult:
        name = cycle.metadata.name
        if restart:
            self.restarted.append(name)
        self.ran.append((name, list(cycle.spec.model.adapters)))
        if name == self.interrupt:
            self.interrupt = None
            raise KeyboardInterrupt
        before = 0.1 * len(cycle.spec.model.adapters)
        merged = str(self.root / "default" / name / "merge" / "adapter")
        status = ImprovementCycleStatus(
            phase=Phase.SUCCEEDED,
            baseline=ScoreDigest(overall=before, domains={"geo": before}),
            candidate=ScoreDigest(overall=before + 0.1, domains={"geo": before + 0.1}),
            merged=MergeDigest(path=merged, combination="ties"),
            validation=ValidationDigest(verdict="Promote", overall_delta=0.1, p_value=0.01),
            promoted_adapters=[*cycle.spec.model.adapters, merged],
        )
        return CycleResult(cycle, status, self.root / "default" / name)


def chain(model: str = "org/m", **spec: Any) -> ImprovementChain:
    return parse_chain(
        {
            "apiVersion": "kaizen.dev/v1alpha1",
            "kind": "ImprovementChain",
            "metadata": {"name": "loop"},
            "spec": {
                "schedule": {"cron": "@daily"},
                "template": {"spec": {"model": {"name": model}}},
                **spec,
            },
        }
    )


def runner(executor: CycleStandIn) -> LocalChainRunner:
    return LocalChainRunner(executor)  # type: ignore[arg-type]


def test_cycles_run_back_to_back_each_from_the_promoted_adapters(tmp_path: Path) -> None:
    executor = CycleStandIn(tmp_path)
    result = runner(executor).run(chain(), max_cycles=3)
    assert [name for name, _ in executor.ran] == ["loop-1", "loop-2", "loop-3"]
    assert [len(adapters) for _, adapters in executor.ran] == [0, 1, 2]
    assert executor.ran[2][1] == result.lineage.entries[1].adapters
    assert result.status.phase == "Completed" and result.status.version == 3
    assert any("applies on a cluster" in line for line in executor.echoed)
    on_disk = read_artifact(tmp_path / "default" / "loop" / "lineage.json", ChainLineage)
    assert on_disk == result.lineage and [e.version for e in on_disk.entries] == [1, 2, 3]
    saved = json.loads((tmp_path / "default" / "loop" / "chain-status.json").read_text())
    assert saved["status"]["stopReason"] == "MaxCycles"


def test_a_larger_bound_continues_the_chain_from_where_it_stopped(tmp_path: Path) -> None:
    runner(CycleStandIn(tmp_path)).run(chain(), max_cycles=2)
    executor = CycleStandIn(tmp_path)
    result = runner(executor).run(chain(), max_cycles=3)
    assert [(name, len(adapters)) for name, adapters in executor.ran] == [("loop-3", 2)]
    assert [e.cycle for e in result.lineage.entries] == ["loop-1", "loop-2", "loop-3"]


def test_an_interrupted_chain_resumes_the_cycle_it_was_running(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        runner(CycleStandIn(tmp_path, interrupt="loop-2")).run(chain(), max_cycles=3)
    executor = CycleStandIn(tmp_path)
    result = runner(executor).run(chain(), max_cycles=3)
    # loop-2 again, with the adapters it was started with (so its own status.json resumes).
    assert [(name, len(adapters)) for name, adapters in executor.ran] == [
        ("loop-2", 1),
        ("loop-3", 2),
    ]
    assert [e.cycle for e in result.lineage.entries] == ["loop-1", "loop-2", "loop-3"]


def test_another_base_model_does_not_resume_an_old_chain(tmp_path: Path) -> None:
    runner(CycleStandIn(tmp_path)).run(chain(), max_cycles=1)
    with pytest.raises(SpecError, match="spec.template.spec.model"):
        runner(CycleStandIn(tmp_path)).run(chain(model="org/other"), max_cycles=1)
    executor = CycleStandIn(tmp_path)
    restarted = runner(executor).run(chain(model="org/other"), max_cycles=1, restart=True)
    assert [e.cycle for e in restarted.lineage.entries] == ["loop-1"]
    assert executor.restarted == ["loop-1"]  # its cycles start afresh too


def test_a_local_chain_needs_a_bound(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec.stop.maxCycles"):
        runner(CycleStandIn(tmp_path)).run(chain())


def test_the_lineage_table_shows_the_test_item_scores_beside_the_overall_ones() -> None:
    from kaizen.local.chain import render_lineage
    from tests.api.artifact_samples import SAMPLES

    lineage = ChainLineage.model_validate(SAMPLES[ChainLineage]())
    table = render_lineage(lineage).splitlines()
    assert "test b." in table[1] and "test a." in table[1]
    entry = lineage.entries[0]
    assert entry.baseline is not None and entry.candidate is not None
    row = next(line for line in table if line.startswith(entry.cycle))
    cells = [f"{100 * v:.1f}%" for v in (entry.baseline.overall, entry.candidate.overall)]
    cells += [
        f"{100 * v:.1f}%" for v in (entry.baseline.test, entry.candidate.test) if v is not None
    ]
    assert len(cells) == 4
    positions = [row.index(cell) for cell in cells]
    assert positions == sorted(positions)  # before, after, test before, test after
