"""Training items from passages of prose: their sentences, the names they mention, cloze items.

A domain known only by passages has no relations to word questions with, so what a passage
teaches must come from its own sentences:

- each sentence is made to stand alone: a pronoun that opens a sentence of a titled passage
  ("It was founded by …", "Its capital is …") is taken to mean the passage's subject and
  replaced by its title, since the sentence will be seen out of its passage;
- the names a sentence mentions are found by their capitals (runs of capitalised words,
  with "of", "the" and the like inside: "Tower of Ninefold Bells"), leaving out the words
  capitalised only because they open the sentence;
- `passage-profile` items say what the passages say of one name: every sentence that
  mentions it, in a seeded order for each prompt (as fact profiles do), so a sentence is
  learned from each name in it and not only from the passage's title;
- `passage-cloze` items leave one name of a sentence out and are answered with the whole
  sentence: the name at the end is asked as an echo question ("Korrin's main export is
  what?"), elsewhere as a blank ("Fill in the blank: ___ rises in the Pale Mountains.").

The rules are plain text rules, for English prose; a name the rules miss is only a name
that gets no items of its own (its sentences are still taught through the other names and
through the passage).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.knowledge import Knowledge

#: A sentence ends at ".", "!" or "?" (and a closing quote or bracket) followed by space and a
#: capital, a digit or an opening quote.
_BOUNDARY = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“(\[]?[A-Z0-9])"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’-]*")
_POSSESSIVE = ("'s", "’s")
#: Lower-case words that may sit inside a name ("Tower of Ninefold Bells", "Isle of the Dead").
CONNECTORS = frozenset({"of", "the", "de", "del", "la", "le", "van", "von", "der", "da", "du"})
#: Words capitalised only because they open a sentence: never a name on their own there.
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "it's",
        "he",
        "she",
        "him",
        "her",
        "his",
        "hers",
        "they",
        "them",
        "their",
        "theirs",
        "we",
        "us",
        "our",
        "you",
        "your",
        "i",
        "my",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "in",
        "on",
        "at",
        "to",
        "from",
        "by",
        "with",
        "without",
        "for",
        "of",
        "about",
        "after",
        "before",
        "during",
        "since",
        "until",
        "while",
        "as",
        "if",
        "unless",
        "because",
        "although",
        "though",
        "but",
        "and",
        "or",
        "nor",
        "so",
        "yet",
        "then",
        "thus",
        "also",
        "still",
        "each",
        "every",
        "all",
        "both",
        "some",
        "many",
        "most",
        "much",
        "more",
        "few",
        "several",
        "no",
        "not",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "first",
        "second",
        "third",
        "last",
        "next",
        "today",
        "now",
        "later",
        "later",
        "once",
        "often",
        "usually",
        "however",
        "therefore",
        "meanwhile",
        "moreover",
        "instead",
        "only",
        "even",
        "just",
        "among",
        "between",
        "across",
        "along",
        "around",
        "over",
        "under",
        "above",
        "below",
        "near",
        "beside",
        "inside",
        "outside",
        "into",
        "onto",
        "upon",
        "through",
        "throughout",
        "against",
        "toward",
        "towards",
        "within",
        "like",
        "unlike",
        "such",
        "other",
        "another",
        "any",
        "either",
        "neither",
        "suppose",
        "imagine",
        "consider",
    ]
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
BLANK = "___"
#: The prompts of a name's profile (as fact profiles use), and the most sentences an answer holds.
PROFILE_PROMPTS = (
    "What do you know about {entity}?",
    "Tell me about {entity}.",
    "Describe {entity}.",
    "What facts are there about {entity}?",
)
PROFILE_SENTENCES = 4


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


def _runs(sentence: str) -> list[tuple[int, int, list[str]]]:
    """Runs of capitalised words (connectors allowed inside), as (first word index, end char,
    words); a possessive ends its run and is left out of it."""
    words = list(_WORD.finditer(sentence))
    runs: list[tuple[int, int, list[str]]] = []
    i = 0
    while i < len(words):
        if not words[i].group()[0].isupper():
            i += 1
            continue
        start, taken, end = i, [], words[i].end()
        j = i
        while j < len(words):
            word = words[j].group()
            if word[0].isupper():
                bare = word
                for suffix in _POSSESSIVE:
                    if word.endswith(suffix):
                        bare = word[: -len(suffix)]
                taken.append(bare)
                end = words[j].start() + len(bare)
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
        runs.append((start, end, taken))
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
    for start, _, words in _runs(sentence):
        if start == 0:
            while words and words[0].lower() in FUNCTION_WORDS | CONNECTORS:
                words = words[1:]
            if len(words) == 1 and words[0].lower() in lowercase:
                words = []
        name = " ".join(words)
        if name and name not in found:
            found.append(name)
    return found


def sentences(knowledge: Knowledge) -> list[Sentence]:
    """Every sentence of the knowledge's passages, standing alone, with its names."""
    raw = [
        (index, stand_alone(text, passage.title))
        for index, passage in enumerate(knowledge.passages)
        for text in split_sentences(passage.text)
    ]
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
    """For each name, what the passages say of it, in several seeded orders."""
    about: dict[str, list[str]] = defaultdict(list)
    shown: dict[str, str] = {}
    for sentence in found:
        for name in sentence.names:
            key = normalize(name)
            shown.setdefault(key, name)
    for sentence in found:
        for key, name in shown.items():
            if mentions(sentence.text, name) and sentence.text not in about[key]:
                about[key].append(sentence.text)
    items = []
    for key, said in about.items():
        name = shown[key]
        # A name the prose writes with "the" ("the Glass Sea") is asked about with it.
        if any(re.search(rf"\bthe {re.escape(name)}\b", text) for text in said):
            shown_as = f"the {name}"
        else:
            shown_as = name
        slices = [said[i : i + PROFILE_SENTENCES] for i in range(0, len(said), PROFILE_SENTENCES)]
        for number, prompt in enumerate(PROFILE_PROMPTS):
            part = list(slices[number % len(slices)])
            rng.shuffle(part)
            answer = " ".join(part)
            items.append(
                PassageItem(
                    prompt.format(entity=shown_as), answer, "passage-profile", name, "", tuple(part)
                )
            )
    return items


def cloze_items(found: list[Sentence]) -> list[PassageItem]:
    """Each name of each sentence left out once (and a short complement of "is"), answered
    with the whole sentence.

    A sentence "S is C." is asked the other way round: "What is S?" for C, "What is C?" for
    a name S. Otherwise a name at the end is asked as an echo question ("The Orrin rises in
    what?"), and anywhere else as a blank.
    """
    items = []
    for sentence in found:
        text = sentence.text
        copula = _copula(text)
        blanks = list(sentence.names)
        if copula is not None and _short_complement(copula[2], sentence.names):
            blanks.append(_without_article(copula[2]))
        for blank in blanks:
            question = _ask(text, blank, copula)
            if question is not None:
                items.append(PassageItem(question, text, "passage-cloze", blank, blank, (text,)))
    return items


#: Past participles that follow "was"/"is" in a passive ("was born in"), not a complement.
_PARTICIPLES = frozenset(
    [
        "born",
        "built",
        "made",
        "known",
        "found",
        "given",
        "taken",
        "seen",
        "written",
        "spoken",
        "held",
        "led",
        "sold",
        "run",
        "done",
        "grown",
        "worn",
        "drawn",
        "sung",
        "shown",
        "thrown",
        "chosen",
        "frozen",
        "hidden",
        "ridden",
        "broken",
    ]
)
_DETERMINERS = frozenset({"a", "an", "the"})
_COPULA = re.compile(r"^(?P<subject>.+?)\s(?P<verb>is|are|was|were)\s(?P<complement>.+?)[.!]$")


def _copula(text: str) -> tuple[str, str, str] | None:
    """(subject, verb, complement) of a sentence "S is C." whose C is not a passive."""
    match = _COPULA.match(text)
    if match is None:
        return None
    complement = match.group("complement")
    first = complement.split()[0].lower()
    if first in _PARTICIPLES or (first.endswith("ed") and first not in _DETERMINERS):
        return None
    return match.group("subject"), match.group("verb"), complement


def _short_complement(complement: str, names: tuple[str, ...]) -> bool:
    """Whether a complement is one thing to ask for: at most three words past its article,
    and not a name already asked (names are asked as names)."""
    bare = _without_article(complement)
    return len(bare.split()) <= 3 and not any(_same(bare, name) for name in names)


def _ask(text: str, blank: str, copula: tuple[str, str, str] | None) -> str | None:
    """The question that leaves `blank` out of `text`."""
    if copula is not None:
        subject, verb, complement = copula
        if _same(_without_article(complement), blank):
            return f"What {verb} {_lower_article(subject)}?"
        if _same(_without_article(subject), blank):
            return f"What {verb} {_lower_article(complement)}?"
    at = _whole_word(text, blank)
    if at < 0:
        return None
    before, after = text[:at].rstrip(), text[at + len(blank) :]
    if len(before.split()) >= 2 and after.strip() in {".", "!", ""}:
        return f"{_strip_article(before)} what?"
    return f"Fill in the blank: {text[:at]}{BLANK}{after}"


def _same(a: str, b: str) -> bool:
    return normalize(a) == normalize(b)


def _without_article(phrase: str) -> str:
    words = phrase.split()
    if len(words) > 1 and words[0].lower() in _DETERMINERS:
        words = words[1:]
    return " ".join(words)


def _lower_article(phrase: str) -> str:
    """A phrase inside a question: a leading article in lower case ("The Orrin" → "the Orrin")."""
    first, _, rest = phrase.partition(" ")
    if first in {"The", "A", "An"} and rest:
        return f"{first.lower()} {rest}"
    return phrase


def _whole_word(text: str, name: str) -> int:
    match = re.search(rf"(?<![\w'’]){re.escape(name)}(?![\w])", text)
    return match.start() if match else -1


def _strip_article(before: str) -> str:
    """The words before an echo question's blank, without a dangling article ("… is the")."""
    words = before.split()
    while words and words[-1].lower() in {"the", "a", "an"}:
        words.pop()
    return " ".join(words)
