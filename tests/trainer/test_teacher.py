"""Context distillation: the teacher's prompt, the check of its answers, and real generation."""

from __future__ import annotations

from pathlib import Path

from kaizen.trainer.synthesis import candidates
from kaizen.trainer.teacher import distill, generator, reference, teacher_question
from tests.trainer.test_synthesis import KNOWLEDGE


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


def test_the_generator_answers_every_question_with_a_real_model(tiny_model_dir: Path) -> None:
    from kaizen.runtime.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = load_model(str(tiny_model_dir), [])
    generate = generator(model, tokenizer, batch_size=2, max_new_tokens=4)
    answers = generate(["What is one?", "What is two?", "And three?"])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    # Greedy: the same question gives the same answer alone and in a batch.
    assert generate(["And three?"]) == answers[2:]
