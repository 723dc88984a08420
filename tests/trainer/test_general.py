"""General anchors: the model's own answers to everyday questions for what nothing else rehearses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api import EXIT_OK
from kaizen.api.artifacts import DataCard, read_artifact
from kaizen.runtime.scoring import normalize
from kaizen.trainer.anchors import AnchorReport
from kaizen.trainer.cli import main
from kaizen.trainer.general import GENERAL_QUESTIONS, general_questions
from kaizen.trainer.rehearsal import general_count
from tests.trainer.test_anchors import BUNDLED, _guard, write_suite


def test_general_questions_come_in_a_seeded_order_less_what_the_suite_evaluates() -> None:
    evaluated = GENERAL_QUESTIONS[3]
    report = AnchorReport()
    asked = general_questions(_guard(evaluated, "What is 12 times 12?"), seed=0, report=report)
    assert evaluated not in [q.question for q in asked]
    assert [(d.question, d.source) for d in report.dropped] == [(evaluated, "anchor")]
    assert len(asked) == len(GENERAL_QUESTIONS) - 1
    assert {q.domain for q in asked} == {"general"}
    again = general_questions(_guard(evaluated), seed=0)
    other = general_questions(_guard(evaluated), seed=1)
    assert [q.question for q in again] == [q.question for q in asked]
    assert [q.question for q in other] != [q.question for q in asked]


def test_the_general_questions_are_distinct_questions() -> None:
    assert len({normalize(q) for q in GENERAL_QUESTIONS}) == len(GENERAL_QUESTIONS)
    assert all(q.endswith(("?", ".")) for q in GENERAL_QUESTIONS)


def _write_suite(root: Path, *, pool: bool, bare: bool = False) -> Path:
    """An invented isle known by facts (trained) beside geography, known by a pool of lines
    when `pool` and otherwise by its items alone; `bare` adds science, known by its items
    alone."""
    items = [
        ("i-1", "isle", "Which city is the capital of Korvath?", "Ostrivel"),
        ("g-1", "geography", "What is the capital of Spain?", "Madrid"),
        ("g-2", "geography", GENERAL_QUESTIONS[0], "Jupiter"),  # a general question evaluated
    ]
    if bare:
        items.append(("s-1", "science", "What is the boiling point of water in Celsius?", "100"))
    lines = [{"domain": "geography", "question": f"Name city {n}.", "answer": f"City {n}."}
             for n in range(6)]  # fmt: skip
    knowledge: list[dict[str, object]] = [
        {"kind": "relation", "name": "capital", "statement": "The capital of {subject} is {object}.",
         "questions": ["What is the capital of {subject}?"]},
        {"kind": "fact", "domain": "isle", "subject": "Korvath", "relation": "capital",
         "object": "Ostrivel"},
        {"kind": "fact", "domain": "isle", "subject": "Ostrivel", "relation": "capital",
         "object": "Venn"},
    ]  # fmt: skip
    return write_suite(
        root, "bare", items, knowledge, lines if pool else None, capabilities="factual_recall"
    )


def test_general_anchors_take_the_even_share_of_the_domains_with_nothing_to_rehearse() -> None:
    lines = [object()]
    assert general_count({}, 10) == 10  # no other domain: all of it
    assert general_count({"a": [], "b": []}, 10) == 10  # nothing anywhere: all of it
    assert general_count({"a": lines, "b": []}, 10) == 5
    assert general_count({"a": lines, "b": [], "c": []}, 9) == 6
    assert general_count({"a": lines, "b": lines}, 10) == 0  # every domain rehearses its own
    assert general_count({"a": []}, 0) == 0


@pytest.mark.slow
def test_with_nothing_to_rehearse_the_model_rehearses_its_own_everyday_answers(
    tmp_path: Path,
) -> None:
    from kaizen.runtime.models import load_model, load_tokenizer
    from kaizen.trainer.teacher import generator

    out = tmp_path / "train-isle"
    argv = [
        "train", "--model", BUNDLED, "--suite", str(_write_suite(tmp_path / "bare", pool=False)),
        "--domain", "isle", "--output", str(out), "--step", "train-isle", "--steps", "1",
        "--batch-size", "4", "--rank", "2", "--max-seq-length", "96",
        "--synthesis-examples", "4", "--replay-fraction", "0.5",
        "--tracking-mode", "disabled", "--quiet",
    ]  # fmt: skip
    assert main(argv) == EXIT_OK
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    general = [x for x in lines if x["source"] == "anchor:general"]
    own = [x for x in lines if not x["source"].startswith("anchor:")]
    # as many as the rehearsal lines the pools would have given: half the set
    assert len(general) == len(own) > 0
    card = read_artifact(out / "data_card.json", DataCard)
    assert card.rehearsal is not None and card.rehearsal.general == len(general)
    assert card.rehearsal.anchors == 0 and card.by_source["anchor"] == len(general)
    questions = [x["question"] for x in general]
    assert GENERAL_QUESTIONS[0] not in questions  # the suite evaluates it
    assert set(questions) <= set(GENERAL_QUESTIONS)
    # each answer is the model's own before training: greedy, the same model and prompt
    said = generator(load_model(BUNDLED, []), load_tokenizer(BUNDLED))(questions)
    assert [x["answer"] for x in general] == said
    # where every other domain has lines to rehearse, they are rehearsed and no general anchor
    # is; where one has lines and another none, each gets its even share
    pooled = tmp_path / "pooled"
    argv[argv.index("--suite") + 1] = str(_write_suite(tmp_path / "with-pool", pool=True))
    argv[argv.index(str(out))] = str(pooled)
    assert main(argv) == EXIT_OK
    lines = [json.loads(x) for x in (pooled / "data.jsonl").read_text().splitlines()]
    assert not [x for x in lines if x["source"].startswith("anchor:")]
    assert [x for x in lines if x["source"].startswith("replay:")]
    card = read_artifact(pooled / "data_card.json", DataCard)
    assert card.rehearsal is not None and card.rehearsal.general == 0
    mixed = tmp_path / "mixed"
    argv[argv.index("--suite") + 1] = str(_write_suite(tmp_path / "mixed", pool=True, bare=True))
    argv[argv.index(str(pooled))] = str(mixed)
    assert main(argv) == EXIT_OK
    lines = [json.loads(x) for x in (mixed / "data.jsonl").read_text().splitlines()]
    replayed = [x for x in lines if x["source"] == "replay:geography"]
    general = [x for x in lines if x["source"] == "anchor:general"]
    own = [x for x in lines if not x["source"].startswith(("anchor:", "replay:"))]
    assert len(replayed) + len(general) == len(own)  # --replay-fraction 0.5
    assert abs(len(replayed) - len(general)) <= 1 and general
    card = read_artifact(mixed / "data_card.json", DataCard)
    assert card.rehearsal is not None and card.rehearsal.general == len(general)
