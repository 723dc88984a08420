"""Fixtures for evaluator tests: a tiny model whose greedy outputs vary from prompt to prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: Prompts of the generation tests: different lengths, so batches need padding.
QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is 12 times 12?",
    "Which river flows through Lumora, the old city by the sea?",
    "Hi?",
]


@pytest.fixture(scope="session")
def lively_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with larger random weights.

    At the default initialisation (std 0.02) the residual stream dominates and, with tied
    embeddings, greedy decoding just repeats the prompt's last token (a newline) forever.
    Batching tests would then compare identical empty strings and pass vacuously; with
    std 0.1 every prompt gets a different continuation.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path_factory.mktemp("lively-model")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 2 and "embed" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def tiny(lively_model_dir: Path) -> Iterator[tuple[Any, Any, list[str]]]:
    """(model, tokenizer, templated QUESTIONS) of the lively model, on one torch thread."""
    import torch

    from kaizen.runtime.models import format_prompt, load_model, load_tokenizer

    tokenizer = load_tokenizer(str(lively_model_dir))
    model = load_model(str(lively_model_dir), device="cpu")
    # A 3M-parameter model gains nothing from threads, and on a shared 2-core machine
    # thread synchronisation makes each step ~10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tokenizer, [format_prompt(tokenizer, q) for q in QUESTIONS]
    torch.set_num_threads(threads)
