"""A model spread over devices (`evaluation.deviceMap: auto`, accelerate's big-model inference)
evaluates like one on a single device.

No GPU here: a `max_memory` smaller than the tiny model forces the same dispatch machinery to
split it between host memory and disk offload, which exercises the hooks that move weights
and activations between devices, as several GPUs (or GPUs and host memory) would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api import parse_spec
from kaizen.api.args import EvaluateArgs
from kaizen.cycle.planner import StepPlanner
from kaizen.evaluator.evaluate import EvaluateOptions
from kaizen.runtime import models
from kaizen.runtime.tracking import TrackingOptions

PROMPTS = [
    "Which river flows through Lumora?",
    "Who founded Lumora?",
    "abc",
    "What is 12 times 12? Answer with the number only, please.",
]


def _split(model_dir: Path, offload: Path, adapters: tuple[str, ...] = ()) -> Any:
    """The tiny model with host memory for most of its weights (the tied embeddings and output
    head are most of it), the decoder layers on disk."""
    whole = models.load_model(str(model_dir), device="cpu")
    size = sum(p.numel() * p.element_size() for p in whole.parameters())
    options = {
        "device_map": "auto",
        "max_memory": {"cpu": size * 85 // 100},
        "offload_folder": str(offload),
    }
    return models.load_model(str(model_dir), adapters, device="cpu", load_options=options)


def _random_adapter(model_dir: Path, target: Path, seed: int = 1) -> str:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = models.load_model(str(model_dir), device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(target))
    return str(target)


def _logits(model: Any, tokenizer: Any) -> Any:
    import torch

    prompts = [models.format_prompt(tokenizer, q) for q in PROMPTS]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        return model(**{key: value.to(model.device) for key, value in batch.items()}).logits


def test_a_split_model_computes_what_the_whole_one_does(
    lively_model_dir: Path, tmp_path: Path
) -> None:
    tiny_model_dir = lively_model_dir  # its greedy continuations differ from prompt to prompt
    import torch

    from kaizen.evaluator.generation import generate
    from kaizen.evaluator.loglik import rank_choices

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    whole = models.load_model(str(tiny_model_dir), device="cpu")
    split = _split(tiny_model_dir, tmp_path / "offload")
    placed = set(split.hf_device_map.values())
    assert {"cpu", "disk"} <= placed, split.hf_device_map
    assert models.placement_summary(split) is not None
    torch.testing.assert_close(_logits(split, tokenizer), _logits(whole, tokenizer))

    prompts = [models.format_prompt(tokenizer, q) for q in PROMPTS]
    runs = [
        generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3, progress=False)
        for model in (whole, split)
    ]
    expected = [(o.text, o.new_tokens) for o in runs[0].outputs]
    assert sum(1 for text, _ in expected if text.strip()) >= 3  # not vacuous
    assert [(o.text, o.new_tokens) for o in runs[1].outputs] == expected
    ranked = [
        rank_choices(model, tokenizer, [(prompts[0], ("Silverrun", "Brightfall"))], batch_size=2)[0]
        for model in (whole, split)
    ]
    assert ranked[1][0]["chosen"] == ranked[0][0]["chosen"]
    assert ranked[1][0]["logprobs"] == pytest.approx(ranked[0][0]["logprobs"], abs=1e-4)


def test_an_adapter_merges_into_a_split_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The candidate's evaluation: the promoted adapter merged into offloaded weights."""
    import torch

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    adapter = _random_adapter(tiny_model_dir, tmp_path / "adapter")
    whole = models.load_model(str(tiny_model_dir), [adapter], device="cpu")
    split = _split(tiny_model_dir, tmp_path / "offload", (adapter,))
    base = models.load_model(str(tiny_model_dir), device="cpu")
    expected = _logits(whole, tokenizer)
    assert not torch.allclose(expected, _logits(base, tokenizer))  # the adapter does something
    torch.testing.assert_close(_logits(split, tokenizer), expected)


def test_models_merged_with_other_adapters_offload_their_own_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The combine step loads one candidate after another with the same placement: each
    computes with its own merged weights, never with what an earlier one left on disk."""
    import torch

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    offload = tmp_path / "offload"
    for seed in (1, 2):
        adapter = _random_adapter(tiny_model_dir, tmp_path / f"adapter-{seed}", seed)
        whole = models.load_model(str(tiny_model_dir), [adapter], device="cpu")
        split = _split(tiny_model_dir, offload, (adapter,))
        assert "disk" in split.hf_device_map.values(), split.hf_device_map
        torch.testing.assert_close(_logits(split, tokenizer), _logits(whole, tokenizer))


def test_placement_options() -> None:
    assert models.placement_options("single") == {}
    assert models.placement_options("auto") == {"device_map": "auto"}
    capped = models.placement_options("auto", "1Gi")
    memory = capped["max_memory"]
    assert memory["cpu"] > 0  # host memory stays available for what the GPUs cannot hold
    assert all(size <= 2**30 for where, size in memory.items() if isinstance(where, int))
    with pytest.raises(ValueError, match="device map must be single or auto"):
        models.placement_options("balanced")


def test_the_evaluate_step_with_device_map_auto_scores_what_single_does(
    lively_model_dir: Path, tmp_path: Path
) -> None:
    """The step's own path (`--device-map auto`); on a CPU-only machine accelerate places
    everything on the CPU, so this checks the plumbing, the split itself is tested above."""
    from kaizen.evaluator.evaluate import run_evaluation

    results = {}
    for device_map in ("single", "auto"):
        args = EvaluateArgs(
            model=str(lively_model_dir),
            suite="demo",
            step="evaluate-baseline",
            output=str(tmp_path / device_map),
            device_map=device_map,
            limit=1,
            max_new_tokens=6,
            quiet=True,
        )
        options = EvaluateOptions.from_args(args, tracking=TrackingOptions())
        assert options.device_map == device_map
        run_evaluation(options, tmp_path / device_map)
        results[device_map] = (tmp_path / device_map / "responses.jsonl").read_text()
    single = [json.loads(line) for line in results["single"].splitlines()]
    auto = [json.loads(line) for line in results["auto"].splitlines()]
    keys = ("id", "response", "score")
    assert [{k: r.get(k) for k in keys} for r in auto] == [
        {k: r.get(k) for k in keys} for r in single
    ]


def test_the_cycle_passes_its_placement_to_both_evaluations() -> None:
    spec = parse_spec({"evaluation": {"deviceMap": "auto", "maxGpuMemory": "70Gi"}})
    planner = StepPlanner(spec, namespace="ns", cycle="c", artifact_root="/a")
    for step in ("evaluate-baseline", "evaluate-candidate"):
        args = planner.evaluate_args(step)
        assert (args.device_map, args.max_gpu_memory) == ("auto", "70Gi")
        assert EvaluateArgs.from_argv(args.to_argv()) == args


@pytest.mark.gpu
def test_a_model_split_between_a_gpu_and_host_memory_generates_what_the_gpu_alone_does(
    lively_model_dir: Path,
) -> None:
    """Activations and the generation cache cross from the GPU to the CPU layers and back, as
    between the GPUs of a pod; float32 so that the two placements compute alike."""
    import torch

    from kaizen.evaluator.generation import generate

    tokenizer = models.load_tokenizer(str(lively_model_dir))
    whole = models.load_model(str(lively_model_dir), device="cuda", dtype=torch.float32)
    size = sum(p.numel() * p.element_size() for p in whole.parameters())
    split = models.load_model(
        str(lively_model_dir),
        dtype=torch.float32,
        load_options={"device_map": "auto", "max_memory": {0: size * 85 // 100, "cpu": 2**34}},
    )
    assert {0, "cpu"} <= set(split.hf_device_map.values()), split.hf_device_map
    torch.testing.assert_close(
        _logits(split, tokenizer).cpu(), _logits(whole, tokenizer).cpu(), rtol=1e-4, atol=1e-4
    )
    prompts = [models.format_prompt(tokenizer, q) for q in PROMPTS]
    runs = [
        generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3, progress=False)
        for model in (whole, split)
    ]
    assert [o.text for o in runs[1].outputs] == [o.text for o in runs[0].outputs]
