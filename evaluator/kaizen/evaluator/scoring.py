"""Scorers: turn a model's free-text response into a score in [0, 1] and the answer it extracted.

A scorer is `function(response, answers) -> (score, extracted)`, where `answers[0]` is the
reference and the rest are accepted aliases. Suites name their scorer (`exact`, `contains`,
`numeric`); `SCORERS` is the registry. Everything here is pure and cheap, so scoring is
identical for the baseline and the candidate and can be re-run from `responses.jsonl`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

Scorer = Callable[[str, Sequence[str]], tuple[float, str]]

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
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style normalisation)."""
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


def score_contains(response: str, answers: Sequence[str]) -> tuple[float, str]:
    """1 when the reference or an alias appears as whole words in the normalised response.

    Whole words only: the reference "12" is not found in "112" or "1 12th", and "cat" is not
    found in "category".
    """
    padded = f" {normalize(response)} "
    for answer in answers:
        target = normalize(answer)
        if target and f" {target} " in padded:
            return 1.0, answer
    return 0.0, normalize(first_sentence(response))


_NUMBER = re.compile(
    r"(?<![\w.])[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])|(?<![\w.])[-−]?\.\d+(?![\w])"
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


SCORERS: dict[str, Scorer] = {
    "exact": score_exact,
    "contains": score_contains,
    "numeric": score_numeric,
}


def answer_problem(scorer: str, answer: str) -> str | None:
    """Why `answer` can never be matched by `scorer` (used when loading a suite), or None."""
    if scorer not in SCORERS:
        return f"unknown scorer {scorer!r}; known: {', '.join(sorted(SCORERS))}"
    if not normalize(answer):
        return f"{answer!r} is empty after normalisation (only punctuation or articles)"
    if scorer == "numeric" and parse_number(answer) is None:
        return f"the numeric scorer needs a number, got {answer!r}"
    return None


def score(scorer: str, response: str, answers: Sequence[str]) -> tuple[float, str]:
    """Score `response` with the named scorer (KeyError for an unknown name)."""
    return SCORERS[scorer](response, answers)
