"""A chain through `kaizen run`: real cycles one after another, the same lineage as on a cluster."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api import parse_cycle
from kaizen.api.artifacts import read_artifact
from kaizen.api.lineage import ChainLineage
from kaizen.local.chain import chain_from_cycle
from tests.local.test_local_cycle import kaizen, tiny_cycle

ALWAYS_PROMOTE = {"minImprovement": -1.0, "maxRegression": 1.0, "requireSignificance": False}


def tiny_chain(model: Path, name: str = "loop", **spec: Any) -> dict[str, Any]:
    template = tiny_cycle(model, analysis={"maxPriorityDomains": 1}, validation=ALWAYS_PROMOTE)
    template["spec"]["evaluation"]["domains"] = ["arithmetic", "geography"]
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementChain",
        "metadata": {"name": name},
        "spec": {
            "schedule": {"cron": "0 2 * * *"},
            "template": {"spec": template["spec"]},
            **spec,
        },
    }


@pytest.mark.cycle
def test_kaizen_run_chains_cycles_from_the_promoted_adapters_and_writes_the_lineage(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    chain_file = tmp_path / "chain.yaml"
    chain_file.write_text(yaml.safe_dump(tiny_chain(tiny_model_dir, stop={"maxCycles": 5})))
    art = tmp_path / "art"
    run = kaizen(
        "run", str(chain_file), "--cycles", "2", "--artifacts", str(art), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the schedule (0 2 * * *) applies on a cluster" in run.stdout
    assert "chain completed" in run.stdout and "maxCycles 2 reached" in run.stdout

    folder = art / "default"
    lineage = read_artifact(folder / "loop" / "lineage.json", ChainLineage)
    assert [e.cycle for e in lineage.entries] == ["loop-1", "loop-2"]
    assert [(e.from_version, e.version, e.promoted) for e in lineage.entries] == [
        (0, 1, True),
        (1, 2, True),
    ]
    # Each cycle's promoted stack is its starting stack plus its own candidate adapter.
    promoted = [
        json.loads((folder / f"loop-{i}" / "status.json").read_text())["status"]["promotedAdapters"]
        for i in (1, 2)
    ]
    first, second = promoted[0][-1], promoted[1][-1]
    assert promoted == [[first], [first, second]]
    assert first.startswith(str(folder / "loop-1")) and second.startswith(str(folder / "loop-2"))
    assert lineage.entries[0].adapters == [first]
    assert lineage.entries[1].adapters == lineage.adapters == [first, second]
    assert lineage.version == 2
    for entry in lineage.entries:
        assert (
            entry.baseline
            and entry.candidate
            and set(entry.candidate.domains)
            == {
                "arithmetic",
                "geography",
            }
        )
    # The second cycle really started from the first one's adapter.
    baseline = json.loads((folder / "loop-2" / "evaluate-baseline" / "results.json").read_text())
    assert baseline["model"]["adapters"] == [first]
    # ...and was also compared with version 1 as it was promoted (loop-1's candidate).
    spec = json.loads((folder / "loop-2" / "status.json").read_text())["spec"]
    loop1 = json.loads((folder / "loop-1" / "status.json").read_text())["status"]
    assert spec["validation"]["reference"] == {
        "results": loop1["candidate"]["resultsPath"],
        "name": "v1",
    }
    assert loop1["candidate"]["resultsPath"].startswith(str(folder / "loop-1"))
    # The status the operator would hold, and the report.
    status = json.loads((folder / "loop" / "chain-status.json").read_text())["status"]
    assert status["phase"] == "Completed" and status["stopReason"] == "MaxCycles"
    assert [r["cycle"] for r in status["lineage"]] == ["loop-1", "loop-2"]
    assert re.search(r"^loop-1\s+v0\s+v1\s+Promoted", run.stdout, re.MULTILINE)
    assert re.search(r"^loop-2\s+v1\s+v2\s+Promoted", run.stdout, re.MULTILINE)
    # the domain each cycle trained ends its row
    assert re.search(r"^loop-2\s+v1\s+v2\s+Promoted.*\*\s+\w+$", run.stdout, re.MULTILINE)

    # Run again: the chain is complete, nothing runs again.
    again = kaizen("run", str(chain_file), "--cycles", "2", "--artifacts", str(art), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming chain" in again.stdout and ">>> evaluate-baseline" not in again.stdout
    assert read_artifact(folder / "loop" / "lineage.json", ChainLineage).entries == lineage.entries


@pytest.mark.cycle
def test_cycles_on_a_cycle_file_stop_when_one_has_nothing_to_train(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Nothing scores below 0: each cycle ends after its analysis, promoting nothing.
    doc = tiny_cycle(tiny_model_dir, name="flat", analysis={"scoreThreshold": 0.0})
    doc["spec"]["evaluation"]["domains"] = ["arithmetic"]
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(yaml.safe_dump(doc))
    run = kaizen(
        "run", str(cycle_file), "--cycles", "3", "--artifacts", str(tmp_path / "art"), cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lineage = read_artifact(tmp_path / "art" / "default" / "flat" / "lineage.json", ChainLineage)
    assert [(e.cycle, e.reason) for e in lineage.entries] == [("flat-1", "NothingToImprove")]
    assert "the last cycle had nothing to train from version 0" in run.stdout


def test_a_local_chain_needs_a_bound(tiny_model_dir: Path, tmp_path: Path) -> None:
    chain_file = tmp_path / "chain.yaml"
    chain_file.write_text(yaml.safe_dump(tiny_chain(tiny_model_dir)))
    run = kaizen("run", str(chain_file), "--artifacts", str(tmp_path / "art"), cwd=tmp_path)
    assert run.returncode == 2
    assert "spec.stop.maxCycles" in run.stderr and "--cycles" in run.stderr
    assert not (tmp_path / "art").exists()


def test_a_bad_chain_is_refused_naming_the_field_by_run_and_check(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    doc = tiny_chain(tiny_model_dir, concurrencyPolicy="Allow")
    doc["spec"]["template"]["spec"]["training"]["rank"] = 0
    chain_file = tmp_path / "chain.yaml"
    chain_file.write_text(yaml.safe_dump(doc))
    art = str(tmp_path / "art")
    for command in (
        ["check", str(chain_file)],
        ["run", str(chain_file), "--cycles", "1", "--artifacts", art],
    ):
        run = kaizen(*command, cwd=tmp_path)
        assert run.returncode == 2, run.stderr
        assert "spec.concurrencyPolicy" in run.stderr
        assert "spec.template.spec.training.rank" in run.stderr
    assert not (tmp_path / "art").exists()


def test_cycles_must_be_positive(tiny_model_dir: Path, tmp_path: Path) -> None:
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(yaml.safe_dump(tiny_cycle(tiny_model_dir)))
    run = kaizen("run", str(cycle_file), "--cycles", "0", cwd=tmp_path)
    assert run.returncode == 2 and "--cycles" in run.stderr


def test_a_cycle_file_becomes_a_chain_named_after_it(tiny_model_dir: Path) -> None:
    cycle = parse_cycle(tiny_cycle(tiny_model_dir, name="weekly-1"))
    chain = chain_from_cycle(cycle, 4)
    assert chain.metadata.name == "weekly"
    assert chain.spec.after_previous and chain.spec.schedule is None
    assert (chain.spec.stop.max_cycles, chain.spec.stop.plateau_cycles) == (4, None)
    assert chain.spec.template.spec == cycle.spec
    assert chain_from_cycle(cycle, 2, plateau=1).spec.stop.plateau_cycles == 1
