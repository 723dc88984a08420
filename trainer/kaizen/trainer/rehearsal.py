"""Rehearsal: which of the other domains' lines an adapter rehearses, and how many of each.

Training an adapter on a new domain overwrites what the model answered to questions *like*
the new ones: after an adapter for an invented country, "What is the capital of Nigeria?"
got an invented city, while arithmetic and biology were untouched or better. Forgetting
concentrates on the domains the trained one resembles, so the rehearsal budget should too.

`resemblance` measures how much each other domain's pool shares the trained set's wording:
the cosine similarity of TF-IDF word vectors, one document per domain (the trained set's
questions and answers, each other pool's), with the inverse document frequency over those
documents — a word every domain uses ("what", "the") weighs nothing, one that only the
trained set and geography use ("capital", "currency") weighs most. It is deterministic,
needs no model, and the card reports it.

`replay_shares` mixes an even split with the resemblance: `(1 − focus) / n + focus × rᵢ / Σr`
(`--replay-focus`; 0 is the even split of before, the default 0.5 gives half the budget by
resemblance). `replay_examples` then draws the lines by the D'Hondt rule (the next line goes
to the domain with the largest `share / (taken + 1)`), so the counts are proportional to the
shares, a domain whose pool runs out leaves its place to the others, and with even shares
the order is exactly a round-robin across domains.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from kaizen.api.runner import ConfigurationError
from kaizen.trainer.data import Example

if TYPE_CHECKING:  # pragma: no cover
    from kaizen.runtime.contamination import ContaminationGuard
    from kaizen.runtime.suites.knowledge import Knowledge

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(texts: Iterable[str]) -> Counter[str]:
    return Counter(word for text in texts for word in _WORD.findall(text.lower()))


def _texts(examples: Iterable[Example]) -> Iterable[str]:
    for example in examples:
        yield example.question
        yield example.answer


def resemblance(own: Sequence[Example], pools: Mapping[str, Sequence[Example]]) -> dict[str, float]:
    """Cosine similarity in [0, 1] of the trained set's TF-IDF vector with each pool's."""
    documents = {name: _words(_texts(pool)) for name, pool in sorted(pools.items())}
    mine = _words(_texts(own))
    every = [mine, *documents.values()]
    frequency = Counter(word for document in every for word in document)
    idf = {word: math.log(len(every) / count) for word, count in frequency.items()}

    def vector(counts: Counter[str]) -> dict[str, float]:
        return {w: c * idf[w] for w, c in counts.items() if idf[w] > 0}

    def norm(v: Mapping[str, float]) -> float:
        return math.sqrt(sum(x * x for x in v.values()))

    mine_vector = vector(mine)
    mine_norm = norm(mine_vector)
    found: dict[str, float] = {}
    for name, counts in documents.items():
        theirs = vector(counts)
        theirs_norm = norm(theirs)
        dot = sum(x * theirs.get(w, 0.0) for w, x in mine_vector.items())
        found[name] = dot / (mine_norm * theirs_norm) if mine_norm and theirs_norm else 0.0
    return found


def replay_shares(resembles: Mapping[str, float], focus: float) -> dict[str, float]:
    """Each domain's share of the rehearsal lines: an even split mixed with the resemblance."""
    if not 0.0 <= focus <= 1.0:
        raise ConfigurationError(f"replay focus must be in [0, 1], got {focus}")
    if not resembles:
        return {}
    even = 1.0 / len(resembles)
    total = sum(resembles.values())
    if total <= 0:
        return {name: even for name in resembles}
    return {name: (1 - focus) * even + focus * r / total for name, r in resembles.items()}


def knowledge_lines(
    knowledge: Knowledge, guard: ContaminationGuard, known: Iterable[Example] = ()
) -> list[Example]:
    """Every surface form of a domain's facts (each question its relation words, answered with
    the fact's statement), as rehearsal lines; a line the guard refuses, or whose question is
    already among `known` (the domain's pool), is left out.

    A pool words each fact once, often not the way the trained domain's new lines ask theirs:
    rehearsing the other domains' knowledge in all of its relations' wordings protects what
    the model knows under those wordings too.
    """
    from kaizen.trainer.synthesis import recall_items

    lines: list[Example] = []
    seen = {example.question for example in known}
    for fact in knowledge.facts:
        for item in recall_items(knowledge, fact):
            if item.question in seen or guard.check(item.question, item.answer) is not None:
                continue
            seen.add(item.question)
            lines.append(Example(item.question, item.answer, item.capability))
    return lines


def replay_count(own: int, fraction: float) -> int:
    """How many replay examples make `fraction` of a set that has `own` examples of its own."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigurationError(f"replay fraction must be in [0, 1), got {fraction}")
    return round(own * fraction / (1.0 - fraction))


def general_count(pools: Mapping[str, Sequence[object]], count: int) -> int:
    """How many of `count` rehearsal lines are general anchors (`kaizen.trainer.general`):
    the even share of the other domains that have nothing to rehearse (no pool line, no fact,
    nothing learned earlier), all of them when no other domain has anything.

    A bare domain is still evaluated and still forgets: its share of the rehearsal goes to
    the model's own everyday answers instead of to the domains that happen to have lines.
    """
    if count <= 0:
        return 0
    if not pools:
        return count
    bare = sum(1 for pool in pools.values() if not pool)
    return round(count * bare / len(pools))


def replay_examples(
    pools: Mapping[str, Sequence[Example]],
    *,
    domain: str,
    count: int,
    seed: int = 0,
    shares: Mapping[str, float] | None = None,
) -> list[Example]:
    """`count` examples from the other domains' pools, in proportion to `shares` (even when
    none is given).

    A pool may hold lines an earlier version learned (`lineage.earlier_lines`): they keep their
    `rehearsal:` source; the others are marked `replay:<domain>`.
    """
    others = {name: list(pool) for name, pool in sorted(pools.items()) if name != domain and pool}
    if count <= 0 or not others:
        return []
    rng = random.Random(seed + 1)
    for pool in others.values():
        rng.shuffle(pool)
    weight = {name: 1.0 if shares is None else max(shares.get(name, 0.0), 0.0) for name in others}
    if not any(weight.values()):
        weight = dict.fromkeys(others, 1.0)
    taken = dict.fromkeys(others, 0)
    chosen: list[Example] = []
    while len(chosen) < count:
        best = None
        for name, pool in others.items():
            if taken[name] >= len(pool) or weight[name] <= 0:
                continue
            quotient = weight[name] / (taken[name] + 1)
            if best is None or quotient > best[0]:
                best = (quotient, name)
        if best is None:
            break  # every pool with a share is used up
        name = best[1]
        example = others[name][taken[name]]
        taken[name] += 1
        if not example.source.startswith("rehearsal:"):
            example = replace(example, source=f"replay:{name}")
        chosen.append(example)
    return chosen
