"""Anchors: the trained relations asked of the other domains' entities, with the model's own
answers from before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api import EXIT_OK
from kaizen.api.artifacts import DataCard, TrainingRecord, read_artifact
from kaizen.runtime.contamination import ContaminationGuard
from kaizen.runtime.suites.knowledge import Fact, Knowledge, Relation
from kaizen.runtime.suites.loader import EvalItem
from kaizen.trainer.anchors import (
    AnchorQuestion,
    AnchorReport,
    anchor_count,
    anchor_examples,
    anchor_questions,
)
from kaizen.trainer.cli import main

BUNDLED = "bundled:smollm2-135m-instruct"
RELATIONS = {
    "capital": Relation(
        "capital",
        "The capital of {subject} is {object}.",
        ("What is the capital of {subject}?", "Name the capital city of {subject}."),
    ),
    "coin": Relation(
        "coin", "The coin of {subject} is the {object}.", ("What coin is used in {subject}?",)
    ),
    "river": Relation("river", "{subject} flows into {object}.", ("Where does {subject} flow?",)),
    "legs": Relation("legs", "A {subject} has {object} legs.", ("How many legs has a {subject}?",)),
}
FACTS = (
    Fact("isle", "Korvath", "capital", "Ostrivel"),
    Fact("isle", "Korvath", "coin", "brisk"),
    Fact("geography", "Poland", "capital", "Warsaw"),
    Fact("geography", "Kenya", "coin", "shilling"),
    Fact("geography", "the Vistula", "river", "the Baltic Sea"),
    Fact("geography", "Egypt", "capital", "Cairo"),
    Fact("languages", "Norway", "capital", "Oslo"),
    Fact("biology", "spider", "legs", "eight"),
)


def _guard(*questions: str) -> ContaminationGuard:
    return ContaminationGuard.from_items(
        EvalItem(f"e-{i}", "geography", "factual_recall", q, answers=("x",), scorer="contains")
        for i, q in enumerate(questions)
    )


def test_anchors_ask_the_trained_relations_of_entities_of_the_same_kind() -> None:
    knowledge = Knowledge(relations=RELATIONS, facts=FACTS)
    report = AnchorReport()
    found = anchor_questions(
        knowledge,
        "isle",
        resembles={"geography": 0.4, "languages": 0.1},
        guard=_guard("What is the capital of Egypt?"),
        seed=0,
        report=report,
    )
    asked = {(q.relation, q.subject) for q in found}
    # Poland, Egypt and Norway have a capital, Kenya a coin: each is asked both relations (the
    # invented country is); the river and the spider share nothing with it and are not asked.
    assert asked == {
        ("capital", "Poland"), ("coin", "Poland"), ("capital", "Kenya"), ("coin", "Kenya"),
        ("coin", "Egypt"), ("capital", "Norway"), ("coin", "Norway"),
    }  # fmt: skip
    # the evaluation question was refused, and said so
    assert [(d.source, d.question) for d in report.dropped] == [
        ("anchor", "What is the capital of Egypt?")
    ]
    # an entity with a fact of the very relation first, then the domains most like the set
    tiers = [(q.relation, q.subject) for q in found]
    first = {("capital", "Poland"), ("coin", "Kenya")}
    assert set(tiers[:2]) == first
    assert tiers[2] == ("capital", "Norway")  # languages resembles the set least
    assert {q.domain for q in found} == {"geography", "languages"}
    # the wordings rotate within a relation; questions are filled with the entity
    capital = [q.question for q in found if q.relation == "capital"]
    assert (
        "What is the capital of Poland?" in capital or "Name the capital city of Poland." in capital
    )
    assert {q.question.split(" ")[0] for q in found if q.relation == "capital"} == {"What", "Name"}
    # the same seed, the same order; another seed may break ties differently but asks the same
    again = anchor_questions(
        knowledge, "isle", resembles={"geography": 0.4, "languages": 0.1},
        guard=_guard("What is the capital of Egypt?"), seed=0,
    )  # fmt: skip
    assert again == found


def test_no_anchors_without_facts_on_either_side() -> None:
    knowledge = Knowledge(relations=RELATIONS, facts=FACTS)
    guard = _guard()
    assert anchor_questions(knowledge, "nothing", resembles={}, guard=guard, seed=0) == []
    alone = Knowledge(relations=RELATIONS, facts=FACTS[:2])
    assert anchor_questions(alone, "isle", resembles={}, guard=guard, seed=0) == []


def test_anchor_examples_keep_the_models_answers_and_drop_what_cannot_be_used() -> None:
    questions = [
        AnchorQuestion(f"What is the capital of C{i}?", "capital", f"C{i}", "geography")
        for i in range(6)
    ]
    secret = "the one where the old secret word of the north lives today"
    answers = {
        "What is the capital of C0?": "The capital of C0 is Alpha.",
        "What is the capital of C1?": "",  # nothing came back
        "What is the capital of C2?": f"It is {secret}.",  # ten words of an evaluation question
        "What is the capital of C3?": "Gamma.",
    }
    asked: list[list[str]] = []

    def generate(batch: list[str]) -> list[str]:
        asked.append(batch)
        return [answers.get(q, "Delta.") for q in batch]

    report = AnchorReport()
    guard = _guard(f"Which city is {secret}?")
    kept = anchor_examples(questions, 3, generate, guard, report)
    assert [(e.question, e.answer) for e in kept] == [
        ("What is the capital of C0?", "The capital of C0 is Alpha."),
        ("What is the capital of C3?", "Gamma."),
        ("What is the capital of C4?", "Delta."),
    ]
    assert all(e.source == "anchor:geography" and e.capability == "factual_recall" for e in kept)
    # 3 wanted: 4 asked at once (a spare); two answers were unusable, so one more was asked
    assert asked == [[q.question for q in questions[:4]], [questions[4].question]]
    reasons = {d.question: d.reason for d in report.dropped}
    assert reasons["What is the capital of C1?"] == "empty answer"
    assert reasons["What is the capital of C2?"].startswith("answer ")
    assert report.asked == 5 and len(kept) == 3
    assert anchor_examples(questions, 0, generate, guard) == []
    # fewer usable answers than wanted: all of them, no error
    assert len(anchor_examples(questions[:3], 3, generate, guard)) == 1


def test_anchors_come_in_proportion_to_the_rehearsal() -> None:
    assert anchor_count(91, 0.5) == 46
    assert anchor_count(91, 0.0) == 0
    assert anchor_count(10, 1.0) == 10
    assert anchor_count(10, 2.5) == 25


def write_suite(
    root: Path,
    name: str,
    items: list[tuple[str, str, str, str]],
    knowledge: list[dict[str, object]],
    pool: list[dict[str, str]] | None = None,
    capabilities: str = "factual_recall, cross_referencing",
) -> Path:
    """A suite folder of domains `isle`, `geography` and any other its `items` (id, domain,
    question, answer) name: those evaluation items, `knowledge.jsonl` lines and, where given,
    a `train.jsonl` pool."""
    root.mkdir(parents=True)
    domains = ", ".join(dict.fromkeys(["isle", "geography", *(d for _, d, _, _ in items)]))
    (root / "suite.yaml").write_text(
        f'name: {name}\nversion: "1"\ndomains: [{domains}]\n'
        f"capabilities: [{capabilities}]\ndefaults: {{scorer: contains}}\n"
    )
    (root / "eval.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "domain": d, "capability": "factual_recall", "question": q,
                        "answer": a}) + "\n"
            for i, d, q, a in items
        )
    )  # fmt: skip
    if pool is not None:
        (root / "train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in pool))
    (root / "knowledge.jsonl").write_text("".join(json.dumps(x) + "\n" for x in knowledge))
    return root


def _write_suite(root: Path) -> Path:
    """Two domains with facts: an invented isle (trained) and geography (rehearsed)."""
    items = [
        ("i-1", "isle", "Which city is the capital of Korvath?", "Ostrivel"),
        ("g-1", "geography", "What is the capital of Spain?", "Madrid"),
        ("g-2", "geography", "What coin is used in Egypt?", "pound"),
    ]
    pool = [
        {"domain": "geography", "question": f"Name a city of country {n}.", "answer": f"City {n}."}
        for n in range(6)
    ]
    relations: list[dict[str, object]] = [
        {"kind": "relation", "name": name, "statement": r.statement, "questions": list(r.questions)}
        for name, r in RELATIONS.items()
    ]
    facts: list[dict[str, object]] = [
        {"kind": "fact", "domain": f.domain, "subject": f.subject, "relation": f.relation,
         "object": f.object}
        for f in FACTS
        if f.domain in ("isle", "geography")
    ]  # fmt: skip
    return write_suite(root, "anchors", items, relations + facts, pool)


@pytest.mark.slow
def test_the_train_step_anchors_the_models_own_answers(tmp_path: Path) -> None:
    # The bundled model: a random tiny one answers every question with newlines only.
    from kaizen.runtime.models import load_model, load_tokenizer
    from kaizen.trainer.teacher import generator

    suite = _write_suite(tmp_path / "suite")
    out = tmp_path / "train-isle"
    argv = [
        "train", "--model", BUNDLED, "--suite", str(suite), "--domain", "isle",
        "--output", str(out), "--step", "train-isle", "--steps", "1", "--batch-size", "4",
        "--rank", "2", "--max-seq-length", "96", "--synthesis-examples", "4",
        "--replay-fraction", "0.5", "--anchor-ratio", "0.5",
        "--tracking-mode", "disabled", "--quiet",
    ]  # fmt: skip
    assert main(argv) == EXIT_OK
    card = read_artifact(out / "data_card.json", DataCard)
    record = read_artifact(out / "training.json", TrainingRecord)
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    anchored = [x for x in lines if x["source"].startswith("anchor:")]
    replayed = [x for x in lines if x["source"].startswith("replay:")]
    own = len(lines) - len(anchored) - len(replayed)
    # the rehearsal makes half the set (as many lines as the isle's own, from geography's six),
    # and half as many anchors come on top of it
    assert len(replayed) == min(own, 6)
    assert len(anchored) == round(len(replayed) * 0.5) > 0
    assert card.rehearsal is not None and card.rehearsal.anchors == len(anchored)
    assert card.rehearsal.anchor_ratio == 0.5 and card.rehearsal.anchors_asked >= len(anchored)
    assert card.by_source["anchor"] == len(anchored)
    assert record.config.anchor_ratio == 0.5
    # an anchor the guard or an empty answer refused is on the card, like any dropped line
    refused = [d for d in card.dropped if d.source == "anchor"]
    assert all(d.reason for d in refused)
    assert any(d.question == "What coin is used in Egypt?" for d in refused)
    # each anchor asks an isle relation of a geography entity (never the evaluation's), and
    # its answer is what the model said before training: greedy, the same model and prompt
    questions = [x["question"] for x in anchored]
    assert all(x["source"] == "anchor:geography" for x in anchored)
    assert "What coin is used in Egypt?" not in questions  # the evaluation asks it
    assert all(q.rstrip("?.").split(" ")[-1] in {"Poland", "Kenya", "Egypt"} for q in questions)
    tokenizer = load_tokenizer(BUNDLED)
    model = load_model(BUNDLED, [])
    said = generator(model, tokenizer)(questions)
    assert [x["answer"] for x in anchored] == said
    # with a ratio of 0, no anchors: the rehearsal is the pool's alone
    plain = tmp_path / "plain"
    argv[argv.index(str(out))] = str(plain)
    argv[argv.index("--anchor-ratio") + 1] = "0"
    assert main(argv) == EXIT_OK
    lines = [json.loads(x) for x in (plain / "data.jsonl").read_text().splitlines()]
    assert not [x for x in lines if x["source"].startswith("anchor:")]
    card = read_artifact(plain / "data_card.json", DataCard)
    assert card.rehearsal is not None and card.rehearsal.anchors == 0
