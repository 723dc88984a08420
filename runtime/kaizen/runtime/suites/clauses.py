"""A sentence of prose as the plain sentences it is made of, and the kind a complement gives.

One of several clauses becomes the plain sentences it is made of (`clauses`: ";", a list of
"X is Y", a name in apposition, a relative clause on a name, a trailing passive), so that
each can be asked about on its own (`kaizen.runtime.suites.prose`).
"""

from __future__ import annotations

import re

from kaizen.runtime.suites.english import PARTICIPLES
from kaizen.runtime.suites.knowledge import sentence_start
from kaizen.runtime.suites.names import FUNCTION_WORDS, LOWER, NAME, UPPER, one_name

#: Words that end a kind ("an island nation in the Glass Sea" → "island nation").
KIND_ENDS = frozenset(
    ("in", "on", "at", "of", "by", "from", "with", "near", "for", "to", "that", "which", "who",
     "whose", "where", "and", "or", "but", "called", "named")
)  # fmt: skip
#: "Its capital, Velmora, lies …": a definite phrase (its owner may be a noun or a name
#: of several words: "The school's library", "St Oda's School's library"), a name in
#: apposition, the rest.
_APPOSED_NAME = re.compile(
    rf"^(?P<np>(?:(?:The|Its|His|Her|Their)(?: {LOWER}[\w-]*['’]s)?|{NAME}['’]s) "
    rf"{LOWER}[\w-]*(?: {LOWER}[\w-]*){{0,2}}), "
    rf"(?P<name>(?:the )?{NAME}), (?P<rest>{LOWER}.*)$"
)
#: "Mars, the fourth planet out from the Sun, lies …": a name, a phrase in apposition, the rest.
_NAME_APPOSED = re.compile(
    rf"^(?P<name>(?:The )?{NAME}), (?P<app>(?:the|a|an) [^,;]+), (?P<rest>{LOWER}[\w-]* .*)$"
)
#: "… the river Lissel, which flows into the Caldrin Sea, …": a relative clause on a name.
_RELATIVE = re.compile(
    rf"(?P<ante>(?:\b[Tt]he (?:{LOWER}[\w-]* )?)?{NAME}), (?:which|who) (?P<clause>[^,;]+?)"
    rf"(?P<after>,.*|[.!?])$"
)
#: "Zephyria is a small country on the Caldrin Sea, founded by Queen Orlaine.".
_TRAILING_PASSIVE = re.compile(
    rf"^(?P<subject>(?:The )?{NAME}) (?P<verb>is|was|are|were) (?P<rest>[^,;]+), "
    rf"(?P<participle>{LOWER}+) by (?P<agent>(?:the )?{NAME})(?P<end>[.!?])$"
)
#: A clause "X is Y" (or are, was, were), for lists of them joined by commas.
_COPULA_CLAUSE = re.compile(r"^\S.* (?:is|are|was|were) \S.*$")


def clauses(sentence: str) -> list[str]:
    """`sentence` as the plain sentences it is made of, so that each can be asked about:

    - clauses joined by ";" ("…, which flows into the Caldrin Sea; the parliament … stands in
      Velmora."), by ", and" before a pronoun ("…, and it was sent to …"), and lists of "X
      is Y" clauses ("The High Warden is head of state, Mount Teskaran is the highest
      mountain, and the frost heron is the national animal.");
    - a name in apposition ("Its capital, Velmora, lies on …" → "Its capital is Velmora." and
      "Velmora lies on …"; "Mars, the fourth planet from the Sun, lies …" → "Mars is the
      fourth planet from the Sun." and "Mars lies …");
    - a relative clause on a name ("the river Lissel, which flows into the Caldrin Sea" →
      "The river Lissel flows into the Caldrin Sea.", and the sentence without it);
    - a trailing passive ("Zephyria is a small country on the Caldrin Sea, founded by Queen
      Orlaine." → "… on the Caldrin Sea." and "Zephyria was founded by Queen Orlaine.").

    A sentence none of these fit is returned as it is.
    """
    end = sentence[-1] if sentence[-1:] in ".!?" else "."
    body = sentence[:-1] if sentence[-1:] in ".!?" else sentence
    parts = [p.strip() for p in body.split(";")]
    if len(parts) == 1:
        listed = re.split(rf",\s+(?:and\s+)?|\s+and\s+(?={UPPER}|the\s)", body)
        if len(listed) > 2 and all(_COPULA_CLAUSE.match(p) for p in listed):
            parts = listed
        else:  # "…, and it was sent to …": a clause of its own about the topic
            parts = re.split(r",\s+(?:and|but)\s+(?=(?:it|he|she|they)\s)", body)
    if len(parts) > 1 and all(len(p.split()) >= 3 for p in parts):
        return [c for p in parts for c in clauses(sentence_start(p) + end)]
    for rule in (_apposed_name, _name_apposed, _relative, _trailing_passive):
        split = rule(sentence)
        if split is not None:
            return [c for part in split for c in clauses(part)]
    return [sentence]


def _apposed_name(sentence: str) -> list[str] | None:
    match = _APPOSED_NAME.match(sentence)
    if match is None or not one_name(match.group("name")):
        return None
    name = sentence_start(match.group("name"))
    return [f"{match.group('np')} is {match.group('name')}.", f"{name} {match.group('rest')}"]


def _name_apposed(sentence: str) -> list[str] | None:
    match = _NAME_APPOSED.match(sentence)
    if match is None or not one_name(match.group("name")):
        return None
    rest = match.group("rest")
    if rest.split()[0] in FUNCTION_WORDS or re.search(r"\b(?:is|are|was|were)\b", match["app"]):
        return None
    return [f"{match.group('name')} is {match.group('app')}.", f"{match.group('name')} {rest}"]


def _relative(sentence: str) -> list[str] | None:
    match = _RELATIVE.search(sentence)
    if match is None:
        return None
    ante = match.group("ante")
    if not one_name(re.sub(rf"^[Tt]he (?:{LOWER}[\w-]* )?", "", ante)):
        return None
    after = match.group("after")
    # The commas bracket the clause: "Mirela, who ran the shop, sold bread." → "Mirela sold
    # bread.", not "Mirela, sold bread.".
    after = f" {after[1:].lstrip()}" if after.startswith(",") else after
    main = sentence[: match.end("ante")] + after
    return [main, f"{sentence_start(ante)} {match.group('clause')}."]


def _trailing_passive(sentence: str) -> list[str] | None:
    match = _TRAILING_PASSIVE.match(sentence)
    if match is None or match.group("participle") not in PARTICIPLES | _ED:
        return None
    if not (one_name(match.group("subject")) and one_name(match.group("agent"))):
        return None
    subject, verb = match.group("subject"), match.group("verb")
    passive = "were" if verb in {"are", "were"} else "was"
    return [
        f"{subject} {verb} {match.group('rest')}{match.group('end')}",
        f"{subject} {passive} {match.group('participle')} by {match.group('agent')}"
        f"{match.group('end')}",
    ]


_ED = frozenset(("founded", "named", "designed", "invented", "discovered", "created", "ruled",
                 "governed", "led", "owned", "painted", "composed", "launched", "opened"))  # fmt: skip


def kind_of(complement: str) -> str | None:
    """The kind an indefinite complement gives ("an island nation in …" → "island nation";
    "a starship built by …" → "starship"), or None."""
    words = complement.split()
    if len(words) < 2 or words[0].lower() not in {"a", "an"}:
        return None
    kept = []
    for word in words[1:]:
        low = word.lower()
        if low in KIND_ENDS or low in PARTICIPLES or low.endswith("ed") or not _alpha(word):
            break
        kept.append(word)
    return " ".join(kept) if 0 < len(kept) <= 3 and kept[0][0].islower() else None


def _alpha(word: str) -> bool:
    """Whether `word` is letters, or letters joined by hyphens ("feature-flag")."""
    return all(part.isalpha() for part in word.split("-"))
