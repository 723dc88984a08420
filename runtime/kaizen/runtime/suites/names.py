"""Names in English prose: where sentences end and which words of a sentence are names.

Plain text rules, shared by the passage reader (`kaizen.runtime.suites.prose`), its clause
splitter (`kaizen.runtime.suites.clauses`), synthesis and the teacher:

- a sentence ends at ".", "!" or "?" (and a closing quote) before a capital or a digit, not
  after a title's abbreviation ("Mr."), an initial or "e.g.";
- the names a sentence mentions are runs of capitalised words, with "of", "the" and the
  like inside ("Tower of Ninefold Bells"), "&", a title's stop or a possessive before
  another capital ("Brackwater & Sons", "Mr. Ilan Voss", "St Bride's Hospital") and a number
  right after the last ("Apollo 11", "Version 2.0"), leaving out the words capitalised only
  because they open the sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites.english import AUXILIARIES, NEGATED_AUXILIARIES, PAST_FORMS


def _letters(test: Callable[[str], bool]) -> str:
    """A character class of the letters (of the Basic Multilingual Plane) that pass `test`."""
    return "[" + re.escape("".join(c for c in map(chr, range(0x10000)) if test(c))) + "]"


#: A capital letter and a lower-case one, in any script ("Zoë", "Ålborg", "Søren", "Łódź"):
#: Python's `re` has no `\p{Lu}`. Suite files are read in NFC (`records.read_jsonl`), so an
#: accented letter is one character.
UPPER = _letters(str.isupper)
LOWER = _letters(str.islower)
#: A sentence ends at ".", "!" or "?" (and a closing quote or bracket) followed by space and a
#: capital, a digit or an opening quote.
BOUNDARY = re.compile(rf"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“(\[]?(?:{UPPER}|[0-9]))")
#: A word: a dotted acronym ("U.K."), or a letter, then letters, digits, apostrophes and hyphens.
WORD = re.compile(rf"{UPPER}(?:\.{UPPER})+\.?|[^\W\d_](?:[^\W_]|['’-])*")
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
#: Months and days: capitalised, but a date ("3 March 2021"), not a name.
DATE_WORDS = frozenset(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december", "monday", "tuesday", "wednesday", "thursday",
     "friday", "saturday", "sunday")
)  # fmt: skip
#: A name whose first word is one of these is a person's ("Queen Ysolde", "Master Corvane").
HONORIFICS = frozenset(
    ("king", "queen", "prince", "princess", "emperor", "empress", "lord", "lady", "sir",
     "dame", "duke", "duchess", "master", "saint", "st", "dr", "mr", "mrs", "ms", "professor",
     "president", "general", "captain", "chancellor", "bishop", "pope", "doctor", "admiral",
     "commander", "lieutenant", "colonel", "sergeant", "baron", "baroness", "abbot", "abbess",
     "sultan", "tsar")
)  # fmt: skip


#: Abbreviations written before a name, whose stop ends no sentence ("Mr. Ilan Voss", "St.
#: Oda"), in lower case and without the stop.
TITLE_ABBREVIATIONS = frozenset(
    ("mr", "mrs", "ms", "dr", "st", "prof", "rev", "fr", "capt", "col", "gen", "lt", "sgt",
     "mt", "hon", "gov", "sen", "rep")
)  # fmt: skip
#: Abbreviations inside a sentence whose stop ends no sentence ("e.g. Oslo and Bergen").
_INNER_ABBREVIATIONS = ("e.g.", "i.e.", "cf.", "vs.", "approx.")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each stripped: a sentence ends at ., ! or ? and a capital,
    except after a title ("Mr.", "Dr.", "St."), an initial ("J. Smith") or "e.g." / "i.e."."""
    parts = [part.strip() for part in BOUNDARY.split(" ".join(text.split())) if part.strip()]
    joined: list[str] = []
    for part in parts:
        if joined and _abbreviated(joined[-1], part):
            joined[-1] = f"{joined[-1]} {part}"
        else:
            joined.append(part)
    return joined


def _abbreviated(text: str, following: str) -> bool:
    """Whether `text` ends with an abbreviation's stop rather than a sentence's, `following`
    being what comes next. A capital letter alone is an initial only before a word that
    can be a name ("J. Sten"), not before one that opens sentences ("World War I. It ended")."""
    last = text.rsplit(maxsplit=1)[-1]
    if last.lower() in _INNER_ABBREVIATIONS:
        return True
    bare = last.lstrip("(\"'“")
    if not bare.endswith("."):
        return False
    if bare[:-1].lower() in TITLE_ABBREVIATIONS:
        return True
    word = WORD.match(following.lstrip("(\"'“"))
    return (
        len(bare) == 2
        and bare[0].isupper()
        and word is not None
        and word.group().lower() not in FUNCTION_WORDS
    )


#: A word of a name as the clause rules see it: a title's abbreviation or an initial with
#: its stop ("Dr.", "J."), or a capitalised word.
_NAME_WORD = rf"(?:(?:{'|'.join(w.capitalize() for w in sorted(TITLE_ABBREVIATIONS))}|{UPPER})\.|{UPPER}[\w'’-]*)"
#: A name as the clause rules see it: capitalised words, with connectors or "&" inside.
NAME = rf"{_NAME_WORD}(?:(?:\s+&|(?:\s+(?:{'|'.join(sorted(CONNECTORS))}))*)\s+{_NAME_WORD})*"


def one_name(phrase: str) -> bool:
    """Whether `phrase` is one name and nothing else ("the Hall of Winds", "Velmora")."""
    bare = without_article(phrase)
    return names_in(bare) == [bare]


def _runs(sentence: str) -> list[tuple[int, list[str]]]:
    """Runs of capitalised words, as (first word index, words as written).

    Inside a run may stand connectors ("Tower of Ninefold Bells"), "&" ("Brackwater &
    Sons"), a title's abbreviation or an initial with its stop ("Mr. Ilan Voss", "J. Sten")
    and a possessive before another capitalised word ("St Bride's Hospital"). A possessive
    that ends a run is left out of it ("Korrin's capital" → "Korrin"); a number right after
    its last word ends it and is in it ("Apollo 11")."""
    words = list(WORD.finditer(sentence))
    runs: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(words):
        if not capitalised(words[i].group()) or _unit(sentence, words[i]):
            i += 1
            continue
        start, taken = i, []
        j = i
        while j < len(words):
            word = words[j].group()
            if capitalised(word):
                j += 1
                joint = _joint(sentence, words, j)
                # A possessive goes on only into another capitalised word ("St Bride's
                # Hospital"), not into what it owns ("Korrin's capital", "Tern's API").
                owned = joint == " " and capitalised(words[j].group())
                owned = owned and not words[j].group().isupper()
                bare = word
                for suffix in POSSESSIVE:
                    if word.endswith(suffix) and not owned:
                        bare = word[: -len(suffix)]
                if bare != word:
                    taken.append(bare)
                    break
                number = _NUMBER_AFTER.match(sentence, words[j - 1].end())
                if number and word.lower() not in FUNCTION_WORDS | CONNECTORS:
                    taken.extend((word, number.group(1)))  # "Version 2.0", "Apollo 11"
                    break
                if joint is None:
                    taken.append(word)
                    break
                taken.append(word + "." if joint.startswith(".") else word)
                if joint.endswith("&"):
                    taken.append("&")
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


#: Symbols of units written with a capital ("512 MiB", "2.4 GHz"): after a number, no name.
UNITS = frozenset(
    ("B", "kB", "KB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "PiB", "kbps", "Kbps",
     "Mbps", "Gbps", "Hz", "kHz", "MHz", "GHz", "THz", "W", "kW", "MW", "GW", "Wh", "kWh", "MWh",
     "GWh", "V", "kV", "mV", "mA", "mAh", "Pa", "kPa", "MPa", "GPa", "J", "kJ", "MJ", "N", "kN")
)  # fmt: skip
_NUMBER_BEFORE = re.compile(r"\d\s?$")


def _unit(sentence: str, word: re.Match[str]) -> bool:
    """Whether `word` is a unit's symbol after a number ("512 MiB", "48kW")."""
    return word.group() in UNITS and _NUMBER_BEFORE.search(sentence[: word.start()]) is not None


def _adjacent(sentence: str, words: list[re.Match[str]], j: int) -> bool:
    """Whether word `j` follows word `j - 1` with only spaces between (no comma, no stop)."""
    return j < len(words) and not sentence[words[j - 1].end() : words[j].start()].strip()


def _joint(sentence: str, words: list[re.Match[str]], j: int) -> str | None:
    """How capitalised word `j - 1` joins word `j` in one name, or None where the name ends:
    " " (only spaces between), "." (a title's abbreviation or an initial, and its stop) or
    "&", each before a capitalised word or a connector."""
    if j >= len(words):
        return None
    between = sentence[words[j - 1].end() : words[j].start()]
    if not between.strip():
        return " "
    if not capitalised(words[j].group()):
        return None
    before = words[j - 1].group()
    if between.strip() == "." and (
        before.lower() in TITLE_ABBREVIATIONS or (len(before) == 1 and before.isupper())
    ):
        return "."
    if between.strip() == "&":
        return " &"
    return None


def _continues(words: list[re.Match[str]], j: int) -> bool:
    """Whether connectors from word `j` on lead to a capitalised word."""
    k = j
    while k < len(words) and words[k].group().lower() in CONNECTORS:
        k += 1
    return k < len(words) and capitalised(words[k].group()) and k > j


def capitalised(word: str) -> bool:
    """Whether `word` is written as a name's word: with a capital first, or with one inside
    ("gRPC", "iPhone")."""
    return any(c.isupper() for c in word)


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
            # An instruction's verb is no part of a name ("Use the Keyhole portal …", "Ask
            # Tomasz Reyes, the archivist."), where "Ivan the Terrible" is one.
            if len(words) > 1 and words[0].lower() in _INSTRUCTIONS:
                words = words[2:] if words[1] == "the" else words[1:]
            if len(words) == 1 and (
                _written_lower(words[0], lowercase) or _before_preposition(sentence, words[0])
            ):
                words = []
        if words == ["I"]:
            words = []  # the pronoun, not a name's word ("World War I")
        # A date is no name ("3 March 2021", "on Friday", "on Sundays").
        # A quarter or a half of a year is one too ("in Q3 2023").
        dated = words and (
            words[0].lower().removesuffix("s") in DATE_WORDS or _QUARTER.fullmatch(words[0])
        )
        if dated and all(w.isdigit() for w in words[1:]):
            words = []
        name = " ".join(words)
        if name and name not in found:
            found.append(name)
    return found


#: Verbs an instruction opens with in a runbook or an FAQ ("Use the Keyhole portal …").
_INSTRUCTIONS = frozenset(
    ("use", "see", "open", "ask", "visit", "click", "choose", "select", "run", "check", "read",
     "contact", "call", "email", "follow", "install", "restart", "start", "stop", "press")
)  # fmt: skip
#: A quarter or a half of a year ("Q3", "H1").
_QUARTER = re.compile(r"[QH][1-4]")


#: Prepositions (and relative pronouns: "Jobs that fail …") that cannot follow a name
#: opening a sentence on its own.
_AFTER_COMMON_NOUN = frozenset(
    ("at", "in", "on", "near", "from", "with", "of", "for", "across", "around", "throughout",
     "that", "which", "who")
)  # fmt: skip


def _written_lower(word: str, lowercase: frozenset[str]) -> bool:
    """Whether `word`, or its singular, is written in lower case elsewhere ("Jobs …" where
    "each job" is; "Policies …" where "the policy" is)."""
    low = word.lower()
    singulars = {low}
    if low.endswith("ies"):
        singulars.add(low[:-3] + "y")
    if low.endswith("es"):
        singulars.add(low[:-2])
    if low.endswith("s") and not low.endswith("ss"):
        singulars.add(low[:-1])
    return not singulars.isdisjoint(lowercase)


def _before_preposition(sentence: str, word: str) -> bool:
    following = re.search(rf"\b{re.escape(word)}\s+([a-z]+)\b", sentence)
    return following is not None and following.group(1) in _AFTER_COMMON_NOUN


#: Verbs that agree only with more than one ("Alerts are sent …", "Pagers were …").
_PLURAL_VERBS = frozenset(("are", "were", "have", "do", "aren't", "weren't", "haven't", "don't"))
#: Verbs after a subject's noun ("Small models are served …": "Small" is no name there).
_AUXILIARIES = AUXILIARIES | NEGATED_AUXILIARIES
#: Past forms without "-ed" and adverbs: after a name they say nothing of its number.
_PAST_OR_ADVERB = PAST_FORMS | frozenset(
    ("also", "often", "always", "never", "still", "then", "now", "once", "soon", "first", "only",
     "even", "just", "already", "later", "itself", "alone", "too", "today")
)  # fmt: skip


#: How `common_opening` reads an opening word that is no name.
PLURAL_NOUN, MODIFIER, IMPERATIVE = "plural", "modifier", "imperative"
#: Prepositions that follow a verb, not a name that opens a sentence ("Wait for …", "Log in
#: to …", "Founded in 1884, …"); not "of", which follows a noun ("Most of …").
_VERB_PREPOSITIONS = frozenset(
    ("for", "to", "on", "in", "at", "with", "from", "into", "onto", "through", "by", "about",
     "over", "under", "up", "out", "off")
)  # fmt: skip
#: Words that open a noun phrase: after a sentence's first word, they make it a verb.
_DETERMINERS = frozenset(
    ("a", "an", "the", "your", "our", "their", "its", "my", "this", "these", "those", "each",
     "every", "any")
)  # fmt: skip


def common_opening(sentence: str, word: str) -> str | None:
    """How the word that opens `sentence` reads there when it is no name, by what follows
    it: `PLURAL_NOUN`, a common noun's plural, before a verb that agrees only with a plural
    ("Alerts are sent …") or a verb without "-s" ("Deploys happen …", "Tickets cost …");
    `MODIFIER`, before a noun and then a verb ("Small models are served …"); `IMPERATIVE`, a
    verb before a determiner or a preposition ("Open a ticket …", "Wait for …"). None where
    it may be a name: a name's verb agrees with one ("Cinder rolls …", "Mars has …"), and a
    past form or an adverb says nothing either way ("Hermes built …"). (A one-word sentence,
    "Yes.", is no sentence at all: `prose.sentences` leaves it out.)"""
    rest = sentence[len(word) :]
    following = re.findall(r"[^\W\d_][\w'’-]*", rest)[:2]
    if not sentence.startswith(word) or not rest.startswith(" "):
        return None  # not its first word, or an owner ("Zephyria's capital …")
    if not following or not following[0].islower():
        return None
    nxt = following[0]
    if (nxt in _DETERMINERS or nxt in _VERB_PREPOSITIONS) and rest.startswith(f" {nxt} "):
        return IMPERATIVE  # "Open a ticket …", "Wait for approval …", "Founded in 1884, …"
    plural = word.endswith("s") and not word.endswith(("ss", "us", "is"))
    if nxt in _PLURAL_VERBS:
        return PLURAL_NOUN if plural else MODIFIER
    if len(following) > 1 and following[1] in _AUXILIARIES and nxt not in _PAST_OR_ADVERB:
        return None if nxt.endswith("ly") else MODIFIER
    singular_verb = nxt.endswith(("s", "ed", "ly")) or nxt in _PAST_OR_ADVERB
    return PLURAL_NOUN if plural and not singular_verb else None


def titled(name: str) -> bool:
    """Whether `name` is a person's, by a title it opens with ("Queen Ysolde", "Mr. Voss"):
    not where it names an owner inside, which makes it a thing of theirs ("St Bride's
    Hospital", "King's College")."""
    words = name.split()
    return words[0].lower().rstrip(".") in HONORIFICS and not any(
        word.endswith(POSSESSIVE) for word in words[:-1]
    )


def untitled(name: str) -> str | None:
    """A titled person's full name without the title ("Dr Anwen Roke" → "Anwen Roke"), as a
    question may name them; None for any other name, and for a title before one word only
    ("Queen Ysolde")."""
    rest = name.split()[1:]
    return " ".join(rest) if titled(name) and len(rest) > 1 else None


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
