"""Context distillation: a teacher answers synthesised questions with the facts in its prompt,
and (optionally) rewords the recall questions.

The teacher (the model being improved, with its adapters, unless another is named) gets the
facts an item was made from, and every fact about the entities they mention, as a short
reference before the question. Its answer is kept only when it states what the knowledge
says (the item's expected words, by the `contains` scorer); the student then learns to
give that answer with no reference in the prompt. A wrong or empty answer is dropped and
counted, so the data card shows how much the teacher could be trusted.

A relation's question templates give each fact only a few wordings, and a student that saw a
fact asked one way may miss it asked another ("sells abroad" for "exports"). With
paraphrases, the teacher rewords each recall question (`paraphrase`). It is shown a few
worked rewordings as earlier turns of a chat (`paraphrase_chat`): the bundled 135M model
answers a bare "reword this" instruction instead of following it, but continues a pattern
of turns. A rewording joins the set, with the original's answer, only when it is a
question of sensible length that names every entity the original names, does not contain
the answer or one of its aliases, repeats no question of the set, and the teacher, given the
facts, answers it with the original's answer (a round trip: a rewording that asks something
else is answered with something else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from kaizen.runtime.scoring import normalize, score_contains
from kaizen.runtime.suites.knowledge import Knowledge
from kaizen.runtime.suites.names import mentions, names_in, split_sentences
from kaizen.trainer.synthesis import Candidate

#: What a teacher is (a chat's system turn) when it rewords questions.
PARAPHRASE_SYSTEM = (
    "You reword questions. Reply with one question that asks the same thing in different "
    "words, keeping every name."
)
#: Worked rewordings shown to the teacher as earlier turns. General knowledge on relations a
#: suite is unlikely to ask about, so they show the task without lending a suite's wording.
PARAPHRASE_SHOTS = (
    ("Who wrote the novel Emma?", "Which author is the novel Emma by?"),
    ("How tall is Mount Elbrus?", "What is the height of Mount Elbrus?"),
    (
        "When did the Hanseatic League end?",
        "In what year did the Hanseatic League come to an end?",
    ),
    ("Which instrument did Clara Schumann play?", "What did Clara Schumann play as a musician?"),
)
#: Most rewordings asked per question: one per order of the worked examples.
MAX_PARAPHRASES = 3
#: Synthesised kinds whose questions are reworded: single-fact recall (`synthesis.recall_items`).
PARAPHRASED_KINDS = ("surface", "inverse")
#: A rewording longer than this many times the original is not a rewording of it.
PARAPHRASE_MAX_GROWTH = 3
#: Most facts put in one teacher prompt.
MAX_REFERENCE_FACTS = 12
TEACHER_MAX_NEW_TOKENS = 48

Prompt: TypeAlias = str | list[dict[str, str]]
"""What a teacher is given: a question (one user turn), or a whole chat ending in a user turn."""
Generate: TypeAlias = Callable[[list[Prompt]], list[str]]
"""A teacher: prompts in, one reply each out (batched by the teacher)."""


@dataclass
class TeacherReport:
    """What the teacher did: answers asked, accepted, and why the rest were dropped."""

    asked: int = 0
    accepted: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)
    """One entry per rejected answer: question, teacher answer, reason."""


def reference(knowledge: Knowledge, item: Candidate) -> list[str]:
    """The statements a teacher is shown for `item`: its facts, then facts on the same entities,
    then the passage sentences it was made from."""
    keys = set(item.facts)
    entities = {normalize(part) for key in item.facts for part in key.split("|")[::2]}
    own = [f for f in knowledge.facts if f.key in keys]
    near = [
        f
        for f in knowledge.facts
        if f.key not in keys and {normalize(f.subject), normalize(f.object)} & entities
    ]
    chosen = (own + near)[:MAX_REFERENCE_FACTS]
    said = [knowledge.statement(f) for f in chosen]
    return said + [sentence for sentence in item.context if sentence not in said]


def teacher_question(
    knowledge: Knowledge, item: Candidate, shown: Sequence[str] | None = None
) -> str:
    """The teacher's prompt text: a reference block (`shown`, where the caller has it: else
    `reference`), then the question."""
    facts = "\n".join(f"- {s}" for s in (reference(knowledge, item) if shown is None else shown))
    return (
        f"Reference facts:\n{facts}\n\nUsing only these facts, answer in one or two "
        f"sentences.\nQuestion: {item.question}"
    )


def unknown_name(answer: str, given: Sequence[str]) -> str | None:
    """A name `answer` gives that none of `given` (the question and the reference the teacher
    was shown) mentions, or None: a teacher that names a thing it was not told of ("the
    island nation Korrain", "Korrin's Kingdom") is inventing, even where it also states the
    expected answer."""
    for sentence in split_sentences(answer):
        for name in names_in(sentence):
            if " " not in name and sentence.startswith(name):
                continue  # one capitalised word opening a sentence ("Water …") may be no name
            if not any(mentions(text, name) for text in given):
                return name
    return None


def distill(
    items: Sequence[Candidate],
    knowledge: Knowledge,
    generate: Generate,
) -> tuple[list[Candidate], TeacherReport]:
    """Ask the teacher every item; return the items with its checked answers, and a report.

    `generate` maps teacher question texts to answers (batched by the caller). Items without
    an expected answer (passages) are kept as they are and not asked.
    """
    report = TeacherReport()
    asked = [item for item in items if item.expected]
    shown = [reference(knowledge, item) for item in asked]
    prompts: list[Prompt] = [
        teacher_question(knowledge, i, s) for i, s in zip(asked, shown, strict=True)
    ]
    answers = generate(prompts) if asked else []
    by_question = {}
    for item, facts, answer in zip(asked, shown, answers, strict=True):
        report.asked += 1
        answer = " ".join(answer.split())
        missing = [word for word in item.answers if score_contains(answer, [word])[0] < 1.0]
        stranger = unknown_name(answer, [item.question, *facts])
        if not answer:
            report.dropped.append({"question": item.question, "answer": "", "reason": "empty"})
        elif missing or stranger is not None:
            reason = (
                f"does not state {missing[0]!r}"
                if missing
                else f"names {stranger!r}, which neither the question nor the reference names"
            )
            report.dropped.append(
                {"question": item.question, "answer": answer[:300], "reason": reason}
            )
        else:
            report.accepted += 1
            by_question[item.question] = replace(item, answer=answer, kind="teacher:" + item.kind)
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
) -> Generate:
    """Greedy batched generation with the model's chat template (left padding).

    A prompt is a question (sent as one user turn) or a whole chat (`Prompt`).
    """
    import torch

    from kaizen.runtime.models import format_chat, format_prompt

    def generate(questions: list[Prompt]) -> list[str]:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        out: list[str] = []
        device = next(model.parameters()).device
        for start in range(0, len(questions), batch_size):
            prompts = [
                format_prompt(tokenizer, q) if isinstance(q, str) else format_chat(tokenizer, q)
                for q in questions[start : start + batch_size]
            ]
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


def paraphrase_chat(question: str, variant: int) -> list[dict[str, str]]:
    """The chat that asks a teacher for rewording number `variant` of `question`.

    Each variant shows the worked rewordings in another order, so greedy decoding gives
    different rewordings rather than the same one again.
    """
    shift = variant % len(PARAPHRASE_SHOTS)
    shots = PARAPHRASE_SHOTS[shift:] + PARAPHRASE_SHOTS[:shift]
    turns = [{"role": "system", "content": PARAPHRASE_SYSTEM}]
    for asked, reworded in shots:
        turns += [{"role": "user", "content": asked}, {"role": "assistant", "content": reworded}]
    return [*turns, {"role": "user", "content": question}]


def answer_words(knowledge: Knowledge, item: Candidate) -> list[str]:
    """The item's expected answers (`Candidate.answers`) and the aliases its facts give them."""
    words = list(item.answers)
    expected = {normalize(word) for word in words}
    for fact in knowledge.facts:
        if fact.key in item.facts and normalize(fact.object) in expected:
            words += [alias for alias in fact.aliases if alias not in words]
    return words


def paraphrase_problem(
    item: Candidate, text: str, taken: set[str], answers: Sequence[str] = ()
) -> str | None:
    """Why `text` cannot stand as a rewording of `item`'s question (None: it can).

    It must be one question (ending in "?"), at most `PARAPHRASE_MAX_GROWTH` times the
    original's length, name every entity of the item's fact that the original names, not
    contain the item's expected answer or one of `answers` (its aliases), and not repeat a
    question already in `taken`.
    """
    if not text.endswith("?"):
        return "is not a question"
    if len(text) > PARAPHRASE_MAX_GROWTH * len(item.question):
        return "is too long"
    said, asked = normalize(text), normalize(item.question)
    entities = [part for key in item.facts for part in key.split("|")[::2]]
    for name in entities:
        if normalize(name) in asked and normalize(name) not in said:
            return f"does not name {name!r}"
    for answer in [*item.answers, *answers]:
        if answer and normalize(answer) in said:
            return f"gives the answer {answer!r} away"
    if said in taken:
        return "repeats a question already in the set"
    return None


def paraphrase(
    items: Sequence[Candidate],
    knowledge: Knowledge,
    generate: Generate,
    count: int,
) -> tuple[list[Candidate], TeacherReport]:
    """Up to `count` rewordings of each recall question among `items`, checked; and a report.

    A rewording that passes `paraphrase_problem` is then put back to the teacher with the
    facts in its prompt (`distill`), and kept only when that answer states the original's
    expected answer. Each kept rewording is a new item with the original's answer
    and facts (kind `teacher:paraphrase`). Rejected ones are listed in the report with the
    reason.
    """
    report = TeacherReport()
    sources = [i for i in items if i.kind.removeprefix("teacher:") in PARAPHRASED_KINDS]
    asks = [(item, variant) for item in sources for variant in range(min(count, MAX_PARAPHRASES))]
    if not asks:
        return [], report
    replies = generate([paraphrase_chat(item.question, variant) for item, variant in asks])
    taken = {normalize(item.question) for item in items}
    passed: list[tuple[Candidate, Candidate]] = []  # (original, rewording)
    for (item, _), answer in zip(asks, replies, strict=True):
        report.asked += 1
        text = " ".join(answer.split())
        problem = paraphrase_problem(item, text, taken, answer_words(knowledge, item))
        if problem is not None:
            report.dropped.append({"question": item.question, "answer": text, "reason": problem})
            continue
        taken.add(normalize(text))
        passed.append((item, replace(item, question=text, kind="teacher:paraphrase", context=())))
    if not passed:
        return [], report
    # The round trip is `distill`'s check of an answer: the teacher, given the facts, must
    # state the expected answer. Its answers are not kept: a rewording keeps the original's.
    answered, _ = distill([reworded for _, reworded in passed], knowledge, generate)
    confirmed = {item.question for item in answered}
    made: list[Candidate] = []
    for original, reworded in passed:
        if reworded.question not in confirmed:
            report.dropped.append(
                {
                    "question": original.question,
                    "answer": reworded.question,
                    "reason": f"is not answered {reworded.expected!r} by the teacher",
                }
            )
            continue
        report.accepted += 1
        made.append(reworded)
    return made, report
