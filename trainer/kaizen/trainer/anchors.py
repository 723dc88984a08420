"""Anchors: the model's own answers to the trained relations, asked of entities it already knows.

Rehearsing the other domains' lines holds what those lines say; it does not hold the answers
to the questions no rehearsed line asks. An adapter trained on an invented country's capital,
currency and river learns the form "The capital of X is <a word it has just seen>" for every
X: after such an adapter, "What is the capital of Nigeria?" got an invented city although no
line of its set named Nigeria, and the rehearsed lines about Poland and Egypt did not prevent
it (docs/training-data.md, "Spreading the rehearsal").

An anchor asks one of the trained domain's relations, in that relation's own question
wording, of an entity the rest of the suite knows (a subject of another domain's facts), and
keeps the answer the model gives *before* this step trains anything (greedy, the model with
its starting adapters). Trained beside the new lines, anchors tell the adapter where its
change applies: to the new domain's entities, not to every subject of the same relation.
The model's answer is kept whether or not it is right: an anchor preserves behaviour, it
does not teach facts (the rehearsed pools do that).

Which entities are asked a relation: those with a fact of that very relation in another
domain (a country with a capital) first, then those that share some other relation with one
of the trained domain's subjects asked this one (an entity with a currency, asked for a
capital as the invented country is); an entity with nothing in common with the relation's
subjects is not asked it ("Where was the Nile born?" would anchor nonsense). Within each
group, entities of the domains most like the trained set (`rehearsal.resemblance`) come
first, ties broken by the seed. Each (relation, entity) pair is asked in one of the relation's
question wordings, rotating, so the anchors cover the wordings the new lines use.

Anchors are added to the rehearsal lines, `--anchor-ratio` anchors per rehearsal line.
Measured, taking their places from the other domains' pools (the set's size unchanged) made
the forgetting worse, not better (docs/training-data.md). Every anchor passes the
contamination guard, question and answer; an empty answer is dropped, and both are listed on
the data card.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kaizen.api.artifacts import DroppedLine
from kaizen.runtime.suites.knowledge import Fact, Knowledge, fill
from kaizen.trainer.data import Example

if TYPE_CHECKING:  # pragma: no cover
    from kaizen.runtime.contamination import ContaminationGuard
    from kaizen.trainer.teacher import Generate

#: The data card's source of a dropped anchor.
SOURCE = "anchor"
#: Questions generated for every anchor wanted: answers that come back empty are dropped.
SPARE = 1.25


@dataclass(frozen=True)
class AnchorQuestion:
    """One anchor question: a trained relation asked of another domain's entity."""

    question: str
    relation: str
    subject: str
    domain: str
    """The domain whose facts name the entity."""


@dataclass
class AnchorReport:
    """What the anchors cost and what was left out."""

    asked: int = 0
    """Questions the model answered."""
    dropped: list[DroppedLine] = field(default_factory=list)
    """One entry per question left out (source `anchor`), for the data card."""


def anchor_questions(
    knowledge: Knowledge,
    domain: str,
    *,
    resembles: Mapping[str, float],
    guard: ContaminationGuard,
    seed: int,
    report: AnchorReport | None = None,
) -> list[AnchorQuestion]:
    """Every anchor question the suite's knowledge allows for `domain`, the most useful first.

    Empty when the domain has no facts (no relation to anchor) or no other domain has facts
    (no entity to ask about).
    """
    own = knowledge.for_domain(domain).facts
    relations = list(dict.fromkeys(f.relation for f in own))
    mine = {f.subject for f in own} | {f.object for f in own}
    # What each of the domain's subjects is asked (its kind, as far as relations tell).
    kinds: dict[str, set[str]] = {}
    for fact in own:
        kinds.setdefault(fact.subject, set()).add(fact.relation)
    entities: dict[str, tuple[str, set[str]]] = {}  # subject -> (its domain, its relations)
    for fact in knowledge.facts:
        if fact.domain == domain or fact.subject in mine:
            continue
        entities.setdefault(fact.subject, (fact.domain, set()))[1].add(fact.relation)
    rng = random.Random(seed + 2)
    pairs = []
    for subject, (where, has) in entities.items():
        for relation in relations:
            if relation in has:
                tier = 0  # the entity has a fact of this very relation
            elif any(relation in rs and rs & has for rs in kinds.values()):
                tier = 1  # it shares a relation with a subject asked this one: the same kind
            else:
                continue  # nothing says the question makes sense of it
            key = (tier, -resembles.get(where, 0.0), rng.random())
            pairs.append((key, relation, subject, where))
    pairs.sort(key=lambda pair: pair[0])
    turn: dict[str, int] = dict.fromkeys(relations, 0)
    chosen: list[AnchorQuestion] = []
    for _, relation, subject, where in pairs:
        templates = knowledge.relations[relation].questions
        template = templates[turn[relation] % len(templates)]
        turn[relation] += 1
        question = fill(template, _entity(subject, relation, where))
        if admitted(question, guard, report):
            chosen.append(AnchorQuestion(question, relation, subject, where))
    return chosen


def admitted(question: str, guard: ContaminationGuard, report: AnchorReport | None) -> bool:
    """Whether the guard lets `question` be asked; a refused one is listed in `report`."""
    reason = guard.check(question)
    if reason is not None and report is not None:
        report.dropped.append(DroppedLine(source=SOURCE, question=question, reason=reason))
    return reason is None


def _entity(subject: str, relation: str, domain: str) -> Fact:
    return Fact(domain=domain, subject=subject, relation=relation, object="")


def anchor_examples(
    questions: list[AnchorQuestion],
    count: int,
    generate: Generate,
    guard: ContaminationGuard,
    report: AnchorReport | None = None,
) -> list[Example]:
    """Up to `count` anchors: the first questions with the model's own answers (`generate`)."""
    report = report if report is not None else AnchorReport()
    kept: list[Example] = []
    at = 0
    while len(kept) < count and at < len(questions):
        # a few spare questions at once: some answers come back empty or contaminated
        needed = count - len(kept)
        asked = questions[at : at + max(needed, round(needed * SPARE))]
        at += len(asked)
        answers = generate([q.question for q in asked])
        report.asked += len(asked)
        for anchor, answer in zip(asked, answers, strict=True):
            if len(kept) == count:
                break
            reason = "empty answer" if not answer.strip() else guard.check(anchor.question, answer)
            if reason is not None:
                report.dropped.append(
                    DroppedLine(
                        source=SOURCE, question=anchor.question, answer=answer, reason=reason
                    )
                )
                continue
            kept.append(
                Example(anchor.question, answer, "factual_recall", f"anchor:{anchor.domain}")
            )
    return kept


def anchor_count(rehearsal: int, ratio: float) -> int:
    """How many anchors `rehearsal` rehearsal lines get at `--anchor-ratio` `ratio`."""
    return round(rehearsal * ratio)
