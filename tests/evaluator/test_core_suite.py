"""The shipped core suite: its shape, a disjoint training pool, and files that match their generator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from kaizen.runtime.scoring import normalize, parse_number, score
from kaizen.runtime.suites import CAPABILITIES, SHIPPED_SUITES, load_suite

CORE = SHIPPED_SUITES / "core"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    import kaizen.evaluator.coresuite

    return kaizen.evaluator.coresuite


def test_core_has_eight_or_more_domains_times_every_capability() -> None:
    suite = load_suite("core")
    assert len(suite.domains) >= 8 and set(suite.capabilities) == set(CAPABILITIES)
    assert len(suite.items) >= 400
    counts = Counter((item.domain, item.capability) for item in suite.items)
    for domain in suite.domains:
        for capability in CAPABILITIES:
            assert counts[domain, capability] == 12, (domain, capability)


def test_core_training_pools_are_disjoint_from_the_evaluation_items() -> None:
    suite = load_suite("core")
    asked = {normalize(item.question) for item in suite.items} | {
        normalize(item.user_message()) for item in suite.items
    }
    trained = {normalize(example.question) for example in suite.training}
    assert not asked & trained
    for domain in suite.domains:
        assert len(suite.training_pool(domain)) >= 20, domain


def test_core_questions_are_unique_and_never_give_their_answer_away() -> None:
    suite = load_suite("core")
    messages = [normalize(item.user_message()) for item in suite.items]
    assert len(set(messages)) == len(messages)
    for item in suite.items:
        assert score(item.scorer, item.user_message(), item.answers)[0] == 0.0, item.id


def test_core_answers_have_the_right_form() -> None:
    for item in load_suite("core").items:
        if item.scorer == "numeric":
            assert parse_number(item.reference) is not None, item.id
        if item.domain == "history" and item.capability == "factual_recall":
            assert 1000 <= int(item.reference) <= 2000, item.id


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # Hand-checked answers to generated questions (a template bug would break these).
        ("What is the atomic number of the element whose symbol is Au?", "79"),
        ("What is the SI unit of energy?", "joule"),
        ("Which planet comes immediately after Jupiter in order from the Sun?", "Saturn"),
        ("In which year did the fall of the Berlin Wall take place?", "1989"),
        ("What is the capital of Germany?", "Berlin"),
    ],
)
def test_core_spot_checks(question: str, answer: str) -> None:
    found = [item for item in load_suite("core").items if item.question == question]
    assert found and found[0].reference == answer


def test_committed_core_files_are_what_the_generator_writes(generator: ModuleType) -> None:
    for name, content in generator.render().items():
        assert (CORE / name).read_text(encoding="utf-8") == content, (
            f"{name} is stale: run python -m kaizen.evaluator.coresuite"
        )


def test_generated_multi_step_answers_are_recomputed(generator: ModuleType) -> None:
    # Independent arithmetic on a few templates: the numbers in the question give the answer.
    import re

    for item in load_suite("core").items:
        numbers = [int(n) for n in re.findall(r"\d+", item.question)]
        if item.question.startswith("A farm has"):
            continue  # legs per animal come from the fact table
        if "degrees Celsius in degrees Fahrenheit" in item.question:
            assert float(item.reference) == numbers[0] * 9 / 5 + 32
        if "hours and" in item.question and "minutes are in" in item.question:
            assert int(item.reference) == 60 * numbers[0] + numbers[1]
        if item.question.startswith("What is") and " times " in item.question:
            assert int(item.reference) == numbers[0] * numbers[1]


def test_core_evaluates_end_to_end_on_a_tiny_model(lively_model_dir: Path, tmp_path: Path) -> None:
    from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation

    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite="core",
        step="evaluate",
        limit=1,
        max_new_tokens=3,
        batch_size=9,
        quiet=True,
    )
    results = run_evaluation(options, tmp_path)
    # The limit counts per split (Suite.select): one dev and one test item of each domain.
    domains = load_suite("core").domains
    assert results["overall"]["n"] == 2 * len(domains) and set(results["domains"]) == set(domains)
    assert all(len(d["ci95"]) == 2 for d in results["domains"].values())


def test_a_limited_core_run_still_covers_every_capability() -> None:
    limited = load_suite("core").select(limit=4)
    for domain in limited.domains:
        assert {i.capability for i in limited.items if i.domain == domain} == set(CAPABILITIES)
