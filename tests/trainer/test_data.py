"""Training-set assembly: pool, plan weighting, extra data, label masking, truncation, batching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.runtime.models import format_prompt
from kaizen.trainer.data import (
    IGNORE_INDEX,
    Example,
    assemble_examples,
    collate,
    read_extra_examples,
    read_plan,
    tokenize_example,
    tokenize_examples,
)

POOL = [Example(f"Question {i}?", f"Answer {i}.", "factual_recall") for i in range(6)]


def test_labels_cover_exactly_the_answer_and_end_of_turn(tokenizer) -> None:
    example = Example("Which river flows through Lumora?", "The Silverrun.")
    tokens = tokenize_example(tokenizer, example, max_seq_length=512)
    prompt_ids = tokenizer(format_prompt(tokenizer, example.question), add_special_tokens=False)[
        "input_ids"
    ]
    boundary = len(prompt_ids)

    # The prompt is tokenised exactly as the evaluator sends it.
    assert list(tokens.input_ids[:boundary]) == prompt_ids
    assert tokens.labels[:boundary] == (IGNORE_INDEX,) * boundary
    assert tokens.labels[boundary:] == tokens.input_ids[boundary:]
    assert tokenizer.decode(tokens.input_ids[boundary:]) == "The Silverrun." + tokenizer.eos_token
    assert tokens.labels[-1] == tokenizer.eos_token_id
    assert not tokens.truncated


def test_truncation_keeps_the_prompt_and_cuts_the_answer(tokenizer) -> None:
    example = Example("Which river flows through Lumora?", "The Silverrun flows through Lumora.")
    full = tokenize_example(tokenizer, example, max_seq_length=512)
    boundary = full.labels.count(IGNORE_INDEX)
    cut = tokenize_example(tokenizer, example, max_seq_length=boundary + 2)

    assert cut.truncated
    assert cut.input_ids == full.input_ids[: boundary + 2]
    assert cut.answer_tokens == 2


def test_examples_whose_prompt_fills_the_length_are_dropped(tokenizer) -> None:
    short = Example("Hi?", "Yes.")
    long = Example("Which river flows through Lumora? " * 10, "The Silverrun.")
    limit = tokenize_example(tokenizer, short, 512).labels.count(IGNORE_INDEX) + 3

    result = tokenize_examples(tokenizer, [short, long], max_seq_length=limit)

    assert result.dropped == 1
    assert len(result.examples) == 1
    with pytest.raises(ConfigurationError, match="no answer token"):
        tokenize_examples(tokenizer, [long], max_seq_length=limit)


def test_collate_pads_on_the_right_and_masks_padding(tokenizer) -> None:
    rows = tokenize_examples(
        tokenizer,
        [
            Example("Hi?", "Yes."),
            Example("Why is the sky blue?", "Because of Rayleigh scattering."),
        ],
        512,
    ).examples
    batch = collate(rows, pad_token_id=tokenizer.pad_token_id)
    short, long = (len(rows[0].input_ids), len(rows[1].input_ids))

    assert batch["input_ids"].shape == (2, max(short, long))
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (long - short)
    assert batch["labels"][0, short:].eq(IGNORE_INDEX).all()
    assert batch["input_ids"][0, :short].tolist() == list(rows[0].input_ids)


def test_empty_pool_names_domain_and_suite() -> None:
    with pytest.raises(ConfigurationError, match=r"suite 'tiny'.*domain 'lumora'"):
        assemble_examples([], domain="lumora", suite="tiny")


def test_shuffle_is_deterministic_per_seed() -> None:
    first = assemble_examples(POOL, domain="d", suite="s", seed=3)
    assert first == assemble_examples(POOL, domain="d", suite="s", seed=3)
    assert sorted(first, key=lambda e: e.question) == POOL
    orders = {
        tuple(e.question for e in assemble_examples(POOL, domain="d", suite="s", seed=s))
        for s in range(5)
    }
    assert len(orders) > 1


def test_targeted_capabilities_are_repeated() -> None:
    pool = [Example("a?", "A.", "factual_recall"), Example("b?", "B.", "multi_step")]
    examples = assemble_examples(
        pool, domain="d", suite="s", targeted_capabilities=["multi_step"], capability_weight=3
    )
    assert sorted(e.question for e in examples) == ["a?", "b?", "b?", "b?"]
    with pytest.raises(ConfigurationError, match="capability weight"):
        assemble_examples(pool, domain="d", suite="s", capability_weight=0)


def test_extra_examples_are_added_and_filtered_by_domain(tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    path.write_text(
        '{"question": "q1?", "answer": "a1."}\n'
        "\n"
        '{"question": "q2?", "answer": "a2.", "domain": "other"}\n'
        '{"question": "q3?", "answer": "a3.", "domain": "lumora", "capability": "multi_step"}\n'
    )
    extra = read_extra_examples(path, "lumora")

    assert [(e.question, e.capability, e.source) for e in extra] == [
        ("q1?", None, f"{path}:1"),
        ("q3?", "multi_step", f"{path}:4"),
    ]
    combined = assemble_examples(POOL, domain="lumora", suite="s", extra=extra)
    assert len(combined) == len(POOL) + 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r":2: invalid JSON"),
        ('["a", "b"]', r":2: expected a JSON object, got list"),
        ('{"answer": "a."}', r":2: question: missing"),
        ('{"question": "q?", "answer": ""}', r":2: answer: must be a non-empty string"),
        ('{"question": "q?", "answer": 3}', r":2: answer: must be a non-empty string, got 3"),
        (
            '{"question": "q?", "answer": "a.", "domain": 1}',
            r":2: domain: must be a non-empty string",
        ),
    ],
)
def test_malformed_extra_data_names_file_line_and_field(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "extra.jsonl"
    path.write_text('{"question": "ok?", "answer": "ok."}\n' + line + "\n")
    with pytest.raises(ConfigurationError, match=str(path).replace(".", r"\.") + message):
        read_extra_examples(path, "lumora")


def test_extra_data_past_a_byte_order_mark_and_in_another_encoding(tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + '{"question": "Zoë?", "answer": "Sæther."}\n'.encode())
    assert [e.answer for e in read_extra_examples(path, "lumora")] == ["Sæther."]
    path.write_bytes(
        '{"question": "ok?", "answer": "ok."}\n{"question": "Zoë?"}\n'.encode("latin-1")
    )
    with pytest.raises(ConfigurationError, match=str(path).replace(".", r"\.") + r":2: not UTF-8"):
        read_extra_examples(path, "lumora")


def test_missing_extra_data_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_extra_examples(tmp_path / "nope.jsonl", "lumora")


def test_a_plan_written_by_hand_needs_only_its_version_and_priority_domains(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"schema": 1, "priority_domains": ["lumora"]}))
    assert read_plan(path).priority_domains == ["lumora"]
    assert read_plan(path).targeted_capabilities == []

    path.write_text(
        json.dumps(
            {"schema": 1, "priority_domains": ["a", "b"], "targeted_capabilities": ["multi_step"]}
        )
    )
    plan = read_plan(path)
    assert plan.priority_domains == ["a", "b"]
    assert plan.targeted_capabilities == ["multi_step"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": 1}', "priority_domains: Field required"),
        ('{"schema": 1, "priority_domains": "lumora"}', "priority_domains: Input should be a valid list"),
        (
            '{"schema": 1, "priority_domains": [], "targeted_capabilities": [1]}',
            r"targeted_capabilities\.0: Input should be a valid string",
        ),
        # One spelling only: the camelCase keys of the status digest are not plan keys.
        ('{"schema": 1, "priorityDomains": ["a"]}', "priorityDomains: Extra inputs are not permitted"),
        ('{"priority_domains": ["a"]}', 'without a schema version \\(no "schema" key\\)'),
        ('{"schema": 4, "priority_domains": ["a"]}', "schema version 4 is newer than this Kaizen reads \\(3\\); upgrade Kaizen"),
        ("[1]", "must be a JSON object"),
        ('{\n"priority_domains": [,]}', r":2: invalid JSON"),
    ],
)  # fmt: skip
def test_bad_plan_is_a_configuration_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as raised:
        read_plan(path)
    assert str(path) in str(raised.value)


def test_a_missing_plan_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="improvement plan file not found"):
        read_plan(tmp_path / "nope.json")
