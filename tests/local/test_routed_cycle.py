"""Routed adapters through whole cycles: chosen by combine, then stacked by a cycle that
starts from them (real steps, real subprocesses, the tiny model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.local.test_local_cycle import kaizen, tiny_cycle


def _run(tmp_path: Path, spec: dict[str, Any]) -> tuple[Path, dict[str, Any], str]:
    name = spec["metadata"]["name"]
    cycle_file = tmp_path / f"{name}.yaml"
    cycle_file.write_text(yaml.safe_dump(spec))
    run = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    cycle_dir = tmp_path / "art" / "default" / name
    status = json.loads((cycle_dir / "status.json").read_text())["status"]
    return cycle_dir, status, run.stdout


@pytest.mark.cycle
def test_a_routed_combination_is_chosen_evaluated_and_stacked_by_the_next_cycle(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    merge = {"combination": "auto", "candidates": ["routed"]}
    first_dir, first, printed = _run(
        tmp_path, tiny_cycle(tiny_model_dir, name="first", merge=merge)
    )
    trained = sorted(a["domain"] for a in first["adapters"])
    assert len(trained) == 2
    report = json.loads((first_dir / "combine" / "combination.json").read_text())
    assert sorted(c["name"] for c in report["candidates"]) == ["routed", "routed-ties"]
    for row in report["candidates"]:
        assert row["method"] == "routed" and set(row["routing"]["own"]) == set(trained)
    assert "(routed: dev items through their own route: " in printed
    routed = first_dir / "combine" / "adapter"
    table = json.loads((routed / "routes.json").read_text())
    # A trained domain whose knowledge names nothing of its own (the demo's arithmetic has
    # no knowledge at all) is left out, with the reason.
    names = [r["name"] for r in table["routes"]]
    assert sorted(names + list(table["left_out"])) == trained and names
    assert set(table["left_out"]) <= {"arithmetic", "science"}
    # The candidate's evaluation went through the routes: each item records its own.
    candidate = json.loads((first_dir / "evaluate-candidate" / "results.json").read_text())
    for item in candidate["items"]:
        assert item["route"] == ([item["domain"]] if item["domain"] in names else []), item

    # A second cycle starts from the routed folder: its baseline is routed too, each train
    # step starts from its own domain's route, and its routed candidate stacks on the first.
    spec = tiny_cycle(tiny_model_dir, name="second", merge=merge)
    spec["spec"]["model"]["adapters"] = [str(routed)]
    second_dir, second, _ = _run(tmp_path, spec)
    baseline = json.loads((second_dir / "evaluate-baseline" / "results.json").read_text())
    assert baseline["model"]["adapters"] == [str(routed)]
    assert all("route" in item for item in baseline["items"])
    for adapter in second["adapters"]:
        record = json.loads(
            (second_dir / f"train-{adapter['domain']}" / "training.json").read_text()
        )
        assert record["model"]["adapters"] == [str(routed)]
    candidate = json.loads((second_dir / "evaluate-candidate" / "results.json").read_text())
    assert candidate["model"]["adapters"] == [str(routed), str(second_dir / "combine" / "adapter")]
    again = json.loads((second_dir / "combine" / "adapter" / "routes.json").read_text())
    stacked = [names, [r["name"] for r in again["routes"]]]
    for item in candidate["items"]:
        expected = [item["domain"] for layer in stacked if item["domain"] in layer]
        assert item["route"] == expected, item
