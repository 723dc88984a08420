"""Training items from passages of prose: what they say of each name, and cloze items.

A domain known only by passages has no relations to word questions with, so what a passage
teaches must come from its own sentences (`kaizen.runtime.suites.prose`: each made to stand
alone, with the names it mentions):

- `passage-profile` items say what the passages say of one name: every sentence that
  mentions it, in a seeded order for each prompt (as fact profiles do), so a sentence is
  learned from each name in it and not only from the passage's title;
- `passage-cloze` items leave one name of a sentence out and are answered with the whole
  sentence: "S is C." the other way round ("What is Korrin's capital?"), the sentence's
  subject as "What/Who …?", a name at the end as an echo question ("The Orrin rises in
  what?"), anywhere else as a blank;
- `passage-premise` items suppose another name in a sentence in place of the one a cloze
  question asks for, and ask that question, answered from the premise;
- `passage-chain` items compose two sentences through a name: a question of one with the
  name replaced by what another says it is ("What runs through Korrin's capital?", "What is
  the currency of the island nation whose capital is Vaskel?").

The rules are plain text rules, for English prose; a name the rules miss is only a name
that gets no items of its own (its sentences are still taught through the other names and
through the passage).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.clauses import kind_of
from kaizen.runtime.suites.english import participle
from kaizen.runtime.suites.knowledge import sentence_start
from kaizen.runtime.suites.names import (
    FUNCTION_WORDS,
    LOWER,
    NAME,
    POSSESSIVE,
    UPPER,
    capitalised,
    lower_article,
    mentions,
    names_in,
    without_article,
)
from kaizen.runtime.suites.prose import PRONOUNS, Sentence, opens_with
from kaizen.trainer.profiles import PROFILE_PROMPTS, asking, balanced

BLANK = "___"


@dataclass(frozen=True)
class PassageItem:
    """A question–answer item made from passages, before synthesis wraps it."""

    question: str
    answer: str
    kind: str
    name: str
    """The name it is about (profiles) or leaves out (cloze)."""
    expected: str
    context: tuple[str, ...]
    """The sentences it comes from (what a teacher is shown)."""


def profile_items(found: list[Sentence], rng: random.Random) -> list[PassageItem]:
    """For each name, what the passages say of it, in several seeded orders; so for a plural
    common noun a sentence opens with ("Deploys happen …" → "Tell me about deploys.").

    A sentence that names nothing ("Jobs that fail three times in a row are paused.") is its
    passage's topic's: what it says is said in a passage about that topic, and it has no
    other item of its own."""
    about: dict[str, list[str]] = defaultdict(list)
    shown: dict[str, str] = {}
    for sentence in found:
        for name in (*_things(sentence), *_owner(sentence), *_subject(sentence)):
            key = normalize(name)
            shown.setdefault(key, name)
    # prose counts a part of a person's name as the person's ("Tesk" of "Halvard Tesk").
    people = {normalize(person) for sentence in found for person in sentence.people}
    for sentence in found:
        for owner in (*_owner(sentence), *_subject(sentence)):
            if sentence.text not in about[normalize(owner)]:
                about[normalize(owner)].append(sentence.text)
        for key, name in shown.items():
            # A name counts where it stands whole, or as a person's, not inside another name
            # ("Pell" of "Pell Rowing Club").
            if (
                mentions(sentence.text, name)
                and (key in people or _whole_word(sentence.text, name, sentence.names) >= 0)
                and sentence.text not in about[key]
            ):
                about[key].append(sentence.text)
    items = []
    for key, said in about.items():
        name = shown[key]
        # A name the prose writes with "the" ("in the Glass Sea.", "The Orrin rises …") is
        # asked about with it; "the Tessaly outpost" uses the name as a word of another.
        with_the = (
            rf"(?:^The {re.escape(name)}\b(?!\s+{UPPER})|\bthe {re.escape(name)}(?=[.,;:!?)]|$))"
        )
        shown_as = f"the {name}" if any(re.search(with_the, text) for text in said) else name
        if shown_as != name:
            # "The Serving team keeps …" opens with "The": "the Serving" would be no phrase.
            shown_as = _with_its_noun(name, said) or shown_as
        slices = balanced(said)
        # One sentence is asked about once, not four times with the same answer (its clozes
        # ask the rest), as a fact profile skips an entity with one fact.
        for number, prompt in enumerate(PROFILE_PROMPTS if len(said) > 1 else PROFILE_PROMPTS[:1]):
            part = list(slices[number % len(slices)])
            rng.shuffle(part)
            answer = " ".join(part)
            items.append(
                PassageItem(
                    asking(prompt, shown_as), answer, "passage-profile", name, "", tuple(part)
                )
            )
    return items


def _with_its_noun(name: str, said: list[str]) -> str | None:
    """The name with its noun ("the Serving team" for "Serving") where the passages only ever
    write it after "the" and before the same lower-case noun, ending a sentence or a clause
    with the noun at least once (so that the word is a noun, not a verb: "The Orrin rises
    …"); None otherwise."""
    count = sum(len(re.findall(rf"(?<![\w-]){re.escape(name)}(?![\w-])", t)) for t in said)
    written = [
        match
        for text in said
        for match in re.finditer(rf"\b[Tt]he {re.escape(name)} ({LOWER}+)([.,;:!?]?)", text)
    ]
    nouns = {match.group(1) for match in written}
    if len(written) != count or len(nouns) != 1:
        return None
    return f"the {name} {nouns.pop()}" if any(match.group(2) for match in written) else None


def _subject(sentence: Sentence) -> tuple[str, ...]:
    """The plural common noun a sentence opens with, where it is no name ("Alerts are sent by
    Heron." → "alerts"): a topic of its own ("Tell me about alerts.")."""
    return (sentence.subject,) if sentence.subject else ()


def _owner(sentence: Sentence) -> tuple[str, ...]:
    """The topic a sentence that names nothing is about (its passage's), as a name is shown."""
    if sentence.names or sentence.about or not sentence.topic:
        return ()
    # A pronoun left standing ("They also run the rota." about a person) means another.
    if opens_with(sentence.text, PRONOUNS.keys()):
        return ()
    return (without_article(sentence.topic),)


def cloze_items(found: list[Sentence]) -> list[PassageItem]:
    """Each name of each sentence left out once (and a short complement of "is"), answered
    with the whole sentence.

    A sentence "S is C." is asked the other way round: "What is S?" for C, "What is C?" for
    a name S; the name that opens a sentence as "What/Who …?". Otherwise a name at the end
    is asked as an echo question ("The Orrin rises in what?"), and anywhere else as a blank.
    A sentence of several clauses (a ";" or a ",") is asked only by echo and blanks: which
    words are its subject and its complement is no longer plain.
    """
    items = []
    for sentence in found:
        text = sentence.text
        simple = _simple(text)
        copula = _copula(text) if simple else None
        blanks = list(_things(sentence))
        if copula is not None and _short_complement(copula[2], sentence.names):
            blanks.append(without_article(copula[2]))
        for blank in blanks:
            person = blank in sentence.people
            question = _ask(text, blank, copula, simple=simple, person=person, names=sentence.names)
            if question is not None:
                items.append(PassageItem(question, text, "passage-cloze", blank, blank, (text,)))
    return items


_COPULA = re.compile(r"^(?P<subject>.+?)\s(?P<verb>is|are|was|were)\s(?P<complement>.+?)[.!]$")


def _simple(text: str) -> bool:
    """Whether a sentence is one clause (no ",", ";" or ":"): its subject and complement are
    then plain enough to ask about."""
    return not any(mark in text for mark in ",;:")


def _copula(text: str) -> tuple[str, str, str] | None:
    """(subject, verb, complement) of a sentence "S is C." whose C is not a passive."""
    match = _COPULA.match(text)
    if match is None:
        return None
    complement = match.group("complement")
    first = complement.split()[0].lower()
    if participle(first):
        return None
    return match.group("subject"), match.group("verb"), complement


def _short_complement(complement: str, names: tuple[str, ...]) -> bool:
    """Whether a complement is one thing to ask for: at most three words past its article,
    and not a name already asked (names are asked as names)."""
    bare = without_article(complement)
    return len(bare.split()) <= 3 and not any(_same(bare, name) for name in names)


def _things(sentence: Sentence) -> tuple[str, ...]:
    """What a sentence is asked about: its names, and its passage's topic when that is no
    name ("cold-drawn lens")."""
    return (*sentence.names, sentence.about) if sentence.about else sentence.names


def _ask(
    text: str,
    blank: str,
    copula: tuple[str, str, str] | None,
    *,
    simple: bool = True,
    person: bool = False,
    names: Sequence[str] | None = None,
) -> str | None:
    """The question that leaves `blank` out of `text` (`person`: a person's name, asked with
    "who"; `names`: the names `text` mentions, when known)."""
    wh = "Who" if person else "What"
    if copula is not None:
        subject, verb, complement = copula
        if _same(without_article(complement), blank):
            return f"{wh} {verb} {lower_article(subject)}?"
        if _same(without_article(subject), blank):
            return f"{wh} {verb} {lower_article(complement)}?"
    at = _whole_word(text, blank, names)
    if at < 0:
        return None
    before, after = text[:at].rstrip(), text[at + len(blank) :]
    if simple and before in {"", "The"} and after.startswith(" ") and after.rstrip()[-1:] == ".":
        # The sentence's subject: asked without inversion ("Who founded Korrin?"), without
        # what a parenthesis says of it ("The Palm House (the tallest) is heated …").
        return f"{wh} {_PARENTHESIS.sub('', after).strip()[:-1]}?"
    agent = _AGENT_KIND.search(before)
    if agent is not None and after.strip() in {".", "!", ""}:
        # "… opened by the botanist Agnes Fenn." → "… opened by which botanist?"
        return f"{before[: agent.start('article')]}which {agent.group('kind')}?"
    if len(before.split()) >= 2 and after.strip() in {".", "!", ""}:
        before = _strip_article(before)
        if person:
            ask = "whom" if before.split()[-1].lower() in _PREPOSITIONS else "who"
        else:
            ask = "what"
        return f"{before} {ask}?"
    return f"Fill in the blank: {text[:at]}{BLANK}{after}"


_PREPOSITIONS = frozenset(("by", "to", "with", "for", "from", "of", "about"))
#: A parenthesis and the space before it.
_PARENTHESIS = re.compile(r"\s*\([^()]*\)")
#: A passive's agent written with its kind before its name: "by the botanist".
_AGENT_KIND = re.compile(r"\w \bby (?P<article>the) (?P<kind>[a-z]+)$")


def descriptions(found: list[Sentence]) -> dict[str, list[tuple[str, str]]]:
    """What other sentences say each name is, as noun phrases that can stand in for it, with
    the sentence each comes from (keyed by the normalised name).

    - a definite complement or subject of "is": "Korrin's capital is Vaskel." describes
      Vaskel as "Korrin's capital"; "a town in the north" names no one thing and describes
      nothing;
    - a relative clause on the name's kind: once "Korrin is an island nation …" gives
      Korrin's kind, each simple sentence that opens with Korrin describes it ("Korrin was
      founded by Queen Ysolde." → "the island nation that was founded by Queen Ysolde",
      "Korrin's capital is Vaskel." → "the island nation whose capital is Vaskel").
    """
    described: dict[str, list[tuple[str, str]]] = defaultdict(list)
    kinds: dict[str, tuple[str, str]] = {}
    simple = [s for s in found if _simple(s.text)]
    copulas = {s.text: _copula(s.text) for s in simple}
    for sentence in simple:
        copula = copulas[sentence.text]
        if copula is None:
            continue
        subject, _, complement = copula
        for name in sentence.names:
            if _same(without_article(complement), name):
                description = subject
            elif _same(without_article(subject), name):
                description = complement
                kind = kind_of(complement)
                if kind:
                    kinds.setdefault(normalize(name), (kind, sentence.text))
            else:
                continue
            if _definite(description) and not mentions(description, name):
                described[normalize(name)].append((lower_article(description), sentence.text))
    for sentence in simple:
        for name in sentence.names[:1]:
            key = normalize(name)
            if key not in kinds or sentence.text == kinds[key][1]:
                continue
            copula = copulas[sentence.text]
            if copula is not None and _same(without_article(copula[0]), name):
                continue  # "N is …" says what N is: a description or a kind, not a clause
            at = _whole_word(sentence.text, name)
            if sentence.text[:at] not in {"", "The "}:
                continue
            rest = sentence.text[at + len(name) :].rstrip(".!").rstrip()
            kind = kinds[key][0]
            if rest.startswith(POSSESSIVE):
                clause = f"the {kind} whose {rest[2:].strip()}"
            elif rest.startswith(" "):
                clause = f"the {kind} that {rest.strip()}"
            else:
                continue
            described[key].append((clause, sentence.text))
    return described


def _repeats_kind(description: str, question: str) -> bool:
    """Whether a relative description's kind is already in `question`."""
    match = re.match(r"the (.+?) (?:that|whose) ", description)
    return match is not None and mentions(question, match.group(1))


def chain_items(found: list[Sentence], cloze: list[PassageItem] | None = None) -> list[PassageItem]:
    """Two sentences composed through a name: a question of one sentence with a name in it
    replaced by what another sentence says that name is (`descriptions`: "The Orrin runs
    through Vaskel." and "Korrin's capital is Vaskel." → "What runs through Korrin's
    capital?"), answered with both sentences: every question with every description of
    each name it holds. `cloze`: the cloze items of `found`, where the caller has them."""
    described = descriptions(found)
    items = []
    for item in cloze_items(found) if cloze is None else cloze:
        if item.question.startswith("Fill in the blank"):
            continue
        for name, said in described.items():
            shown = _shown(item.question, name)
            if shown is None or _same(name, item.expected):
                continue
            at = _whole_word(item.question, shown)
            after = item.question[at + len(shown) :]
            usable = [
                (description, source)
                for description, source in said
                if source != item.answer
                and not mentions(description, item.expected)
                # A relative clause cannot take a possessive ("… whose capital is Vaskel's").
                and not (
                    after.startswith(POSSESSIVE) and re.search(r"\b(?:whose|that)\b", description)
                )
                # Nor say twice what kind the name is ("the island nation … is an island …").
                and not _repeats_kind(description, item.question)
            ]
            for description, source in usable:
                question = item.question[:at] + description + after
                question = sentence_start(question)
                items.append(
                    PassageItem(
                        question,
                        f"{source} {item.answer}",
                        "passage-chain",
                        item.expected,
                        item.expected,
                        (source, item.answer),
                    )
                )
    return items


#: Words before a name that say nothing of its sort ("the", "and": "Earth and Jupiter").
_NO_PLACE = frozenset({"the", "a", "an", "and", "or"})


def premise_items(
    found: list[Sentence], cloze: list[PassageItem], rng: random.Random
) -> list[PassageItem]:
    """Counterfactual items: a premise that puts another name of the passages in a sentence in
    place of the one a cloze question asks for ("Suppose that the Orrin rises in the Glass
    Sea, not the Pale Mountains."), then that question, answered from the premise, not the
    passage: what a model that ignores premises gets wrong.

    The other name is one of the same sort, as far as plain text tells: one the passages
    write after a word they write the asked name after ("rises in the Pale Mountains", "lies
    in the Glass Sea"), a person's for a person's, and with "the" where the asked name has it
    ("the Glass Sea", not "the Vaskel"); one is drawn for each question, and a name no other
    shares a place with gets none.
    """
    sorts: dict[str, tuple[str, bool, bool]] = {}
    after: dict[str, set[str]] = defaultdict(set)
    for sentence in found:
        for name in sentence.names:
            with_the = re.search(rf"\b[Tt]he {re.escape(name)}\b", sentence.text) is not None
            sorts.setdefault(normalize(name), (name, with_the, name in sentence.people))
            before = re.search(rf"(\w+)\s+(?:[Tt]he\s+)?{re.escape(name)}\b", sentence.text)
            if before is not None and before.group(1).lower() not in _NO_PLACE:
                after[normalize(name)].add(before.group(1).lower())
    items = []
    for item in cloze:
        if item.question.startswith("Fill in the blank") or normalize(item.expected) not in sorts:
            continue
        asked = normalize(item.expected)
        name, with_the, person = sorts[asked]
        others = sorted(
            other
            for key, (other, the, who) in sorts.items()
            if (the, who) == (with_the, person)
            and after[key] & after[asked]
            and asked not in key
            and key not in asked
            and not mentions(item.answer, other)
            and not mentions(item.question, other)
        )
        at = _whole_word(item.answer, item.expected)
        if not others or at < 0:
            continue
        other = rng.choice(others)
        supposed = item.answer[:at] + other + item.answer[at + len(item.expected) :]
        supposed = lower_article(supposed.rstrip().rstrip(".!"))
        was = f"the {name}" if with_the else name
        items.append(
            PassageItem(
                f"Suppose that {supposed}, not {was}. {item.question}",
                f"Under that supposition, {supposed}.",
                "passage-premise",
                item.expected,
                other,
                item.context,
            )
        )
    return items


def _shown(text: str, key: str) -> str | None:
    """How `text` writes the name whose normalised form is `key` (None when it does not)."""
    for match in re.finditer(NAME, text):
        words = match.group().split()
        for i in range(len(words)):
            for j in range(len(words), i, -1):
                candidate = " ".join(words[i:j])
                # Not a part of a longer name ("Ombril" of "Ombril Observatory").
                inside = (j < len(words) and capitalised(words[j])) or (
                    i > 0
                    and capitalised(words[i - 1])
                    and words[i - 1].lower() not in FUNCTION_WORDS
                )
                if normalize(candidate) == key and not inside:
                    return candidate
    return None


def _definite(phrase: str) -> bool:
    first = phrase.split()[0]
    return first.lower() == "the" or first.endswith(POSSESSIVE)


def _same(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


def _whole_word(text: str, name: str, names: Sequence[str] | None = None) -> int:
    """Where `name` first stands in `text` as a whole name: not inside a longer name the text
    mentions (`names`, read from `text` when not given): "Roke" is not in "Dr Anwen Roke is
    …", but it is in "… the Roke method"."""
    longer = [
        span
        for other in (names_in(text) if names is None else names)
        if len(other) > len(name)
        for span in (m.span() for m in re.finditer(re.escape(other), text))
    ]
    for match in re.finditer(rf"(?<![\w'’]){re.escape(name)}(?![\w])", text):
        if not any(start <= match.start() and match.end() <= end for start, end in longer):
            return match.start()
    return -1


def _strip_article(before: str) -> str:
    """The words before an echo question's blank, without a dangling article ("… is the")."""
    words = before.split()
    while words and words[-1].lower() in {"the", "a", "an"}:
        words.pop()
    return " ".join(words)
