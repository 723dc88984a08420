"""A whole cycle through the local executor: real steps, real subprocesses, a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api import Phase, parse_cycle
from kaizen.workflow import ContinuousImprovementWorkflow, FeedbackCollector


def tiny_cycle(model: Path, name: str = "tiny", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": str(model)},
        "evaluation": {"suite": "demo", "limit": 2, "maxNewTokens": 8, "batchSize": 8},
        # A random model scores ~0 everywhere: a threshold of 1.0 always yields a plan.
        "analysis": {"maxPriorityDomains": 2, "scoreThreshold": 1.0},
        "training": {"steps": 2, "batchSize": 4, "maxSeqLength": 64},
        "tracking": {"mode": "disabled"},
    }
    for key, value in spec.items():
        base[key] = {**base.get(key, {}), **value}
    return {
        "apiVersion": "kaizen.dev/v1alpha1",
        "kind": "ImprovementCycle",
        "metadata": {"name": name},
        "spec": base,
    }


def kaizen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaizen.local", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.cycle
def test_kaizen_run_goes_through_every_phase_and_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The cycle brings training data of its own: a line for every domain, one for none.
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        '{"question": "Say hello.", "answer": "Hello."}\n'
        '{"question": "Unused?", "answer": "Yes.", "domain": "no-such-domain"}\n'
    )
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(
        yaml.safe_dump(tiny_cycle(tiny_model_dir, training={"extraData": str(extra)}))
    )
    run = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for phase in ("Evaluating", "Analyzing", "Training", "Merging", "Validating", "Succeeded"):
        assert f"=== {phase}" in run.stdout
    assert "verdict:" in run.stdout and "artifacts:" in run.stdout
    cycle_dir = tmp_path / "art" / "default" / "tiny"
    saved = json.loads((cycle_dir / "status.json").read_text())["status"]
    assert saved["phase"] == "Succeeded"
    steps = [s["name"] for s in saved["steps"]]
    assert steps[:2] == ["evaluate-baseline", "analyze"]
    assert steps[-3:] == ["combine", "evaluate-candidate", "validate"]
    trained = [s for s in steps if s.startswith("train-")]
    assert len(trained) == 2
    for step in trained:
        record = json.loads((cycle_dir / step / "training.json").read_text())
        assert record["examples"]["extra"] == 1  # the line without a domain, in every adapter
    for step in steps:
        assert (cycle_dir / step / "summary.json").exists(), step
    baseline = json.loads((cycle_dir / "evaluate-baseline" / "results.json").read_text())
    candidate = json.loads((cycle_dir / "evaluate-candidate" / "results.json").read_text())
    assert [i["id"] for i in baseline["items"]] == [i["id"] for i in candidate["items"]]
    assert saved["validation"]["verdict"] in ("Promote", "Reject", "Inconclusive")

    # Running the same file again resumes: nothing is re-run, the same result is reported.
    again = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert again.returncode == 0
    assert "resuming" in again.stdout and ">>>" not in again.stdout


@pytest.mark.cycle
def test_a_failing_step_fails_the_cycle_and_keeps_earlier_results(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cycle_file = tmp_path / "cycle.yaml"
    # The baseline evaluation succeeds; training asks for 0-length sequences the trainer refuses.
    doc = tiny_cycle(tiny_model_dir, name="broken")
    doc["spec"]["training"]["targetModules"] = ["no_such_module"]
    cycle_file.write_text(yaml.safe_dump(doc))
    run = kaizen(
        "run", str(cycle_file), "--artifacts", str(tmp_path / "art"), "--quiet", cwd=tmp_path
    )
    assert run.returncode == 1
    status = json.loads((tmp_path / "art" / "default" / "broken" / "status.json").read_text())[
        "status"
    ]
    assert status["phase"] == "Failed"
    assert status["failureReason"] == "ConfigurationError"
    assert "train-" in status["message"]
    assert status["baseline"]["items"] > 0  # earlier results stay in status and on disk
    assert (tmp_path / "art" / "default" / "broken" / "evaluate-baseline" / "results.json").exists()
    assert "FAILED (ConfigurationError)" in run.stdout


@pytest.mark.cycle
def test_restart_with_another_model_redoes_the_steps_instead_of_reusing_old_scores(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # A threshold of 0 plans nothing: the cycle is evaluate-baseline and analyze only.
    doc = tiny_cycle(tiny_model_dir, name="restart", analysis={"scoreThreshold": 0.0})
    cycle_file = tmp_path / "cycle.yaml"
    cycle_file.write_text(yaml.safe_dump(doc))
    art = str(tmp_path / "art")
    first = kaizen("run", str(cycle_file), "--artifacts", art, "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # The same spec again: each step finds its output made from the same inputs.
    same = kaizen("run", str(cycle_file), "--artifacts", art, "--restart", "--quiet", cwd=tmp_path)
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-3000:]
    assert same.stderr.count("made from the same inputs; reusing it") == 2
    assert "same inputs, reused" in same.stdout or "reused" in json.dumps(
        json.loads((tmp_path / "art" / "default" / "restart" / "status.json").read_text())
    )

    # Another model, one that does not exist: the old scores must not be reported for it.
    missing = tmp_path / "no-such-model"
    doc["spec"]["model"]["name"] = str(missing)
    cycle_file.write_text(yaml.safe_dump(doc))
    changed = kaizen(
        "run", str(cycle_file), "--artifacts", art, "--restart", "--quiet", cwd=tmp_path
    )
    assert changed.returncode == 1, changed.stdout[-3000:]
    assert "reusing it" not in changed.stderr
    assert "made from other inputs" in changed.stderr and "--model" in changed.stderr
    status = json.loads((tmp_path / "art" / "default" / "restart" / "status.json").read_text())[
        "status"
    ]
    assert status["phase"] == "Failed" and status["failureReason"] == "ConfigurationError"
    assert str(missing) in status["message"]


def test_a_wrong_field_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    cycle_file = tmp_path / "cycle.yaml"
    doc = tiny_cycle(Path("/nonexistent"))
    doc["spec"]["training"]["lerningRate"] = 0.1
    cycle_file.write_text(yaml.safe_dump(doc))
    run = kaizen("run", str(cycle_file), "--artifacts", str(tmp_path / "art"), cwd=tmp_path)
    assert run.returncode == 2
    assert "spec.training.lerningRate: unknown field" in run.stderr
    assert not (tmp_path / "art").exists()


@pytest.mark.cycle
def test_the_workflow_api_chains_cycles_from_promoted_adapters(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # Gates wide open so the random model's candidate is promoted and a second cycle follows.
    doc = tiny_cycle(
        tiny_model_dir,
        name="chain-1",
        analysis={"maxPriorityDomains": 1},
        validation={"minImprovement": -1.0, "maxRegression": 1.0, "requireSignificance": False},
    )
    workflow = ContinuousImprovementWorkflow(
        parse_cycle(doc), artifacts=tmp_path / "art", quiet=True
    )
    summaries = workflow.run(cycles=2)
    assert [s.cycle for s in summaries] == ["chain-1", "chain-2"]
    assert all(s.phase == Phase.SUCCEEDED.value and s.verdict == "Promote" for s in summaries)
    first_adapter = summaries[0].promoted_adapters[-1]
    second_baseline = json.loads(
        (Path(summaries[1].artifacts) / "evaluate-baseline" / "results.json").read_text()
    )
    assert first_adapter in json.dumps(
        second_baseline
    )  # the second cycle starts from the promoted model
    assert (
        summaries[1].promoted_adapters[0] == first_adapter
        and len(summaries[1].promoted_adapters) == 2
    )

    feedback = FeedbackCollector(threshold=1.0, max_domains=2)
    feedback.collect_evaluation_feedback(
        Path(summaries[0].artifacts) / "evaluate-baseline" / "results.json"
    )
    plan = feedback.generate_improvement_plan()
    assert plan["priority_domains"] and set(feedback.feedback_db) >= set(plan["priority_domains"])


@pytest.mark.parametrize(
    "sample", sorted(Path(__file__).resolve().parents[2].glob("manifests/samples/*.yaml"))
)
def test_samples_pass_kaizen_check(sample: Path) -> None:
    run = kaizen("check", str(sample), cwd=sample.parent)
    assert run.returncode == 0, run.stderr
