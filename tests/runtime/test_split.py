"""The dev/test split: deterministic, documented, read from dev.jsonl or a hash of the id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.runtime.suites import SuiteError, load_suite
from kaizen.runtime.suites.split import DEV_FRACTION, split_of
from tests.runtime.test_suites import GOOD_ITEMS, HEADER, write_suite


def test_the_hash_split_is_stable_and_near_its_fraction() -> None:
    ids = [f"item-{n}" for n in range(4000)]
    first = [split_of(i, 0.3) for i in ids]
    assert first == [split_of(i, 0.3) for i in ids]
    share = first.count("dev") / len(ids)
    assert 0.27 < share < 0.33
    # An item's side depends on its id alone, never on its neighbours, and a larger
    # fraction only moves test items to dev.
    assert all(split_of(i, 0.5) == "dev" for i, s in zip(ids, first, strict=True) if s == "dev")
    assert {split_of(i, 0.0) for i in ids} == {"test"}
    # Fixed points: a change of the hash would silently reshuffle every suite.
    assert [split_of(i, DEV_FRACTION) for i in ("a1", "a2", "a3", "b1")] == [
        "dev",
        "dev",
        "test",
        "test",
    ]


def test_a_suite_without_dev_file_is_split_by_its_dev_fraction(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "mini")))
    assert {i.id: i.split for i in suite.items} == {
        "a1": "dev", "a2": "dev", "a3": "test", "b1": "test",
    }  # fmt: skip
    none = load_suite(str(write_suite(tmp_path / "all", header=HEADER + "dev_fraction: 0\n")))
    assert {i.split for i in none.items} == {"test"}
    # The split is part of what the digest covers: a different split, other items to pair.
    assert none.digest != suite.digest


def test_a_dev_file_makes_every_eval_item_a_test_item(tmp_path: Path) -> None:
    root = write_suite(tmp_path / "mini")
    dev = {
        "id": "d1",
        "domain": "beta",
        "capability": "factual_recall",
        "question": "D?",
        "answer": "w",
    }
    (root / "dev.jsonl").write_text(json.dumps(dev) + "\n")
    suite = load_suite(str(root))
    assert [(i.id, i.split) for i in suite.items] == [
        ("a1", "test"), ("a2", "test"), ("a3", "test"), ("b1", "test"), ("d1", "dev"),
    ]  # fmt: skip
    assert [i.id for i in suite.select(split="dev").items] == ["d1"]
    assert [i.id for i in suite.select(["alpha"], split="dev").items] == []


def test_dev_items_are_checked_like_eval_items(tmp_path: Path) -> None:
    root = write_suite(tmp_path / "dup")
    (root / "dev.jsonl").write_text(json.dumps(GOOD_ITEMS[0]) + "\n")
    with pytest.raises(SuiteError, match=r"dev\.jsonl:1: id: duplicate id 'a1'"):
        load_suite(str(root))
    root = write_suite(tmp_path / "taught")
    dev = {
        "id": "d1",
        "domain": "alpha",
        "capability": "factual_recall",
        "question": "T a?",
        "answer": "x",
    }
    (root / "dev.jsonl").write_text(json.dumps(dev) + "\n")
    # A dev item is never trained on either: choosing on a taught item measures recall of it.
    with pytest.raises(SuiteError, match=r"train\.jsonl:1: question: repeats evaluation item 'd1'"):
        load_suite(str(root))
    root = write_suite(tmp_path / "empty")
    (root / "dev.jsonl").write_text("\n")
    with pytest.raises(SuiteError, match=r"dev\.jsonl: no items"):
        load_suite(str(root))


@pytest.mark.parametrize("value", ["1", "-0.1", "half", "true"])
def test_a_bad_dev_fraction_names_its_line(tmp_path: Path, value: str) -> None:
    root = write_suite(tmp_path / "bad", header=HEADER + f"dev_fraction: {value}\n")
    with pytest.raises(
        SuiteError, match=r"suite\.yaml:8: dev_fraction: must be a number in \[0, 1\)"
    ):
        load_suite(str(root))


def test_the_dev_items_of_a_full_selection_are_the_dev_selection(tmp_path: Path) -> None:
    """What the combine step pairs by id: the baseline evaluates both splits under a limit,
    a candidate only the dev split under the same limit."""
    items = [
        {"id": f"a{n}", "domain": "alpha", "capability": "factual_recall", "question": f"Q{n}?", "answer": "x"}
        for n in range(40)
    ]  # fmt: skip
    suite = load_suite(str(write_suite(tmp_path / "big", items=items, train=False)))
    for limit in (None, 1, 3, 10):
        full = [i.id for i in suite.select(limit=limit).items if i.split == "dev"]
        assert full == [i.id for i in suite.select(limit=limit, split="dev").items]
        assert full, limit


def test_the_demo_ships_dev_items_for_every_domain() -> None:
    suite = load_suite("demo")
    dev = suite.select(split="dev")
    assert {i.domain for i in dev.items} == set(suite.domains)
    assert len(suite.select(split="test").items) == 50
