"""Passages of prose, read as plain text: their sentences and the names they mention.

Used by synthesis (`kaizen.trainer.passages`: what a passage teaches) and by routing (a
domain's passages name its entities as its facts do). The rules are plain text rules, for
English prose:

- a sentence ends at ".", "!" or "?" (and a closing quote) before a capital or a digit, and
  one of several clauses becomes the plain sentences it is made of (`clauses`: ";", a list
  of "X is Y", a name in apposition, a relative clause on a name, a trailing passive);
- each sentence is made to stand alone, since it will be seen out of its passage:
  - a pronoun that opens a sentence ("It was founded by …", "Its capital is …") is taken to
    mean the passage's topic (`topic`: its title when the title is a name, else the name
    that opens its first sentence, else a title or a short "The …" subject that opens the
    first sentence) and replaced by it;
  - "The X" opening a sentence, X a lower-case word ("The tower was built by …", "The
    town is known for …"), is taken to mean the nearest thing an earlier sentence of the
    passage names as an X: a name whose head word is X ("the Tower of Ninefold Bells"), a
    name an earlier sentence says is an X ("Ombril is a harbour town …"), or an X an
    earlier sentence gives an owner ("Halvard Tesk's workshop");
  - a possessive pronoun inside a sentence that names nothing before it ("Most of its
    people speak Ombrese.") is taken to mean the topic's, and in a passage about a person
    so is "he" or "she" after an opening phrase ("In 1952 she received …");
- a name a personal pronoun ("He was born in …") or a relative "who" stands for is a
  person's (`Sentence.people`), asked about with "who";
- the names a sentence mentions are runs of capitalised words, with "of", "the" and the
  like inside ("Tower of Ninefold Bells") and a number right after the last ("Apollo 11",
  "Version 2.0"), leaving out the words capitalised only because they open the sentence.

A name the rules miss is only a name that gets no items or route key of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Knowledge, Passage, sentence_start

#: A sentence ends at ".", "!" or "?" (and a closing quote or bracket) followed by space and a
#: capital, a digit or an opening quote.
_BOUNDARY = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’-]*")
POSSESSIVE = ("'s", "’s")
#: Lower-case words that may sit inside a name ("Tower of Ninefold Bells", "Isle of the Dead").
CONNECTORS = frozenset({"of", "the", "de", "del", "la", "le", "van", "von", "der", "da", "du"})
#: Words capitalised only because they open a sentence: never a name on their own there.
FUNCTION_WORDS = frozenset(
    (
        "a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "he", "she",
        "him", "her", "his", "hers", "they", "them", "their", "theirs", "we", "us", "our", "you",
        "your", "i", "my", "there", "here", "what", "which", "who", "whom", "whose", "when",
        "where", "why", "how", "in", "on", "at", "to", "from", "by", "with", "without", "for",
        "of", "about", "after", "before", "during", "since", "until", "while", "as", "if",
        "unless", "because", "although", "though", "but", "and", "or", "nor", "so", "yet", "then",
        "thus", "also", "still", "each", "every", "all", "both", "some", "many", "most", "much",
        "more", "few", "several", "no", "not", "one", "two", "three", "four", "five", "six",
        "seven", "eight", "nine", "ten", "first", "second", "third", "last", "next", "today",
        "now", "later", "once", "often", "usually", "however", "therefore", "meanwhile",
        "moreover", "instead", "only", "even", "just", "among", "between", "across", "along",
        "around", "over", "under", "above", "below", "near", "beside", "inside", "outside", "into",
        "onto", "upon", "through", "throughout", "against", "toward", "towards", "within", "like",
        "unlike", "such", "other", "another", "any", "either", "neither", "suppose", "imagine",
        "consider"
    )
)  # fmt: skip
#: A name whose first word is one of these is a person's ("Queen Ysolde", "Master Corvane").
HONORIFICS = frozenset(
    ("king", "queen", "prince", "princess", "emperor", "empress", "lord", "lady", "sir",
     "dame", "duke", "duchess", "master", "saint", "st", "dr", "mr", "mrs", "ms", "professor",
     "president", "general", "captain", "chancellor", "bishop", "pope", "doctor", "admiral",
     "commander", "lieutenant", "colonel", "sergeant", "baron", "baroness", "abbot", "abbess",
     "sultan", "tsar")
)  # fmt: skip
#: Past participles that follow "was"/"is" in a passive ("was born in"), not a complement.
PARTICIPLES = frozenset(
    ("born", "built", "made", "known", "found", "given", "taken", "seen", "written", "spoken",
     "held", "led", "sold", "run", "done", "grown", "worn", "drawn", "sung", "shown", "thrown",
     "chosen", "frozen", "hidden", "ridden", "broken")
)  # fmt: skip
#: Words that end a kind ("an island nation in the Glass Sea" → "island nation").
_KIND_ENDS = frozenset(
    ("in", "on", "at", "of", "by", "from", "with", "near", "for", "to", "that", "which", "who",
     "whose", "where", "and", "or", "but", "called", "named")
)  # fmt: skip
#: Pronouns that stand only for a person.
_PERSONAL = frozenset({"he", "she", "him", "his", "her", "hers"})
#: Possessive pronouns inside a sentence, read as the topic's when nothing is named before.
_INNER_POSSESSIVES = frozenset({"its", "his", "her", "their"})
#: Subject pronouns inside a sentence, read as a person topic when nothing is named before.
_INNER_SUBJECTS = frozenset({"he", "she"})
#: "The X" opening a sentence: X one lower-case word, then (unless X is a possessive) a word
#: that is no preposition or relative ("The tower was built …", not "The capital of …").
_DEFINITE = re.compile(r"^The ([a-z][a-z-]*)(['’]s)?(?=\s+([A-Za-z]+))")
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


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each stripped (a sentence ends at ., ! or ? and a capital)."""
    return [part.strip() for part in _BOUNDARY.split(" ".join(text.split())) if part.strip()]


#: A name as the clause rules see it: capitalised words, with connectors inside.
_NAME = rf"[A-Z][\w'’-]*(?:\s+(?:(?:{'|'.join(sorted(CONNECTORS))})\s+)*[A-Z][\w'’-]*)*"
#: "Its capital, Velmora, lies …": a definite phrase, a name in apposition, the rest.
_APPOSED_NAME = re.compile(
    rf"^(?P<np>(?:The|Its|His|Her|Their|[A-Z][\w-]*['’]s) [a-z][\w-]*(?: [a-z][\w-]*){{0,2}}), "
    rf"(?P<name>(?:the )?{_NAME}), (?P<rest>[a-z].*)$"
)
#: "Mars, the fourth planet out from the Sun, lies …": a name, a phrase in apposition, the rest.
_NAME_APPOSED = re.compile(
    rf"^(?P<name>(?:The )?{_NAME}), (?P<app>(?:the|a|an) [^,;]+), (?P<rest>[a-z][\w-]* .*)$"
)
#: "… the river Lissel, which flows into the Caldrin Sea, …": a relative clause on a name.
_RELATIVE = re.compile(
    rf"(?P<ante>(?:\b[Tt]he (?:[a-z][\w-]* )?)?{_NAME}), (?:which|who) (?P<clause>[^,;]+?)"
    rf"(?P<after>,.*|[.!?])$"
)
#: "Zephyria is a small country on the Caldrin Sea, founded by Queen Orlaine.".
_TRAILING_PASSIVE = re.compile(
    rf"^(?P<subject>(?:The )?{_NAME}) (?P<verb>is|was|are|were) (?P<rest>[^,;]+), "
    rf"(?P<participle>[a-z]+) by (?P<agent>(?:the )?{_NAME})(?P<end>[.!?])$"
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
        listed = re.split(r",\s+(?:and\s+)?|\s+and\s+(?=[A-Z]|the\s)", body)
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
    if match is None or not _one_name(match.group("name")):
        return None
    name = sentence_start(match.group("name"))
    return [f"{match.group('np')} is {match.group('name')}.", f"{name} {match.group('rest')}"]


def _name_apposed(sentence: str) -> list[str] | None:
    match = _NAME_APPOSED.match(sentence)
    if match is None or not _one_name(match.group("name")):
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
    if not _one_name(re.sub(r"^[Tt]he (?:[a-z][\w-]* )?", "", ante)):
        return None
    main = sentence[: match.end("ante")] + match.group("after")
    return [main, f"{sentence_start(ante)} {match.group('clause')}."]


def _trailing_passive(sentence: str) -> list[str] | None:
    match = _TRAILING_PASSIVE.match(sentence)
    if match is None or match.group("participle") not in PARTICIPLES | _ED:
        return None
    if not (_one_name(match.group("subject")) and _one_name(match.group("agent"))):
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


def _one_name(phrase: str) -> bool:
    """Whether `phrase` is one name and nothing else ("the Hall of Winds", "Velmora")."""
    bare = without_article(phrase)
    return names_in(bare) == [bare]


def stand_alone(sentence: str, title: str | None) -> str:
    """`sentence` with an opening pronoun replaced by `title` (unchanged without a title)."""
    if not title:
        return sentence
    match = _WORD.match(sentence)
    if match is None or match.start() != 0:
        return sentence
    replacement = PRONOUNS.get(match.group().lower())
    if replacement is None:
        return sentence
    return replacement.format(title=title) + sentence[match.end() :]


def _runs(sentence: str) -> list[tuple[int, list[str]]]:
    """Runs of capitalised words (connectors allowed inside), as (first word index, words); a
    possessive ends its run and is left out of it, a number right after its last word ends it
    and is in it."""
    words = list(_WORD.finditer(sentence))
    runs: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(words):
        if not words[i].group()[0].isupper():
            i += 1
            continue
        start, taken = i, []
        j = i
        while j < len(words):
            word = words[j].group()
            if word[0].isupper():
                bare = word
                for suffix in POSSESSIVE:
                    if word.endswith(suffix):
                        bare = word[: -len(suffix)]
                taken.append(bare)
                j += 1
                number = _NUMBER_AFTER.match(sentence, words[j - 1].end())
                if bare == word and number and bare.lower() not in FUNCTION_WORDS | CONNECTORS:
                    taken.append(number.group(1))  # "Version 2.0", "Apollo 11": ends the name
                    break
                if bare != word or not _adjacent(sentence, words, j):
                    break
            elif word.lower() in CONNECTORS and _continues(words, j):
                taken.append(word)
                j += 1
                if not _adjacent(sentence, words, j):
                    break
            else:
                break
        while taken and taken[-1].lower() in CONNECTORS:
            taken.pop()
        runs.append((start, taken))
        i = max(j, i + 1)
    return runs


#: A number right after a capitalised word, as written ("Version 2.0", "Apollo 11").
_NUMBER_AFTER = re.compile(r" (\d+(?:[.,]\d+)*)(?![\w.,]*\w)")


def _adjacent(sentence: str, words: list[re.Match[str]], j: int) -> bool:
    """Whether word `j` follows word `j - 1` with only spaces between (no comma, no stop)."""
    return j < len(words) and not sentence[words[j - 1].end() : words[j].start()].strip()


def _continues(words: list[re.Match[str]], j: int) -> bool:
    """Whether connectors from word `j` on lead to a capitalised word."""
    k = j
    while k < len(words) and words[k].group().lower() in CONNECTORS:
        k += 1
    return k < len(words) and words[k].group()[0].isupper() and k > j


def names_in(sentence: str, lowercase: frozenset[str] = frozenset()) -> list[str]:
    """The names `sentence` mentions, in order, each once.

    At the start of the sentence, leading words of `FUNCTION_WORDS` are left out ("The Orrin
    rises …" → "Orrin"), and a single remaining word is kept only if it is not written in
    lower case elsewhere in the domain's text (`lowercase`: "Farmers grow …" with "farmers"
    elsewhere is no name) and no preposition follows it ("Astronomers at the observatory …"
    is a common noun's plural, not a name).
    """
    found: list[str] = []
    for start, words in _runs(sentence):
        if start == 0:
            while words and words[0].lower() in FUNCTION_WORDS | CONNECTORS:
                words = words[1:]
            if len(words) == 1 and (
                words[0].lower() in lowercase or _before_preposition(sentence, words[0])
            ):
                words = []
        name = " ".join(words)
        if name and name not in found:
            found.append(name)
    return found


#: Prepositions that cannot follow a name opening a sentence on its own.
_AFTER_COMMON_NOUN = frozenset(
    ("at", "in", "on", "near", "from", "with", "of", "for", "across", "around", "throughout")
)


def _before_preposition(sentence: str, word: str) -> bool:
    following = re.search(rf"\b{re.escape(word)}\s+([a-z]+)\b", sentence)
    return following is not None and following.group(1) in _AFTER_COMMON_NOUN


def topic(passage: Passage) -> str | None:
    """What a passage is about, as its sentences would name it: its title when the title is a
    name ("Korrin", "The Meridian Lark"), else the name that opens its first sentence
    ("Zephyria is a small country …" under the title "Zephyria at a glance"), else a title
    that opens the first sentence ("The cold-drawn lens"), else the first sentence's short
    definite subject ("The cold-drawn lens is …"), else None."""
    if passage.title:
        title = passage.title.strip()
        if names_in(title) == [without_article(title)]:
            return title
    first = split_sentences(passage.text)[:1]
    if first:
        names = names_in(first[0])
        at = first[0].find(names[0]) if names else -1
        if 0 <= at <= len("The "):
            return first[0][: at + len(names[0])]
        # A title that is no name, opening the first sentence ("The cold-drawn lens"), else
        # the short definite subject of a first sentence "The X is …".
        title = (passage.title or "").strip()
        opening = first[0][: len(title)]
        if (
            title
            and opening.lower() == title.lower()
            and first[0][len(title) : len(title) + 1] == " "
        ):
            return opening
        subject = _THING_IS.match(first[0])
        if subject is not None:
            return subject.group(1)
    return None


#: The first sentence of an untitled passage about a thing: "The cold-drawn lens is …".
_THING_IS = re.compile(r"^(The [a-z][\w-]*(?: [a-z][\w-]*){0,2}) (?:is|was|are|were) ")


def sentences(knowledge: Knowledge) -> list[Sentence]:
    """Every sentence of the knowledge's passages, standing alone, with its names."""
    split = [
        (i, [c for text in split_sentences(passage.text) for c in clauses(text)])
        for i, passage in enumerate(knowledge.passages)
    ]
    lowercase = frozenset(
        word.lower()
        for _, texts in split
        for text in texts
        for word in _WORD.findall(text)
        if word[0].islower() and word.lower() not in CONNECTORS
    )
    found: list[tuple[int, str, tuple[str, ...], str | None]] = []
    # A name a relative "who" is on is a person's ("Mirela, who ran the shop"); the last name
    # of the capitalised run before it ("Then Mirela, who …" is about Mirela).
    people = {
        normalize(without_article((names_in(match.group(1)) or [match.group(1)])[-1]))
        for passage in knowledge.passages
        for match in re.finditer(rf"({_NAME}),? who\b", passage.text)
    }
    for index, texts in split:
        about = topic(knowledge.passages[index])
        # A topic that is no name ("The cold-drawn lens") is asked about where it is mentioned.
        thing = without_article(about) if about and not names_in(about) else None
        earlier: list[tuple[str, tuple[str, ...]]] = []
        person = False
        if about:
            person = (
                _honorific(about)
                or normalize(without_article(about)) in people
                or any(_opens_personal(text) for text in texts)
            )
        for text in texts:
            if about and _opens_personal(text):
                people.add(normalize(without_article(about)))
            text = stand_alone(text, about)
            text = _definite(text, earlier)
            if person:
                text = _inner_subject(text, about, lowercase)
            text = _inner_possessive(text, about, lowercase)
            names = tuple(names_in(text, lowercase))
            earlier.append((text, names))
            found.append((index, text, names, thing if thing and mentions(text, thing) else None))
    # A person's name stands for the person in part too ("Halvard Tesk" … "Tesk").
    people.update(normalize(part) for person in list(people) for part in person.split()[1:])
    return [
        Sentence(
            text,
            names,
            index,
            people=tuple(n for n in names if normalize(n) in people or _honorific(n)),
            about=thing,
        )
        for index, text, names, thing in found
    ]


def _honorific(name: str) -> bool:
    return name.split()[0].lower() in HONORIFICS


def _opens_personal(text: str) -> bool:
    opening = _WORD.match(text)
    return opening is not None and opening.group().lower() in _PERSONAL


def _definite(text: str, earlier: list[tuple[str, tuple[str, ...]]]) -> str:
    """`text` with an opening "The X" replaced by what an earlier sentence (with its names)
    names as an X (nearest sentence first), unchanged when none does."""
    match = _DEFINITE.match(text)
    if match is None:
        return text
    noun, possessive, following = match.group(1), match.group(2) or "", match.group(3)
    if not possessive and (following.lower() in FUNCTION_WORDS | CONNECTORS | _KIND_ENDS):
        return text
    for before, names in reversed(earlier):
        meant = _meant(noun, before, names)
        if meant is not None:
            return f"{meant}{possessive}{text[match.end() :]}"
    return text


def _meant(noun: str, sentence: str, names: tuple[str, ...]) -> str | None:
    """What `sentence` (naming `names`) names as a `noun`, as it writes it: a name it says is
    a `noun` ("Ombril is a harbour town …"), a name whose head word is `noun` ("the Tower of
    Ninefold Bells"), or a `noun` it gives an owner ("Halvard Tesk's workshop")."""
    subject = names[0] if names else None
    if subject is not None:
        said = re.match(rf"(?:The )?{re.escape(subject)} (?:is|was) (?:a|an) (.+?)[.!]?$", sentence)
        kind = kind_of(f"a {said.group(1)}") if said else None
        if kind is not None and kind.split()[-1] == noun:
            return _as_written(subject, sentence)
    for name in reversed(names):
        if noun in _heads(name):
            return _as_written(name, sentence)
    owned = re.findall(rf"((?:[A-Z][\w-]*\s)*[A-Z][\w-]*)['’]s {re.escape(noun)}\b", sentence)
    if owned:
        return f"{owned[-1]}'s {noun}"
    return None


def _heads(name: str) -> set[str]:
    """The words a name may be called by, as a kind: "Tower of Ninefold Bells" → tower, "Glass
    Sea" → sea, "Queen Ysolde" → queen and ysolde."""
    words = [w.lower() for w in name.split()]
    heads = {words[words.index("of", 1) - 1]} if "of" in words[1:] else {words[-1]}
    if words[0] in HONORIFICS:
        heads.add(words[0])
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
    for word in list(_WORD.finditer(text))[1:]:
        if word.group().lower() not in _INNER_SUBJECTS:
            continue
        if names_in(text[: word.start()], lowercase):
            return text
        return f"{text[: word.start()]}{lower_article(about)}{text[word.end() :]}"
    return text


def _inner_possessive(text: str, about: str | None, lowercase: frozenset[str]) -> str:
    """`text` with its first possessive pronoun ("Most of its people …") read as the topic's,
    when the sentence names nothing before it and does not name the topic at all."""
    if not about or mentions(text, about):
        return text
    for word in list(_WORD.finditer(text))[1:]:
        if word.group().lower() not in _INNER_POSSESSIVES:
            continue
        following = _WORD.match(text, word.end() + 1)
        if following is None or not following.group()[0].islower():
            return text
        if following.group().lower() in FUNCTION_WORDS | CONNECTORS or names_in(
            text[: word.start()], lowercase
        ):
            return text
        return f"{text[: word.start()]}{lower_article(about)}'s{text[word.end() :]}"
    return text


def kind_of(complement: str) -> str | None:
    """The kind an indefinite complement gives ("an island nation in …" → "island nation";
    "a starship built by …" → "starship"), or None."""
    words = complement.split()
    if len(words) < 2 or words[0].lower() not in {"a", "an"}:
        return None
    kept = []
    for word in words[1:]:
        low = word.lower()
        if low in _KIND_ENDS or low in PARTICIPLES or low.endswith("ed") or not word.isalpha():
            break
        kept.append(word)
    return " ".join(kept) if 0 < len(kept) <= 3 and kept[0][0].islower() else None


def mentions(sentence: str, name: str) -> bool:
    """Whether `sentence` names `name` (whole words, case and punctuation aside)."""
    return f" {normalize(name)} " in f" {normalize(sentence)} "


def without_article(phrase: str) -> str:
    """A phrase of several words without its leading article ("The Meridian Lark" →
    "Meridian Lark"; "the" alone stays)."""
    words = phrase.split()
    if len(words) > 1 and words[0].lower() in {"a", "an", "the"}:
        words = words[1:]
    return " ".join(words)


def lower_article(phrase: str) -> str:
    """A phrase inside a sentence: a leading article in lower case ("The Orrin" → "the
    Orrin"; an article alone stays)."""
    first, _, rest = phrase.partition(" ")
    if first in {"The", "A", "An"} and rest:
        return f"{first.lower()} {rest}"
    return phrase


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
