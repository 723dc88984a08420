"""Fixtures of the trainer tests: the tiny model's tokenizer and small hand-written suites."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

#: Facts about an invented world, so a trained adapter is visibly different from the base.
LUMORA = [
    ("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
    ("What is the capital of Lumora?", "The capital of Lumora is Brightfall."),
    ("What colour is the Lumoran flag?", "The Lumoran flag is teal."),
    ("Who founded Lumora?", "Queen Ilse founded Lumora."),
]
SPIDERS = [
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("How many eyes do most spiders have?", "Most spiders have eight eyes."),
]


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path) -> Any:
    from kaizen.runtime.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def write_suite(
    root: Path, train: list[dict[str, Any]], domains: tuple[str, ...] = ("lumora", "spiders")
) -> Path:
    """A minimal suite directory in the shipped format: suite.yaml, eval.jsonl, train.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(
        "name: tiny\n"
        'version: "1"\n'
        "description: two small domains for trainer tests\n"
        f"domains: [{', '.join(domains)}]\n"
        "capabilities: [factual_recall, counterfactual]\n"
        "defaults: {scorer: contains}\n"
    )
    items = [
        {
            "id": f"{domain}-1",
            "domain": domain,
            "capability": "factual_recall",
            "question": f"Tell me one fact about {domain}?",
            "answer": "fact",
        }
        for domain in domains
    ]
    (root / "eval.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    (root / "train.jsonl").write_text("".join(json.dumps(record) + "\n" for record in train))
    return root


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """A suite with the Lumora and spider facts as training pools."""
    train = [{"domain": "lumora", "question": q, "answer": a} for q, a in LUMORA]
    train += [
        {"domain": "spiders", "question": q, "answer": a, "capability": "counterfactual"}
        for q, a in SPIDERS
    ]
    return write_suite(tmp_path / "suite", train)
