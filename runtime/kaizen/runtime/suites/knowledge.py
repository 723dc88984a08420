"""A suite domain's knowledge: facts forming a small graph, relations that word them, passages.

Knowledge is what a trainer may learn from beside (or instead of) a question–answer pool:
the trainer synthesises training items from it (several surface forms per fact, compositions
of facts that share an entity, counterfactuals, multi-step chains), and a teacher may be
given it in its prompt. It lives in a suite's `knowledge.jsonl` (format: docs/evaluation.md,
"Knowledge"); evaluation items never come from it, and every line synthesised from it passes
the contamination guard against the evaluation items before a trainer sees it.

A relation words its facts with templates over `{subject}` and `{object}`:

- `statement`: the fact as a sentence ("The capital of {subject} is {object}.");
- `questions`: ways to ask for the object ("What is the capital of {subject}?");
- `describe` (optional): a noun phrase naming the object through the subject ("the capital
  of {subject}"), which lets another fact about the object be asked through this one;
- `describe_subject` (optional): a noun phrase naming the subject through the object ("the
  country whose capital is {object}");
- `inverse_questions` (optional): ways to ask for the subject ("{object} is the capital of
  which country?").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Relation:
    """How facts of one relation are worded."""

    name: str
    statement: str
    questions: tuple[str, ...]
    describe: str | None = None
    describe_subject: str | None = None
    inverse_questions: tuple[str, ...] = ()
    where: str = ""
    """`file:line` of its definition, for error messages."""


@dataclass(frozen=True)
class Fact:
    """One fact: `subject` —`relation`→ `object`, in one domain."""

    domain: str
    subject: str
    relation: str
    object: str
    aliases: tuple[str, ...] = ()
    """Other accepted wordings of the object."""
    where: str = ""
    """`file:line` of its definition, for error messages and data cards."""

    @property
    def key(self) -> str:
        """A stable identity: `subject|relation|object`."""
        return f"{self.subject}|{self.relation}|{self.object}"


@dataclass(frozen=True)
class Passage:
    """A passage of text about a domain, for training and for a teacher's prompt."""

    domain: str
    text: str
    title: str | None = None
    where: str = ""


@dataclass(frozen=True)
class Knowledge:
    """Everything a suite knows beside its items: relations, facts and passages."""

    relations: dict[str, Relation] = field(default_factory=dict)
    facts: tuple[Fact, ...] = ()
    passages: tuple[Passage, ...] = ()

    def for_domain(self, domain: str) -> Knowledge:
        """The facts and passages of one domain (with every relation)."""
        return self.for_domains((domain,))

    def for_domains(self, domains: Iterable[str]) -> Knowledge:
        """The facts and passages of `domains` (with every relation), in file order."""
        chosen = set(domains)
        return Knowledge(
            relations=self.relations,
            facts=tuple(f for f in self.facts if f.domain in chosen),
            passages=tuple(p for p in self.passages if p.domain in chosen),
        )

    @property
    def domains(self) -> list[str]:
        """Domains that have facts or passages, sorted."""
        return sorted({f.domain for f in self.facts} | {p.domain for p in self.passages})

    def __bool__(self) -> bool:
        return bool(self.facts or self.passages)

    def statement(self, fact: Fact) -> str:
        """The fact as a sentence, its first letter upper case ("the Lissel flows into ...")."""
        return sentence_start(fill(self.relations[fact.relation].statement, fact))

    def wordings(self, fact: Fact) -> list[str]:
        """Everything the relation says of `fact` on its own: the statement, every question
        and inverse question, and the descriptions (what the contamination guard checks)."""
        relation = self.relations[fact.relation]
        templates = [*relation.questions, *relation.inverse_questions]
        templates += [t for t in (relation.describe, relation.describe_subject) if t]
        return [self.statement(fact), *(fill(template, fact) for template in templates)]


def sentence_start(text: str) -> str:
    """`text` with its first letter upper case, as a sentence opens ("the Lissel flows …" →
    "The Lissel flows …"), unless its first word is written with a capital after its first
    letter: a name such as "iPhone", "eBay" or "macOS" keeps its spelling."""
    words = text.split(maxsplit=1)
    if words and any(c.isupper() for c in words[0][1:]):
        return text
    return text[:1].upper() + text[1:]


def fill(template: str, fact: Fact, **override: str) -> str:
    """`template` with `{subject}` and `{object}` from `fact` (or `override`)."""
    values = {"subject": fact.subject, "object": fact.object, **override}
    return template.format(**values)
