"""The targeted training set: knowledge synthesised in the plan's mix, guarded, and carded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api import EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from kaizen.api.artifacts import DataCard, ImprovementPlan, TrainingRecord, read_artifact
from kaizen.runtime.suites import load_suite
from kaizen.trainer.cli import main
from kaizen.trainer.data import Example
from kaizen.trainer.targeted import build_training_set, steering_for, steps_for_passes

RELATIONS = [
    {"kind": "relation", "name": "capital", "statement": "The capital of {subject} is {object}.",
     "questions": ["What is the capital of {subject}?", "Name the capital of {subject}."],
     "describe": "the capital of {subject}",
     "describe_subject": "the land whose capital is {object}"},
    {"kind": "relation", "name": "river", "statement": "The river of {subject} is the {object}.",
     "questions": ["Which river flows through {subject}?"]},
    {"kind": "relation", "name": "coin", "statement": "The coin of {subject} is the {object}.",
     "questions": ["What coin is used in {subject}?"]},
]  # fmt: skip
FACTS = [
    ("Quarnel", "capital", "Ostrivel"),
    ("Ostrivel", "river", "Danth"),
    ("Quarnel", "coin", "brisk"),
    ("Veyla", "capital", "Murrow"),
    ("Murrow", "river", "Fen"),
    ("Veyla", "coin", "tallow"),
]
EVAL = [
    ("q-1", "factual_recall", "Which city is Quarnel's capital?", "Ostrivel"),
    ("q-2", "cross_referencing", "Which river flows through the capital of Quarnel?", "Danth"),
    ("q-3", "factual_recall", "What coin do people in Quarnel pay with?", "brisk"),
]


def write_knowledge_suite(root: Path, pool: list[dict[str, Any]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(
        'name: quarn\nversion: "1"\ndescription: an invented land known only by facts\n'
        "domains: [quarnel, spiders]\n"
        "capabilities: [factual_recall, cross_referencing, counterfactual, multi_step]\n"
        "defaults: {scorer: contains}\n"
    )
    items = [
        {"id": i, "domain": "quarnel", "capability": c, "question": q, "answer": a}
        for i, c, q, a in EVAL
    ] + [{"id": "s-1", "domain": "spiders", "capability": "factual_recall",
          "question": "How many legs has a spider?", "answer": "eight"}]  # fmt: skip
    (root / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    train = pool or [
        {
            "domain": "spiders",
            "question": "Count a spider's legs.",
            "answer": "A spider has eight legs.",
        }
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in train))
    facts = [
        {"kind": "fact", "domain": "quarnel", "subject": s, "relation": r, "object": o}
        for s, r, o in FACTS
    ]
    (root / "knowledge.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in RELATIONS + facts)
    )
    return root


def plan(**overrides: Any) -> ImprovementPlan:
    data: dict[str, Any] = {"priority_domains": ["quarnel"]}
    return ImprovementPlan.model_validate(data | overrides)


def test_a_domain_known_only_by_facts_gets_a_guarded_synthesised_set(tmp_path: Path) -> None:
    suite = load_suite(str(write_knowledge_suite(tmp_path / "suite")))
    extra = [
        Example("Which river flows through the capital of Quarnel?", "The Danth.", None, "x.jsonl:1"),
        Example("Is Quarnel large?", "Quarnel is small.", None, "x.jsonl:2"),
    ]  # fmt: skip
    built = build_training_set(
        suite, "quarnel", pool=[], extra=extra, plan=plan(), budget=100, seed=0
    )
    questions = [e.question for e in built.examples]
    # The evaluation's own cross-reference question, brought as extra data, is dropped.
    assert "Which river flows through the capital of Quarnel?" not in questions
    assert built.contaminated >= 1
    assert any("q-2" in d.reason for d in built.dropped)
    sources = {e.source for e in built.examples}
    assert {"synthesis:surface", "synthesis:sibling", "synthesis:premise"} <= sources
    # The Quarnel chain words the evaluation's question (synthesis is guarded too); the Veyla
    # chain does not.
    assert "Which river flows through the capital of Veyla?" in questions
    assert {d.source for d in built.dropped if "q-2" in d.reason} == {
        "x.jsonl:1",
        "synthesis:chain",
    }
    assert "x.jsonl:2" in sources
    assert len(set(map(str.lower, questions))) == len(questions)
    assert built.synthesis is not None and built.synthesis.facts == 6
    assert built.synthesized == sum(1 for e in built.examples if e.source.startswith("synthesis:"))
    # The same seed gives the same set; another seed another order.
    again = build_training_set(
        suite, "quarnel", pool=[], extra=extra, plan=plan(), budget=100, seed=0
    )
    assert [e.question for e in again.examples] == questions


def test_the_plan_steers_the_mix(tmp_path: Path) -> None:
    suite = load_suite(str(write_knowledge_suite(tmp_path / "suite")))
    steered = plan(
        targeted_capabilities=["cross_referencing"],
        failures=[{"id": "q-2", "domain": "quarnel", "capability": "cross_referencing",
                   "kind": "wrong_answer", "type": "reasoning"}],
    )  # fmt: skip
    steering = steering_for(steered, "quarnel", suite)
    assert steering.failed_capabilities == {"cross_referencing": 1}
    assert any("Danth" in text for text in steering.failed_texts)
    neutral = build_training_set(suite, "quarnel", pool=[], extra=[], plan=plan(), budget=6, seed=0)
    aimed = build_training_set(suite, "quarnel", pool=[], extra=[], plan=steered, budget=6, seed=0)
    assert aimed.synthesis is not None and neutral.synthesis is not None
    assert aimed.synthesis.weights["cross_referencing"] == 4.0
    assert aimed.synthesis.chosen.get("cross_referencing", 0) > neutral.synthesis.chosen.get(
        "cross_referencing", 0
    )
    assert aimed.synthesis.failed_items == 1 and aimed.synthesis.behind_failures > 0


def test_no_budget_means_no_synthesis(tmp_path: Path) -> None:
    suite = load_suite(str(write_knowledge_suite(tmp_path / "suite")))
    built = build_training_set(suite, "spiders", pool=[], extra=[], plan=None, budget=0, seed=0)
    assert built.synthesis is None and built.examples == []


@pytest.mark.e2e
def test_the_train_step_writes_the_data_card_and_distils(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = write_knowledge_suite(tmp_path / "suite")
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps({"schema": 1, "priority_domains": ["quarnel"]}))
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary.json"))
    out = tmp_path / "train-quarnel"
    code = main(
        [
            "train", "--model", str(tiny_model_dir), "--suite", str(suite), "--domain", "quarnel",
            "--plan", str(plan_path), "--output", str(out), "--step", "train-quarnel",
            "--steps", "2", "--batch-size", "4", "--rank", "2", "--max-seq-length", "96",
            "--synthesis-examples", "12", "--teacher", "context", "--teacher-share", "0.5",
            "--teacher-paraphrases", "2", "--tracking-mode", "disabled", "--quiet",
        ]
    )  # fmt: skip
    assert code == EXIT_OK
    summary = parse_summary((tmp_path / "summary.json").read_bytes())
    assert summary.adapter is not None and summary.adapter.learning_rate == 1e-3
    card = read_artifact(out / "data_card.json", DataCard)
    record = read_artifact(out / "training.json", TrainingRecord)
    assert record.data_card == str(out / "data_card.json")
    assert card.synthesis is not None and card.synthesis.budget == 12
    # Half of the 12 go to the teacher; those without one expected answer (entity profiles)
    # are kept as synthesised and not asked.
    assert card.teacher is not None and 0 < card.teacher.asked <= 6
    # The tiny random model cannot state the facts: every teacher answer is refused, listed,
    # and its item left out; the other half keeps the synthesised wording.
    rejected = [d for d in card.dropped if d.source == "teacher"]
    assert len(rejected) == card.teacher.asked - card.teacher.accepted
    # Each chosen recall question was asked for two rewordings; what the checks refused is
    # listed with its reason, what they kept is in the set as teacher:paraphrase lines.
    teacher = card.teacher
    assert teacher.paraphrases_asked > 0 and teacher.paraphrases_asked % 2 == 0
    refused = [d for d in card.dropped if d.source == "teacher:paraphrase"]
    assert len(refused) == teacher.paraphrases_asked - teacher.paraphrases_kept
    assert all(d.reason.startswith("rewording of ") for d in refused)
    assert card.by_source.get("teacher:paraphrase", 0) <= teacher.paraphrases_kept
    assert summary.adapter.synthesized == record.examples.synthesized > 0
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert len(lines) == card.total == record.examples.training_set
    assert sum(card.by_source.values()) == card.total
    assert card.by_domain.get("spiders", 0) > 0  # replay of the other domain's pool


@pytest.mark.parametrize(
    ("passes", "lines", "batch_size", "max_steps", "min_steps", "expected"),
    [
        (4, 165, 8, 400, 1, 83),  # 82.5 steps make 4 passes: rounded up
        (4, 24, 8, 400, 1, 12),  # a small set: 12 steps, not a fixed 80 (27 passes)
        (4, 24, 8, 400, 20, 20),  # ... unless the lower bound asks for more
        (4, 165, 8, 400, 20, 83),  # a bound below the rule changes nothing
        (4, 16, 8, 400, 1, 8),  # exact: no float noise adds a step
        (0.1, 3, 8, 400, 1, 1),  # at least one step
        (2.5, 400, 4, 400, 1, 250),
        (8, 400, 4, 400, 1, 400),  # bounded by max_steps (800 wanted)
        (8, 400, 4, 400, 400, 400),  # both bounds at once
        (1, 0, 8, 400, 1, 1),  # at least one step, even for an empty set
    ],
)
def test_steps_for_passes(passes, lines, batch_size, max_steps, min_steps, expected) -> None:
    assert steps_for_passes(passes, lines, batch_size, max_steps, min_steps) == expected


@pytest.mark.parametrize(
    "bad",
    [(0, 10, 8, 10, 1), (1, -1, 8, 10, 1), (1, 10, 0, 10, 1), (1, 10, 8, 0, 1), (1, 10, 8, 5, 6)],
)
def test_steps_for_passes_refuses_what_has_no_meaning(bad) -> None:
    with pytest.raises(ValueError, match="passes"):
        steps_for_passes(*bad)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("passes", "max_steps", "min_steps"),
    [(1.5, 400, 1), (3.0, 5, 1), (0.5, 400, 9)],  # the rule; the upper bound; the lower one
)
def test_the_train_step_derives_its_steps_from_passes_over_its_set(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    passes,
    max_steps,
    min_steps,
) -> None:
    suite = write_knowledge_suite(tmp_path / "suite")
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary.json"))
    out = tmp_path / "train-quarnel"
    code = main(
        [
            "train", "--model", str(tiny_model_dir), "--suite", str(suite), "--domain", "quarnel",
            "--output", str(out), "--step", "train-quarnel", "--steps", "2", "--batch-size", "4",
            "--rank", "2", "--max-seq-length", "96", "--synthesis-examples", "12",
            "--passes", str(passes), "--max-steps", str(max_steps), "--min-steps", str(min_steps),
            "--tracking-mode", "disabled", "--quiet",
        ]
    )  # fmt: skip
    assert code == EXIT_OK
    card = read_artifact(out / "data_card.json", DataCard)
    record = read_artifact(out / "training.json", TrainingRecord)
    summary = parse_summary((tmp_path / "summary.json").read_bytes())
    wanted = -(-int(passes * 10) * card.total // 40)  # ceil(passes·lines/4)
    expected = min(max_steps, max(min_steps, wanted))
    assert (expected == min_steps) == (min_steps > 1)  # the lower bound case is one
    assert card.total > 8 and expected != 2  # --steps 2 is not what trained
    assert card.steps == record.steps == len(record.loss_curve) == expected
    assert card.passes == record.config.passes == passes
    assert record.config.max_steps == max_steps and record.config.steps == expected
    assert record.config.min_steps == min_steps
    assert summary.adapter is not None
    assert (summary.adapter.steps, summary.adapter.passes) == (expected, passes)
    assert f"{expected} steps ({passes:g} passes)" in summary.message


@pytest.mark.e2e
@pytest.mark.parametrize("knowledge", [False, True])
def test_the_train_step_rehearses_the_other_domains_facts_when_asked(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, knowledge: bool
) -> None:
    # quarnel has no pool, only facts: without --replay-knowledge there is nothing of it to
    # rehearse; with it, its facts in every wording (never an evaluation question).
    suite = write_knowledge_suite(tmp_path / "suite")
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary.json"))
    out = tmp_path / "train-spiders"
    argv = [
        "train", "--model", str(tiny_model_dir), "--suite", str(suite), "--domain", "spiders",
        "--output", str(out), "--step", "train-spiders", "--steps", "1", "--batch-size", "4",
        "--rank", "2", "--max-seq-length", "96", "--replay-fraction", "0.9",
        "--tracking-mode", "disabled", "--quiet",
    ]  # fmt: skip
    assert main([*argv, "--replay-knowledge"] if knowledge else argv) == EXIT_OK
    card = read_artifact(out / "data_card.json", DataCard)
    assert card.rehearsal is not None and card.rehearsal.knowledge is knowledge
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    rehearsed = [x for x in lines if x["source"] == "replay:quarnel"]
    assert len(rehearsed) == card.by_domain.get("quarnel", 0)
    if not knowledge:
        assert rehearsed == []
        return
    # round(1 × 0.9 / 0.1) = 9 lines were asked for; the facts' wordings that the guard lets
    # through (some are evaluation questions) may be fewer
    assert 0 < len(rehearsed) <= 9 and card.by_source["replay"] == len(rehearsed)
    evaluation = {q for _, _, q, _ in EVAL}
    statements = {x["answer"] for x in rehearsed}
    assert all(x["question"] not in evaluation for x in rehearsed)
    assert all(answer.endswith(".") for answer in statements)


def _first_cycle_folder(root: Path, examples: list[Example]) -> Path:
    """A first cycle's train step folder as it lies on the volume: its adapter and data.jsonl."""
    train_dir = root / "cycle-1" / "train-quarnel"
    (train_dir / "adapter").mkdir(parents=True)
    (train_dir / "data.jsonl").write_text(
        "".join(
            json.dumps({"question": e.question, "answer": e.answer, "source": e.source}) + "\n"
            for e in examples
        )
    )
    return train_dir


def test_a_chained_cycle_learns_new_lines_before_repeating_old_ones(tmp_path: Path) -> None:
    from kaizen.api.artifacts import MergeRecord, write_artifact

    suite = load_suite(str(write_knowledge_suite(tmp_path / "suite")))
    first = build_training_set(suite, "quarnel", pool=[], extra=[], plan=plan(), budget=8, seed=0)
    # The first cycle's train step and merge, as their artifacts lie on the volume.
    train_dir = _first_cycle_folder(tmp_path, first.examples)
    merge_dir = tmp_path / "cycle-1" / "merge"
    source = {"domain": "quarnel", "path": str(train_dir / "adapter"), "rank": 8, "alpha": 16.0,
              "target_modules": "all-linear"}  # fmt: skip
    write_artifact(
        merge_dir / "merge.json",
        MergeRecord.model_validate(
            {"schema": 2, "step": "merge", "cycle": "cycle-1",
             "model": {"ref": "m", "revision": None, "adapters": []},
             "config": {"combination": "ties", "density": 0.5, "seed": 0},
             "combination": "ties", "rank": 8, "sources": [source], "seconds": 0.1,
             "versions": {}, "adapter": str(merge_dir / "adapter")}
        ),
    )  # fmt: skip
    second = build_training_set(
        suite, "quarnel", pool=[], extra=[], plan=plan(), budget=8, seed=0,
        adapters=[str(merge_dir / "adapter")],
    )  # fmt: skip
    assert second.synthesis is not None
    assert second.synthesis.earlier_lines == len(first.examples) == 8
    old = {e.question for e in first.examples}
    new = {e.question for e in second.examples}
    # Only a capability with no new candidate left repeats (cross-referencing has 3 in all,
    # the first cycle took 2, the mix asks for 2 again).
    assert second.synthesis.repeated == len(old & new) == 1
    assert second.synthesis.available["cross_referencing"] == 3
    # With a budget beyond what is new, old lines come back, and the card says how many.
    everything = build_training_set(
        suite, "quarnel", pool=[], extra=[], plan=plan(), budget=1000, seed=0,
        adapters=[str(merge_dir / "adapter")],
    )  # fmt: skip
    assert everything.synthesis is not None and everything.synthesis.repeated == 8


def test_a_chained_cycle_draws_new_profile_orders_deterministically(tmp_path: Path) -> None:
    from kaizen.trainer.targeted import TrainingSet, synthesis_seed

    suite = load_suite(str(write_knowledge_suite(tmp_path / "suite")))
    first = build_training_set(
        suite, "quarnel", pool=[], extra=[], plan=plan(), budget=1000, seed=0
    )
    train_dir = _first_cycle_folder(tmp_path, first.examples)
    adapters = [str(train_dir / "adapter")]

    def profiles(built: TrainingSet) -> dict[str, str]:
        return {e.question: e.answer for e in built.examples if e.source == "synthesis:profile"}

    second = build_training_set(
        suite, "quarnel", pool=[], extra=[], plan=plan(), budget=1000, seed=0, adapters=adapters
    )
    again = build_training_set(
        suite, "quarnel", pool=[], extra=[], plan=plan(), budget=1000, seed=0, adapters=adapters
    )
    before, after = profiles(first), profiles(second)
    assert before and set(before) == set(after)  # the same entities are profiled…
    assert any(before[q] != after[q] for q in before)  # …with their facts in other orders
    # The same seed and starting adapters give the same data.
    assert [(e.question, e.answer) for e in again.examples] == [
        (e.question, e.answer) for e in second.examples
    ]
    assert synthesis_seed(0, set()) == 0  # a first cycle draws with the seed itself
    assert synthesis_seed(0, {"a"}) != synthesis_seed(1, {"a"}) != synthesis_seed(0, {"b"})


@pytest.mark.e2e
def test_the_train_step_learns_from_documents_and_its_card_lists_what_they_left_out(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # spiders is known by a Markdown runbook as well as its pool: its paragraphs are passages
    # to synthesise from, and its code block is left out and listed on spiders' card only.
    suite = write_knowledge_suite(tmp_path / "suite")
    header = (suite / "suite.yaml").read_text()
    (suite / "suite.yaml").write_text(header + "documents:\n  - {domain: spiders, path: doc.md}\n")
    (suite / "doc.md").write_text(
        "# Orb weavers\n\nThe Velk orb weaver spins its web at dusk.\n\n"
        "```sh\nweave --at dusk\n```\n"
    )
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary.json"))
    cards = {}
    for domain in ("spiders", "quarnel"):
        out = tmp_path / f"train-{domain}"
        argv = [
            "train", "--model", str(tiny_model_dir), "--suite", str(suite), "--domain", domain,
            "--output", str(out), "--step", f"train-{domain}", "--steps", "1",
            "--batch-size", "4", "--rank", "2", "--max-seq-length", "96",
            "--tracking-mode", "disabled", "--quiet",
        ]  # fmt: skip
        assert main(argv) == EXIT_OK
        cards[domain] = read_artifact(out / "data_card.json", DataCard)
        raw = json.loads((out / "data_card.json").read_text())
        assert ("unread" in raw) is (domain == "spiders")
    assert cards["spiders"].unread == ["doc.md:5: a code block"]
    assert cards["quarnel"].unread is None
    lines = [
        json.loads(x) for x in (tmp_path / "train-spiders" / "data.jsonl").read_text().splitlines()
    ]
    taught = [x for x in lines if x["source"].startswith("synthesis:passage")]
    assert taught and all("weave --at" not in x["answer"] for x in lines)
    assert any("Velk" in x["question"] + x["answer"] for x in taught)
