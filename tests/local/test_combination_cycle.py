"""A whole cycle whose combination is chosen automatically, with a joint adapter among the
candidates: real steps, real subprocesses, the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.local.test_local_cycle import kaizen, tiny_cycle


@pytest.mark.cycle
def test_auto_scores_every_candidate_on_dev_items_and_promotes_the_choice(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    spec = tiny_cycle(
        tiny_model_dir,
        name="auto",
        merge={
            "combination": "auto",
            "candidates": ["ties", "joint", "svd"],
            "search": {"densities": [1.0], "weights": []},
        },
    )
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(yaml.safe_dump(spec))
    run = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    cycle_dir = tmp_path / "art" / "default" / "auto"
    status = json.loads((cycle_dir / "status.json").read_text())["status"]
    steps = [s["name"] for s in status["steps"]]
    trained = sorted(s.removeprefix("train-") for s in steps if s.startswith("train-"))
    assert len(trained) == 2
    assert sorted(s for s in steps if s.startswith("score-")) == [f"score-{d}" for d in trained]
    assert {"joint", "merge", "combine"} <= set(steps)
    # The joint adapter trained on both domains' sets, as many steps as both adapters.
    joint = json.loads((cycle_dir / "joint" / "joint.json").read_text())
    assert len(joint["sources"]) == 2 and all(s["kept"] > 0 for s in joint["sources"])
    assert joint["steps"] == sum(
        json.loads((cycle_dir / f"train-{d}" / "training.json").read_text())["steps"]
        for d in trained
    )
    report = json.loads((cycle_dir / "combine" / "combination.json").read_text())
    # merge.search's grid: TIES also at density 1.0 (svd prunes nothing), each point a
    # candidate whose row says how it was merged (from the merge step's merge.json).
    settings = {c["name"]: (c["method"], c["density"], c["weight"]) for c in report["candidates"]}
    assert settings == {
        "ties": ("ties", 0.5, 1.0),
        "ties-d1": ("ties", 1.0, 1.0),
        "svd": ("svd", None, 1.0),
        "joint": ("joint", None, None),
    }
    merges = json.loads((cycle_dir / "merge" / "merge.json").read_text())["merges"]
    assert [m["name"] for m in merges] == ["ties", "ties-d1", "svd"]
    for name in ("ties-d1", "svd"):
        adapter = cycle_dir / "merge" / "candidates" / name / "adapter"
        assert (adapter / "adapter_config.json").is_file()
    chosen = status["combination"]
    assert chosen["chosen"] == report["chosen"] and chosen["candidates"] == 4
    assert set(chosen["retention"]) == set(status["alone"]) and len(status["alone"]) == 2
    # Every candidate was scored on the dev items alone; the candidate and the gate on all.
    baseline = json.loads((cycle_dir / "evaluate-baseline" / "results.json").read_text())
    dev = sorted(i["id"] for i in baseline["items"] if i["split"] == "dev")
    for candidate in report["candidates"]:
        scored = json.loads(Path(candidate["results"]).read_text())["items"]
        assert sorted(i["id"] for i in scored) == dev
    assert status["promotedAdapters"] in ([], [str(cycle_dir / "combine" / "adapter")])
    validation = json.loads((cycle_dir / "validate" / "report.json").read_text())
    assert validation["items"] == len(baseline["items"]) - len(dev)
    # The report carries the chosen combination's retention, as combine measured it on dev.
    kept = validation["retention"]
    assert kept["path"] == str(cycle_dir / "combine" / "combination.json")
    assert (kept["chosen"], kept["split"]) == (report["chosen"], "dev")
    chosen_row = next(c for c in report["candidates"] if c["name"] == report["chosen"])
    assert {d: r["retention"] for d, r in kept["trained"].items()} == {
        d: r["retention"] for d, r in chosen_row["trained"].items()
    }
    assert sorted(kept["trained"]) == trained
    assert "combination, scored on dev items" in run.stdout
    assert f"{report['chosen']} *" in run.stdout
