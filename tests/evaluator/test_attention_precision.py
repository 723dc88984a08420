"""The evaluator's attention kernel and precision: what the model is loaded with, and the same
greedy outputs under SDPA and eager attention."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaizen.api import parse_spec
from kaizen.api.args import EvaluateArgs
from kaizen.cycle.planner import StepPlanner
from kaizen.evaluator.evaluate import EvaluateOptions, _load
from kaizen.runtime.tracking import TrackingOptions

PROMPTS = [
    "Which river flows through Lumora?",
    "Who founded Lumora?",
    "abc",
    "What is 12 times 12?",
]


def _options(model: Path, **settings: str) -> EvaluateOptions:
    args = EvaluateArgs(
        model=str(model), suite="demo", step="evaluate-baseline", output="/tmp/x", **settings
    )
    return EvaluateOptions.from_args(args, tracking=TrackingOptions())


def test_the_model_is_loaded_with_the_asked_kernel_and_dtype(tiny_model_dir: Path) -> None:
    import torch

    model, _ = _load(_options(tiny_model_dir))
    assert model.config._attn_implementation == "sdpa"
    assert model.dtype == torch.float32  # auto on a CPU
    model, _ = _load(_options(tiny_model_dir, attention="eager", precision="bf16"))
    assert model.config._attn_implementation == "eager"
    assert model.dtype == torch.bfloat16


def test_sdpa_and_eager_generate_the_same_greedy_outputs(tiny_model_dir: Path) -> None:
    from kaizen.evaluator.generation import generate
    from kaizen.runtime.models import format_prompt

    outputs = {}
    for attention in ("sdpa", "eager"):
        model, tokenizer = _load(_options(tiny_model_dir, attention=attention))
        prompts = [format_prompt(tokenizer, question) for question in PROMPTS]
        report = generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3, progress=False)
        outputs[attention] = [row.text for row in report.outputs]
    assert outputs["sdpa"] == outputs["eager"]


def test_the_cycle_passes_its_evaluation_kernel_and_precision_to_both_evaluations() -> None:
    spec = parse_spec({"evaluation": {"attention": "eager", "precision": "fp32"}})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/a")
    for step in ("evaluate-baseline", "evaluate-candidate"):
        args = planner.evaluate_args(step)
        assert (args.attention, args.precision) == ("eager", "fp32")
    with pytest.raises(ValueError, match="attention"):
        parse_spec({"evaluation": {"attention": "flash"}})
