"""Passages of prose, read as plain text: their sentences and the names they mention.

Used by synthesis (`kaizen.trainer.passages`: what a passage teaches) and by routing (a
domain's passages name its entities as its facts do). The rules are plain text rules, for
English prose:

- a passage is split into sentences and names (`kaizen.runtime.suites.names`), and one of
  several clauses into the plain sentences it is made of (`kaizen.runtime.suites.clauses`);
- each sentence is made to stand alone, since it will be seen out of its passage:
  - a pronoun that opens a sentence ("It was founded by …", "Its capital is …") is taken to
    mean the passage's topic (`topic`: its title when the title is a name, else the name
    that opens its first sentence, else a title or a short "The …" subject that opens the
    first sentence) and replaced by it;
  - "The X" opening a sentence, X a lower-case word ("The tower was built by …", "The
    town is known for …"), is taken to mean the nearest thing an earlier sentence of the
    passage names as an X: a name whose head word is X ("the Tower of Ninefold Bells"), a
    name an earlier sentence says is an X ("Ombril is a harbour town …"), or an X an
    earlier sentence gives an owner ("Halvard Tesk's workshop"), and where none does, the
    topic's X when a verb follows ("The course is …" → "The Quellmark Cup's course is …");
  - a possessive pronoun inside a sentence that names nothing before it ("Most of its
    people speak Ombrese.") is taken to mean the topic's, and in a passage about a person
    so is "he" or "she" after an opening phrase ("In 1952 she received …");
- a name a personal pronoun ("He was born in …") or a relative "who" stands for, or one
  that was born, died or married, is a person's (`Sentence.people`), asked about with "who".

A name the rules miss is only a name that gets no items or route key of its own.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.clauses import KIND_ENDS, clauses, kind_of
from kaizen.runtime.suites.english import AUXILIARIES, participle
from kaizen.runtime.suites.knowledge import Knowledge, Passage, sentence_start
from kaizen.runtime.suites.names import (
    CONNECTORS,
    FUNCTION_WORDS,
    LOWER,
    NAME,
    PLURAL_NOUN,
    UPPER,
    WORD,
    capitalised,
    common_opening,
    lower_article,
    mentions,
    names_in,
    split_sentences,
    titled,
    without_article,
)

#: Pronouns that stand only for a person.
_PERSONAL = frozenset({"he", "she", "him", "his", "her", "hers"})
#: Possessive pronouns inside a sentence, read as the topic's when nothing is named before.
_INNER_POSSESSIVES = frozenset({"its", "his", "her", "their"})
#: Subject pronouns inside a sentence, read as a person topic when nothing is named before.
_INNER_SUBJECTS = frozenset({"he", "she"})
#: "The X" opening a sentence: X one lower-case word, then (unless X is a possessive) a word
#: that is no preposition or relative ("The tower was built …", not "The capital of …").
_DEFINITE = re.compile(rf"^The ({LOWER}(?:{LOWER}|-)*)(['’]s)?(?=\s+([^\W\d_]+))")
#: An opening phrase of time or place before "the X" ("Since 1998 the ferry has been run by
#: …", "In winter the crossing closes."): a preposition and up to three more words.
_LEAD = re.compile(
    r"^((?:Since|In|On|From|By|Until|After|Before|During|For|At|Every|Each|Today|Now|Then|"
    r"Once|Later)(?: (?!the\b)[^\s,]+){0,3},? )(?=the )"
)
#: Sentence-opening pronouns read as the passage's subject (the title), and what replaces them.
PRONOUNS = {
    "it": "{title}",
    "he": "{title}",
    "she": "{title}",
    "they": "{title}",
    "its": "{title}'s",
    "his": "{title}'s",
    "her": "{title}'s",
    "their": "{title}'s",
}


@dataclass(frozen=True)
class Sentence:
    """One sentence of a passage, made to stand alone, and the names it mentions."""

    text: str
    names: tuple[str, ...]
    passage: int
    """Index of its passage in the knowledge's passages."""
    people: tuple[str, ...] = ()
    """Those of `names` that are people's names (asked about with "who")."""
    about: str | None = None
    """The passage's topic when the sentence mentions it and it is no name (a lower-case
    thing: "the cold-drawn lens"), so that it is asked about as names are."""
    topic: str | None = None
    """Its passage's topic as `topic` reads it ("Quarry", "The Halcyon cluster"), or None."""
    subject: str | None = None
    """The plural common noun it opens with, in lower case, where that is no name ("Alerts
    are sent by Heron." → "alerts"): what it is about besides its names ("Tell me about
    alerts.")."""


def stand_alone(sentence: str, title: str | None) -> str:
    """`sentence` with an opening pronoun replaced by `title` (unchanged without a title)."""
    if not title:
        return sentence
    match = WORD.match(sentence)
    if match is None or match.start() != 0:
        return sentence
    replacement = PRONOUNS.get(match.group().lower())
    if replacement is None:
        return sentence
    return replacement.format(title=title) + sentence[match.end() :]


#: Pronouns of more than one: a person is not what they stand for ("Marta Quill leads the
#: team. … They also run the rota." is the team's rota). In a passage that asks questions
#: (an FAQ) no opening pronoun is its topic's: "Where is the rota published? It is …".
PLURAL = frozenset({"they", "their"})


def topic(passage: Passage) -> str | None:
    """What a passage is about, as its sentences would name it: its title when the title is a
    name ("Korrin", "The Meridian Lark"; with "The" where the first sentence opens with "The"
    and the title), else a title that opens the first sentence ("Tolbeck glass", "The
    cold-drawn lens"), else the name that opens its first sentence ("Zephyria is a small
    country …" under the title "Zephyria at a glance"), else the first sentence's short
    definite subject ("The cold-drawn lens is …"), else None."""
    title = (passage.title or "").strip()
    first = (split_sentences(passage.text) or [""])[0]
    if title and names_in(title) == [without_article(title)]:
        if title == without_article(title) and first.startswith(f"The {title} "):
            return f"The {title}"
        return title
    if not first:
        return None
    # A title that opens the first sentence says where its subject ends ("Tolbeck glass is …"
    # is about the glass, not the town).
    opening = first[: len(title)]
    if title and opening.lower() == title.lower() and first[len(title) : len(title) + 1] == " ":
        return opening
    names = names_in(first)
    at = first.find(names[0]) if names else -1
    if 0 <= at <= len("The "):
        return first[: at + len(names[0])]
    subject = _THING_IS.match(first)
    return subject.group(1) if subject is not None else None


#: The first sentence of an untitled passage about a thing: "The cold-drawn lens is …".
_THING_IS = re.compile(rf"^(The {LOWER}[\w-]*(?: {LOWER}[\w-]*){{0,2}}) (?:is|was|are|were) ")


#: A name a relative "who" is on, and the subject of what only people do.
_WHO = rf"({NAME}),? who\b"
_BORN = rf"({NAME}),? (?:(?:was|were) born|died|married)\b"


def sentences(knowledge: Knowledge) -> list[Sentence]:
    """Every sentence of the knowledge's passages, standing alone, with its names."""
    split = [
        (i, [c for text in split_sentences(passage.text) for c in clauses(text)])
        for i, passage in enumerate(knowledge.passages)
    ]
    lowercase = frozenset(
        part
        for _, texts in split
        for text in texts
        for word in WORD.findall(_prose(text))
        if not capitalised(word) and word.lower() not in CONNECTORS
        for part in (word.lower(), *word.lower().split("-")[1:])
    )
    found: list[tuple[int, str, tuple[str, ...], str | None, str | None]] = []
    # A name a relative "who" is on is a person's ("Mirela, who ran the shop"); the last name
    # of the capitalised run before it ("Then Mirela, who …" is about Mirela).
    # So is one that was born, died or married ("Zoë Lindqvist was born in São Tomé.").
    people = {
        normalize(without_article((names_in(match.group(1)) or [match.group(1)])[-1]))
        for passage in knowledge.passages
        for pattern in (_WHO, _BORN)
        for match in re.finditer(pattern, passage.text)
    }
    for index, texts in split:
        about = topic(knowledge.passages[index])
        # A topic that is no name ("The cold-drawn lens") is asked about where it is mentioned.
        thing = without_article(about) if about and not names_in(about) else None
        earlier: list[tuple[str, tuple[str, ...]]] = []
        person = False
        if about:
            person = (
                titled(about)
                or normalize(without_article(about)) in people
                or any(_opens_personal(text) for text in texts)
            )
        asks = any(question(text) for text in texts)
        asked: str | None = None  # the question the next statement opens the answer to
        for text in texts:
            if question(text):
                asked = text
                continue  # asked, not stated: an FAQ's question is its answer's item
            if asked is not None:
                text, asked = answered(text, asked), None
            if len(WORD.findall(text)) < 2:
                continue  # "Yes.": an FAQ answer's word, no statement of its own
            if about and _opens_personal(text):
                people.add(normalize(without_article(about)))
            if not (asks or (person and opens_with(text, PLURAL))):
                text = stand_alone(text, about)
            # An FAQ's "The rota …" is the rota its question asked about, not its title's.
            text = _definite(text, earlier, None if asks else about)
            if person:
                text = _inner_subject(text, about, lowercase)
            text = _inner_possessive(text, about, lowercase, people)
            names = tuple(names_in(text, lowercase))
            earlier.append((text, names))
            mentioned = thing if thing and mentions(text, thing) else None
            found.append((index, text, names, mentioned, about))
    # A person's name stands for the person in part too ("Halvard Tesk" … "Tesk").
    people.update(normalize(part) for person in list(people) for part in person.split()[1:])
    read = _openings_read([(text, names) for _, text, names, _, _ in found])
    return [
        Sentence(
            text,
            read[text][0],
            index,
            people=tuple(n for n in read[text][0] if normalize(n) in people or titled(n)),
            about=thing,
            topic=about,
            subject=read[text][1],
        )
        for index, text, names, thing, about in found
    ]


def _openings_read(
    said: list[tuple[str, tuple[str, ...]]],
) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """Each sentence's names without a one-word "name" that only ever opens a sentence and
    reads as a common word there (`common_opening`: "Alerts are sent by Heron.", "Small
    models are served …"), and the plural common noun it opens with, in lower case
    ("alerts"), or None. One written inside a sentence anywhere in the knowledge is a name
    ("Cinder" in "… by Cinder."), and so is a word made from another name ("Zephyrians" of
    "Zephyria")."""
    inside = {
        normalize(name)
        for text, names in said
        for name in names
        if " " in name or text.find(name, 1) > 0
    }
    every = {normalize(name) for _, names in said for name in names}
    stems = {name: name[:-1] for name in every if len(name) >= 4}
    read: dict[str, tuple[tuple[str, ...], str | None]] = {}
    for text, names in said:
        kept, subject = [], None
        for name in names:
            reading = None
            if " " not in name and normalize(name) not in inside:
                made = any(
                    normalize(name).startswith(stem) and normalize(name) != other
                    for other, stem in stems.items()
                )
                reading = None if made else common_opening(text, name)
            if reading is None:
                kept.append(name)
            elif reading == PLURAL_NOUN:
                subject = name.lower()
        read[text] = (tuple(kept), subject)
    return read


#: A token that is code, not prose: a path, a file name, an address, a backquoted
#: identifier ("go/vane", "vane.yaml", "https://…/vane", "`qctl resume`").
_CODE = re.compile(r"`[^`]*`|\S*[/\\]\S*|\S*\w\.\w\S*")


def _prose(text: str) -> str:
    """`text` without its code tokens: a word written there in lower case ("vane.yaml") does
    not say that the word is no name ("Vane is the feature-flag service …")."""
    return _CODE.sub(" ", text)


def question(text: str) -> bool:
    """Whether a sentence asks rather than states ("Where are the audit logs kept?")."""
    return text.rstrip().rstrip("\"'”’)").endswith("?")


def faq(passage: Passage) -> list[tuple[str, str]]:
    """An FAQ's pairs: each question the passage asks, with the sentences that follow it up
    to the next question, the answer's opening "It" or "They" read as what the question
    asked about (`answered`: "Where are the audit logs kept?", "The audit logs are kept in
    the Ledger bucket for 400 days.")."""
    pairs: list[tuple[str, list[str]]] = []
    for text in split_sentences(passage.text):
        if question(text):
            pairs.append((text, []))
        elif pairs:
            pairs[-1][1].append(answered(text, pairs[-1][0]) if not pairs[-1][1] else text)
    return [(asked, " ".join(answer)) for asked, answer in pairs if answer]


#: What an FAQ's question asks about: its subject after "is", "are", "do", … and before a
#: last word that is the question's verb ("Where are the audit logs kept?"), or after "is" or
#: "are" up to the end ("How long is the retention period?").
_ASKED = re.compile(
    r"^(?:[A-Z]\w*)(?: (?:long|often|many|much|soon|quickly))?(?: [a-z]+)? "
    r"(?P<aux>is|are|was|were|does|do|did|can|will|should|must) "
    r"(?P<subject>(?:the|The) [\w-]+(?: [\w-]+){0,3}?)(?: (?P<verb>[a-z]+))?\?$"
)
#: The pronouns of a thing that an FAQ's answer opens with ("They are kept …").
_THING = frozenset({"it", "they"})


def asked_about(text: str) -> str | None:
    """The definite thing an FAQ's question asks about ("the audit logs" of "Where are the
    audit logs kept?"), or None (a question about a person, an indefinite one, no subject)."""
    found = _ASKED.match(text.strip())
    if found is None:
        return None
    subject, verb = found.group("subject"), found.group("verb")
    if verb and found.group("aux") in ("is", "are", "was", "were") and not participle(verb):
        subject = f"{subject} {verb}"  # "Where is the audit log?": a copula's subject to the end
    return lower_article(subject)


def answered(text: str, asked: str) -> str:
    """An FAQ answer's first sentence with an opening "It" or "They" read as what its
    question asked about ("They are kept …" → "The audit logs are kept …")."""
    subject = asked_about(asked)
    if subject is None or not opens_with(text, _THING):
        return text
    opening = WORD.match(text)
    assert opening is not None  # opens_with matched a word
    return sentence_start(subject) + text[opening.end() :]


def opens_with(text: str, words: AbstractSet[str]) -> bool:
    """Whether `text` opens with one of `words` (lower case), as a pronoun opens it."""
    opening = WORD.match(text)
    return opening is not None and opening.group().lower() in words


def _opens_personal(text: str) -> bool:
    return opens_with(text, _PERSONAL)


def _definite(text: str, earlier: list[tuple[str, tuple[str, ...]]], about: str | None) -> str:
    """`text` with an opening "The X", or "the X" after an opening phrase of time or place
    that names nothing ("Since 1998 the ferry …"), read as `_opening_definite` reads it."""
    led = _LEAD.match(text)
    if led is None or names_in(led.group(1)):
        return _opening_definite(text, earlier, about)
    lead, led_the = led.group(1), text[led.end(1) :]
    opening = f"The{led_the[len('the') :]}"  # "the ferry has …" as a sentence: "The ferry has …"
    read = _opening_definite(opening, earlier, about)
    return lead + (lower_article(read) if read != opening else led_the)


def _opening_definite(
    text: str, earlier: list[tuple[str, tuple[str, ...]]], about: str | None
) -> str:
    """`text` with an opening "The X" replaced by what an earlier sentence (with its names)
    names as an X (nearest sentence first); where none does, read as the passage's topic's
    X when the topic is a name the sentence does not mention ("The course is four miles
    long." about the Quellmark Cup → "The Quellmark Cup's course is …"); else unchanged."""
    match = _DEFINITE.match(text)
    if match is None:
        return text
    noun, possessive, following = match.group(1), match.group(2) or "", match.group(3)
    if not possessive and (following.lower() in FUNCTION_WORDS | CONNECTORS | KIND_ENDS):
        return text
    for before, names in reversed(earlier):
        meant = _meant(noun, before, names)
        if meant is not None:
            return f"{meant}{possessive}{text[match.end() :]}"
    # Only "The X" and a verb: "The next …", "The river Lissel …" and "The frost heron …"
    # say which thing they mean by their next word, not by the topic.
    if possessive or noun in FUNCTION_WORDS or not _verb_like(following):
        return text
    if not about or not names_in(about) or mentions(text, about):
        return text
    return f"{about}'s {noun}{text[match.end() :]}"


def _verb_like(word: str) -> bool:
    """Whether `word`, after "The X", reads as the sentence's verb: an auxiliary, or a lower-case
    word ending in -s or -ed ("takes", "ended"), not in -ss ("The glass …")."""
    return word in AUXILIARIES or (
        word.islower() and (word.endswith("ed") or (word.endswith("s") and not word.endswith("ss")))
    )


def _meant(noun: str, sentence: str, names: tuple[str, ...]) -> str | None:
    """What `sentence` (naming `names`) names as a `noun`, as it writes it: a name it says is
    a `noun` ("Ombril is a harbour town …", "Quarry is the batch scheduler …"), a name whose
    head word is `noun` ("the Tower of Ninefold Bells"), or a `noun` it gives an owner
    ("Halvard Tesk's workshop")."""
    subject = names[0] if names else None
    if subject is not None:
        said = re.match(
            rf"(?:The )?{re.escape(subject)} (?:is|was) (?:a|an|the) (.+?)[.!]?$", sentence
        )
        kind = kind_of(f"a {said.group(1)}") if said else None
        if kind is not None and kind.split()[-1] == noun:
            return _as_written(subject, sentence)
    for name in reversed(names):
        if noun in _heads(name):
            return _as_written(name, sentence)
    owned = re.findall(rf"((?:{UPPER}[\w-]*\s)*{UPPER}[\w-]*)['’]s {re.escape(noun)}\b", sentence)
    if owned:
        return f"{owned[-1]}'s {noun}"
    return None


def _heads(name: str) -> set[str]:
    """The words a name may be called by, as a kind: "Tower of Ninefold Bells" → tower, "Glass
    Sea" → sea, "Queen Ysolde" → queen and ysolde."""
    words = [w.lower() for w in name.split()]
    heads = {words[words.index("of", 1) - 1]} if "of" in words[1:] else {words[-1]}
    if titled(name):
        heads.add(words[0].rstrip("."))
    return heads


def _as_written(name: str, sentence: str) -> str:
    """`name` with "The" before it when `sentence` writes it with "the" ("The Tower of …")."""
    if re.search(rf"(?:^|\s)[Tt]he {re.escape(name)}\b", sentence):
        return f"The {name}"
    return name


def _inner_subject(text: str, about: str | None, lowercase: frozenset[str]) -> str:
    """`text` with its first "he" or "she" after an opening phrase ("In 1952 she received …")
    read as the topic, a person, when the sentence names nothing before it and does not name
    the topic at all (an opening pronoun is `stand_alone`'s)."""
    if not about or mentions(text, about):
        return text
    for word in list(WORD.finditer(text))[1:]:
        if word.group().lower() not in _INNER_SUBJECTS:
            continue
        if names_in(text[: word.start()], lowercase):
            return text
        return f"{text[: word.start()]}{lower_article(about)}{text[word.end() :]}"
    return text


def _inner_possessive(
    text: str, about: str | None, lowercase: frozenset[str], people: AbstractSet[str] = frozenset()
) -> str:
    """`text` with its first possessive pronoun ("Most of its people …") read as the topic's,
    when the sentence does not name the topic at all and names nothing before the pronoun, or
    only people before an "its" (`people`: normalised names of people)."""
    if not about or mentions(text, about):
        return text
    for word in list(WORD.finditer(text))[1:]:
        if word.group().lower() not in _INNER_POSSESSIVES:
            continue
        following = WORD.match(text, word.end() + 1)
        if following is None or not following.group()[0].islower():
            return text
        if following.group().lower() in FUNCTION_WORDS | CONNECTORS:
            return text
        before = names_in(text[: word.start()], lowercase)
        # "its" is no person's: names of people before it do not own what it owns ("Dr. Anh
        # Tran wrote its retry policy." is about the topic's policy).
        if word.group().lower() != "its" and before:
            return text
        if any(not (titled(name) or normalize(without_article(name)) in people) for name in before):
            return text
        return f"{text[: word.start()]}{lower_article(about)}'s{text[word.end() :]}"
    return text


def proper_names(knowledge: Knowledge) -> list[tuple[str, str]]:
    """(domain, name) for each name the passages mention that is surely a name: written with
    more than one word, or somewhere not as the first word of its sentence ("Iron oxide in its
    dust …" alone does not make "Iron" a name). In passage order, each once a domain."""
    found = sentences(knowledge)
    inside: set[str] = set()
    for sentence in found:
        for name in sentence.names:
            if " " in name or sentence.text.find(name, 1) > 0:
                inside.add(normalize(name))
    pairs: list[tuple[str, str]] = []
    for sentence in found:
        domain = knowledge.passages[sentence.passage].domain
        for name in sentence.names:
            if normalize(name) in inside and (domain, name) not in pairs:
                pairs.append((domain, name))
    return pairs
