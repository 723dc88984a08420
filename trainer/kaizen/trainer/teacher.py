"""Context distillation: a teacher answers synthesised questions with the facts in its prompt.

The teacher (the model being improved, with its adapters, unless another is named) gets the
facts an item was made from, and every fact about the entities they mention, as a short
reference before the question. Its answer is kept only when it states what the knowledge
says (the item's expected words, by the `contains` scorer); the student then learns to
give that answer with no reference in the prompt. A wrong or empty answer is dropped and
counted, so the data card shows how much the teacher could be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaizen.runtime.scoring import normalize, score_contains
from kaizen.runtime.suites.knowledge import Knowledge
from kaizen.trainer.synthesis import Candidate

#: Most facts put in one teacher prompt.
MAX_REFERENCE_FACTS = 12
TEACHER_MAX_NEW_TOKENS = 48


@dataclass
class TeacherReport:
    """What the teacher did: answers asked, accepted, and why the rest were dropped."""

    asked: int = 0
    accepted: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)
    """One entry per rejected answer: question, teacher answer, reason."""


def reference(knowledge: Knowledge, item: Candidate) -> list[str]:
    """The statements a teacher is shown for `item`: its facts, then facts on the same entities."""
    keys = set(item.facts)
    entities = {normalize(part) for key in item.facts for part in key.split("|")[::2]}
    own = [f for f in knowledge.facts if f.key in keys]
    near = [
        f
        for f in knowledge.facts
        if f.key not in keys and {normalize(f.subject), normalize(f.object)} & entities
    ]
    chosen = (own + near)[:MAX_REFERENCE_FACTS]
    return [knowledge.statement(f) for f in chosen]


def teacher_question(knowledge: Knowledge, item: Candidate) -> str:
    """The teacher's prompt text: a reference block, then the question."""
    facts = "\n".join(f"- {s}" for s in reference(knowledge, item))
    return (
        f"Reference facts:\n{facts}\n\nUsing only these facts, answer in one or two "
        f"sentences.\nQuestion: {item.question}"
    )


def distill(
    items: Sequence[Candidate],
    knowledge: Knowledge,
    generate: Callable[[list[str]], list[str]],
) -> tuple[list[Candidate], TeacherReport]:
    """Ask the teacher every item; return the items with its checked answers, and a report.

    `generate` maps teacher question texts to answers (batched by the caller). Items without
    an expected answer (passages) are kept as they are and not asked.
    """
    report = TeacherReport()
    asked = [item for item in items if item.expected]
    answers = generate([teacher_question(knowledge, item) for item in asked]) if asked else []
    by_question = {}
    for item, answer in zip(asked, answers, strict=True):
        report.asked += 1
        answer = " ".join(answer.split())
        score, _ = score_contains(answer, [item.expected])
        if not answer:
            report.dropped.append({"question": item.question, "answer": "", "reason": "empty"})
        elif score < 1.0:
            report.dropped.append(
                {
                    "question": item.question,
                    "answer": answer[:300],
                    "reason": f"does not state {item.expected!r}",
                }
            )
        else:
            report.accepted += 1
            by_question[item.question] = Candidate(
                item.question, answer, item.capability, "teacher:" + item.kind, item.facts,
                item.expected,
            )  # fmt: skip
    kept = [
        by_question.get(item.question, item)
        for item in items
        if item.question in by_question or not item.expected
    ]
    return kept, report


def generator(
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int = 16,
    max_new_tokens: int = TEACHER_MAX_NEW_TOKENS,
) -> Callable[[list[str]], list[str]]:
    """Greedy batched generation with the model's chat template (left padding)."""
    import torch

    from kaizen.runtime.models import format_prompt

    def generate(questions: list[str]) -> list[str]:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        out: list[str] = []
        device = next(model.parameters()).device
        for start in range(0, len(questions), batch_size):
            prompts = [format_prompt(tokenizer, q) for q in questions[start : start + batch_size]]
            batch = tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            with torch.no_grad():
                generated = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = generated[:, batch["input_ids"].shape[1] :]
            for row in tokenizer.batch_decode(new, skip_special_tokens=True):
                out.append(row.strip().split("\n")[0].strip())
        return out

    return generate
