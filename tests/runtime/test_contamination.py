"""The contamination guard: which training lines carry an evaluation item, and why."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

import pytest

from kaizen.runtime.contamination import MIN_WORDS, NGRAM, ContaminationGuard, Dropped
from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites import EvalItem, Suite, TrainExample, load_suite, shipped_suites

K = TypeVar("K")
V = TypeVar("V")


def _item(item_id: str, question: str, **fields: object) -> EvalItem:
    return EvalItem(
        id=item_id,
        domain="d",
        capability="factual_recall",
        question=question,
        answers=("x",),
        scorer="contains",
        **fields,  # type: ignore[arg-type]
    )


ITEMS = [
    _item("short", "Which river flows through the capital of Zephyria?"),
    _item("tiny", "What is 12 times 12?"),
    _item(
        "long",
        "Add the number of years between the fall of Constantinople and the Russian Revolution "
        "to the number of years between the sealing of the Magna Carta and the end of the First "
        "World War. What is the total?",
    ),
    _item(
        "premise",
        "Under that arrangement, which city would be the capital of the United Kingdom?",
        context="Imagine that the United Kingdom moved its capital to the city that is the capital of Chile.",
    ),
    _item(
        "chat",
        "Again?",
        messages=(
            ("system", "Answer in one word."),
            ("user", "Which metal has the chemical symbol Sn?"),
            ("assistant", "Tin."),
            ("user", "Again?"),
        ),
    ),
    _item("minutes", "How many minutes are in 3 hours and 45 minutes?"),
]
GUARD = ContaminationGuard.from_items(ITEMS)


@pytest.mark.parametrize(
    ("question", "answer", "reason"),
    [
        # Rule 1: the question is an evaluation text, after normalisation.
        (
            "which RIVER flows through capital of Zephyria",
            None,
            "question repeats evaluation item 'short'",
        ),
        ("What is 12 times 12 ?", "144", "question repeats evaluation item 'tiny'"),
        ("Again?", None, "question repeats evaluation item 'chat'"),
        (
            "Imagine that the United Kingdom moved its capital to the city that is the capital of Chile.",
            None,
            "question repeats evaluation item 'premise'",
        ),
        # Rule 2: a whole short evaluation text inside a longer line.
        (
            "Suppose Velmora were dry. Which river flows through the capital of Zephyria?",
            None,
            "question contains the text of evaluation item 'short': "
            "'which river flows through capital of zephyria'",
        ),
        (
            "Quick one: what is 12 times 12? Answer in digits.",
            None,
            "question contains the text of evaluation item 'tiny'",
        ),
        (
            "Name a river.",
            "You asked which river flows through the capital of Zephyria: the Lissel.",
            "answer contains the text of evaluation item 'short'",
        ),
        (
            "Which metal is Sn?",
            "Someone asked: which metal has the chemical symbol Sn? It is tin.",
            "answer contains the text of evaluation item 'chat'",
        ),
        # Rule 3: a run of NGRAM words of a longer evaluation text.
        (
            "How many years lie between the sealing of the Magna Carta and the end of the First World War?",
            None,
            f"question shares {NGRAM} words with evaluation item 'long': "
            "'between sealing of magna carta and end of first world'",
        ),
        (
            "Where did the capital go?",
            "The United Kingdom moved its capital to the city that is the capital of Chile, Santiago.",
            f"answer shares {NGRAM} words with evaluation item 'premise'",
        ),
    ],
)
def test_contaminated_lines_are_named_with_the_item_and_the_rule(
    question: str, answer: str | None, reason: str
) -> None:
    found = GUARD.check(question, answer)
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # A paraphrase is not the test: the pools teach the same facts in other words.
        ("Which river runs through Velmora, the capital of Zephyria?", "The Lissel."),
        ("How much is 12 times 12?", "144"),
        # The same template with another value in its slot shares 8 words, under NGRAM.
        ("How many minutes are in 3 hours and 5 minutes?", "185 minutes."),
        # A run one word short of NGRAM.
        ("Between the sealing of the Magna Carta and the end of the First war, what?", None),
        # A short evaluation text (under MIN_WORDS) inside a line is an ordinary phrase.
        ("Again? Say it once more.", "Tin. Again, tin."),
        # A short system turn is an instruction, not the test.
        ("Answer in one word: which metal is Sn?", "Tin."),
        ("Answer in one word.", None),
        # The answer is only checked for overlap, never for being a short question itself.
        ("Say the words.", "Again?"),
        ("", None),
    ],
)
def test_clean_lines_pass(question: str, answer: str | None) -> None:
    assert GUARD.check(question, answer) is None


def test_the_rule_constants_are_documented_values() -> None:
    assert (NGRAM, MIN_WORDS) == (10, 4)
    assert ContaminationGuard.from_items(ITEMS, n=8).check(
        "How many minutes are in 3 hours and 5 minutes?"
    ) == (
        "question shares 8 words with evaluation item 'minutes': "
        "'how many minutes are in 3 hours and'"
    )
    with pytest.raises(ValueError, match="n must be at least 4"):
        ContaminationGuard.from_items(ITEMS, n=3)


def test_filter_keeps_order_and_lists_what_it_dropped_with_the_reason() -> None:
    lines = [
        TrainExample("d", "What is the capital of Zephyria?", "Velmora."),
        TrainExample("d", "What is 12 times 12?", "144"),
        {
            "question": "Name a river.",
            "answer": "Which river flows through the capital of Zephyria",
        },
        {"question": "What is the currency of Zephyria?", "answer": "The glint."},
    ]
    kept, dropped = GUARD.filter(lines)
    assert kept == [lines[0], lines[3]]
    assert dropped == [
        Dropped(lines[1], "question repeats evaluation item 'tiny'"),
        Dropped(
            lines[2],
            "answer contains the text of evaluation item 'short': "
            "'which river flows through capital of zephyria'",
        ),
    ]


def test_filter_reads_other_line_shapes_through_a_function() -> None:
    lines = [("What is 12 times 12?", "144"), ("What is 11 times 12?", "132")]
    kept, dropped = GUARD.filter(lines, texts=lambda pair: pair)
    assert kept == [lines[1]] and [d.line for d in dropped] == [lines[0]]


def test_an_empty_guard_passes_everything() -> None:
    guard = ContaminationGuard.from_items([])
    assert not guard and GUARD
    assert guard.check("What is 12 times 12?") is None


class _Counting(Mapping[K, V]):
    """A read-only mapping that counts the keys looked at: look-ups and keys iterated over."""

    def __init__(self, data: Mapping[K, V]) -> None:
        self.data = dict(data)
        self.looked_at = 0

    def __getitem__(self, key: K) -> V:
        self.looked_at += 1
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        self.looked_at += 1
        return key in self.data

    def __iter__(self) -> Iterator[K]:
        for key in self.data:
            self.looked_at += 1
            yield key

    def __len__(self) -> int:
        return len(self.data)


def test_thousands_of_lines_cost_look_ups_per_word_not_per_item() -> None:
    # "Thousands of lines take a fraction of a second", counted rather than timed (a timing
    # fails on a busy machine): a line costs a few look-ups per word of it, however many
    # evaluation items there are, never a pass over them.
    lines = [
        {
            # Each question starts like every item below, so its phrases are looked up.
            "question": f"Which river flows through the new town number {k} of the land?",
            "answer": "The river near that town is the Lissel, which flows south to the sea.",
        }
        for k in range(3000)
    ]
    words = sum(len(normalize(line["question"] + " " + line["answer"]).split()) for line in lines)

    def looked_at(items: int) -> tuple[int, int]:
        built = ContaminationGuard.from_items(
            _item(
                f"i{k}", f"Which river flows through the old town number {k} of the land of Zeph?"
            )
            for k in range(items)
        )
        exact, phrases = _Counting(built.exact), _Counting(built.phrases)
        guard = ContaminationGuard(exact=exact, phrases=phrases, n=built.n)
        guard.check("warm up")  # whatever the guard indexes once, before the first line
        exact.looked_at = phrases.looked_at = 0
        kept, dropped = guard.filter(lines)
        assert len(kept) == 3000 and not dropped
        return exact.looked_at, phrases.looked_at

    few, many = looked_at(50), looked_at(500)
    assert few == many  # ten times the items, not one look-up more
    assert 0 < many[1] <= words and many[0] <= 2 * len(lines)


# The shipped suites, each against every suite's evaluation items: a model trained on one
# suite's data is often scored on the other.


def _shipped() -> tuple[list[Suite], ContaminationGuard]:
    suites = [load_suite(name) for name in shipped_suites()]
    return suites, ContaminationGuard.from_items(item for s in suites for item in s.items)


def test_no_shipped_training_pool_carries_any_shipped_evaluation_item() -> None:
    suites, guard = _shipped()
    assert {s.name for s in suites} >= {"demo", "core"}
    found = [
        (suite.name, dropped.line.question, dropped.reason)
        for suite in suites
        for dropped in guard.filter(suite.training)[1]
    ]
    assert found == []


def test_no_shipped_knowledge_words_any_shipped_evaluation_item() -> None:
    # Statements, every question and inverse question filled with each fact, descriptions,
    # and passages: what synthesis starts from.
    suites, guard = _shipped()
    found = []
    for suite in suites:
        knowledge = suite.knowledge
        for fact in knowledge.facts:
            for text in knowledge.wordings(fact):
                reason = guard.check_text(text)
                if reason:
                    found.append((suite.name, fact.where, text, reason))
        for passage in knowledge.passages:
            for text in (passage.title or "", passage.text):
                reason = guard.check_text(text)
                if reason:
                    found.append((suite.name, passage.where, text, reason))
    assert found == []


def test_the_demo_pool_no_longer_holds_core_evaluation_questions() -> None:
    core = ContaminationGuard.from_items(load_suite("core").items)
    demo = load_suite("demo")
    for question in ("What is the capital of Germany?", "What is 12 times 12?"):
        assert core.check(question) is not None
        assert all(normalize(t.question) != normalize(question) for t in demo.training)
    # The facts are still taught, in other words.
    answers = [t.answer for t in demo.training]
    assert "The capital of Germany is Berlin." in answers and "12 times 12 is 144." in answers
