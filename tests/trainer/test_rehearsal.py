"""Rehearsal: how many lines of each other domain an adapter rehearses, and which."""

from __future__ import annotations

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.trainer.data import Example
from kaizen.trainer.rehearsal import replay_count, replay_examples, replay_shares, resemblance


def _pool(prefix: str, n: int, answer: str | None = None) -> list[Example]:
    return [Example(f"{prefix}{i}?", answer or prefix) for i in range(n)]


def test_replay_count_makes_the_requested_share() -> None:
    assert replay_count(30, 0.0) == 0
    assert replay_count(30, 0.5) == 30
    assert replay_count(30, 0.25) == 10
    with pytest.raises(ConfigurationError, match="replay fraction"):
        replay_count(30, 1.0)


def test_replay_draws_evenly_from_the_other_domains_only() -> None:
    pools = {"target": _pool("t", 5), "big": _pool("b", 20), "small": _pool("s", 2)}
    chosen = replay_examples(pools, domain="target", count=8, seed=0)
    answers = [e.answer for e in chosen]
    assert len(chosen) == 8 and "t" not in answers
    assert answers.count("s") == 2 and answers.count("b") == 6  # the small pool is not crowded out
    assert all(e.source.startswith("replay:") for e in chosen)
    assert replay_examples(pools, domain="target", count=8, seed=0) == chosen  # deterministic
    assert len(replay_examples(pools, domain="target", count=100)) == 22  # capped by what exists


def test_even_shares_draw_in_round_robin_order() -> None:
    # The order before shares existed (and what an even split still gives): one line of each
    # domain in name order, then the next of each.
    pools = {"c": _pool("c", 3), "a": _pool("a", 3), "b": _pool("b", 1)}
    chosen = replay_examples(pools, domain="x", count=6, seed=0)
    assert [e.answer for e in chosen] == ["a", "b", "c", "a", "c", "a"]
    even = replay_shares({"a": 0.3, "b": 0.1, "c": 0.0}, focus=0.0)
    assert replay_examples(pools, domain="x", count=6, seed=0, shares=even) == chosen


@pytest.mark.parametrize(
    ("shares", "count", "expected"),
    [
        ({"a": 0.5, "b": 0.25, "c": 0.25}, 8, {"a": 4, "b": 2, "c": 2}),
        ({"a": 0.7, "b": 0.2, "c": 0.1}, 10, {"a": 7, "b": 2, "c": 1}),
        # a's pool (10 lines) runs out: the rest go to the others in proportion
        ({"a": 0.9, "b": 0.05, "c": 0.05}, 30, {"a": 10, "b": 10, "c": 10}),
        # a share of 0 draws nothing, even when lines are left
        ({"a": 1.0, "b": 0.0, "c": 0.0}, 12, {"a": 10}),
    ],
)
def test_lines_are_drawn_in_proportion_to_the_shares(
    shares: dict[str, float], count: int, expected: dict[str, int]
) -> None:
    pools = {name: _pool(name, 10) for name in "abc"}
    chosen = replay_examples(pools, domain="x", count=count, seed=3, shares=shares)
    drawn = {name: sum(e.answer == name for e in chosen) for name in "abc"}
    assert {k: v for k, v in drawn.items() if v} == expected
    assert all(e.source == f"replay:{e.answer}" for e in chosen)


def test_shares_mix_an_even_split_with_the_resemblance() -> None:
    resembles = {"geo": 0.6, "math": 0.2, "bio": 0.2}
    assert replay_shares(resembles, 0.0) == pytest.approx(
        {"geo": 1 / 3, "math": 1 / 3, "bio": 1 / 3}
    )
    assert replay_shares(resembles, 1.0) == pytest.approx({"geo": 0.6, "math": 0.2, "bio": 0.2})
    half = replay_shares(resembles, 0.5)
    assert half == pytest.approx(
        {"geo": 0.5 * (1 / 3 + 0.6), "math": 0.5 * (1 / 3 + 0.2), "bio": 0.5 * (1 / 3 + 0.2)}
    )
    assert sum(half.values()) == pytest.approx(1.0)
    # nothing resembles the set: an even split whatever the focus
    assert replay_shares({"a": 0.0, "b": 0.0}, 1.0) == {"a": 0.5, "b": 0.5}
    with pytest.raises(ConfigurationError, match="replay focus"):
        replay_shares(resembles, 1.5)


def test_resemblance_follows_shared_distinctive_words() -> None:
    own = [
        Example("What is the capital of Korrin?", "The capital of Korrin is Vaskel."),
        Example("Which currency is used in Korrin?", "Korrin uses the dral."),
    ]
    pools = {
        "geography": [
            Example("What is the capital of France?", "The capital of France is Paris."),
            Example("Which currency is used in Japan?", "Japan uses the yen."),
        ],
        "arithmetic": [
            Example("What is 7 times 8?", "7 times 8 is 56."),
            Example("What is 12 plus 30?", "12 plus 30 is 42."),
        ],
        "biology": [
            Example("What is the powerhouse of the cell?", "The mitochondrion is."),
            Example("How many legs does a spider have?", "A spider has eight legs."),
        ],
    }
    found = resemblance(own, pools)
    assert set(found) == {"geography", "arithmetic", "biology"}
    assert all(0.0 <= value <= 1.0 for value in found.values())
    assert found["geography"] > 0.1
    assert found["geography"] > 3 * max(found["arithmetic"], found["biology"])
    # words every document uses ("what", "is", "the") carry no weight
    assert resemblance(
        [Example("What is the?", "the")], {"a": [Example("What is the?", "is")]}
    ) == {"a": 0.0}
    # and identical wording is a resemblance of 1
    assert resemblance(own, {"same": own, "other": pools["arithmetic"]})["same"] == pytest.approx(
        1.0
    )


def test_a_domains_knowledge_is_rehearsed_in_every_wording_but_never_an_evaluation_item() -> None:
    from kaizen.runtime.contamination import ContaminationGuard
    from kaizen.runtime.suites.loader import EvalItem
    from kaizen.trainer.rehearsal import knowledge_lines
    from tests.trainer.test_synthesis import KNOWLEDGE

    item = EvalItem(
        id="q-1",
        domain="quarn",
        capability="factual_recall",
        question="Which city is the capital of Veyla?",
        answers=("Murrow",),
        scorer="contains",
    )
    guard = ContaminationGuard.from_items([item])
    pool = [Example("What is the capital of Quarnel?", "Ostrivel.")]
    lines = knowledge_lines(KNOWLEDGE, guard, known=pool)
    questions = [e.question for e in lines]
    # every question of each fact's relation, and its inverse, answered by the statement
    assert "Which city is the capital of Quarnel?" in questions
    assert "Ostrivel is the capital of which land?" in questions
    assert "What is the capital of Veyla?" in questions
    assert "Which river flows through Ostrivel?" in questions
    by_question = {e.question: e.answer for e in lines}
    assert (
        by_question["Which city is the capital of Quarnel?"]
        == "The capital of Quarnel is Ostrivel."
    )
    # the evaluation item's own wording is never rehearsed, nor a question the pool already has
    assert "Which city is the capital of Veyla?" not in questions
    assert "What is the capital of Quarnel?" not in questions
    assert len(questions) == len(set(questions))
    assert all(e.capability == "factual_recall" for e in lines)
