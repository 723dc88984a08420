"""The lineage of a cycle's starting adapters: what earlier versions were trained on.

The folders are laid out as the steps write them (`<cycle>/train-<domain>/{training.json,
data.jsonl,adapter}`, `<cycle>/merge/{merge.json,adapter}`, `<cycle>/combine/{combination.json,
adapter}`, `<cycle>/joint/{joint.json,adapter}`), the records built from the same samples the
artifact tests round-trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.artifacts import (
    CombinationReport,
    JointRecord,
    MergeRecord,
    TrainingRecord,
    write_artifact,
)
from kaizen.trainer.data import Example
from kaizen.trainer.lineage import earlier_lines, earlier_questions, training_sets
from kaizen.trainer.rehearsal import replay_examples
from kaizen.trainer.targeted import source_kind
from tests.api.artifact_samples import _combination, _joint, _merge, _training


def _lines(domain: str, tag: str) -> list[dict[str, Any]]:
    return [
        {"question": f"Where is {tag}?", "answer": f"{tag} is in {domain}.",
         "capability": "factual_recall", "source": "synthesis:surface"},
        {"question": f"Tell me about {tag}.", "answer": f"{tag} is old.",
         "capability": "factual_recall", "source": "pool"},
        {"question": "How many legs has a spider?", "answer": "Eight.",
         "capability": "factual_recall", "source": "replay:spiders"},
    ]  # fmt: skip


def _train(cycle: Path, domain: str, tag: str, starts_from: list[str]) -> Path:
    folder = cycle / f"train-{domain}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(x) + "\n" for x in _lines(domain, tag)))
    record = _training() | {"domain": domain, "step": f"train-{domain}"}
    record["model"] = dict(record["model"], adapters=starts_from)
    write_artifact(folder / TrainingRecord.FILE_NAME, TrainingRecord.model_validate(record))
    return folder / "adapter"


def _merge_of(cycle: Path, sources: dict[str, Path], starts_from: list[str]) -> Path:
    folder = cycle / "merge"
    (folder / "adapter").mkdir(parents=True)
    record = _merge()
    shape = {k: v for k, v in record["sources"][0].items() if k not in ("domain", "path")}
    record["sources"] = [{"domain": d, "path": str(p), **shape} for d, p in sources.items()]
    record["model"] = dict(record["model"], adapters=starts_from)
    record["adapter"] = str(folder / "adapter")
    write_artifact(folder / MergeRecord.FILE_NAME, MergeRecord.model_validate(record))
    return folder / "adapter"


def _combine(cycle: Path, chosen: str, adapters: dict[str, Path]) -> Path:
    folder = cycle / "combine"
    (folder / "adapter").mkdir(parents=True)
    record = _combination()
    rows = [dict(record["candidates"][0], name=n, adapter=str(p)) for n, p in adapters.items()]
    record.update(candidates=rows, chosen=chosen, adapter=str(folder / "adapter"))
    write_artifact(folder / CombinationReport.FILE_NAME, CombinationReport.model_validate(record))
    return folder / "adapter"


def test_two_chained_cycles_lead_back_to_every_training_set(tmp_path: Path) -> None:
    one = tmp_path / "cycle-1"
    zep = _train(one, "zep", "Velmora", [])
    v1 = _combine(one, "ties", {"ties": _merge_of(one, {"zep": zep}, []), "linear": tmp_path / "x"})
    two = tmp_path / "cycle-2"
    geo = _train(two, "geo", "Lyon", [str(v1)])
    v2 = _combine(two, "ties", {"ties": _merge_of(two, {"geo": geo}, [str(v1)])})

    sets = training_sets([str(v2)])
    # Through the combination's chosen candidate, its merge, the train step, and the
    # adapters that step started from: back to the first cycle's set.
    assert [(s.path, s.domain) for s in sets] == [
        (two / "train-geo" / "data.jsonl", "geo"),
        (one / "train-zep" / "data.jsonl", "zep"),
    ]
    lines = earlier_lines([str(v2)])
    # Each domain's own lines (not what a step replayed from another domain), as rehearsal.
    assert {d: [e.question for e in v] for d, v in lines.items()} == {
        "geo": ["Where is Lyon?", "Tell me about Lyon."],
        "zep": ["Where is Velmora?", "Tell me about Velmora."],
    }
    assert {e.source for e in lines["zep"]} == {"rehearsal:zep"}
    assert earlier_questions([str(v2)]) == {"where is lyon", "where is velmora"}
    # Nothing behind an adapter made elsewhere, or behind none.
    assert training_sets([str(tmp_path / "elsewhere" / "adapter")]) == []
    assert earlier_lines([]) == {}


def test_a_joint_adapter_leads_to_each_domain_set(tmp_path: Path) -> None:
    one = tmp_path / "cycle-1"
    zep, geo = _train(one, "zep", "Velmora", []), _train(one, "geo", "Lyon", [])
    folder = one / "joint"
    (folder / "adapter").mkdir(parents=True)
    record = _joint()
    record["sources"] = [
        dict(record["sources"][0], domain="zep", path=str(zep.parent / "data.jsonl")),
        dict(record["sources"][1], domain="geo", path=str(geo.parent / "data.jsonl")),
    ]
    write_artifact(folder / JointRecord.FILE_NAME, JointRecord.model_validate(record))
    assert [s.domain for s in training_sets([str(folder / "adapter")])] == ["zep", "geo"]


def test_rehearsal_lines_keep_their_source_in_the_replay() -> None:
    pools = {
        "zep": [Example("Where is Velmora?", "In Zep.", None, source="rehearsal:zep")],
        "geo": [Example("Capital of France?", "Paris.", None)],
    }
    chosen = replay_examples(pools, domain="sci", count=2, seed=0)
    assert sorted(e.source for e in chosen) == ["rehearsal:zep", "replay:geo"]
    assert {source_kind(e.source) for e in chosen} == {"rehearsal", "replay"}


@pytest.mark.e2e
def test_the_next_version_rehearses_and_says_what_it_saw_before(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.api import EXIT_OK, SUMMARY_PATH_ENV, parse_summary
    from kaizen.trainer.cli import main
    from tests.trainer.test_targeted import write_knowledge_suite

    suite = write_knowledge_suite(tmp_path / "suite")
    summary_path = tmp_path / "summary.json"
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(summary_path))

    def train(domain: str, out: Path, adapters: list[str]) -> str:
        code = main(
            [
                "train", "--model", str(tiny_model_dir), "--suite", str(suite),
                "--domain", domain, "--output", str(out), "--step", f"train-{domain}",
                "--steps", "1", "--batch-size", "4", "--rank", "2", "--max-seq-length", "96",
                "--synthesis-examples", "200", "--tracking-mode", "disabled", "--quiet",
                *[x for a in adapters for x in ("--adapter", a)],
            ]
        )  # fmt: skip
        assert code == EXIT_OK
        return parse_summary(summary_path.read_bytes()).message

    first = train("quarnel", tmp_path / "v1" / "train-quarnel", [])
    assert "seen by an earlier version" not in first and "rehearsed" not in first
    v1 = str(tmp_path / "v1" / "train-quarnel" / "adapter")
    # The next version trains the other domain: Quarnel's synthesised lines come back as
    # rehearsal, and the step says so.
    second = train("spiders", tmp_path / "v2" / "train-spiders", [v1])
    lines = [
        json.loads(x)
        for x in (tmp_path / "v2" / "train-spiders" / "data.jsonl").read_text().splitlines()
    ]
    rehearsed = [x for x in lines if x["source"] == "rehearsal:quarnel"]
    assert rehearsed and "rehearsed from earlier versions" in second
    card = json.loads((tmp_path / "v2" / "train-spiders" / "data_card.json").read_text())
    assert card["by_source"]["rehearsal"] == len(rehearsed)
    assert card["by_domain"]["quarnel"] >= len(rehearsed)
    # Training Quarnel again from v1: every candidate was already used, and it says so.
    third = train("quarnel", tmp_path / "v2" / "train-quarnel", [v1])
    assert "of them seen by an earlier version" in third
