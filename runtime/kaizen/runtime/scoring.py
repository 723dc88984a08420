"""Scorers: turn a model's free-text response into a score in [0, 1] and the answer it extracted.

A scorer is `function(response, answers, **options) -> (score, extracted)`, where
`answers[0]` is the reference and the rest are accepted aliases, and `options` come from the
suite (`"scorer": {"name": "numeric", "rel_tol": 0.01}`). Shipped scorers: `exact`,
`contains`, `numeric`, `regex`, `f1` (token F1), and `choice` (multiple choice: the
response is the choice the model ranked first by log-likelihood, see `loglik.py`).

`SCORERS` is the registry; add a scorer with `register_scorer` (name, function, the options
it accepts, whether its scores are binary). Everything here is pure and cheap, so scoring is
identical for the baseline and the candidate and can be re-run from `responses.jsonl`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Scorer = Callable[..., tuple[float, str]]

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
# Every punctuation character becomes a space, so "Jean-Luc" and "jean luc" agree and a word
# never fuses with its neighbour ("Paris.It" -> "paris it") -- except `.`, `/` and `:` between
# digits, which keep a number whole: "1.44" and "144/12" must not contain the number "12".
_PUNCTUATION = re.compile(r"(?!(?<=\d)[.:/](?=\d))[^\w\s]|_")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
# Lead-ins a model puts before the answer itself; exact match compares what follows them.
_ANSWER_PREFIX = re.compile(
    r"^\s*(?:(?:so|thus|therefore|hence)\s*,?\s*)?"
    r"(?:(?:the\s+)?(?:final\s+|correct\s+|short\s+)?answer\s*(?:is|:)\s*|answer\s*:\s*|it\s+is\s+|it's\s+)",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style normalisation);
    accented letters in their composed form (NFC), however they were typed."""
    text = unicodedata.normalize("NFC", text)
    text = _PUNCTUATION.sub(" ", _THOUSANDS.sub("", text.lower()))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def first_sentence(text: str) -> str:
    """The response up to its first line break or sentence end (what one-sentence answers mean)."""
    line = text.strip().split("\n", 1)[0]
    # A full stop followed by a space or the end ends the sentence; "3.5" does not.
    match = re.search(r"(?<=[.!?])(?:\s|$)", line)
    return line[: match.start()].strip() if match else line.strip()


def strip_answer_prefix(text: str) -> str:
    """`"The answer is Paris."` -> `"Paris."`; text without a lead-in is returned unchanged."""
    return _ANSWER_PREFIX.sub("", text.strip(), count=1)


def score_exact(response: str, answers: Sequence[str]) -> tuple[float, str]:
    """1 when the first sentence, without an answer lead-in, normalises to the reference or an alias."""
    extracted = normalize(strip_answer_prefix(first_sentence(response)))
    targets = {normalize(answer) for answer in answers}
    return (1.0 if extracted in targets else 0.0), extracted


def score_contains(response: str, answers: Sequence[str], all: bool = False) -> tuple[float, str]:
    """1 when the reference or an alias appears as whole words in the normalised response;
    with `all`, when every one of them does (a question with several answers: "Name both
    moons of Mars.", answer "Phobos", aliases ["Deimos"]).

    Whole words only: the reference "12" is not found in "112" or "1 12th", and "cat" is not
    found in "category".
    """
    padded = f" {normalize(response)} "
    targets = {answer: normalize(answer) for answer in answers}
    found = [answer for answer, target in targets.items() if target and f" {target} " in padded]
    if all:
        if found and len(found) == len(targets):
            return 1.0, "; ".join(found)
        return 0.0, "; ".join(found) if found else normalize(first_sentence(response))
    if found:
        return 1.0, found[0]
    return 0.0, normalize(first_sentence(response))


# A number ends at a non-word character or at a unit written straight after it ("5kg",
# "20km"), but not at an ordinal suffix: "12th" is not the number 12.
_NUMBER_END = r"(?:(?!\w)|(?=[^\W\d_]+\b)(?!(?:st|nd|rd|th)\b))"
_NUMBER = re.compile(
    r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    + _NUMBER_END
    + r"|(?<![\w.])[-−]?\.\d+"
    + _NUMBER_END
)
_MARKED = re.compile(r"answer\s*(?:is|:|=)\s*", re.IGNORECASE)
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_WORD_NUMBER = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[\s-](" + "|".join(list(_UNITS)[1:10]) + r"))?"
    r"|(" + "|".join(_UNITS) + r")|(hundred))\b",
    re.IGNORECASE,
)


def parse_number(text: str) -> float | None:
    """A number written as digits (`1,024`, `-3.5`, `.5`), or None."""
    text = text.strip().replace("−", "-").replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers_in(text: str) -> list[float]:
    values = [parse_number(match.group(0)) for match in _NUMBER.finditer(text)]
    found = [value for value in values if value is not None]
    if found:
        return found
    # Small models often spell numbers out ("A spider has eight legs"). Words are used only
    # when there are no digits, because "one" is also a pronoun.
    words: list[float] = []
    for match in _WORD_NUMBER.finditer(text):
        tens, unit, single, hundred = (g.lower() if g else None for g in match.groups())
        if tens:
            words.append(float(_TENS[tens] + (_UNITS[unit] if unit else 0)))
        elif single:
            words.append(float(_UNITS[single]))
        elif hundred:
            words.append(100.0)
    return words


def extract_number(response: str) -> float | None:
    """The response's answer as a number: after "answer is" if present, else the last number.

    The last number, not any number: "144 / 12 is 12" answers 12, and "144/12 is 1.44" answers
    1.44 although it contains "12" (a regex search for the reference would count it right).
    Only the first line is read, because anything after it is the model rambling on.
    """
    line = response.strip().split("\n", 1)[0]
    marked = _MARKED.search(line)
    if marked:
        after = _numbers_in(line[marked.end() :])
        if after:
            return after[0]
    numbers = _numbers_in(line)
    return numbers[-1] if numbers else None


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def score_numeric(
    response: str, answers: Sequence[str], *, rel_tol: float = 1e-4, abs_tol: float = 1e-6
) -> tuple[float, str]:
    """1 when the response's final (or marked) number equals the reference or an alias."""
    value = extract_number(response)
    if value is None:
        return 0.0, ""
    for answer in answers:
        target = parse_number(answer)
        if target is not None and math.isclose(value, target, rel_tol=rel_tol, abs_tol=abs_tol):
            return 1.0, _format_number(value)
    return 0.0, _format_number(value)


def _compare_extracted(extracted: str, answers: Sequence[str]) -> bool:
    """Normalised text equality, or numeric equality when both sides are numbers."""
    value = parse_number(extracted)
    for answer in answers:
        if normalize(extracted) == normalize(answer) and normalize(answer):
            return True
        target = parse_number(answer)
        if value is not None and target is not None and math.isclose(value, target, rel_tol=1e-9):
            return True
    return False


def score_regex(
    response: str,
    answers: Sequence[str],
    *,
    pattern: str,
    ignore_case: bool = True,
    select: str = "first",
) -> tuple[float, str]:
    """1 when the pattern's capture group (`answer` if named, else group 1) matches the reference.

    The extracted text is compared after normalisation, or as numbers when both are
    numbers (`"1,000"` equals `"1000"`). `select` picks the `first` or `last` match, e.g.
    `"pattern": "answer is (.+?)\\."` reads the value after the model's own lead-in.
    No match extracts nothing (`""`), which the analysis calls a wrong format.
    """
    compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    matches = list(compiled.finditer(response))
    if not matches:
        return 0.0, ""
    match = matches[0] if select == "first" else matches[-1]
    group = "answer" if "answer" in compiled.groupindex else 1
    extracted = (match.group(group) or "").strip()
    return (1.0 if _compare_extracted(extracted, answers) else 0.0), extracted


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of two texts after `normalize` (1.0 when both are empty)."""
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_f1(response: str, answers: Sequence[str]) -> tuple[float, str]:
    """Best SQuAD token F1 of the first line (answer lead-in removed) against any answer."""
    line = response.strip().split("\n", 1)[0]
    extracted = strip_answer_prefix(line).strip()
    best = max((token_f1(extracted, answer) for answer in answers), default=0.0)
    return best, normalize(extracted)


def score_choice(response: str, answers: Sequence[str]) -> tuple[float, str]:
    """Multiple choice: 1 when the chosen choice (the response) is the correct one, verbatim."""
    return (1.0 if response.strip() == answers[0].strip() else 0.0), response.strip()


def _number_option(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return "must be a non-negative number"
    return None


def _pattern_option(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty regular expression"
    try:
        compiled = re.compile(value)
    except re.error as error:
        return f"not a valid regular expression: {error}"
    if compiled.groups < 1:
        return "needs a capture group: the group is the extracted answer"
    return None


def _bool_option(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _select_option(value: Any) -> str | None:
    return None if value in ("first", "last") else "must be `first` or `last`"


@dataclass(frozen=True)
class ScorerInfo:
    """A registered scorer: its function, the options it accepts and what its scores are."""

    function: Scorer
    """`function(response, answers, **options) -> (score, extracted)`."""

    options: Mapping[str, Callable[[Any], str | None]] = field(default_factory=dict)
    """Accepted option names, each with a check that returns a problem or None."""

    required: tuple[str, ...] = ()
    """Options a suite must give."""

    binary: bool = True
    """True when every score is 0 or 1 (picks the Wilson interval and McNemar test)."""

    numeric_answers: bool = False
    """True when references must be numbers."""


#: Scorer name -> function (kept for callers that only score).
SCORERS: dict[str, Scorer] = {}
#: Scorer name -> everything known about it.
SCORER_INFO: dict[str, ScorerInfo] = {}


def register_scorer(
    name: str,
    function: Scorer,
    *,
    options: Mapping[str, Callable[[Any], str | None]] | None = None,
    required: Sequence[str] = (),
    binary: bool = True,
    numeric_answers: bool = False,
    replace: bool = False,
) -> None:
    """Add a scorer to the registry, so suites can name it (`"scorer": name`).

    Register before loading suites that use it (e.g. in a plugin module imported by a
    wrapper script). Refuses to overwrite a scorer unless `replace` is true.
    """
    if not replace and name in SCORERS:
        raise ValueError(f"scorer {name!r} is already registered")
    SCORERS[name] = function
    SCORER_INFO[name] = ScorerInfo(
        function, dict(options or {}), tuple(required), binary, numeric_answers
    )


register_scorer("exact", score_exact)
register_scorer("contains", score_contains, options={"all": _bool_option})
register_scorer(
    "numeric",
    score_numeric,
    options={"rel_tol": _number_option, "abs_tol": _number_option},
    numeric_answers=True,
)
register_scorer(
    "regex",
    score_regex,
    options={"pattern": _pattern_option, "ignore_case": _bool_option, "select": _select_option},
    required=("pattern",),
)
register_scorer("f1", score_f1, binary=False)
register_scorer("choice", score_choice)


def options_problem(scorer: str, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """(option name, problem) for the first unusable scorer option, or None."""
    info = SCORER_INFO.get(scorer)
    if info is None:
        return ("name", f"unknown scorer {scorer!r}; known: {', '.join(sorted(SCORERS))}")
    for name in info.required:
        if name not in options:
            return (name, f"required by the {scorer} scorer")
    for name, value in options.items():
        check = info.options.get(name)
        if check is None:
            allowed = ", ".join(sorted(info.options)) or "none"
            return (name, f"unknown option of the {scorer} scorer; allowed: {allowed}")
        problem = check(value)
        if problem:
            return (name, problem)
    return None


def answer_problem(scorer: str, answer: str) -> str | None:
    """Why `answer` can never be matched by `scorer` (used when loading a suite), or None."""
    info = SCORER_INFO.get(scorer)
    if info is None:
        return f"unknown scorer {scorer!r}; known: {', '.join(sorted(SCORERS))}"
    if not normalize(answer):
        return f"{answer!r} is empty after normalisation (only punctuation or articles)"
    if info.numeric_answers and parse_number(answer) is None:
        return f"the {scorer} scorer needs a number, got {answer!r}"
    return None


def score(
    scorer: str,
    response: str,
    answers: Sequence[str],
    options: Mapping[str, Any] | None = None,
) -> tuple[float, str]:
    """Score `response` with the named scorer and its options (KeyError for an unknown name)."""
    return SCORERS[scorer](response, answers, **(options or {}))
