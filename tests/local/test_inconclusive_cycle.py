"""A whole cycle on a suite too small to detect the target improvement ends Inconclusive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.local.test_local_cycle import kaizen, tiny_cycle


@pytest.mark.cycle
def test_a_too_small_suite_yields_inconclusive_and_a_report(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Two items per domain: even if the candidate broke nothing, the exact McNemar test
    # needs 6 items to flip before anything can be significant at 0.05, so a 5-point
    # improvement is far below what this suite can detect.
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(
        yaml.safe_dump(tiny_cycle(tiny_model_dir, name="small", validation={"power": 0.8}))
    )
    run = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    cycle_dir = tmp_path / "art" / "default" / "small"
    status = json.loads((cycle_dir / "status.json").read_text())["status"]
    report = json.loads((cycle_dir / "validate" / "report.json").read_text())
    assert report["verdict"] == "Inconclusive" == status["validation"]["verdict"]
    assert report["mcnemar"]["p_value"] >= 0.05
    power = report["power"]
    assert power["n"] == report["items"] and power["adequate"] is False
    assert power["mde"] is None or power["mde"] > power["target"] == 0.05
    assert status["validation"]["minimumDetectableEffect"] == power["mde"]
    # The cycle did its work: Succeeded, Ready, reason Inconclusive; the model is unchanged.
    assert status["phase"] == "Succeeded"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "True",
        "Inconclusive",
    )
    assert conditions["Succeeded"]["reason"] == "Inconclusive"
    assert status["promotedAdapters"] == []
    assert "candidate inconclusive" in status["message"]
    assert "-- Inconclusive: candidate inconclusive" in run.stdout
    assert "verdict: INCONCLUSIVE" in run.stdout
    # The report: the status points to it, and it shows the power analysis.
    html = Path(status["reportPath"])
    assert html == cycle_dir / "report" / "index.html" and html.is_file()
    page = html.read_text()
    assert "minimum detectable effect" in page and "Inconclusive" in page
    assert (cycle_dir / "report" / "domains.png").stat().st_size > 0
    assert (cycle_dir / "report" / "loss.png").stat().st_size > 0
