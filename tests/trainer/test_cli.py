"""`python -m kaizen.trainer train|merge` end to end on the tiny model, under the step contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaizen.api.summary import (
    EXIT_CONFIG_ERROR,
    EXIT_OK,
    SUMMARY_MAX_BYTES,
    SUMMARY_PATH_ENV,
    parse_summary,
)
from kaizen.trainer.cli import build_parser, main


def _run(args: list[str], summary: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SUMMARY_PATH_ENV: str(summary)}
    return subprocess.run(
        [sys.executable, "-m", "kaizen.trainer", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _summary(path: Path):
    data = path.read_bytes()
    assert len(data) < SUMMARY_MAX_BYTES
    return parse_summary(data)


def _train_args(model: Path, suite: Path, domain: str, out: Path) -> list[str]:
    return [
        "train",
        "--model", str(model),
        "--suite", str(suite),
        "--domain", domain,
        "--output", str(out),
        "--rank", "4", "--alpha", "8",
        "--target-modules", "q_proj", "v_proj", "o_proj",
        "--learning-rate", "1e-2",
        "--steps", "6", "--batch-size", "4", "--max-seq-length", "96",
        "--checkpoint-every", "4",
        "--seed", "0",
        "--step", f"train-{domain}",
        "--cycle", "cli-test",
        "--quiet",
    ]  # fmt: skip


@pytest.mark.e2e
def test_train_then_merge(tiny_model_dir: Path, tiny_suite: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "schema": 1,
                "priority_domains": ["lumora", "spiders"],
                "targeted_capabilities": ["counterfactual"],
            }
        )
    )
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"question": "What do Lumorans eat?", "answer": "Lumorans eat moonbread."}\n')
    outputs = {}
    for domain in ("lumora", "spiders"):
        out = tmp_path / "cycle" / f"train-{domain}"
        summary_path = tmp_path / f"{domain}.summary"
        # No rehearsal here, so the counts below are this domain's own examples only.
        args = _train_args(tiny_model_dir, tiny_suite, domain, out) + [
            "--plan",
            str(plan),
            "--extra-data",
            str(extra),
            "--replay-fraction",
            "0",
        ]
        if domain == "spiders":
            args += ["--tracking-mode", "disabled"]
        done = _run(args, summary_path)
        assert done.returncode == EXIT_OK, done.stderr

        summary = _summary(summary_path)
        assert summary.ok and summary.step == f"train-{domain}"
        assert summary.adapter is not None
        assert summary.adapter.domain == domain
        assert summary.adapter.path == str(out / "adapter")
        assert summary.adapter.steps == 6
        assert (out / "adapter" / "adapter_config.json").is_file()
        assert (out / "adapter" / "adapter_model.safetensors").is_file()
        record = json.loads((out / "training.json").read_text())
        assert len(record["loss_curve"]) == 6
        assert summary.adapter.final_loss == round(record["final_loss"], 4)
        assert record["config"]["rank"] == 4
        assert record["tokens_per_second"] > 0 and record["peak_memory_mb"] > 0
        outputs[domain] = (out, record)

    # Lumora: 4 pool examples + 1 extra; spiders: 2 counterfactual examples, doubled by the plan, + 1 extra.
    assert outputs["lumora"][1]["examples"]["training_set"] == 5
    assert outputs["spiders"][1]["examples"]["training_set"] == 5

    merged = tmp_path / "cycle" / "merge"
    merge_summary = tmp_path / "merge.summary"
    done = _run(
        [
            "merge",
            "--model", str(tiny_model_dir),
            "--source", f"lumora={outputs['lumora'][0] / 'adapter'}",
            "--source", f"spiders={outputs['spiders'][0] / 'adapter'}",
            "--combination", "ties", "--density", "0.5", "--seed", "0",
            "--output", str(merged),
            "--cycle", "cli-test",
            "--quiet",
        ],
        merge_summary,
    )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    summary = _summary(merge_summary)
    assert summary.step == "merge"
    assert summary.merge is not None
    assert summary.merge.combination == "ties"
    assert summary.merge.sources == ["lumora", "spiders"]
    assert (merged / "adapter" / "adapter_model.safetensors").is_file()
    record = json.loads((merged / "merge.json").read_text())
    assert [source["domain"] for source in record["sources"]] == ["lumora", "spiders"]
    assert record["rank"] == 4


@pytest.mark.e2e
def test_a_finished_train_step_is_reused(
    tiny_model_dir: Path, tiny_suite: Path, tmp_path: Path
) -> None:
    out = tmp_path / "train-lumora"
    args = _train_args(tiny_model_dir, tiny_suite, "lumora", out) + [
        "--steps",
        "2",
        "--tracking-mode",
        "disabled",
    ]
    first = _run(args, tmp_path / "first")
    assert first.returncode == EXIT_OK, first.stderr
    weights = (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns

    again = _run(args, tmp_path / "again")

    assert again.returncode == EXIT_OK
    assert "reusing" in again.stderr
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == weights
    # The same result, and it says it was reused (kaizen.api.provenance).
    reused = _summary(tmp_path / "again")
    assert reused.reused and not _summary(tmp_path / "first").reused
    assert reused.model_copy(update={"reused": False}) == _summary(tmp_path / "first")


def test_unknown_domain_exits_with_the_configuration_error_code(
    tiny_model_dir, tiny_suite, tmp_path
) -> None:
    done = _run(
        _train_args(tiny_model_dir, tiny_suite, "atlantis", tmp_path / "out"), tmp_path / "summary"
    )

    assert done.returncode == EXIT_CONFIG_ERROR
    summary = _summary(tmp_path / "summary")
    assert not summary.ok and summary.reason == "ConfigurationError"
    assert "atlantis" in summary.message


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--adapter", "/nonexistent/adapter"],
            "--adapter /nonexistent/adapter: not an adapter directory",
        ),
        (
            ["--plan", "/nonexistent/plan.json"],
            "/nonexistent/plan.json: improvement plan file not found",
        ),
        (["--rank", "0"], "--rank: Input should be greater than or equal to 1"),
    ],
)
def test_train_configuration_errors(
    tiny_model_dir, tiny_suite, tmp_path, monkeypatch, extra, message
) -> None:
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    code = main(_train_args(tiny_model_dir, tiny_suite, "lumora", tmp_path / "out") + extra)
    assert code == EXIT_CONFIG_ERROR
    assert message in _summary(tmp_path / "summary").message


def test_domain_outside_the_plan_is_refused(
    tiny_model_dir, tiny_suite, tmp_path, monkeypatch
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"schema": 1, "priority_domains": ["spiders"]}')
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    code = main(
        _train_args(tiny_model_dir, tiny_suite, "lumora", tmp_path / "out") + ["--plan", str(plan)]
    )
    assert code == EXIT_CONFIG_ERROR
    assert (
        "'lumora' is not among priority_domains ['spiders']"
        in _summary(tmp_path / "summary").message
    )


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (["lumora/tmp/adapter"], "expected DOMAIN=DIR"),
        (["=/tmp/adapter"], "expected DOMAIN=DIR"),
        ([], "required: --source"),
        (["lumora=/nonexistent/adapter"], "/nonexistent/adapter is not a directory"),
    ],
)
def test_merge_configuration_errors(
    tiny_model_dir, tmp_path, monkeypatch, sources, message
) -> None:
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    args = ["merge", "--model", str(tiny_model_dir), "--output", str(tmp_path / "out")]
    for source in sources:
        args += ["--source", source]
    assert main(args) == EXIT_CONFIG_ERROR
    summary = _summary(tmp_path / "summary")
    assert summary.reason == "ConfigurationError"
    assert message in summary.message


def test_usage_errors_follow_the_step_contract(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    code = main(
        ["merge", "--model", "m", "--output", str(tmp_path), "--combination", "magnitude_prune"]
    )
    assert code == EXIT_CONFIG_ERROR
    summary = _summary(tmp_path / "summary")
    assert summary.step == "merge"
    assert "invalid choice: 'magnitude_prune'" in summary.message

    code = main(["train", "--model", "m", "--step", "train-lumora", "--output", str(tmp_path)])
    assert code == EXIT_CONFIG_ERROR
    summary = _summary(tmp_path / "summary")
    assert summary.step == "train-lumora"
    assert "required: --suite, --domain" in summary.message


@pytest.mark.parametrize("command", ["train", "merge"])
def test_help_documents_every_option(command: str) -> None:
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    text = subparser.format_help()
    for action in subparser._actions:
        for option in action.option_strings:
            assert option in text
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help"


def test_a_domain_without_a_pool_trains_on_extra_data(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.trainer.conftest import LUMORA, write_suite

    # "spiders" is a domain of the suite with no training pool at all.
    suite = write_suite(
        tmp_path / "suite", [{"domain": "lumora", "question": q, "answer": a} for q, a in LUMORA]
    )
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        '{"question": "How many legs has a spider?", "answer": "Eight.", "domain": "spiders"}\n'
        '{"question": "What do spiders spin?", "answer": "Silk webs.", "domain": "spiders"}\n'
        '{"question": "What do Lumorans eat?", "answer": "Moonbread.", "domain": "lumora"}\n'
    )
    out = tmp_path / "out"
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    args = _train_args(tiny_model_dir, suite, "spiders", out)
    args += ["--extra-data", str(extra), "--replay-fraction", "0", "--tracking-mode", "disabled"]
    assert main(args) == EXIT_OK
    record = json.loads((out / "training.json").read_text())
    assert record["examples"]["training_set"] == 2  # the two spider lines, nothing else
    assert (out / "adapter" / "adapter_model.safetensors").is_file()

    # Without extra data the same domain is refused, naming it.
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary2"))
    code = main(_train_args(tiny_model_dir, suite, "spiders", tmp_path / "out2"))
    assert code == EXIT_CONFIG_ERROR
    assert "no training examples for domain 'spiders'" in _summary(tmp_path / "summary2").message
