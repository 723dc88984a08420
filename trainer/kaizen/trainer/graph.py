"""Lookups on a domain's fact graph where a relation may hold several values.

A relation may give one entity several values (Veldra borders Osk and Marn; Mars has two
moons) and give one value to several entities (Kenya and Egypt both lie in Africa). Synthesis
asks of an entity only with every value in the answer (`tell`), and names an entity through a
fact only where that fact names it alone (`values`, `holders`). The lookups are indexed once
per knowledge: synthesis calls them for every composition it builds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Fact, Knowledge


def values(knowledge: Knowledge, fact: Fact) -> list[Fact]:
    """Every fact of `knowledge` that gives `fact`'s subject a value of `fact`'s relation,
    `fact` among them, in file order, each once: a relation may hold several for one subject
    (Veldra borders Osk and Marn; Mars has two moons)."""
    return _index(knowledge)[0][(fact.relation, normalize(fact.subject))]


def holders(knowledge: Knowledge, fact: Fact) -> list[Fact]:
    """Every fact of `knowledge` that gives `fact`'s object to a subject by `fact`'s relation,
    `fact` among them, in file order, each once (Kenya and Egypt both lie in Africa)."""
    return _index(knowledge)[1][(fact.relation, normalize(fact.object))]


_Index = dict[tuple[str, str], list[Fact]]
#: The last knowledge's facts indexed by (relation, subject) and (relation, object); keyed by
#: the facts tuple's id, which the entry holds, so the id is not reused while it is here.
_INDEXES: dict[int, tuple[tuple[Fact, ...], _Index, _Index]] = {}


def _index(knowledge: Knowledge) -> tuple[_Index, _Index]:
    facts = knowledge.facts
    hit = _INDEXES.get(id(facts))
    if hit is not None and hit[0] is facts:
        return hit[1], hit[2]
    by_subject: _Index = defaultdict(list)
    by_object: _Index = defaultdict(list)
    seen: set[str] = set()
    for fact in facts:
        key = normalize(fact.key)
        if key in seen:
            continue
        seen.add(key)
        by_subject[(fact.relation, normalize(fact.subject))].append(fact)
        by_object[(fact.relation, normalize(fact.object))].append(fact)
    _INDEXES.clear()  # one knowledge at a time: synthesis reads one domain's after another
    _INDEXES[id(facts)] = (facts, by_subject, by_object)
    return by_subject, by_object


@dataclass(frozen=True)
class Told:
    """What answers a question about several facts at once: their statements, their keys,
    and the values a right answer names."""

    statements: str
    keys: tuple[str, ...]
    expected: str
    also: tuple[str, ...]


def tell(knowledge: Knowledge, facts: Sequence[Fact], *, inverse: bool = False) -> Told:
    """A question asked of one end of `facts` (same relation, same subject; or, `inverse`,
    same object) is answered with all of them: the answer states every value, and a right
    answer must name every one."""
    named = [f.subject if inverse else f.object for f in facts]
    return Told(
        " ".join(knowledge.statement(f) for f in facts),
        tuple(f.key for f in facts),
        named[0],
        tuple(named[1:]),
    )
