"""Fixtures for evaluator tests: a tiny model whose greedy outputs vary from prompt to prompt."""

from __future__ import annotations

from pathlib import Path

import pytest


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
