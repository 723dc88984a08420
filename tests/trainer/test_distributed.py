"""Data-parallel LoRA: ranks share each batch, and two gloo ranks give the adapter one process
gives (same global batch), through `train_lora` and through the train program under torchrun.

The two-process tests start real processes (torch.distributed with the gloo backend on CPU):
they are marked `slow`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import EXIT_CONFIG_ERROR, EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from kaizen.trainer.distributed import Parallel, from_environment
from kaizen.trainer.launch import exit_code
from tests.trainer.test_cli import _train_args

REPO = Path(__file__).resolve().parents[2]


def test_ranks_take_interleaved_shares_that_cover_the_batch_once() -> None:
    rows = list(range(7))
    shares = [Parallel(rank=r, world_size=3).shard(rows) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(x for share in shares for x in share) == rows
    assert Parallel().shard(rows) == rows


def test_the_rank_comes_from_torchruns_variables() -> None:
    assert from_environment({}) == Parallel()
    assert from_environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == Parallel(
        rank=3, world_size=8, local_rank=1
    )
    with pytest.raises(ValueError, match="RANK=4 is not within WORLD_SIZE=2"):
        from_environment({"RANK": "4", "WORLD_SIZE": "2"})


def test_a_batch_smaller_than_the_processes_is_refused_saying_what_to_raise() -> None:
    with pytest.raises(ConfigurationError, match="batch size 2 is smaller than the 4"):
        Parallel(rank=0, world_size=4).check_batch(2)
    Parallel(rank=0, world_size=4).check_batch(4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: One rank of a `train_lora` run: the same model, examples and settings on every rank.
RANK_SCRIPT = """
import json, sys
import torch
from kaizen.runtime.models import load_model, load_tokenizer
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
settings = LoraSettings(**json.loads(settings_json))
with process_group(from_environment()) as parallel:
    result = train_lora(
        load_model(model_dir, device="cpu"), examples, settings, out,
        pad_token_id=tokenizer.pad_token_id, progress=False, parallel=parallel,
    )
    if parallel.is_main:
        print(json.dumps({"loss_curve": result.loss_curve, "tokens": result.tokens}))
"""


def _launch(
    model: Path, out: Path, settings: dict[str, Any], world: int, script: str = RANK_SCRIPT
) -> list[dict[str, Any]]:
    port = _free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        if world == 1:
            for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
                env.pop(key)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(model), str(out), json.dumps(settings)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout) if stdout.strip() else {})
    return results


def _tensors(adapter: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


def _assert_same_adapter(one: Path, two: Path, tolerance: float = 1e-3) -> None:
    """Every LoRA matrix equal up to float summation order: AdamW divides each update by the
    root of its squared gradients, so an element whose gradients are near zero moves by about
    the learning rate either way, and elementwise bounds would be too tight for that; the
    relative difference of each matrix (Frobenius norm) is what must stay small."""
    expected, actual = _tensors(one), _tensors(two)
    assert expected.keys() == actual.keys()
    worst = max((float((actual[k] - expected[k]).norm() / expected[k].norm()), k) for k in expected)
    assert worst[0] < tolerance, f"{worst[1]} differs by {worst[0]:.2e} (relative)"


@pytest.mark.slow
def test_two_gloo_ranks_train_the_adapter_one_process_trains(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Examples of different lengths (the ranks' shares hold different numbers of answer
    # tokens, which the loss weighting must get right), clipping on, an odd batch split 3 + 2.
    settings = {
        "steps": 6,
        "batch_size": 5,
        "learning_rate": 1e-2,
        "rank": 4,
        "alpha": 8,
        "max_grad_norm": 0.5,
        "checkpoint_every": 4,
    }
    (single,) = _launch(tiny_model_dir, tmp_path / "one", settings, world=1)
    main, other = _launch(tiny_model_dir, tmp_path / "two", settings, world=2)

    assert other == {}  # only rank 0 reports
    assert main["tokens"] == single["tokens"]  # the ranks together saw the whole batches
    assert main["loss_curve"] == pytest.approx(single["loss_curve"], rel=1e-4, abs=1e-5)
    _assert_same_adapter(tmp_path / "one" / "adapter", tmp_path / "two" / "adapter")
    # Rank 0 alone wrote: one checkpoint, of the last step.
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-000006"]


@pytest.mark.slow
def test_the_train_step_under_torchrun_writes_once_and_matches_a_plain_run(
    tiny_model_dir: Path, tiny_suite: Path, tmp_path: Path
) -> None:
    """The command the operator gives a pod with two GPUs, here on two CPU processes."""
    outputs = {}
    for name, launcher in (
        ("plain", [sys.executable, "-m", "kaizen.trainer"]),
        (
            "torchrun",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node=2",
                "-m",
                "kaizen.trainer",
            ],
        ),
    ):
        out = tmp_path / name / "train-lumora"
        summary_path = tmp_path / f"{name}.summary"
        args = _train_args(tiny_model_dir, tiny_suite, "lumora", out)
        args += ["--tracking-mode", "disabled", "--synthesis-examples", "0"]
        env = {**os.environ, SUMMARY_PATH_ENV: str(summary_path), "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [*launcher, *args], env=env, cwd=REPO, capture_output=True, text=True, check=False
        )
        assert done.returncode == EXIT_OK, done.stderr[-3000:]
        summary = parse_summary(summary_path.read_bytes())
        assert summary.ok and summary.adapter is not None
        outputs[name] = (out, summary, json.loads((out / "training.json").read_text()))

    (plain_out, plain, plain_record), (dist_out, dist, dist_record) = outputs.values()
    assert dist_record["config"]["processes"] == 2 and plain_record["config"]["processes"] == 1
    assert dist_record["loss_curve"] == pytest.approx(plain_record["loss_curve"], rel=1e-4)
    assert dist.adapter is not None and plain.adapter is not None
    assert dist.adapter.examples == plain.adapter.examples
    _assert_same_adapter(plain_out / "adapter", dist_out / "adapter")


def test_four_bit_training_is_refused_clearly_where_bitsandbytes_cannot_run() -> None:
    import importlib.util

    import torch

    from kaizen.trainer.memory import check_quantization

    check_quantization("none")
    if importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available():
        pytest.skip("bitsandbytes can run here")
    with pytest.raises(ConfigurationError, match="--quantization 4bit needs"):
        check_quantization("4bit")


def test_bf16_on_a_cpu_is_refused_and_auto_means_float32_there() -> None:
    import torch

    from kaizen.trainer.memory import autocast_bf16

    cpu = torch.device("cpu")
    assert autocast_bf16("auto", cpu) is False
    assert autocast_bf16("fp32", cpu) is False
    with pytest.raises(ConfigurationError, match="--precision bf16 needs a GPU"):
        autocast_bf16("bf16", cpu)


def test_gradient_checkpointing_trains_the_same_adapter(
    tiny_model_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    import torch

    from kaizen.runtime.models import load_model
    from kaizen.trainer.data import Example, tokenize_examples
    from kaizen.trainer.lora import LoraSettings, train_lora

    pairs = [("Which river flows through Lumora?", "The Silverrun."), ("Who?", "Queen Ilse.")]
    examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
    runs = {}
    for checkpointing in (False, True):
        settings = LoraSettings(
            steps=4, batch_size=2, learning_rate=1e-2, gradient_checkpointing=checkpointing
        )
        out = tmp_path / str(checkpointing)
        runs[checkpointing] = train_lora(
            load_model(str(tiny_model_dir), device="cpu"),
            examples,
            settings,
            out,
            pad_token_id=tokenizer.pad_token_id,
            progress=False,
        )
    assert runs[True].loss_curve == pytest.approx(runs[False].loss_curve, rel=1e-5)
    with_, without = (
        _tensors(tmp_path / "True" / "adapter"),
        _tensors(tmp_path / "False" / "adapter"),
    )
    for key in without:
        torch.testing.assert_close(with_[key], without[key], rtol=1e-5, atol=1e-6)


def test_the_launcher_exits_3_when_any_rank_had_a_configuration_error() -> None:
    # torchrun stops the other ranks (a signal: negative) and would exit 1 for all of these.
    assert exit_code([EXIT_CONFIG_ERROR, -15]) == EXIT_CONFIG_ERROR
    assert exit_code([1, EXIT_CONFIG_ERROR]) == EXIT_CONFIG_ERROR
    assert exit_code([1, -15]) == 1
    assert exit_code([-9]) == 1


@pytest.mark.e2e
def test_a_configuration_error_under_torchrun_exits_3_with_its_reason(
    tiny_model_dir: Path, tiny_suite: Path, tmp_path: Path
) -> None:
    """The command the operator gives a pod with two GPUs, with a batch the ranks cannot share.

    torchrun itself exits 1 whatever its ranks exit with; through `kaizen.trainer.launch` the
    Job sees 3, which its podFailurePolicy fails at once instead of retrying."""
    out = tmp_path / "train-lumora"
    summary_path = tmp_path / "summary"
    args = _train_args(tiny_model_dir, tiny_suite, "lumora", out)
    args[args.index("--batch-size") + 1] = "1"
    launcher = [sys.executable, "-m", "kaizen.trainer.launch", "--standalone", "--nproc-per-node=2"]
    env = {**os.environ, SUMMARY_PATH_ENV: str(summary_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "kaizen.trainer", *args, "--tracking-mode", "disabled"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG_ERROR, done.stderr[-3000:]
    summary = parse_summary(summary_path.read_bytes())
    assert not summary.ok and summary.reason == "ConfigurationError"
    assert "batch size 1 is smaller than the 2 training processes" in summary.message
    assert "[launch] configuration error: train-lumora: ConfigurationError: batch size 1" in (
        done.stderr
    )
    assert not (out / "adapter").exists()
