"""The contamination guard: no line a trainer sees may carry an evaluation item's text.

Every line of training data (a suite's pool, `extraData`, items synthesised from knowledge,
a teacher's outputs) passes `ContaminationGuard` before a trainer sees it; offending lines
are dropped and listed, with the reason, in the data card. The evaluation texts are each
item's question, its context, its user message (context then question) and the turns of its
chat (a system turn only when it is at least `NGRAM` words long: a short one is an
instruction many prompts share, like "Answer in one word."), normalised
(`kaizen.runtime.scoring.normalize`: lower case, no punctuation, no articles) and split into
words. A training line is contaminated when

1. its question *is* an evaluation text (exact match, any length); or
2. its question or its answer *contains* a whole evaluation text of `MIN_WORDS` (4) to
   `NGRAM - 1` (9) words, as consecutive words ("Suppose X. Which river flows through the
   capital of Zephyria?" carries the 7-word question); or
3. its question or its answer shares a run of `NGRAM` (10) consecutive words with a longer
   evaluation text.

Why 10 words. The shipped questions are short (4 to 41 normalised words, median 10), and
rule 2 already protects every question whole, so `NGRAM` only decides how much of a *longer*
text (a multi-step question, a counterfactual premise) may be repeated. It must stay above
what paraphrases legitimately share: a name ("Martin Luther's posting of the Ninety-five
Theses" is 8 words) or a template with another number in its slot ("How many minutes are in
3 hours and 5 minutes?" against "… 3 hours and 45 minutes?" share 8). At 8 words, two such
lines of the core suite's own pool trip the guard; at 9 none does; 10 keeps a word of margin
and is still about one whole typical question. Texts under 4 words ("Again?", "Suppose so.")
are only matched exactly: inside a longer line they are ordinary phrases, not a question.

The index maps word tuples to item ids, so a check costs a few dictionary look-ups per word
of the line, after normalising it: thousands of lines take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kaizen.runtime.scoring import normalize

if TYPE_CHECKING:
    from kaizen.runtime.suites.loader import EvalItem

#: A training line must not share a run of this many normalised words with an evaluation text.
NGRAM = 10
#: Evaluation texts of at least this many words (and fewer than NGRAM) must not appear whole.
MIN_WORDS = 4

T = TypeVar("T")


@dataclass(frozen=True)
class Dropped(Generic[T]):
    """A training line the guard refused, and why (for the data card)."""

    line: T
    reason: str


@dataclass(frozen=True)
class ContaminationGuard:
    """Decides whether a training line repeats or overlaps an evaluation item.

    Build it with `from_items` from the evaluation items of every suite the model will be
    scored on, all domains (a line of one domain can carry another domain's question).
    """

    exact: Mapping[str, str] = field(default_factory=dict)
    """Normalised evaluation text -> id of the first item that has it."""
    phrases: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    """Whole evaluation texts of `MIN_WORDS` to `n - 1` words, and every run of `n` words of
    the longer ones -> id of the first item that has it."""
    n: int = NGRAM

    @classmethod
    def from_items(cls, items: Iterable[EvalItem], n: int = NGRAM) -> ContaminationGuard:
        """Index the question, context, user message and chat turns of each item."""
        if n < MIN_WORDS:
            raise ValueError(f"n must be at least {MIN_WORDS}, got {n}")
        exact: dict[str, str] = {}
        phrases: dict[tuple[str, ...], str] = {}
        for item in items:
            for text, instruction in _eval_texts(item):
                words = normalize(text)
                tokens = words.split()
                # A system turn is an instruction ("Answer in one word."), shared by many
                # prompts: only a run of n of its words counts, never the short turn itself.
                if not tokens or (instruction and len(tokens) < n):
                    continue
                exact.setdefault(words, item.id)
                if len(tokens) < MIN_WORDS:
                    continue
                for phrase in _windows(tokens, min(n, len(tokens))):
                    phrases.setdefault(phrase, item.id)
        return cls(exact=exact, phrases=phrases, n=n)

    def __bool__(self) -> bool:
        return bool(self.exact)

    @cached_property
    def _heads(self) -> dict[tuple[str, ...], list[int]]:
        """First `MIN_WORDS` words of each phrase -> the lengths of the phrases they start."""
        heads: dict[tuple[str, ...], set[int]] = {}
        for phrase in self.phrases:
            heads.setdefault(phrase[:MIN_WORDS], set()).add(len(phrase))
        return {head: sorted(lengths) for head, lengths in heads.items()}

    def check(self, question: str, answer: str | None = None) -> str | None:
        """Why the line (`question`, `answer`) is contaminated, or None when it is clean."""
        reason = self.check_text(question)
        if reason is None and answer:
            reason = self.check_text(answer, exact=False)
            return f"answer {reason}" if reason else None
        return f"question {reason}" if reason else None

    def check_text(self, text: str, *, exact: bool = True) -> str | None:
        """Why `text` carries an evaluation text (rules 2 and 3, and rule 1 when `exact`)."""
        words = normalize(text)
        if exact and words in self.exact:
            return f"repeats evaluation item {self.exact[words]!r}"
        heads = self._heads
        tokens = words.split()
        # One look-up per word; only a start shared with some phrase is looked at further.
        for start in range(len(tokens) - MIN_WORDS + 1):
            for length in heads.get(tuple(tokens[start : start + MIN_WORDS]), ()):
                phrase = tuple(tokens[start : start + length])
                if len(phrase) == length and phrase in self.phrases:
                    what = (
                        f"shares {length} words with"
                        if length == self.n
                        else "contains the text of"
                    )
                    return f"{what} evaluation item {self.phrases[phrase]!r}: {' '.join(phrase)!r}"
        return None

    def filter(
        self,
        lines: Iterable[T],
        texts: Callable[[T], tuple[str, str | None]] | None = None,
    ) -> tuple[list[T], list[Dropped[T]]]:
        """Split `lines` into the clean ones and the dropped ones with their reasons, in order.

        `texts` gives a line's (question, answer); by default the line's `question` and
        `answer`, as attributes (`TrainExample`) or keys (a JSON record).
        """
        read = texts or _question_answer
        kept: list[T] = []
        dropped: list[Dropped[T]] = []
        for line in lines:
            reason = self.check(*read(line))
            if reason is None:
                kept.append(line)
            else:
                dropped.append(Dropped(line, reason))
        return kept, dropped


def _eval_texts(item: EvalItem) -> Iterator[tuple[str, bool]]:
    """Each text of an item the model is shown, and whether it is a system instruction."""
    yield item.question, False
    if item.context:
        yield item.context, False
        yield item.user_message(), False
    for role, content in item.messages or ():
        yield content, role == "system"


def _windows(words: list[str], n: int) -> Iterator[tuple[str, ...]]:
    for start in range(len(words) - n + 1):
        yield tuple(words[start : start + n])


def _question_answer(line: Any) -> tuple[str, str | None]:
    if isinstance(line, Mapping):
        return str(line.get("question") or ""), line.get("answer")
    return str(getattr(line, "question", "") or ""), getattr(line, "answer", None)
