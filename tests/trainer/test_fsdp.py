"""FSDP LoRA: the base sharded over the ranks (`kaizen.trainer.fsdp`) trains the adapter one
process trains, saves an ordinary peft adapter, and resumes from its own checkpoints.

The two-process tests start real processes (torch.distributed with the gloo backend on CPU;
FSDP2's sum-only collectives make that possible): they are marked `slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from tests.trainer.test_cli import _train_args
from tests.trainer.test_distributed import REPO, _assert_same_adapter, _launch, _tensors

#: One rank: rank 0 loads the weights, the others build the model on the meta device.
FSDP_SCRIPT = """
import json, sys
import torch
from kaizen.runtime.models import load_tokenizer
from kaizen.trainer import fsdp
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.distributed import from_environment, process_group
from kaizen.trainer.lora import LoraSettings, train_lora

model_dir, out, settings_json = sys.argv[1], sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
tokenizer = load_tokenizer(model_dir)
pairs = [
    ("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
    ("Who founded Lumora?", "Queen Ilse founded Lumora."),
    ("What is the capital of Lumora?", "The capital of Lumora is Brightfall."),
    ("What colour is the Lumoran flag?", "The Lumoran flag is teal, with a silver moon."),
    ("How many legs does a spider have?", "A spider has eight legs."),
]
examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
fields = json.loads(settings_json)
fields["target_modules"] = tuple(fields.get("target_modules", LoraSettings.target_modules))
settings = LoraSettings(**fields)
with process_group(from_environment()) as parallel:
    model = fsdp.load_base(model_dir, (), None, parallel)
    if not parallel.is_main:
        assert next(model.parameters()).device.type == "meta"
    result = train_lora(
        model, examples, settings, out,
        pad_token_id=tokenizer.pad_token_id, progress=False, parallel=parallel,
    )
    if parallel.is_main:
        print(json.dumps({"loss_curve": result.loss_curve, "tokens": result.tokens,
                          "trainable": result.trainable_parameters,
                          "total": result.total_parameters}))
"""

SETTINGS: dict[str, Any] = {
    "steps": 6,
    "batch_size": 5,
    "learning_rate": 1e-2,
    "rank": 4,
    "alpha": 8,
    "max_grad_norm": 0.5,
    "checkpoint_every": 4,
    "target_modules": ["all-linear"],
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "memory",
    [{}, {"gradient_checkpointing": True, "packing": True}],
    ids=["plain", "checkpointing-and-packing"],
)
def test_two_fsdp_ranks_train_the_adapter_one_process_trains(
    tiny_model_dir: Path, tmp_path: Path, memory: dict[str, Any]
) -> None:
    """Against a plain one-process run; the memory options change nothing either."""
    (single,) = _launch(tiny_model_dir, tmp_path / "one", SETTINGS, world=1, script=FSDP_SCRIPT)
    fsdp = {**SETTINGS, **memory, "parallelism": "fsdp"}
    main, other = _launch(tiny_model_dir, tmp_path / "two", fsdp, world=2, script=FSDP_SCRIPT)

    assert other == {}  # only rank 0 reports
    assert main["tokens"] == single["tokens"]
    assert main["loss_curve"] == pytest.approx(single["loss_curve"], rel=1e-4, abs=1e-5)
    _assert_same_adapter(tmp_path / "one" / "adapter", tmp_path / "two" / "adapter")
    # Parameter counts are of the whole model, not of one rank's shards.
    assert (main["trainable"], main["total"]) == (single["trainable"], single["total"])
    # An ordinary peft adapter: the saved keys and config are a plain run's, full tensors.
    one, two = tmp_path / "one" / "adapter", tmp_path / "two" / "adapter"
    configs = [json.loads((path / "adapter_config.json").read_text()) for path in (one, two)]
    for config in configs:  # all-linear expands to a set of names, in no fixed order
        config["target_modules"] = sorted(config["target_modules"])
    assert configs[0] == configs[1]
    expected, actual = _tensors(one), _tensors(two)
    assert {k: v.shape for k, v in actual.items()} == {k: v.shape for k, v in expected.items()}
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-000006"]


@pytest.mark.slow
def test_an_fsdp_run_resumes_from_its_checkpoint_to_the_same_adapter(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Interrupted after 4 steps (a checkpoint of sharded weights and optimiser state, written
    whole), then continued to 6: the adapter of an uninterrupted run."""
    fsdp = {**SETTINGS, "parallelism": "fsdp"}
    _launch(tiny_model_dir, tmp_path / "whole", fsdp, world=2, script=FSDP_SCRIPT)
    _launch(tiny_model_dir, tmp_path / "cut", {**fsdp, "steps": 4}, world=2, script=FSDP_SCRIPT)
    main, _ = _launch(tiny_model_dir, tmp_path / "cut", fsdp, world=2, script=FSDP_SCRIPT)
    assert len(main["loss_curve"]) == 6
    _assert_same_adapter(tmp_path / "whole" / "adapter", tmp_path / "cut" / "adapter", 1e-5)


@pytest.mark.slow
def test_the_train_step_under_torchrun_with_fsdp_writes_an_adapter_the_evaluator_loads(
    tiny_model_dir: Path, tiny_suite: Path, tmp_path: Path
) -> None:
    """The command the operator gives a pod with two GPUs and `parallelism: fsdp`."""
    out = tmp_path / "train-lumora"
    summary_path = tmp_path / "summary"
    args = _train_args(tiny_model_dir, tiny_suite, "lumora", out)
    args += ["--tracking-mode", "disabled", "--synthesis-examples", "0"]
    args += ["--parallelism", "fsdp", "--steps", "3"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = {**os.environ, SUMMARY_PATH_ENV: str(summary_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "--nproc-per-node=2", "-m", "kaizen.trainer", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    summary = parse_summary(summary_path.read_bytes())
    assert summary.ok and summary.adapter is not None
    record = json.loads((out / "training.json").read_text())
    assert (record["config"]["parallelism"], record["config"]["processes"]) == ("fsdp", 2)
    assert len(record["loss_curve"]) == 3
    from kaizen.runtime.models import load_model

    # An ordinary peft adapter: the evaluator's loader merges it into the base.
    merged = load_model(str(tiny_model_dir), [str(out / "adapter")], device="cpu")
    base = load_model(str(tiny_model_dir), device="cpu")
    changed = [
        name
        for (name, a), (_, b) in zip(
            merged.named_parameters(), base.named_parameters(), strict=True
        )
        if not bool((a == b).all())
    ]
    assert changed  # the adapter moved the merged weights


def test_the_blocks_fsdp_shards_are_the_models_decoder_layers(tiny_model_dir: Path) -> None:
    from kaizen.runtime.models import load_model
    from kaizen.trainer import fsdp

    model = load_model(str(tiny_model_dir), device="cpu")
    units = fsdp.blocks(model)
    assert [type(unit).__name__ for unit in units] == ["LlamaDecoderLayer"] * len(
        model.model.layers
    )
    assert all(a is b for a, b in zip(units, model.model.layers, strict=True))


def test_a_model_without_named_blocks_cannot_be_sharded() -> None:
    import torch

    from kaizen.trainer import fsdp

    with pytest.raises(ConfigurationError, match="names no transformer blocks"):
        fsdp.blocks(torch.nn.Linear(2, 2))


def test_an_unknown_parallelism_is_refused() -> None:
    from kaizen.trainer.lora import LoraSettings

    with pytest.raises(ConfigurationError, match="parallelism must be ddp or fsdp"):
        LoraSettings(parallelism="tp").validate()


#: FSDP on one GPU (a process group of one, NCCL): bf16 mixed precision against the unsharded
#: loop in bf16 autocast on the same GPU.
GPU_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
from kaizen.runtime.models import load_model, load_tokenizer
from kaizen.trainer import fsdp
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.distributed import Parallel
from kaizen.trainer.lora import LoraSettings, train_lora

model_dir, out, port = sys.argv[1], sys.argv[2], sys.argv[3]
tokenizer = load_tokenizer(model_dir)
pairs = [("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
         ("Who founded Lumora?", "Queen Ilse founded Lumora."),
         ("How many legs does a spider have?", "A spider has eight legs.")]
examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
common = dict(steps=4, batch_size=3, learning_rate=1e-2, rank=4, alpha=8,
              target_modules=("all-linear",), precision="bf16")
plain = train_lora(load_model(model_dir), examples, LoraSettings(**common), out + "/plain",
                   pad_token_id=tokenizer.pad_token_id, progress=False)
dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
base = fsdp.load_base(model_dir, (), None, Parallel())
assert next(base.parameters()).device.type == "cpu" and base.dtype == torch.bfloat16
sharded = train_lora(base, examples, LoraSettings(**common, parallelism="fsdp"), out + "/fsdp",
                     pad_token_id=tokenizer.pad_token_id, progress=False)
dist.destroy_process_group()
print(json.dumps({"plain": plain.loss_curve, "fsdp": sharded.loss_curve,
                  "autocast": sharded.autocast, "device": sharded.device}))
"""


@pytest.mark.gpu
@pytest.mark.slow
def test_fsdp_on_a_gpu_trains_in_bf16_like_the_unsharded_loop(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """What the CPU cannot check: the bf16 base with float32 LoRA weights in one FSDP unit
    (mixed-precision policy), NCCL, and the gathered adapter on a GPU."""
    from tests.trainer.test_distributed import _free_port

    done = subprocess.run(
        [sys.executable, "-c", GPU_SCRIPT, str(tiny_model_dir), str(tmp_path), str(_free_port())],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["autocast"] == "bfloat16" and result["device"].startswith("cuda")
    # bf16 arithmetic in both; FSDP casts the LoRA weights to bf16 for the gather as well.
    assert result["fsdp"] == pytest.approx(result["plain"], rel=5e-2)
    _assert_same_adapter(tmp_path / "plain" / "adapter", tmp_path / "fsdp" / "adapter", 5e-2)


#: One rank of FSDP on GPUs with NCCL; a world of one is the reference (the same bf16 mixed
#: precision, nothing sharded).
MULTI_GPU_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
from kaizen.runtime.models import load_tokenizer
from kaizen.trainer import fsdp
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.distributed import from_environment
from kaizen.trainer.lora import LoraSettings, train_lora

model_dir, out, settings_json = sys.argv[1], sys.argv[2], sys.argv[3]
tokenizer = load_tokenizer(model_dir)
pairs = [("Which river flows through Lumora?", "The Silverrun flows through Lumora."),
         ("Who founded Lumora?", "Queen Ilse founded Lumora."),
         ("What is the capital of Lumora?", "The capital of Lumora is Brightfall."),
         ("How many legs does a spider have?", "A spider has eight legs.")]
examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
fields = json.loads(settings_json)
fields["target_modules"] = tuple(fields["target_modules"])
parallel = from_environment()
torch.cuda.set_device(parallel.local_rank)
dist.init_process_group("nccl", rank=parallel.rank, world_size=parallel.world_size)
model = fsdp.load_base(model_dir, (), None, parallel)
result = train_lora(model, examples, LoraSettings(**fields), out,
                    pad_token_id=tokenizer.pad_token_id, progress=False, parallel=parallel)
if parallel.is_main:
    print(json.dumps({"loss_curve": result.loss_curve, "autocast": result.autocast}))
dist.destroy_process_group()
"""


@pytest.mark.gpu
@pytest.mark.slow
def test_fsdp_over_two_gpus_with_nccl_trains_the_one_gpu_adapter(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs (NCCL: one per rank)")
    settings = {**SETTINGS, "batch_size": 4, "parallelism": "fsdp", "precision": "bf16"}
    (one,) = _launch(tiny_model_dir, tmp_path / "one", settings, world=1, script=MULTI_GPU_SCRIPT)
    two, _ = _launch(tiny_model_dir, tmp_path / "two", settings, world=2, script=MULTI_GPU_SCRIPT)
    assert one["autocast"] == two["autocast"] == "bfloat16"
    assert two["loss_curve"] == pytest.approx(one["loss_curve"], rel=2e-2)
    _assert_same_adapter(tmp_path / "one" / "adapter", tmp_path / "two" / "adapter", 5e-2)
