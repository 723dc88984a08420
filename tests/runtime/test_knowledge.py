"""A suite's knowledge.jsonl: what it loads into, what selection keeps, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.runtime.scoring import score
from kaizen.runtime.suites import (
    Fact,
    Knowledge,
    Passage,
    Relation,
    SuiteError,
    load_suite,
    shipped_suites,
)
from tests.runtime.test_suites import GOOD_TRAIN, write_suite

RELATION = {
    "kind": "relation",
    "name": "capital",
    "statement": "The capital of {subject} is {object}.",
    "questions": ["Name the capital city of {subject}.", "What city is the capital of {subject}?"],
    "describe": "the capital of {subject}",
    "describe_subject": "the land whose capital is {object}",
    "inverse_questions": ["{object} is the capital of which land?"],
}
FACT = {
    "kind": "fact",
    "domain": "alpha",
    "subject": "Quarnel",
    "relation": "capital",
    "object": "Ostrivel",
    "aliases": ["Ostri"],
}
PASSAGE = {"kind": "passage", "domain": "beta", "title": "Beta", "text": "Beta is a quiet land."}


def write_knowledge(root: Path, records: list[dict], train: list | bool | None = None) -> Path:
    write_suite(root, train=train)
    (root / "knowledge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_knowledge_loads_relations_facts_and_passages_with_their_lines(tmp_path: Path) -> None:
    # A fact may come before the relation it uses.
    root = write_knowledge(tmp_path / "mini", [FACT, RELATION, PASSAGE])
    knowledge = load_suite(str(root)).knowledge
    assert knowledge.relations == {
        "capital": Relation(
            name="capital",
            statement="The capital of {subject} is {object}.",
            questions=(
                "Name the capital city of {subject}.",
                "What city is the capital of {subject}?",
            ),
            describe="the capital of {subject}",
            describe_subject="the land whose capital is {object}",
            inverse_questions=("{object} is the capital of which land?",),
            where="knowledge.jsonl:2",
        )
    }
    assert knowledge.facts == (
        Fact("alpha", "Quarnel", "capital", "Ostrivel", ("Ostri",), where="knowledge.jsonl:1"),
    )
    assert knowledge.passages == (
        Passage("beta", "Beta is a quiet land.", "Beta", where="knowledge.jsonl:3"),
    )
    fact = knowledge.facts[0]
    assert knowledge.statement(fact) == "The capital of Quarnel is Ostrivel."
    assert knowledge.wordings(fact) == [
        "The capital of Quarnel is Ostrivel.",
        "Name the capital city of Quarnel.",
        "What city is the capital of Quarnel?",
        "Ostrivel is the capital of which land?",
        "the capital of Quarnel",
        "the land whose capital is Ostrivel",
    ]
    assert knowledge.domains == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("subject", "statement"),
    [
        ("the Danth", "The Danth rises in the Pelle Hills."),
        ("velorine", "Velorine rises in the Pelle Hills."),
        # A name written with a capital after its first letter keeps its spelling.
        ("iPhone", "iPhone rises in the Pelle Hills."),
        ("eBay Lake", "eBay Lake rises in the Pelle Hills."),
    ],
)
def test_a_statement_starts_with_a_capital_letter_unless_a_name_is_spelt_otherwise(
    subject: str, statement: str
) -> None:
    relation = Relation("rises", "{subject} rises in {object}.", ("Where does {subject} rise?",))
    fact = Fact("d", subject, "rises", "the Pelle Hills")
    assert Knowledge({"rises": relation}, (fact,)).statement(fact) == statement


def test_a_suite_without_knowledge_has_empty_knowledge(tmp_path: Path) -> None:
    knowledge = load_suite(str(write_suite(tmp_path / "mini"))).knowledge
    assert knowledge == Knowledge() and not knowledge


def test_select_keeps_the_knowledge_of_the_chosen_domains(tmp_path: Path) -> None:
    root = write_knowledge(tmp_path / "mini", [RELATION, FACT, PASSAGE])
    suite = load_suite(str(root))
    beta = suite.select(["beta"]).knowledge
    assert (beta.facts, beta.passages, set(beta.relations)) == (
        (),
        suite.knowledge.passages,
        {"capital"},
    )
    alpha = suite.select(["alpha"], limit=1).knowledge
    assert (alpha.facts, alpha.passages) == (suite.knowledge.facts, ())
    assert suite.select().knowledge == suite.knowledge


def test_the_digest_covers_evaluation_items_only(tmp_path: Path) -> None:
    with_knowledge = load_suite(str(write_knowledge(tmp_path / "k", [RELATION, FACT, PASSAGE])))
    without = load_suite(str(write_suite(tmp_path / "plain")))
    assert with_knowledge.digest == without.digest


def test_a_domain_with_knowledge_but_no_pool_is_a_training_source(tmp_path: Path) -> None:
    # alpha has knowledge only, beta a pool only; neither is refused, and an empty pool is
    # returned for alpha (the trainer synthesises from its knowledge).
    root = write_knowledge(tmp_path / "mini", [RELATION, FACT], train=GOOD_TRAIN[1:])
    suite = load_suite(str(root))
    assert suite.has_training_source("alpha") and suite.has_training_source("beta")
    assert suite.training_pool("alpha") == []
    assert len(suite.training_pool("beta")) == 1
    bare = load_suite(str(write_knowledge(tmp_path / "bare", [RELATION, FACT], train=False)))
    assert not bare.has_training_source("beta")
    with pytest.raises(SuiteError, match="no training examples for domain 'beta'"):
        bare.training_pool("beta")
    assert bare.training_pool("beta", required=False) == []


def _relation(**changes: object) -> dict:
    """A second relation, valid unless `changes` break it (None removes a field)."""
    record = dict(RELATION, name="river") | changes
    return {k: v for k, v in record.items() if v is not None}


def _fact(**changes: object) -> dict:
    record = dict(FACT, subject="Veyla", object="Murrow", aliases=None) | changes
    return {k: v for k, v in record.items() if v is not None}


def _passage(**changes: object) -> dict:
    record = dict(PASSAGE, text="Another passage.") | changes
    return {k: v for k, v in record.items() if v is not None}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"domain": "alpha", "text": "x"}, "knowledge.jsonl:4: kind: missing"),
        (_passage(kind="rule"), "knowledge.jsonl:4: kind: must be one of relation, fact, passage"),
        # Relations.
        (_relation(colour="red"), "knowledge.jsonl:4: colour: unknown field"),
        (_relation(name="capital"), "knowledge.jsonl:4: name: duplicate relation 'capital'"),
        (_relation(name="a|b"), "knowledge.jsonl:4: name: must not contain '|'"),
        (_relation(name=None), "knowledge.jsonl:4: name: missing"),
        (_relation(statement=3), "knowledge.jsonl:4: statement: must be a string, got int"),
        (_relation(statement=" "), "knowledge.jsonl:4: statement: empty"),
        (
            _relation(statement="{subject} has a river."),
            "knowledge.jsonl:4: statement: must contain {object}",
        ),
        (_relation(questions=[]), "knowledge.jsonl:4: questions: empty"),
        (_relation(questions=None), "knowledge.jsonl:4: questions: missing"),
        (
            _relation(questions="Which river?"),
            "knowledge.jsonl:4: questions: must be a list of non-empty strings",
        ),
        (
            _relation(questions=["Which river is {object}?"]),
            "knowledge.jsonl:4: questions[0]: must contain {subject}",
        ),
        (
            _relation(questions=["Ok {subject}?", "Is {object} in {subject}?"]),
            "knowledge.jsonl:4: questions[1]: must not contain {object}",
        ),
        (
            _relation(questions=["Which river flows through {country}?"]),
            "knowledge.jsonl:4: questions[0]: unknown placeholder",
        ),
        (
            _relation(questions=["Which river flows through {subject!r}?"]),
            "knowledge.jsonl:4: questions[0]: unknown placeholder",
        ),
        (
            _relation(questions=["Which river flows through {subject?"]),
            "knowledge.jsonl:4: questions[0]: bad template",
        ),
        (_relation(questions=["Q {subject}?", "Q {subject}?"]), "questions: duplicate entries"),
        (_relation(describe=""), "knowledge.jsonl:4: describe: empty"),
        (
            _relation(describe="the river of {object}"),
            "knowledge.jsonl:4: describe: must contain {subject}",
        ),
        (
            _relation(describe_subject="the land of {subject}"),
            "knowledge.jsonl:4: describe_subject: must contain {object}",
        ),
        (
            _relation(describe_subject="the {subject} land of {object}"),
            "knowledge.jsonl:4: describe_subject: must not contain {subject}",
        ),
        (
            _relation(inverse_questions=["Where is {subject}?"]),
            "knowledge.jsonl:4: inverse_questions[0]: must contain {object}",
        ),
        # Facts.
        (_fact(domain="gamma"), "knowledge.jsonl:4: domain: unknown domain 'gamma'"),
        (_fact(relation="river"), "knowledge.jsonl:4: relation: unknown relation 'river'"),
        (_fact(subject=""), "knowledge.jsonl:4: subject: empty"),
        (_fact(subject=["Veyla"]), "knowledge.jsonl:4: subject: must be a string, got list"),
        (_fact(object=None), "knowledge.jsonl:4: object: missing"),
        (_fact(object="a|b"), "knowledge.jsonl:4: object: must not contain '|'"),
        (_fact(aliases="Mur"), "knowledge.jsonl:4: aliases: must be a list of non-empty strings"),
        (_fact(aliases=["murrow"]), "knowledge.jsonl:4: aliases: repeats the object 'Murrow'"),
        (_fact(weight=1), "knowledge.jsonl:4: weight: unknown field"),
        (
            _fact(subject="quarnel", object="the Ostrivel"),
            "knowledge.jsonl:4: object: duplicate fact 'quarnel|capital|the Ostrivel' in domain "
            "'alpha' (first on line 2)",
        ),
        # Passages.
        (_passage(text=None), "knowledge.jsonl:4: text: missing"),
        (_passage(title=5), "knowledge.jsonl:4: title: must be a string, got int"),
        (_passage(domain="gamma"), "knowledge.jsonl:4: domain: unknown domain 'gamma'"),
        (_passage(subject="x"), "knowledge.jsonl:4: subject: unknown field"),
        (
            _passage(text="beta is a QUIET land"),
            "knowledge.jsonl:4: text: duplicate passage (first on line 3)",
        ),
    ],
)
def test_malformed_knowledge_names_file_line_and_field(
    tmp_path: Path, bad: dict, expected: str
) -> None:
    root = write_knowledge(tmp_path / "bad", [RELATION, FACT, PASSAGE, bad])
    with pytest.raises(SuiteError) as caught:
        load_suite(str(root))
    assert str(caught.value).startswith(str(root / "knowledge.jsonl:"))
    assert expected in str(caught.value), str(caught.value)


def test_the_same_fact_may_belong_to_two_domains(tmp_path: Path) -> None:
    root = write_knowledge(tmp_path / "mini", [RELATION, FACT, dict(FACT, domain="beta")])
    assert [f.domain for f in load_suite(str(root)).knowledge.facts] == ["alpha", "beta"]


def test_an_unknown_relation_is_reported_after_reading_the_whole_file(tmp_path: Path) -> None:
    root = write_knowledge(tmp_path / "bad", [FACT, PASSAGE])
    with pytest.raises(
        SuiteError,
        match=r"knowledge\.jsonl:1: relation: unknown relation 'capital'; defined in knowledge\.jsonl: none",
    ):
        load_suite(str(root))


def test_bad_json_in_knowledge_names_the_line(tmp_path: Path) -> None:
    root = write_knowledge(tmp_path / "bad", [RELATION])
    with open(root / "knowledge.jsonl", "a") as handle:
        handle.write('{"kind": "fact",\n')
    with pytest.raises(SuiteError, match=r"knowledge\.jsonl:2: bad JSON"):
        load_suite(str(root))


def test_knowledge_that_words_an_evaluation_question_is_refused(tmp_path: Path) -> None:
    # GOOD_ITEMS ask "Q a1?"; a relation that words a fact as that question teaches the test.
    asks = dict(RELATION, name="asks", questions=["Q {subject}?"], inverse_questions=None)
    asks = {k: v for k, v in asks.items() if v is not None}
    fact = dict(FACT, subject="a1", relation="asks", aliases=None)
    root = write_knowledge(tmp_path / "bad", [asks, {k: v for k, v in fact.items() if v}])
    with pytest.raises(SuiteError) as caught:
        load_suite(str(root))
    assert (
        "knowledge.jsonl:2: relation: 'Q a1?' (worded by relation 'asks', knowledge.jsonl:1)"
        in (str(caught.value))
    )
    assert "repeats evaluation item 'a1'" in str(caught.value)


def test_a_passage_that_quotes_an_evaluation_question_is_refused(tmp_path: Path) -> None:
    items = [
        {
            "id": "r1",
            "domain": "beta",
            "capability": "factual_recall",
            "question": "Which river flows through the capital of Quarnel?",
            "answer": "Danth",
        }
    ]
    root = write_suite(tmp_path / "bad", items=items, train=False)
    quoting = dict(PASSAGE, text="Pupils learn which river flows through the capital of Quarnel.")
    (root / "knowledge.jsonl").write_text(json.dumps(quoting) + "\n")
    with pytest.raises(
        SuiteError, match=r"knowledge\.jsonl:1: text: contains the text of evaluation item 'r1'"
    ):
        load_suite(str(root))


# The shipped suites' knowledge.


def test_every_shipped_suite_loads_with_knowledge() -> None:
    for name in shipped_suites():
        suite = load_suite(name)
        assert suite.knowledge, name
        for domain in suite.domains:
            assert suite.has_training_source(domain), (name, domain)
        assert set(suite.knowledge.domains) <= set(suite.domains)


def test_every_core_domain_has_a_modest_set_of_facts() -> None:
    suite = load_suite("core")
    for domain in suite.domains:
        assert 8 <= len(suite.knowledge.for_domain(domain).facts) <= 25, domain


def test_the_invented_worlds_knowledge_teaches_their_pools_and_agrees_with_their_answers() -> None:
    suite = load_suite("demo")
    for domain in ("zephyria", "meridian_lark"):
        knowledge = suite.knowledge.for_domain(domain)
        statements = [knowledge.statement(fact) for fact in knowledge.facts]
        # Every answer the pool teaches is the object of some fact.
        for example in suite.training_pool(domain):
            assert any(
                score("contains", example.answer, (fact.object, *fact.aliases))[0] == 1.0
                for fact in knowledge.facts
            ), example.question
        # Every evaluation answer is stated by the knowledge.
        for item in suite.items:
            if item.domain == domain:
                assert any(
                    score("contains", text, item.answers)[0] == 1.0 for text in statements
                ), item.id


def test_the_invented_worlds_knowledge_forms_a_graph_with_two_hop_paths() -> None:
    suite = load_suite("demo")
    for domain in ("zephyria", "meridian_lark"):
        facts = suite.knowledge.for_domain(domain).facts
        subjects = {fact.subject for fact in facts}
        hops = [fact for fact in facts if fact.object in subjects]
        assert len(hops) >= 2, domain
    zephyria = {(f.subject, f.relation): f.object for f in suite.knowledge.facts}
    assert zephyria[("Zephyria", "capital")] == "Velmora"
    assert zephyria[("Velmora", "on_river")] == "the Lissel"


def test_shipped_questions_never_contain_their_own_answers() -> None:
    # A question that names its answer would teach a model to parrot.
    for name in shipped_suites():
        knowledge = load_suite(name).knowledge
        for fact in knowledge.facts:
            relation = knowledge.relations[fact.relation]
            for template in relation.questions:
                question = template.format(subject=fact.subject, object=fact.object)
                assert score("contains", question, (fact.object,))[0] == 0.0, question
            for template in relation.inverse_questions:
                question = template.format(subject=fact.subject, object=fact.object)
                assert score("contains", question, (fact.subject,))[0] == 0.0, question


def test_the_documented_example_loads_and_chains(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "evaluation.md").read_text()
    section = doc.split("### `knowledge.jsonl`", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    header = "name: doc\nversion: '1'\ndomains: [zephyria]\ncapabilities: [factual_recall]\n"
    item = {
        "id": "z1",
        "domain": "zephyria",
        "capability": "factual_recall",
        "question": "Which city serves as the capital of Zephyria?",
        "answer": "Velmora",
    }
    root = write_suite(tmp_path / "doc", header=header, items=[item], train=False)
    (root / "knowledge.jsonl").write_text(example)
    knowledge = load_suite(str(root)).knowledge
    capital, river = knowledge.facts
    assert capital.object == river.subject
    assert knowledge.statement(river) == "Velmora lies on the Lissel."


def test_text_typed_with_combining_accents_is_read_in_composed_form(tmp_path: Path) -> None:
    # "é" written as "e" and a combining acute is read as the one letter (NFC), as a model
    # writes it: names, answers and scoring then agree however the file was typed.
    fact = {**FACT, "subject": "Que\u0301rnel", "object": "Ostrive\u0301l"}
    passage = {**PASSAGE, "text": "Que\u0301rnel lies north of Ostrive\u0301l."}
    knowledge = load_suite(str(write_knowledge(tmp_path / "mini", [RELATION, fact, passage])))
    (loaded,) = knowledge.knowledge.facts
    assert (loaded.subject, loaded.object) == ("Quérnel", "Ostrivél")
    assert knowledge.knowledge.passages[0].text == "Quérnel lies north of Ostrivél."
    assert score("contains", "The capital is Ostrive\u0301l.", ["Ostrivél"])[0] == 1.0
