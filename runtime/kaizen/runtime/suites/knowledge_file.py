"""Reading a suite's `knowledge.jsonl` into `Knowledge`, strictly (docs/evaluation.md, "Knowledge").

One JSON object per line, told apart by `kind`:

- `relation`: `name`, `statement`, `questions`, optional `describe`, `describe_subject`,
  `inverse_questions`: templates over `{subject}` and `{object}` (semantics: knowledge.py);
- `fact`: `domain`, `subject`, `relation`, `object`, optional `aliases`;
- `passage`: `domain`, `text`, optional `title`.

A fact may name a relation defined further down the file. Every problem raises `SuiteError`
with `file:line: field: problem`, like the rest of the suite.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Fact, Knowledge, Passage, Relation
from kaizen.runtime.suites.records import Fields, SuiteError, read_jsonl

KNOWLEDGE_FILE = "knowledge.jsonl"
KINDS = ("relation", "fact", "passage")

_FIELDS = {
    "relation": {
        "kind",
        "name",
        "statement",
        "questions",
        "describe",
        "describe_subject",
        "inverse_questions",
    },
    "fact": {"kind", "domain", "subject", "relation", "object", "aliases"},
    "passage": {"kind", "domain", "text", "title"},
}
_PLACEHOLDERS = ("subject", "object")
# What each template must name, and what it must not (a question that names its own answer
# would teach a model to parrot; a statement without the object teaches nothing).
_TEMPLATES = {
    "statement": (("subject", "object"), ()),
    "questions": (("subject",), ("object",)),
    "describe": (("subject",), ("object",)),
    "describe_subject": (("object",), ("subject",)),
    "inverse_questions": (("object",), ("subject",)),
}


def read_knowledge(path: Path, domains: Sequence[str]) -> Knowledge:
    """The relations, facts and passages of `path`; facts and passages of `domains` only."""
    relations: dict[str, Relation] = {}
    facts: list[tuple[Fields, Fact]] = []
    passages: list[Passage] = []
    seen_facts: dict[tuple[str, str, str, str], int] = {}
    seen_passages: dict[tuple[str, str], int] = {}
    for line, record in read_jsonl(path):
        where = f"{path.name}:{line}"
        kind = record.get("kind")
        if kind is None:
            raise SuiteError(path, line, "kind", f"missing: one of {', '.join(KINDS)}")
        if kind not in KINDS:
            raise SuiteError(path, line, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        check = Fields(path, line, record, _FIELDS[kind])
        if kind == "relation":
            relation = _read_relation(check, where)
            if relation.name in relations:
                check.fail(
                    "name",
                    f"duplicate relation {relation.name!r} (first at {relations[relation.name].where})",
                )
            relations[relation.name] = relation
        elif kind == "fact":
            fact = _read_fact(check, domains, where)
            identity = (
                fact.domain,
                normalize(fact.subject),
                fact.relation,
                normalize(fact.object),
            )
            if identity in seen_facts:
                check.fail(
                    "object",
                    f"duplicate fact {fact.key!r} in domain {fact.domain!r} (first on line {seen_facts[identity]})",
                )
            seen_facts[identity] = line
            facts.append((check, fact))
        else:
            passage = Passage(
                domain=check.choice("domain", domains),
                text=check.text("text"),
                title=check.text("title", default=None),
                where=where,
            )
            same = (passage.domain, normalize(passage.text))
            if same in seen_passages:
                check.fail("text", f"duplicate passage (first on line {seen_passages[same]})")
            seen_passages[same] = line
            passages.append(passage)
    # Relations may come after the facts that use them, so they are resolved at the end.
    for check, fact in facts:
        if fact.relation not in relations:
            defined = ", ".join(sorted(relations)) or "none"
            check.fail(
                "relation",
                f"unknown relation {fact.relation!r}; defined in {path.name}: {defined}",
            )
    return Knowledge(
        relations=relations,
        facts=tuple(fact for _, fact in facts),
        passages=tuple(passages),
    )


def _read_relation(check: Fields, where: str) -> Relation:
    name = check.text("name")
    if "|" in name:
        check.fail("name", "must not contain '|' (it separates the parts of a fact's key)")
    questions = check.text_list("questions", required=True, unique=True)
    inverse = check.text_list("inverse_questions", unique=True)
    relation = Relation(
        name=name,
        statement=check.text("statement"),
        questions=tuple(questions),
        describe=check.text("describe", default=None),
        describe_subject=check.text("describe_subject", default=None),
        inverse_questions=tuple(inverse),
        where=where,
    )
    for field_name, (needs, forbids) in _TEMPLATES.items():
        value = getattr(relation, field_name)
        templates = value if isinstance(value, tuple) else (value,) if value else ()
        for index, template in enumerate(templates):
            label = f"{field_name}[{index}]" if isinstance(value, tuple) else field_name
            problem = _template_problem(template, needs, forbids)
            if problem:
                check.fail(label, problem)
    return relation


def _template_problem(template: str, needs: Sequence[str], forbids: Sequence[str]) -> str | None:
    """What is wrong with a `{subject}`/`{object}` template, or None."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"bad template {template!r}: {error} (write a literal brace as {{{{ or }}}})"
    used = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in _PLACEHOLDERS or spec or conversion:
            return f"unknown placeholder in {template!r}: use only {{subject}} and {{object}}"
        used.add(name)
    for name in needs:
        if name not in used:
            return f"must contain {{{name}}}: {template!r}"
    for name in forbids:
        if name in used:
            return f"must not contain {{{name}}}: {template!r}"
    return None


def _read_fact(check: Fields, domains: Sequence[str], where: str) -> Fact:
    domain = check.choice("domain", domains)
    subject = check.text("subject")
    relation = check.text("relation")
    obj = check.text("object")
    for field_name, value in (("subject", subject), ("object", obj)):
        if "|" in value:
            check.fail(field_name, "must not contain '|' (it separates the parts of a fact's key)")
    aliases = check.text_list("aliases", unique=True)
    if normalize(obj) in {normalize(alias) for alias in aliases}:
        check.fail("aliases", f"repeats the object {obj!r}")
    return Fact(
        domain=domain,
        subject=subject,
        relation=relation,
        object=obj,
        aliases=tuple(aliases),
        where=where,
    )
