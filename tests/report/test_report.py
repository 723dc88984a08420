"""The HTML reports: what a cycle's and a chain's page show, drawn from their artifacts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kaizen.api import ImprovementCycleStatus, Phase
from kaizen.api.artifacts import write_artifact
from kaizen.api.lineage import ChainLineage
from kaizen.api.numbers import format_p, significant
from kaizen.api.summary import ValidationDigest
from kaizen.local.cli import main
from kaizen.local.report import render_report
from kaizen.report import ReportInputError, build_chain_report, build_cycle_report, read_cycle
from tests.api.artifact_samples import _lineage
from tests.report.cycle_dir import write_cycle


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_cycle_report_shows_the_verdict_scores_flips_training_and_power(tmp_path: Path) -> None:
    directory = write_cycle(tmp_path / "c1")
    built = build_cycle_report(directory)
    assert built.html == directory / "report" / "index.html"
    assert [p.name for p in built.plots] == ["domains.png", "deltas.png", "flips.png", "loss.png"]
    for plot in built.plots:
        assert plot.parent == built.html.parent and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = built.html.read_text()
    text = _text(html)
    report = json.loads((directory / "validate" / "report.json").read_text())
    # zephyria went 0 -> 10 of 12 (significant), geography lost two items of ten (not).
    assert f"Verdict: {report['verdict']}" in text
    assert "zephyria * 0.0%" in text and "83.3%" in text
    assert "drop, not significant" in text  # geography: -20 points, two items
    assert report["unconfirmed_drops"] == ["geography"]
    assert "10 items fixed" in text and "2 items broken" in text
    assert "geography-7" in text  # the broken item is listed with its question
    assert "minimum detectable effect" in text
    assert "Data card of zephyria" in text and "Merge: ties" in text
    assert f"p={format_p(report['mcnemar']['p_value'])}" in text
    # Its results have no dev items: the plan read the test items, and the page says so.
    assert "Analysed on test items, not trained:" in text and "had no dev items" in text
    # Self-contained: every picture is inline, nothing is fetched.
    assert html.count('src="data:image/png;base64,') == 4
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_values_from_artifacts_are_escaped(tmp_path: Path) -> None:
    directory = write_cycle(
        tmp_path / "c2",
        before={"<b>x</b>": [0] * 6, "geo": [1] * 6},
        after={"<b>x</b>": [1] * 6, "geo": [1] * 6},
    )
    html = build_cycle_report(directory).html.read_text()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_cycle_without_a_candidate_still_reports_its_baseline(tmp_path: Path) -> None:
    directory = write_cycle(tmp_path / "c3")
    for step in ("evaluate-candidate", "validate", "merge"):
        for file in (directory / step).iterdir():
            file.unlink()
    found = read_cycle(directory)
    assert found.candidate is None and found.validation is None and found.verdict is None
    built = build_cycle_report(directory)
    assert [p.name for p in built.plots] == ["domains.png", "loss.png"]


def test_a_folder_that_is_not_a_cycle_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match=r"not a cycle's artifact directory"):
        build_cycle_report(tmp_path)
    with pytest.raises(ReportInputError, match="no such directory"):
        build_cycle_report(tmp_path / "absent")
    directory = write_cycle(tmp_path / "c4")
    (directory / "validate" / "report.json").write_text('{"schema": 1}')
    with pytest.raises(
        ReportInputError, match=r"report.json: unknown validation report schema version 1"
    ):
        build_cycle_report(directory)


def test_the_chain_report_plots_every_version_and_marks_promotions(tmp_path: Path) -> None:
    lineage = ChainLineage.model_validate(_lineage())
    write_artifact(tmp_path / "lineage.json", lineage)
    built = build_chain_report(tmp_path)
    assert built.html == tmp_path / "report" / "index.html"
    assert [p.name for p in built.plots] == ["lineage.png"]
    text = _text(built.html.read_text())
    assert f"Chain {lineage.chain}" in text
    for entry in lineage.entries:
        assert entry.cycle in text
    promoted = [e for e in lineage.entries if e.promoted]
    assert f"{len(promoted)} promoted" in text


def test_kaizen_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_cycle(tmp_path / "c5")
    assert main(["report", str(directory), "--output", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(tmp_path / "out" / "index.html") and len(printed) == 5
    write_artifact(tmp_path / "chain" / "lineage.json", ChainLineage.model_validate(_lineage()))
    assert main(["report", str(tmp_path / "chain" / "lineage.json")]) == 0
    assert (tmp_path / "chain" / "report" / "lineage.png").is_file()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_p_values_keep_significant_digits_everywhere() -> None:
    # The Promoted Event once read p=0 for 1.7e-08: the digest rounded to 6 decimals.
    assert significant(1.7345e-08) == 1.73e-08 and format_p(1.7e-08) == "1.7e-08"
    assert format_p(0.021484375) == "0.0215" and format_p(1.0) == "1"
    status = ImprovementCycleStatus(
        phase=Phase.SUCCEEDED,
        validation=ValidationDigest(
            verdict="Inconclusive",
            overall_delta=0.02,
            p_value=1.7e-08,
            minimum_detectable_effect=0.154,
        ),
        report_path="/a/report/index.html",
    )
    text = render_report(status)
    assert (
        "p=1.7e-08" in text and "minimum detectable improvement of this suite: 15.4 points" in text
    )
    assert "report: /a/report/index.html" in text
