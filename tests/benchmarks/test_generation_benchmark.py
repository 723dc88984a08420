"""benchmarks/generation.py runs end to end on the tiny model and prints its ratios (no timing checks)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generation.py"


def run_benchmark(model: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(tmp_path / "datasets")})
    args = [
        sys.executable, str(SCRIPT), "--model", str(model), "--items", "3",
        "--max-new-tokens", "4", "--batch-size", "2", "--threads", "1",
        "--json", str(tmp_path / "figures.json"), *extra,
    ]  # fmt: skip
    return subprocess.run(args, env=env, capture_output=True, text=True, check=False)


@pytest.mark.e2e
def test_the_benchmark_compares_all_contenders(tiny_model_dir: Path, tmp_path: Path) -> None:
    process = run_benchmark(tiny_model_dir, tmp_path, "--batch-size", "2", "3", "--repeat", "2")
    assert process.returncode == 0, process.stderr
    assert "Kaizen vs naive:" in process.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["items"] == 3 and figures["threads"] == 1
    names = [row["contender"] for row in figures["contenders"]]
    assert names[:2] == ["(a) naive, one prompt at a time", "(b) Kaizen evaluator"]
    # Greedy on the same prompts: the naive loop must produce Kaizen's outputs exactly.
    assert figures["contenders"][0]["identical_outputs"] == 3
    if importlib.util.find_spec("lm_eval") is None:
        assert "lm-eval not compared" in process.stdout
        return
    assert "Kaizen vs lm-eval:" in process.stdout
    assert names[2] == "(c) lm-eval HF backend"
    assert figures["lm_eval_same_prompts"] == 3
    assert figures["speedup_vs_lm_eval"] > 0
    # The sweep: both contenders at each batch size, the first one the headline.
    assert [p["batch_size"] for p in figures["by_batch_size"]] == [2, 3]
    assert figures["batch_size"] == 2 and figures["repeat"] == 2
    assert all(p["identical_outputs"] == 3 for p in figures["by_batch_size"])
    assert figures["by_batch_size"][0]["speedup_vs_lm_eval"] == figures["speedup_vs_lm_eval"]
    assert "By batch size" in process.stdout


@pytest.mark.e2e
def test_without_lm_eval_it_compares_naive_and_kaizen(tiny_model_dir: Path, tmp_path: Path) -> None:
    process = run_benchmark(tiny_model_dir, tmp_path, "--no-lm-eval")
    assert process.returncode == 0, process.stderr
    assert "Kaizen vs naive:" in process.stdout
    assert "lm-eval not compared: skipped (--no-lm-eval)" in process.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    names = [row["contender"] for row in figures["contenders"]]
    assert names[:3] == [
        "(a) naive, one prompt at a time",
        "(b) Kaizen evaluator",
        "(d) plain batched generate",
    ]
    assert figures["speedup_vs_naive"] > 0 and figures["speedup_vs_batched_generate"] > 0
    assert "Kaizen vs plain batched generate:" in process.stdout
    # transformers' continuous batching takes part, or the run says why it could not.
    if "(e) transformers generate_batch" in names:
        assert figures["speedup_vs_generate_batch"] > 0
    else:
        assert figures["generate_batch"] and "generate_batch not compared:" in process.stdout
    assert [p["batch_size"] for p in figures["by_batch_size"]] == [2]
    assert "speedup_vs_lm_eval" not in figures["by_batch_size"][0]


@pytest.mark.e2e
def test_a_sweep_without_lm_eval_times_kaizen_at_each_size(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    process = run_benchmark(tiny_model_dir, tmp_path, "--no-lm-eval", "--batch-size", "1", "3")
    assert process.returncode == 0, process.stderr
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert [p["batch_size"] for p in figures["by_batch_size"]] == [1, 3]
    assert all(p["kaizen_seconds"] > 0 for p in figures["by_batch_size"])
    assert "| 3 |" in process.stdout and "- | -" in process.stdout


@pytest.mark.e2e
def test_without_naive_only_kaizen_and_lm_eval_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    process = run_benchmark(
        tiny_model_dir, tmp_path, "--no-naive", "--no-lm-eval", "--no-batched",
        "--no-generate-batch",
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert "naive not compared: skipped (--no-naive)" in process.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert [row["contender"] for row in figures["contenders"]] == ["(b) Kaizen evaluator"]
    assert (
        "speedup_vs_naive" not in figures and "speedup_vs_naive" not in figures["by_batch_size"][0]
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--batch-size", "0"), "--batch-size must be at least 1"),
        (("--repeat", "0"), "--repeat must be at least 1"),
    ],
)
def test_bad_options_are_refused(
    tiny_model_dir: Path, tmp_path: Path, option: tuple[str, str], message: str
) -> None:
    process = run_benchmark(tiny_model_dir, tmp_path, "--no-lm-eval", *option)
    assert process.returncode != 0
    assert message in process.stderr


@pytest.mark.parametrize("count", [1, 4, 7, 50, None])
def test_items_are_spread_over_domains(count: int | None) -> None:
    from kaizen.runtime.suites import load_suite

    spec = importlib.util.spec_from_file_location("kaizen_generation_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)

    suite = load_suite("demo")
    items = benchmark.pick_items(suite, count)
    assert len(items) == (len(suite.items) if count is None else min(count, len(suite.items)))
    if count and count >= len(suite.domains):
        assert {item.domain for item in items} == set(suite.domains)
