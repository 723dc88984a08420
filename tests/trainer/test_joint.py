"""The joint step trains as the train steps do: the same options, loading path and launcher.

It takes the train step's `LoraTrainingArgs`, so packing and gradient checkpointing change
how it computes, not what it learns; under torchrun with two gloo ranks it trains the adapter
one process trains (the same check as the train step's, `test_distributed.py`), and it
refuses what the train step refuses, before loading any weight. The training runs are marked
`slow` (they train the tiny model for real).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.args_combination import JointArgs
from kaizen.api.artifacts import JointRecord, read_artifact
from kaizen.api.summary import EXIT_CONFIG_ERROR, EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from kaizen.trainer.cli import main
from tests.trainer.conftest import LUMORA, SPIDERS
from tests.trainer.test_distributed import REPO, _assert_same_adapter

#: Launchers of the trainer program: one process, and torchrun with two (gloo on CPU).
PLAIN = [sys.executable, "-m", "kaizen.trainer"]
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc-per-node=2",
    "-m",
    "kaizen.trainer",
]


def _data(tmp_path: Path) -> list[str]:
    """Two domains' data.jsonl, as their train steps leave them (one line shared)."""
    sets = {
        "lumora": [*LUMORA, SPIDERS[0]],
        "spiders": SPIDERS,
    }
    pairs = []
    for domain, lines in sets.items():
        path = tmp_path / f"train-{domain}" / "data.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text(
            "".join(
                json.dumps({"question": q, "answer": a, "capability": None, "source": "pool"})
                + "\n"
                for q, a in lines
            )
        )
        pairs.append(f"{domain}={path}")
    return pairs


def _joint_argv(model: Path, data: list[str], out: Path, *extra: str) -> list[str]:
    argv = [
        "joint",
        "--model", str(model),
        "--output", str(out),
        "--rank", "4", "--alpha", "8",
        "--target-modules", "q_proj", "v_proj", "o_proj",
        "--learning-rate", "1e-2",
        "--steps", "4", "--batch-size", "4", "--max-seq-length", "96",
        "--checkpoint-every", "2",
        "--seed", "0",
        "--tracking-mode", "disabled",
        "--quiet",
        *extra,
    ]  # fmt: skip
    for pair in data:
        argv += ["--data", pair]
    return argv


def _run(launcher: list[str], argv: list[str], summary: Path) -> Any:
    env = {**os.environ, SUMMARY_PATH_ENV: str(summary), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, *argv], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    result = parse_summary(summary.read_bytes())
    assert result.ok and result.adapter is not None
    return result


def test_the_joint_step_takes_the_train_steps_options() -> None:
    args = JointArgs.from_argv(
        _joint_argv(
            Path("/m"),
            ["a=/a.jsonl", "b=/b.jsonl"],
            Path("/o"),
            "--precision", "bf16", "--gradient-checkpointing", "--packing",
            "--quantization", "4bit", "--parallelism", "fsdp", "--max-grad-norm", "0.5",
        )
    )  # fmt: skip
    assert (args.precision, args.quantization, args.parallelism) == ("bf16", "4bit", "fsdp")
    assert args.gradient_checkpointing and args.packing and args.max_grad_norm == 0.5
    assert JointArgs.from_argv(args.to_argv()) == args


def test_four_bit_is_refused_before_any_weight_is_loaded_where_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is not None and torch.cuda.is_available():
        pytest.skip("bitsandbytes can run here")
    # The model does not even exist: the quantization check comes first, as in train.
    out = tmp_path / "joint"
    code = main(_joint_argv(tmp_path / "no-model", _data(tmp_path), out, "--quantization", "4bit"))
    assert code == EXIT_CONFIG_ERROR
    assert "--quantization 4bit needs" in capsys.readouterr().err
    assert not (out / "adapter").exists()


@pytest.mark.slow
def test_packing_and_gradient_checkpointing_train_the_joint_adapter_a_plain_run_trains(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = _data(tmp_path)
    runs = {}
    for name, extra in (("plain", ()), ("packed", ("--packing", "--gradient-checkpointing"))):
        out = tmp_path / name / "joint"
        summary = _run(
            PLAIN, _joint_argv(tiny_model_dir, data, out, *extra), tmp_path / f"{name}.summary"
        )
        runs[name] = (out, summary, read_artifact(out / "joint.json", JointRecord))
    (plain_out, plain, plain_record), (packed_out, packed, packed_record) = runs.values()
    assert packed_record.config is not None and plain_record.config is not None
    assert packed_record.config.packing and packed_record.config.gradient_checkpointing
    assert packed_record.config.pack_length == 96  # the max sequence length, as in train
    assert not plain_record.config.packing and not plain_record.config.gradient_checkpointing
    assert packed_record.config.processes == 1 and packed_record.device == "cpu"
    # Six lines, one of them in both sets: kept once.
    assert [(s.lines, s.kept) for s in packed_record.sources] == [(5, 5), (2, 1)]
    assert packed.adapter.examples == plain.adapter.examples == 6
    assert packed_record.steps == 4
    # Less padding and recomputed activations, the same loss and adapter.
    assert packed_record.loss_curve == pytest.approx(plain_record.loss_curve, rel=1e-4)
    _assert_same_adapter(plain_out / "adapter", packed_out / "adapter")


@pytest.mark.slow
def test_the_joint_step_under_torchrun_writes_once_and_matches_a_plain_run(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The command the operator gives a joint pod with two GPUs, here on two CPU processes."""
    data = _data(tmp_path)
    runs = {}
    for name, launcher in (("plain", PLAIN), ("torchrun", TORCHRUN)):
        out = tmp_path / name / "joint"
        summary = _run(
            launcher, _joint_argv(tiny_model_dir, data, out), tmp_path / f"{name}.summary"
        )
        runs[name] = (out, summary, read_artifact(out / "joint.json", JointRecord))
    (plain_out, plain, plain_record), (dist_out, dist, dist_record) = runs.values()
    assert dist_record.config is not None and plain_record.config is not None
    assert (dist_record.config.processes, plain_record.config.processes) == (2, 1)
    assert dist_record.loss_curve == pytest.approx(plain_record.loss_curve, rel=1e-4)
    assert dist.adapter.examples == plain.adapter.examples
    _assert_same_adapter(plain_out / "adapter", dist_out / "adapter")
    # Rank 0 alone wrote: one set of checkpoints, one data.jsonl of the union.
    checkpoints = [
        sorted(p.name for p in (o / "checkpoints").iterdir()) for o in (plain_out, dist_out)
    ]
    assert checkpoints[1] == checkpoints[0] == ["step-000004"]
    assert (dist_out / "data.jsonl").read_text() == (plain_out / "data.jsonl").read_text()
