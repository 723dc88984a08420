"""Context distillation: the teacher's prompt, the check of its answers, and real generation."""

from __future__ import annotations

from pathlib import Path

from kaizen.runtime.suites.knowledge import Fact, Knowledge
from kaizen.trainer.synthesis import candidates
from kaizen.trainer.teacher import (
    PARAPHRASE_SHOTS,
    Generate,
    Prompt,
    answer_words,
    distill,
    generator,
    paraphrase,
    paraphrase_chat,
    reference,
    teacher_question,
)
from tests.trainer.test_synthesis import KNOWLEDGE, SEVERAL


def test_the_teacher_sees_the_items_facts_and_their_neighbours() -> None:
    chain = next(c for c in candidates(KNOWLEDGE) if c.kind == "chain")
    facts = reference(KNOWLEDGE, chain)
    assert facts[:2] == [KNOWLEDGE.statement(f) for f in KNOWLEDGE.facts if f.key in chain.facts]
    assert "The currency of Quarnel is the brisk." in facts  # same entity, Quarnel
    text = teacher_question(KNOWLEDGE, chain)
    assert text.startswith("Reference facts:\n- ") and text.endswith(chain.question)


def test_answers_that_do_not_state_the_fact_are_dropped() -> None:
    items = [c for c in candidates(KNOWLEDGE) if c.kind in ("surface", "chain")][:6]

    def teacher(questions: list[str]) -> list[str]:
        # Right for the first half, wrong or empty for the rest.
        out = []
        for index, (question, item) in enumerate(zip(questions, items, strict=True)):
            assert item.question in question
            out.append(
                f"It is {item.expected}." if index < 3 else ("" if index == 3 else "No idea.")
            )
        return out

    kept, report = distill(items, KNOWLEDGE, teacher)
    assert (report.asked, report.accepted, len(report.dropped)) == (6, 3, 3)
    assert [k.answer for k in kept] == [f"It is {i.expected}." for i in items[:3]]
    assert all(k.kind.startswith("teacher:") for k in kept)
    assert {d["reason"] for d in report.dropped} >= {"empty"}


def test_an_answer_must_state_every_value_of_a_question_with_several() -> None:
    (border,) = [c for c in candidates(SEVERAL) if c.question == "Which land does Veldra border?"]
    replies = iter(["Veldra borders Marn.", "Veldra borders Marn and Tessaly."])
    kept, report = distill([border, border], SEVERAL, lambda qs: [next(replies) for _ in qs])
    assert report.dropped == [
        {
            "question": border.question,
            "answer": "Veldra borders Marn.",
            "reason": "does not state 'Tessaly'",
        }
    ]
    assert [k.answer for k in kept] == ["Veldra borders Marn and Tessaly."] * 2
    assert kept[0].answers == ("Marn", "Tessaly")
    # A rewording may not give away any of the values.
    assert answer_words(SEVERAL, border) == ["Marn", "Tessaly"]


def test_an_answer_that_names_a_thing_nobody_told_the_teacher_of_is_dropped() -> None:
    items = [c for c in candidates(KNOWLEDGE) if c.kind == "surface"][:3]
    replies = iter(
        [
            f"It is {items[0].expected}, in the Kingdom of Arn.",  # invents a name
            f"{items[1].expected}.",  # a name opening its sentence: the expected answer
            f"Surely it is {items[2].expected}.",  # "Surely" opens a sentence: no name
        ]
    )

    def teacher(questions: list[str]) -> list[str]:
        return [next(replies) for _ in questions]

    kept, report = distill(items, KNOWLEDGE, teacher)
    assert report.accepted == 2
    assert [d["reason"] for d in report.dropped] == [
        "names 'Kingdom of Arn', which neither the question nor the reference names"
    ]
    assert [k.question for k in kept] == [i.question for i in items[1:]]


def test_the_generator_answers_every_question_with_a_real_model(tiny_model_dir: Path) -> None:
    from kaizen.runtime.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = load_model(str(tiny_model_dir), [])
    generate = generator(model, tokenizer, batch_size=2, max_new_tokens=4)
    answers = generate(["What is one?", "What is two?", "And three?"])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    # Greedy: the same question gives the same answer alone and in a batch.
    assert generate(["And three?"]) == answers[2:]


def _rewording_teacher(
    replies: dict[str, list[str]], round_trip: dict[str, str], asked: list[Prompt]
) -> Generate:
    """A teacher that rewords by `replies` (question → one per variant) and answers a
    rewording given its facts by `round_trip` (rewording → answer; default: no idea)."""

    def teacher(prompts: list[Prompt]) -> list[str]:
        asked.extend(prompts)
        out = []
        for prompt in prompts:
            if isinstance(prompt, str):  # the round trip: facts, then the rewording
                assert prompt.startswith("Reference facts:\n")
                out.append(round_trip.get(prompt.rsplit("Question: ", 1)[1], "No idea."))
                continue
            question = prompt[-1]["content"]
            variant = next(v for v in range(3) if paraphrase_chat(question, v) == prompt)
            out.append(replies[question][variant])
        return out

    return teacher


def test_a_rewording_is_kept_only_when_it_asks_the_same_of_the_same_entities() -> None:
    found = candidates(KNOWLEDGE)
    capital = next(c for c in found if c.question == "What is the capital of Quarnel?")
    inverse = next(c for c in found if c.kind == "inverse")  # Ostrivel is the capital of …?
    chain = next(c for c in found if c.kind == "chain")  # not single-fact recall: not asked
    replies = {
        capital.question: [
            "Which city is Quarnel governed from?",  # kept
            "Quarnel is governed from Ostrivel?",  # gives the answer away
        ],
        inverse.question: [
            "Ostrivel is the seat of government of which land",  # not a question
            "Which land is governed from this city?",  # drops the entity Ostrivel
        ],
    }
    round_trip = {"Which city is Quarnel governed from?": "It is governed from Ostrivel."}
    asked: list[Prompt] = []
    teacher = _rewording_teacher(replies, round_trip, asked)

    made, report = paraphrase([capital, inverse, chain], KNOWLEDGE, teacher, 2)
    chats = [p for p in asked if not isinstance(p, str)]
    assert len(chats) == 4 and not any(chain.question == c[-1]["content"] for c in chats)
    # Only the rewording that passed its checks went back to the teacher, with its facts.
    assert [p for p in asked if isinstance(p, str)] == [
        teacher_question(KNOWLEDGE, made[0])
    ] and "The capital of Quarnel is Ostrivel." in asked[-1]
    assert [(m.question, m.answer, m.kind) for m in made] == [
        ("Which city is Quarnel governed from?", capital.answer, "teacher:paraphrase")
    ]
    assert made[0].facts == capital.facts and made[0].expected == "Ostrivel"
    assert (report.asked, report.accepted) == (4, 1)
    assert [d["reason"] for d in report.dropped] == [
        "gives the answer 'Ostrivel' away",
        "is not a question",
        "does not name 'Ostrivel'",
    ]


def test_a_rewording_the_teacher_answers_otherwise_from_the_facts_is_dropped() -> None:
    capital = next(
        c for c in candidates(KNOWLEDGE) if c.question == "What is the capital of Quarnel?"
    )
    replies = {capital.question: ["What money is used in Quarnel?", "Where is Quarnel ruled from?"]}
    # Given the facts, the teacher answers the drifted rewording with the currency.
    round_trip = {
        "What money is used in Quarnel?": "The brisk.",
        "Where is Quarnel ruled from?": "From Ostrivel.",
    }
    made, report = paraphrase([capital], KNOWLEDGE, _rewording_teacher(replies, round_trip, []), 2)
    assert [m.question for m in made] == ["Where is Quarnel ruled from?"]
    assert (report.asked, report.accepted) == (2, 1)
    assert report.dropped == [
        {
            "question": capital.question,
            "answer": "What money is used in Quarnel?",
            "reason": "is not answered 'Ostrivel' by the teacher",
        }
    ]


def test_a_rewording_that_names_an_alias_of_the_answer_or_runs_long_is_dropped() -> None:
    knowledge = Knowledge(
        relations=KNOWLEDGE.relations,
        facts=[Fact("quarn", "Quarnel", "capital", "Ostrivel", aliases=("Ostri",))],
    )
    capital = next(
        c for c in candidates(knowledge) if c.question == "What is the capital of Quarnel?"
    )
    assert answer_words(knowledge, capital) == ["Ostrivel", "Ostri"]
    long = "Which city, of all the cities on the island, is " + "truly " * 20 + "Quarnel's?"
    replies = {capital.question: ["Is Ostri the capital of Quarnel?", long]}
    made, report = paraphrase([capital], knowledge, _rewording_teacher(replies, {}, []), 2)
    assert made == [] and [d["reason"] for d in report.dropped] == [
        "gives the answer 'Ostri' away",
        "is too long",
    ]


def test_each_rewording_is_asked_with_the_worked_examples_in_another_order() -> None:
    chats = [paraphrase_chat("Who founded Quarnel?", v) for v in range(3)]
    assert all(chat[0]["role"] == "system" and chat[-1] == {
        "role": "user", "content": "Who founded Quarnel?"} for chat in chats)  # fmt: skip
    # Worked examples: user and assistant turns, alternating; a different first one each time.
    assert all(len(chat) == 2 + 2 * len(PARAPHRASE_SHOTS) for chat in chats)
    assert len({chat[1]["content"] for chat in chats}) == 3
    turned = len(PARAPHRASE_SHOTS)  # past the last order, the first comes round again
    assert paraphrase_chat("Who founded Quarnel?", turned) == paraphrase_chat(
        "Who founded Quarnel?", 0
    )


def test_a_rewording_that_repeats_a_question_in_the_set_is_dropped() -> None:
    capital = next(
        c for c in candidates(KNOWLEDGE) if c.question == "What is the capital of Quarnel?"
    )
    other = next(
        c for c in candidates(KNOWLEDGE) if c.question.startswith("Which city is the capital")
    )
    made, report = paraphrase(
        [capital, other], KNOWLEDGE, lambda prompts: [other.question] * len(prompts), 1
    )
    assert made == [] and {d["reason"] for d in report.dropped} == {
        "repeats a question already in the set"
    }


def test_the_bundled_size_of_teacher_rewords_through_the_real_generator(
    tiny_model_dir: Path,
) -> None:
    from kaizen.runtime.models import load_model, load_tokenizer

    generate = generator(
        load_model(str(tiny_model_dir), []), load_tokenizer(str(tiny_model_dir)), max_new_tokens=8
    )
    recall = [c for c in candidates(KNOWLEDGE) if c.kind in ("surface", "inverse")]
    made, report = paraphrase(recall, KNOWLEDGE, generate, 3)
    # Every recall question is asked three ways; each reply is kept or dropped with a reason.
    assert report.asked == 3 * len(recall)
    assert report.accepted + len(report.dropped) == report.asked == len(made) + len(report.dropped)
    assert all(d["reason"] for d in report.dropped)
