"""benchmarks/learning.py: the churn table it prints beside the scores (which items of the
other domains an adapter lost and gained against the base model, and whether the net is more
than churn), and the missed Korrin items it lists and tallies over runs. The runs themselves
are measured by hand (docs/training-data.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.artifacts import ItemResult

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import learning  # noqa: E402


def item(id: str, domain: str, correct: bool) -> ItemResult:
    return ItemResult(
        id=id,
        domain=domain,
        capability="factual_recall",
        question="q",
        reference="r",
        scorer="contains",
        response="a",
        extracted="a",
        score=1.0 if correct else 0.0,
        correct=correct,
        new_tokens=1,
        truncated=False,
        seconds=0.1,
    )


def test_churn_counts_lost_and_gained_items_per_other_domain() -> None:
    base = [item(f"geo-{i}", "geography", i < 6) for i in range(10)]
    base += [item(f"ari-{i}", "arithmetic", False) for i in range(4)]
    base += [item("kor-1", "korrin", False)]
    # Geography: 0-5 were right; the adapter loses 0-4 and gains 6 -> 5 lost, 1 gained.
    after = [item(f"geo-{i}", "geography", i in (5, 6)) for i in range(10)]
    after += [item(f"ari-{i}", "arithmetic", i < 2) for i in range(4)]
    after += [item("kor-1", "korrin", True)]

    table = learning.churn(base, after)

    assert list(table) == ["geography", "arithmetic"]  # Korrin is what was trained
    assert table["geography"] == {"lost": 5, "gained": 1, "net": -4, "p": pytest.approx(0.21875)}
    assert table["arithmetic"] == {"lost": 0, "gained": 2, "net": 2, "p": pytest.approx(0.5)}
    lines = learning.churn_lines("+synthesis", table)
    assert lines[0] == "| items lost / gained | geography | arithmetic | worst net (p) |"
    assert lines[2] == "| +synthesis | −5 +1 | −0 +2 | geography -4 (p = 0.22) |"


def test_churn_refuses_an_item_the_base_model_was_not_asked() -> None:
    with pytest.raises(ValueError, match="geo-9 is not in the base model's evaluation"):
        learning.churn([item("geo-1", "geography", True)], [item("geo-9", "geography", True)])


def test_the_missed_items_are_the_trained_domains_wrong_answers() -> None:
    items = [item("kor-p1", "korrin", True), item("kor-p2", "korrin", False)]
    items += [item("geo-1", "geography", False)]
    assert learning.missed(items, "korrin") == [
        {"id": "kor-p2", "capability": "factual_recall", "question": "q", "response": "a"}
    ]


def test_the_tally_counts_each_missed_item_over_runs_and_adapters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def miss(id: str) -> dict[str, str]:
        return {"id": id, "capability": "factual_recall", "question": f"{id}?", "response": "x"}

    runs = {  # two runs; the second scored its adapter routed too
        "seed0": {"missed": {"+synthesis": [miss("kor-p11"), miss("kor-p13")]}},
        "seed1": {"missed": {"+synthesis": [miss("kor-p11")], "+synthesis routed": []}},
    }
    for name, report in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "learning.json").write_text(json.dumps(report))

    assert learning.tally(list(runs.values())) == [
        ("kor-p11", "kor-p11?", 2, 3),
        ("kor-p13", "kor-p13?", 1, 3),
    ]
    assert learning.main(["--tally", str(tmp_path / "seed0"), str(tmp_path / "seed1")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "kor-p11: missed in 2 of 3 adapter evaluations (kor-p11?)",
        "kor-p13: missed in 1 of 3 adapter evaluations (kor-p13?)",
    ]


def test_the_tally_names_a_folder_that_holds_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        learning.main(["--tally", str(tmp_path)])
    assert f"{tmp_path / 'learning.json'} does not exist" in capsys.readouterr().err


def test_the_tally_gives_each_adapters_targets_over_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def report(seed: int, paraphrases: float, two: float) -> dict[str, Any]:
        base = {"paraphrases": 0.0, "two facts": 0.0}
        return {
            "settings": {"seed": seed},
            "rows": {
                "base model": base,
                "+synthesis": {"paraphrases": paraphrases, "two facts": two},
            },
            "missed": {"+synthesis": []},
        }

    reports = [report(0, 22 / 24, 5 / 6), report(3, 21 / 24, 1.0), report(4, 0.9, 0.5)]
    assert learning.spread(reports) == [
        "+synthesis over seeds 0 3 4: "
        "paraphrases 91.7 87.5 90.0 (mean 89.7, least 87.5, ≥ 90% in 2 of 3); "
        "two facts 83.3 100.0 50.0 (mean 77.8, least 50.0, ≥ 60% in 2 of 3)"
    ]
    for number, one in enumerate(reports):
        (tmp_path / str(number)).mkdir()
        (tmp_path / str(number) / "learning.json").write_text(json.dumps(one))
    assert learning.main(["--tally", *(str(tmp_path / str(n)) for n in range(3))]) == 0
    assert capsys.readouterr().out.splitlines() == learning.spread(reports)


def test_against_compares_two_settings_paired_by_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def report(seed: int, paraphrases: float) -> dict[str, Any]:
        return {
            "settings": {"seed": seed},
            "rows": {
                "base model": {"paraphrases": 0.0},
                "+synthesis": {"paraphrases": paraphrases},
            },
            "missed": {"+synthesis": []},
        }

    before = [report(0, 18 / 24), report(1, 20 / 24), report(2, 0.5)]
    after = [report(1, 21 / 24), report(0, 20 / 24)]  # seed 2 not run: left out
    assert learning.compare(before, after) == [
        "+synthesis paraphrases over seeds 0 1: 79.2 -> 85.4 (+6.2; by seed +8.3 +4.2; "
        "sign-flip p 0.50)"
    ]
    for name, reports in (("a", before), ("b", after)):
        for one in reports:
            folder = tmp_path / name / str(one["settings"]["seed"])
            folder.mkdir(parents=True)
            (folder / "learning.json").write_text(json.dumps(one))
    folders = {name: sorted(str(p) for p in (tmp_path / name).iterdir()) for name in "ab"}
    assert learning.main(["--tally", *folders["a"], "--against", *folders["b"]]) == 0
    assert capsys.readouterr().out.splitlines() == learning.compare(before, after)
    with pytest.raises(SystemExit):
        learning.main(["--against", *folders["b"]])
    assert "--against: give the runs to compare with --tally" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no seed in common"):
        learning.compare([report(5, 0.5)], after)
