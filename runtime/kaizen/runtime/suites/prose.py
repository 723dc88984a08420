"""Passages of prose, read as plain text: their sentences and the names they mention.

Used by synthesis (`kaizen.trainer.passages`: what a passage teaches) and by routing (a
domain's passages name its entities as its facts do). The rules are plain text rules, for
English prose:

- a sentence ends at ".", "!" or "?" (and a closing quote) before a capital or a digit;
- each sentence is made to stand alone: a pronoun that opens a sentence ("It was founded by
  …", "Its capital is …") is taken to mean the passage's topic (`topic`: its title when the
  title is a name, else the name that opens its first sentence) and replaced by it, since
  the sentence will be seen out of its passage;
- the names a sentence mentions are runs of capitalised words, with "of", "the" and the
  like inside ("Tower of Ninefold Bells"), leaving out the words capitalised only because
  they open the sentence.

A name the rules miss is only a name that gets no items or route key of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Knowledge, Passage

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


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each stripped (a sentence ends at ., ! or ? and a capital)."""
    return [part.strip() for part in _BOUNDARY.split(" ".join(text.split())) if part.strip()]


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
    possessive ends its run and is left out of it."""
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
    elsewhere is no name).
    """
    found: list[str] = []
    for start, words in _runs(sentence):
        if start == 0:
            while words and words[0].lower() in FUNCTION_WORDS | CONNECTORS:
                words = words[1:]
            if len(words) == 1 and words[0].lower() in lowercase:
                words = []
        name = " ".join(words)
        if name and name not in found:
            found.append(name)
    return found


def topic(passage: Passage) -> str | None:
    """What a passage is about, as its sentences would name it: its title when the title is a
    name ("Korrin", "The Meridian Lark"), else the name that opens its first sentence
    ("Zephyria is a small country …" under the title "Zephyria at a glance"), else None."""
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
    return None


def sentences(knowledge: Knowledge) -> list[Sentence]:
    """Every sentence of the knowledge's passages, standing alone, with its names."""
    raw: list[tuple[int, str]] = []
    for index, passage in enumerate(knowledge.passages):
        about = topic(passage)
        raw += [(index, stand_alone(text, about)) for text in split_sentences(passage.text)]
    lowercase = frozenset(
        word.lower()
        for _, text in raw
        for word in _WORD.findall(text)
        if word[0].islower() and word.lower() not in CONNECTORS
    )
    return [Sentence(text, tuple(names_in(text, lowercase)), index) for index, text in raw]


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
