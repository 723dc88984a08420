"""Shared pieces of the `core` suite's generator: settings, candidates, domains."""

from __future__ import annotations

from dataclasses import dataclass, field

PER_CAPABILITY = 12
SEED = 7
CAPABILITIES = ("factual_recall", "cross_referencing", "counterfactual", "multi_step")
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


@dataclass
class Candidate:
    question: str
    answer: str
    aliases: tuple[str, ...] = ()
    numeric: bool = False
    context: str | None = None


@dataclass
class Domain:
    name: str
    prefix: str
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    train: list[dict[str, str]] = field(default_factory=list)

    def add(self, capability: str, *candidates: Candidate) -> None:
        self.candidates.setdefault(capability, []).extend(candidates)

    def teach(self, question: str, answer: str, capability: str = "factual_recall") -> None:
        question, answer = question[:1].upper() + question[1:], answer[:1].upper() + answer[1:]
        self.train.append(
            {"domain": self.name, "capability": capability, "question": question, "answer": answer}
        )


def num(question: str, value: float, context: str | None = None) -> Candidate:
    text = str(int(value)) if float(value).is_integer() else str(value)
    return Candidate(question, text, numeric=True, context=context)


def text(question: str, answer: str, *aliases: str, context: str | None = None) -> Candidate:
    return Candidate(question, answer, tuple(aliases), context=context)


def article(word: str) -> str:
    return ("an " if word[0] in "aeiou" or word.startswith("hour") else "a ") + word
