"""benchmarks/training.py runs end to end on the tiny model and reports every contender (no
timing checks: figures on a shared machine are for the docs, measured by hand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "training.py"


@pytest.mark.e2e
def test_the_training_benchmark_compares_hf_trainer_and_kaizen(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--steps", "3",
        "--batch-size", "4", "--max-seq-length", "128", "--threads", "1",
        "--peak-tflops", "1", "--repeats", "2", "--json", str(tmp_path / "figures.json"),
    ]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())["figures"]
    assert set(figures) == {"hf_trainer", "kaizen", "kaizen_packing"}
    # The same batches: Kaizen with and without packing trains on the same tokens.
    assert figures["kaizen"]["tokens"] == figures["kaizen_packing"]["tokens"] > 0
    assert figures["hf_trainer"]["tokens"] > 0
    for name in ("kaizen", "kaizen_packing"):
        assert figures[name]["vs_hf_trainer"] > 0
        assert figures[name]["vs_hf_trainer_cpu"] > 0
    assert all(figure["mfu"] > 0 for figure in figures.values())
    # Two rounds each, the fastest counted.
    for figure in figures.values():
        assert len(figure["runs_tokens_per_second"]) == 2
        assert figure["tokens_per_cpu_second"] > 0
        assert figure["tokens_per_second"] == pytest.approx(
            max(figure["runs_tokens_per_second"]), abs=0.01
        )
    assert "kaizen_packing" in done.stdout
