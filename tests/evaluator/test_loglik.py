"""Log-likelihood scoring on a tiny model: batched equals one at a time equals a direct computation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation
from kaizen.evaluator.loglik import encode_pair, loglikelihoods, rank_choices
from kaizen.runtime.models import format_prompt, load_model, load_tokenizer

REQUESTS = [
    ("What is the capital of France?", " Paris"),
    ("What is the capital of France?", " Lyon is the capital city"),
    ("How many legs does a spider have? A spider has", " eight legs."),
    ("12 times 12 is", " 144"),
    ("Which river flows through Lumora?", " The Silverrun flows through Lumora."),
]


@pytest.fixture(scope="module")
def tiny(lively_model_dir: Path) -> Iterator[tuple[Any, Any]]:
    import torch

    tokenizer = load_tokenizer(str(lively_model_dir))
    model = load_model(str(lively_model_dir), device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tokenizer
    torch.set_num_threads(threads)


def direct_logprob(model: Any, tokenizer: Any, context: str, continuation: str) -> float:
    """The textbook computation: one unpadded sequence, log-softmax at every position."""
    import torch

    context_ids, continuation_ids = encode_pair(tokenizer, context, continuation)
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(
        float(logprobs[len(context_ids) - 1 + i, token]) for i, token in enumerate(continuation_ids)
    )


def test_encode_pair_splits_at_the_context_and_moves_trailing_spaces(tiny: tuple) -> None:
    _, tokenizer = tiny
    context, continuation = encode_pair(tokenizer, "The capital is ", "Paris")
    assert context == list(tokenizer("The capital is", add_special_tokens=False)["input_ids"])
    whole = list(tokenizer("The capital is Paris", add_special_tokens=False)["input_ids"])
    assert context + continuation == whole


def test_batched_loglikelihoods_equal_one_at_a_time_and_the_direct_computation(
    tiny: tuple,
) -> None:
    model, tokenizer = tiny
    batched = loglikelihoods(model, tokenizer, REQUESTS, batch_size=4).results
    for request, result in zip(REQUESTS, batched, strict=True):
        single = loglikelihoods(model, tokenizer, [request], batch_size=1).results[0]
        assert result.logprob == pytest.approx(single.logprob, abs=1e-4)
        assert result.logprob == pytest.approx(direct_logprob(model, tokenizer, *request), abs=1e-4)
        assert result.tokens == len(encode_pair(tokenizer, *request)[1]) and result.logprob < 0


def test_a_longer_continuation_of_the_same_text_is_less_likely(tiny: tuple) -> None:
    model, tokenizer = tiny
    short, longer = loglikelihoods(
        model, tokenizer, [("12 times 12 is", " 144"), ("12 times 12 is", " 144 and more")]
    ).results
    assert longer.logprob < short.logprob


def test_rank_choices_picks_the_highest_log_likelihood(tiny: tuple) -> None:
    model, tokenizer = tiny
    prompt = format_prompt(tokenizer, "What is the capital of France?")
    choices = ["Paris", "Lyon", "Nice", "Lille"]
    (ranked,), report = rank_choices(model, tokenizer, [(prompt, choices)], batch_size=3)
    direct = [direct_logprob(model, tokenizer, prompt, c) for c in choices]
    assert ranked["chosen"] == choices[direct.index(max(direct))]
    assert ranked["logprobs"] == pytest.approx(direct, abs=1e-4)
    assert len(ranked["greedy"]) == 4 and report.batch_size == 3


def test_empty_requests_are_refused(tiny: tuple) -> None:
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="must not be empty"):
        loglikelihoods(model, tokenizer, [("", "x")])


def test_evaluate_routes_choice_items_through_loglik(
    lively_model_dir: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "mc"
    suite.mkdir()
    (suite / "suite.yaml").write_text(
        "name: mc\nversion: '1'\ndomains: [geo]\ncapabilities: [factual_recall]\n"
    )
    items = [
        {
            "id": "mc1",
            "domain": "geo",
            "capability": "factual_recall",
            "question": "What is the capital of France?",
            "answer": "Paris",
            "choices": ["Lyon", "Paris", "Nice"],
        },
        {
            "id": "gen1",
            "domain": "geo",
            "capability": "factual_recall",
            "question": "What is the capital of Italy?",
            "answer": "Rome",
        },
    ]
    (suite / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite=str(suite),
        step="evaluate",
        max_new_tokens=4,
        batch_size=2,
        quiet=True,
    )
    results = run_evaluation(options, tmp_path / "out")
    mc, gen = results["items"]
    assert mc["response"] in ("Lyon", "Paris", "Nice") and mc["new_tokens"] == 0
    assert mc["score"] == float(mc["response"] == "Paris")
    best = max(range(3), key=lambda i: mc["logprobs"][i])
    assert mc["response"] == mc["choices"][best]
    assert "choices" not in gen and gen["scorer"] == "contains"
    lines = (tmp_path / "out" / "responses.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["logprobs"] == mc["logprobs"]
    assert results["performance"]["loglik_seconds"] > 0
