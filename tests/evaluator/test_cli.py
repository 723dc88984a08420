"""The evaluator's command line end to end: real subprocesses on the tiny model, the step contract's files and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.summary import EXIT_CONFIG_ERROR, SUMMARY_MAX_BYTES, file_digest, parse_summary
from kaizen.evaluator.cli import build_parser, main
from kaizen.runtime.suites import load_suite

DEMO_DOMAINS = ["arithmetic", "geography", "meridian_lark", "science", "zephyria"]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaizen.evaluator", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def step_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAIZEN_SUMMARY_PATH": str(tmp / "termination-log"),
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp / "wandb-dir"),
            "WANDB_SILENT": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # The tiny model runs faster on one thread than on two busy cores.
            "OMP_NUM_THREADS": "1",
        }
    )
    env.pop("WANDB_API_KEY", None)
    return env


# The tests that read this fixture are marked `e2e`: it runs the whole evaluate program.
@pytest.fixture(scope="module")
def tiny_evaluation(
    lively_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One real `python -m kaizen.evaluator evaluate` on the tiny model and the demo suite (2 items per domain)."""
    tmp = tmp_path_factory.mktemp("cli")
    env = step_env(tmp)
    args = [
        "evaluate", "--model", str(lively_model_dir), "--suite", "demo", "--limit", "2",
        "--max-new-tokens", "8", "--batch-size", "4", "--output", str(tmp / "evaluate-baseline"),
        "--step", "evaluate-baseline", "--cycle", "cycle-1", "--tracking-mode", "offline",
        "--tracking-project", "kaizen-tests", "--quiet",
    ]  # fmt: skip
    process = run_cli(args, env)
    return {
        "process": process,
        "args": args,
        "env": env,
        "out": tmp / "evaluate-baseline",
        "tmp": tmp,
    }


@pytest.mark.e2e
def test_evaluate_exits_0_with_a_small_summary(tiny_evaluation: dict[str, Any]) -> None:
    process = tiny_evaluation["process"]
    assert process.returncode == 0, process.stderr
    raw = Path(tiny_evaluation["env"]["KAIZEN_SUMMARY_PATH"]).read_bytes()
    assert len(raw) < SUMMARY_MAX_BYTES
    summary = parse_summary(raw)
    assert (summary.ok, summary.step, summary.reason) == (True, "evaluate-baseline", "Completed")
    assert summary.evaluation is not None
    # --limit 2: two test and two dev items of each of the five domains.
    assert summary.evaluation.items == 20
    assert sorted(summary.evaluation.domains) == DEMO_DOMAINS
    # Each capability's item count, as results.json counts them (the report prints them).
    results = json.loads((tiny_evaluation["out"] / "results.json").read_text())
    assert summary.evaluation.capability_items == {
        name: c["n"] for name, c in results["capabilities"].items()
    }
    assert sum(summary.evaluation.capability_items.values()) == 20
    assert summary.digest == file_digest(tiny_evaluation["out"] / "results.json")
    assert summary.evaluation.results_path == str(tiny_evaluation["out"] / "results.json")
    # The marker written last by run_step holds the same summary.
    assert parse_summary((tiny_evaluation["out"] / "summary.json").read_bytes()) == summary


@pytest.mark.e2e
def test_results_json_describes_every_item(
    tiny_evaluation: dict[str, Any], lively_model_dir: Path
) -> None:
    results = json.loads((tiny_evaluation["out"] / "results.json").read_text())
    selected = load_suite("demo").select(limit=2)
    assert results["suite"]["digest"] == selected.digest
    assert [r["id"] for r in results["items"]] == [item.id for item in selected.items]
    assert results["model"] == {"name": str(lively_model_dir), "revision": None, "adapters": []}
    assert {name: d["n"] for name, d in results["domains"].items()} == dict.fromkeys(
        DEMO_DOMAINS, 4
    )
    assert results["overall"]["n"] == 20
    assert [r["split"] for r in results["items"]] == [i.split for i in selected.items]
    assert results["overall"]["micro"] == pytest.approx(
        sum(r["score"] for r in results["items"]) / 20
    )
    assert results["performance"]["tokens_per_second"] > 0
    assert results["performance"]["peak_memory_mib"] > 10
    for record in results["items"]:
        assert 0 <= record["new_tokens"] <= 8
        assert record["correct"] == (record["score"] >= 0.5)


@pytest.mark.e2e
def test_responses_jsonl_holds_the_prompt_as_sent(
    tiny_evaluation: dict[str, Any], lively_model_dir: Path
) -> None:
    from kaizen.runtime.models import format_prompt, load_tokenizer

    lines = (tiny_evaluation["out"] / "responses.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    tokenizer = load_tokenizer(str(lively_model_dir))
    items = load_suite("demo").select(limit=2).items
    assert [row["id"] for row in rows] == [item.id for item in items]
    for row, item in zip(rows, items, strict=True):
        assert row["prompt"] == format_prompt(tokenizer, item.user_message())
        assert row["prompt_tokens"] > 0 and row["seconds"] >= 0


@pytest.mark.e2e
def test_offline_wandb_run_files_appear(tiny_evaluation: dict[str, Any]) -> None:
    pytest.importorskip("wandb")
    runs = list((tiny_evaluation["tmp"] / "wandb-dir" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))


@pytest.mark.e2e
def test_a_rerun_reuses_complete_output(tiny_evaluation: dict[str, Any]) -> None:
    before = (tiny_evaluation["out"] / "results.json").stat().st_mtime_ns
    process = run_cli(tiny_evaluation["args"], tiny_evaluation["env"])
    assert process.returncode == 0
    assert "reusing" in process.stderr
    assert (tiny_evaluation["out"] / "results.json").stat().st_mtime_ns == before


def test_a_missing_suite_exits_3(tmp_path: Path, lively_model_dir: Path) -> None:
    env = step_env(tmp_path)
    args = [
        "evaluate",
        "--model",
        str(lively_model_dir),
        "--suite",
        "no-such-suite",
        "--output",
        str(tmp_path / "out"),
        "--step",
        "evaluate-baseline",
    ]
    process = run_cli(args, env)
    assert process.returncode == EXIT_CONFIG_ERROR
    summary = parse_summary(Path(env["KAIZEN_SUMMARY_PATH"]).read_bytes())
    assert (summary.ok, summary.reason) == (False, "ConfigurationError")
    assert "no-such-suite" in summary.message and "no such suite" in summary.message


def test_a_missing_model_directory_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "summary"))
    (tmp_path / "empty-model").mkdir()
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "empty-model"),
            "--suite",
            "demo",
            "--output",
            str(tmp_path / "out"),
            "--tracking-mode",
            "disabled",
        ]
    )
    assert code == EXIT_CONFIG_ERROR
    assert "no config.json" in parse_summary((tmp_path / "summary").read_bytes()).message


def test_bad_arguments_exit_3_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "summary"))
    code = main(
        [
            "evaluate",
            "--model",
            "m",
            "--suite",
            "demo",
            "--limit",
            "0",
            "--output",
            str(tmp_path),
            "--step",
            "evaluate-x",
        ]
    )
    assert code == EXIT_CONFIG_ERROR
    summary = parse_summary((tmp_path / "summary").read_bytes())
    assert (summary.step, summary.reason) == ("evaluate-x", "ConfigurationError")
    assert "--limit" in summary.message


@pytest.mark.e2e
def test_an_adapter_is_merged_and_validate_compares_the_two(
    tiny_evaluation: dict[str, Any],
    lively_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    # A real LoRA adapter with non-zero weights, so merging it changes the outputs.
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(lively_model_dir),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(tmp_path / "adapter")
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "summary"))
    args = [
        "--suite",
        "demo",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--tracking-mode",
        "disabled",
        "--quiet",
    ]
    code = main(
        [
            "evaluate",
            "--model",
            str(lively_model_dir),
            "--adapter",
            str(tmp_path / "adapter"),
            "--output",
            str(tmp_path / "candidate"),
            *args,
        ]
    )
    assert code == 0
    baseline = json.loads((tiny_evaluation["out"] / "results.json").read_text())
    candidate = json.loads((tmp_path / "candidate" / "results.json").read_text())
    assert candidate["model"]["adapters"] == [str(tmp_path / "adapter")]
    assert [r["response"] for r in candidate["items"]] != [r["response"] for r in baseline["items"]]

    code = main(
        ["validate", "--baseline", str(tiny_evaluation["out"] / "results.json"), "--candidate", str(tmp_path / "candidate" / "results.json"),
         "--output", str(tmp_path / "validate"), "--min-improvement", "0.0", "--no-require-significance", "--tracking-mode", "disabled"]
    )  # fmt: skip
    assert code == 0
    summary = parse_summary((tmp_path / "summary").read_bytes())
    report = json.loads((tmp_path / "validate" / "report.json").read_text())
    assert summary.validation is not None and summary.validation.verdict == report["verdict"]
    assert report["gates"]["require_significance"] is False
    assert report["items"] == 10  # the gate reads the 10 test items, never the dev items


@pytest.mark.e2e
def test_analyze_reads_the_evaluation(
    tiny_evaluation: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "summary"))
    results = tiny_evaluation["out"] / "results.json"
    code = main(
        [
            "analyze",
            "--baseline",
            str(results),
            "--output",
            str(tmp_path / "analyze"),
            "--max-domains",
            "2",
            "--threshold",
            "1.0",
            "--tracking-mode",
            "disabled",
        ]
    )
    assert code == 0
    summary = parse_summary((tmp_path / "summary").read_bytes())
    plan = json.loads((tmp_path / "analyze" / "plan.json").read_text())
    assert summary.plan is not None and summary.plan.priority_domains == plan["priority_domains"]
    # A random model answers nothing right: every domain is below 1.0 and two are chosen.
    assert len(plan["priority_domains"]) == 2


@pytest.mark.e2e
def test_validate_refuses_results_from_different_items(
    tiny_evaluation: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_SUMMARY_PATH", str(tmp_path / "summary"))
    other = json.loads((tiny_evaluation["out"] / "results.json").read_text())
    other["suite"]["digest"] = "sha256:" + "1" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    code = main(
        [
            "validate",
            "--baseline",
            str(tiny_evaluation["out"] / "results.json"),
            "--candidate",
            str(tmp_path / "other.json"),
            "--output",
            str(tmp_path / "v"),
            "--tracking-mode",
            "disabled",
        ]
    )
    assert code == EXIT_CONFIG_ERROR
    assert "identical items" in parse_summary((tmp_path / "summary").read_bytes()).message


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "evaluate",
            [
                "--model",
                "--adapter",
                "--revision",
                "--suite",
                "--domains",
                "--limit",
                "--max-new-tokens",
                "--batch-size",
            ],
        ),
        ("analyze", ["--baseline", "--max-domains", "--threshold"]),
        (
            "validate",
            [
                "--baseline",
                "--candidate",
                "--min-improvement",
                "--max-regression",
                "--significance",
                "--require-significance",
                "--no-require-significance",
            ],
        ),
    ],
)
def test_help_documents_every_option(
    command: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        "--output",
        "--step",
        "--cycle",
        "--tracking-mode",
        "--tracking-project",
        "--tracking-entity",
        "--quiet",
    ]
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in options + common:
        assert option in text, option
    subparser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert all(action.help for action in subparser._actions), "every option has a help text"


@pytest.mark.slow
def test_bundled_model_baseline_on_the_demo_suite(tmp_path: Path) -> None:
    """The demo's premise, measured: the real model knows the real domains and none of the invented ones."""
    env = step_env(tmp_path)
    env.pop("OMP_NUM_THREADS")
    args = [
        "evaluate",
        "--model",
        "bundled:smollm2-135m-instruct",
        "--suite",
        "demo",
        "--max-new-tokens",
        "32",
        "--batch-size",
        "16",
        "--output",
        str(tmp_path / "out"),
        "--tracking-mode",
        "disabled",
        "--quiet",
    ]
    process = run_cli(args, env)
    assert process.returncode == 0, process.stderr
    domains = json.loads((tmp_path / "out" / "results.json").read_text())["domains"]
    assert domains["zephyria"]["score"] <= 0.1 and domains["meridian_lark"]["score"] <= 0.1
    assert domains["geography"]["score"] >= 0.7
    assert domains["science"]["score"] >= 0.3 and domains["arithmetic"]["score"] >= 0.3
