"""Artifact files are written and read through versioned models; their JSON Schemas must not drift."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.artifacts import (
    ARTIFACTS,
    VERSION_KEY,
    Artifact,
    ArtifactError,
    CombinationReport,
    DataCard,
    EvaluationResults,
    ImprovementPlan,
    JointRecord,
    MergedSource,
    MergeRecord,
    StepProvenance,
    TrainingConfig,
    TrainingRecord,
    ValidationReport,
    main,
    read_artifact,
    render_schema,
    schema_file_name,
    write_artifact,
)
from kaizen.api.lineage import ChainLineage
from tests.evaluator.results_factory import domain_records, results

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
REGENERATE = "run `python -m kaizen.api.artifacts --schemas docs/schemas`"

SUITE = {"name": "demo", "version": "1", "digest": "sha256:abc", "path": "suites/demo"}
BASE = {"ref": "bundled:smollm2-135m-instruct", "revision": None, "adapters": []}
VERSIONS = {"torch": "2.5.0", "transformers": "4.46.0", "peft": "0.13.0"}


def _results() -> dict[str, Any]:
    return results(
        domain_records("geo", [1, 1, 0, 1], ["factual_recall", "multi_step"] * 2)
        + domain_records("zep", [0, 0, 1, 0])
    )


def _plan() -> dict[str, Any]:
    from kaizen.evaluator.analysis import build_plan

    plan = build_plan(_results(), threshold=0.7, max_domains=2)
    return plan | {"baseline": "/artifacts/ml/demo/evaluate-baseline/results.json"}


def _report() -> dict[str, Any]:
    """A report.json as validate writes it, with the retention of a combination.json."""
    from kaizen.evaluator.validate import Gates, compare, retention_record

    candidate = results(
        domain_records("geo", [1, 1, 1, 1], ["factual_recall", "multi_step"] * 2)
        + domain_records("zep", [1, 0, 1, 1])
    )
    combination = _combination()
    candidate["model"]["adapters"] = [combination["adapter"]]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "combination.json"
        path.write_text(json.dumps(combination | {"suite": candidate["suite"]}))
        retention = retention_record(path, candidate) | {"path": "/a/combine/combination.json"}
    return compare(
        _results(), candidate, Gates(), (Path("b.json"), Path("c.json")), retention=retention
    )


def _training() -> dict[str, Any]:
    """A training.json as `kaizen.trainer.programs.train` writes it."""
    return {
        "schema": 1,
        "step": "train-zep",
        "cycle": "demo",
        "domain": "zep",
        "suite": SUITE,
        "model": BASE,
        "config": {
            "rank": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["all-linear"],
            "learning_rate": 0.001,
            "steps": 30,
            "batch_size": 8,
            "seed": 0,
            "max_grad_norm": 1.0,
            "checkpoint_every": 10,
            "max_seq_length": 128,
            "capability_weight": 2,
            "replay_fraction": 0.5,
            "replay_examples": 12,
            "synthesis_examples": 96,
            "teacher": "context",
            "teacher_model": None,
            "teacher_share": 0.5,
            "distill_weight": 0.5,
            "distill_top_k": 16,
            "distill_temperature": 2.0,
            "group_by_length": True,
            "precision": "bf16",
            "gradient_checkpointing": True,
            "packing": True,
            "pack_length": 128,
            "quantization": "4bit",
            "parallelism": "ddp",
            "processes": 16,
        },
        "plan": {"path": "/artifacts/plan.json", "targeted_capabilities": ["multi_step"]},
        "examples": {
            "pool": 12,
            "extra": 0,
            "training_set": 24,
            "used": 24,
            "truncated": 1,
            "dropped_no_answer_tokens": 0,
            "answer_tokens": 300,
            "synthesized": 20,
            "teacher": 8,
            "contaminated": 1,
        },
        "steps": 30,
        "resumed_from": 0,
        "loss_curve": [2.5, 1.25, 0.5],
        "final_loss": 0.75,
        "train_seconds": 12.5,
        "seconds_per_step": 0.4167,
        "tokens_per_second": None,
        "peak_memory_mb": 812.5,
        "trainable_parameters": 1000,
        "total_parameters": 135_000_000,
        "device": "cpu",
        "autocast": None,
        "versions": VERSIONS,
        "adapter": "/artifacts/train-zep/adapter",
        "data_card": "/artifacts/train-zep/data_card.json",
        "distillation": {
            "teacher": "org/bigger",
            "positions": 300,
            "top_k_mass": 0.93,
            "teacher_seconds": 1.25,
            "kl_curve": [0.5, 0.25, 0.125],
            "final_kl": 0.2917,
        },
    }


def _data_card() -> dict[str, Any]:
    """A data_card.json as `kaizen.trainer.programs.train` writes it."""
    line = {"source": "synthesis:chain", "capability": "cross_referencing"}
    return {
        "schema": 1,
        "step": "train-zep",
        "domain": "zep",
        "suite": SUITE,
        "seed": 0,
        "steps": 36,
        "learning_rate": 0.001,
        "total": 40,
        "by_source": {"pool": 12, "replay": 20, "synthesis:chain": 8},
        "by_capability": {"cross_referencing": 8, "factual_recall": 32},
        "by_domain": {"geo": 20, "zep": 20},
        "synthesis": {
            "budget": 8,
            "facts": 5,
            "passages": 0,
            "available": {"cross_referencing": 3},
            "chosen": {"cross_referencing": 3},
            "weights": {"cross_referencing": 2.0},
            "diagnosis": "reasoning",
            "targeted_capabilities": ["cross_referencing"],
            "failed_items": 2,
            "behind_failures": 1,
            "earlier_lines": 6,
            "repeated": 1,
        },
        "teacher": {
            "mode": "context",
            "model": None,
            "share": 1.0,
            "asked": 3,
            "accepted": 2,
        },
        "dropped": [
            {
                "source": "teacher",
                "question": "Q?",
                "answer": "No.",
                "reason": "teacher answer does not state 'x'",
            },
            {
                "source": "pool",
                "question": "Q2?",
                "answer": "A.",
                "reason": "question repeats evaluation item 'zep-01'",
            },
        ],
        "examples": [{**line, "question": "Which river?", "answer": "The Lissel."}],
        "data": "/artifacts/train-zep/data.jsonl",
    }


def _merge() -> dict[str, Any]:
    """A merge.json as `kaizen.trainer.programs.merge` writes it."""
    source = {"rank": 8, "alpha": 16.0, "target_modules": ["q_proj", "v_proj"]}
    return {
        "schema": 1,
        "step": "merge",
        "cycle": None,
        "model": BASE,
        "config": {"combination": "ties", "density": 0.5, "seed": 0},
        "combination": "ties",
        "rank": 8,
        "sources": [
            {"domain": "geo", "path": "/a/geo", **source},
            {"domain": "zep", "path": "/a/zep", **source},
        ],
        "seconds": 1.5,
        "versions": VERSIONS,
        "adapter": "/artifacts/merge/adapter",
    }


def _joint() -> dict[str, Any]:
    """A joint.json as `kaizen.trainer.joint.joint` writes it."""
    return {
        "schema": 2,
        "step": "joint",
        "cycle": "demo",
        "model": BASE,
        "sources": [
            {"domain": "geo", "path": "/a/train-geo/data.jsonl", "lines": 40, "kept": 40},
            {"domain": "zep", "path": "/a/train-zep/data.jsonl", "lines": 40, "kept": 31},
        ],
        "examples": 71,
        "truncated": 0,
        "steps": 20,
        "learning_rate": 0.001,
        "rank": 8,
        "final_loss": 0.42,
        "loss_curve": [2.0, 1.0, 0.42],
        "train_seconds": 12.5,
        "peak_memory_mb": 900.0,
        "adapter": "/a/joint/adapter",
        "config": {
            "rank": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
            "learning_rate": 0.001, "steps": 20, "batch_size": 8, "seed": 0,
            "max_grad_norm": 1.0, "checkpoint_every": 50, "max_seq_length": 256,
            "group_by_length": True, "precision": "bf16", "gradient_checkpointing": True,
            "packing": True, "pack_length": 256, "quantization": "none",
            "parallelism": "fsdp", "processes": 8,
        },
        "resumed_from": 0,
        "tokens_per_second": 5120.0,
        "device": "cuda:0",
        "autocast": "bfloat16",
        "versions": {"torch": "2.9.0", "transformers": "4.57.0", "peft": "0.17.0"},
    }  # fmt: skip


def _combination() -> dict[str, Any]:
    """A combination.json as `kaizen.evaluator.combine.combine` writes it."""

    def row(name: str, place: int, zep: float, retention: float | None) -> dict[str, Any]:
        return {
            "name": name,
            "adapter": f"/a/{name}/adapter",
            "results": f"/a/combine/candidates/{name}/results.json",
            "domains": {"zep": zep, "geo": 0.5, "sci": 0.6},
            "trained": {
                "zep": {
                    "base": 0.0,
                    "alone": 0.8,
                    "combined": zep,
                    "retention": retention,
                    "items": 5,
                },
                "geo": {"base": 0.5, "alone": 0.5, "combined": 0.5, "retention": None, "items": 4},
            },  # fmt: skip
            "untrained_change": {"sci": -0.1},
            "min_retention": retention,
            "mean_gain": round(zep / 2, 6),
            "worst_untrained_change": -0.1,
            "target_met": None if retention is None else retention >= 0.9,
            "tokens_per_second": 40.0,
            "peak_memory_mib": 1200.0,
            "seconds": 30.0,
            "rank": place,
        }

    return {
        "schema": 1,
        "step": "combine",
        "cycle": "demo",
        "suite": {"name": "demo", "version": "1", "digest": "sha256:" + "2" * 64, "path": "/s"},
        "split": "dev",
        "baseline": "/a/evaluate-baseline/results.json",
        "alone": {"zep": "/a/score-zep/results.json", "geo": "/a/score-geo/results.json"},
        "target": 0.9,
        "rule": "worst-domain retention, then mean gain",
        "chosen": "joint",
        "adapter": "/a/combine/adapter",
        "target_met": True,
        "candidates": [row("joint", 1, 0.8, 1.0), row("ties", 2, 0.4, 0.5)],
        "seconds": 61.0,
    }


def _provenance() -> dict[str, Any]:
    """A provenance.json as `kaizen.api.runner.run_step` writes it."""
    return {
        "schema": 1,
        "step": "analyze",
        "command": "analyze",
        "kaizen_version": "0.1.0",
        "args": {"baseline": "/a/evaluate-baseline/results.json", "max_domains": 3},
        "inputs": {"/a/evaluate-baseline/results.json": "sha256:" + "0" * 64},
        "digest": "sha256:" + "1" * 64,
    }


def _lineage() -> dict[str, Any]:
    """A lineage.json as a chain writes it: one promotion, one rejection, one failure."""
    entry = {
        "cycle": "nightly-1",
        "index": 1,
        "from_version": 0,
        "version": 1,
        "phase": "Succeeded",
        "verdict": "Promote",
        "reason": "Promoted",
        "promoted": True,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "baseline": {"overall": 0.5, "domains": {"geo": 0.4, "zep": 0.6}},
        "candidate": {"overall": 0.6, "domains": {"geo": 0.6, "zep": 0.6}},
        "overall_delta": 0.1,
        "p_value": 0.004,
        "start_time": "2026-12-01T01:00:00Z",
        "completion_time": "2026-12-01T02:10:00Z",
        "message": "candidate promoted",
        "chain_generation": 1,
        "report_path": "/a/nightly-1/report/index.html",
    }
    rejected = {
        **entry,
        "cycle": "nightly-2",
        "index": 2,
        "from_version": 1,
        "verdict": "Reject",
        "reason": "Rejected",
        "promoted": False,
        "overall_delta": -0.02,
    }
    failed = {
        "cycle": "nightly-3",
        "index": 3,
        "from_version": 1,
        "version": 1,
        "phase": "Failed",
        "reason": "StepFailed",
        "promoted": False,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "completion_time": "2026-12-03T01:20:00Z",
    }
    return {
        "schema": 1,
        "chain": "nightly",
        "namespace": "ml",
        "model": "bundled:smollm2-135m-instruct",
        "base_adapters": [],
        "suite": "demo",
        "version": 1,
        "adapters": ["/a/nightly-1/merge/adapter"],
        "entries": [entry, rejected, failed],
        "updated": "2026-12-03T01:20:05Z",
    }


SAMPLES = {
    ChainLineage: _lineage,
    StepProvenance: _provenance,
    EvaluationResults: _results,
    ImprovementPlan: _plan,
    ValidationReport: _report,
    TrainingRecord: _training,
    MergeRecord: _merge,
    DataCard: _data_card,
    JointRecord: _joint,
    CombinationReport: _combination,
}


#: Files past their first layout (docs/artifacts.md keeps the history).
LAYOUT_VERSIONS: dict[type[Artifact], int] = {
    EvaluationResults: 2,
    ImprovementPlan: 3,
    JointRecord: 2,
    ValidationReport: 3,
}


@pytest.mark.parametrize("model", ARTIFACTS, ids=lambda m: m.FILE_NAME)
def test_each_file_round_trips_with_its_layout_unchanged(
    model: type[Artifact], tmp_path: Path
) -> None:
    sample = SAMPLES[model]()
    artifact = model.model_validate(sample)
    path = write_artifact(tmp_path / model.FILE_NAME, artifact)
    on_disk = json.loads(path.read_text())
    # The keys the step code builds are exactly the keys in the file, version included.
    assert on_disk == sample
    assert on_disk[VERSION_KEY] == model.SCHEMA_VERSION == LAYOUT_VERSIONS.get(model, 1)
    assert read_artifact(path, model) == artifact
    assert not list(tmp_path.glob(".*.tmp")), "written through a temporary file"


def test_optional_keys_are_left_out_rather_than_null(tmp_path: Path) -> None:
    data = _results()
    data["items"][0] |= {"choices": ["ref", "other"], "logprobs": [-0.5, -2.0]}
    data["domains"]["lmeval:arc"] = {
        "score": 0.5, "n": 4, "metric": "acc", "stderr": None, "source": "lm-eval",
    }  # fmt: skip
    data["lmeval"] = {"version": None, "tasks": {"arc": {"metric": "acc", "n": 4, "metrics": {}}}}
    path = write_artifact(tmp_path / "results.json", EvaluationResults.model_validate(data))
    on_disk = json.loads(path.read_text())
    assert on_disk == data
    assert "choices" not in on_disk["items"][1] and "logprobs" not in on_disk["items"][1]
    # Without lm-eval tasks there is no `lmeval` key at all.
    del data["lmeval"], data["domains"]["lmeval:arc"]
    assert "lmeval" not in EvaluationResults.model_validate(data).to_dict()


def test_lm_eval_tasks_folded_in_by_the_evaluator_validate() -> None:
    from kaizen.evaluator import lmeval

    data = _results()
    task = lmeval.TaskResult(task="arc", metric="acc", score=0.75, n=4, stderr=None)
    lmeval.fold_results(data, [task])
    assert EvaluationResults.model_validate(data).to_dict() == data


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"schema": 4, "priority_domains": ["a"], "new_field": 1},
            r"improvement plan schema version 4 is newer than this Kaizen reads \(3\); upgrade Kaizen",
        ),
        ({"schema": 0, "priority_domains": ["a"]}, r"unknown improvement plan schema version 0 \(this Kaizen reads 3\)"),
        ({"schema": "1", "priority_domains": ["a"]}, r"schema version '1' is not an integer"),
        ({"schema": True, "priority_domains": ["a"]}, r"schema version True is not an integer"),
        ({"priority_domains": ["a"]}, r'without a schema version \(no "schema" key\).*"schema": 3'),
        ([], r"improvement plan must be a JSON object, got list"),
        ("{\n  nope", r":2: invalid JSON"),
        ({"schema": 3, "priority_domains": ["a"], "surprise": 1}, r"not valid improvement plan \(schema version 3\): surprise: Extra inputs"),
    ],
)  # fmt: skip
def test_unusable_files_are_refused_naming_the_file(
    tmp_path: Path, content: object, message: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ArtifactError, match=message) as raised:
        read_artifact(path, ImprovementPlan)
    assert str(raised.value).startswith(str(path))
    assert isinstance(raised.value, ValueError)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ArtifactError, match=f"{tmp_path}/results.json: evaluation results file not found"
    ):
        read_artifact(tmp_path / "results.json", EvaluationResults)


def test_many_problems_are_summarised(tmp_path: Path) -> None:
    data = _results()
    for item in data["items"]:
        item["score"] = "high"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        ArtifactError, match=r"items\.0\.score: Input should be a valid number.*\(and 3 more\)"
    ):
        read_artifact(path, EvaluationResults)


def test_the_trainers_records_have_the_fields_it_writes() -> None:
    from dataclasses import asdict, fields

    from kaizen.trainer.lora import LoraSettings
    from kaizen.trainer.merge import SourceAdapter

    # programs.train writes asdict(LoraSettings) (distill_* included) plus the data settings
    # into `config`.
    lora = {f.name for f in fields(LoraSettings)}
    assert lora | {
        "max_seq_length",
        "capability_weight",
        "replay_fraction",
        "replay_examples",
        "synthesis_examples",
        "teacher",
        "teacher_model",
        "teacher_share",
        "processes",
    } == set(TrainingConfig.model_fields)
    assert TrainingConfig.model_validate(
        asdict(LoraSettings())
        | {
            "max_seq_length": 128,
            "capability_weight": 2,
            "replay_fraction": 0.5,
            "replay_examples": 0,
        }
    )
    source = SourceAdapter("geo", Path("/a/geo"), 8, 16.0, ["q_proj"])
    assert MergedSource.model_validate(source.describe()).model_dump() == source.describe()


def test_the_python_apis_feedback_collector_reads_results_through_the_model(tmp_path: Path) -> None:
    from kaizen.workflow import FeedbackCollector

    path = write_artifact(tmp_path / "results.json", EvaluationResults.model_validate(_results()))
    feedback = FeedbackCollector(threshold=0.7, max_domains=2)
    db = feedback.collect_evaluation_feedback(path)
    assert db["zep"]["priority"] and not db["geo"]["priority"]
    # The model itself is accepted too, with the same outcome.
    again = FeedbackCollector(threshold=0.7, max_domains=2).collect_evaluation_feedback(
        read_artifact(path, EvaluationResults)
    )
    assert {d: e["priority"] for d, e in again.items()} == {d: e["priority"] for d, e in db.items()}

    path.write_text(json.dumps(_results() | {"schema": 3}))
    with pytest.raises(
        ArtifactError, match=f"{path}: evaluation results schema version 3 is newer"
    ):
        FeedbackCollector().collect_evaluation_feedback(path)


# -- published JSON Schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("model", ARTIFACTS, ids=lambda m: m.FILE_NAME)
def test_committed_schemas_match_the_models(model: type[Artifact]) -> None:
    committed = SCHEMAS / schema_file_name(model)
    assert committed.is_file(), f"{committed} is missing: {REGENERATE}"
    assert committed.read_text() == render_schema(model), f"{committed} is stale: {REGENERATE}"


def test_no_stale_schema_files_are_left() -> None:
    expected = {schema_file_name(model) for model in ARTIFACTS}
    assert {path.name for path in SCHEMAS.glob("*.schema.json")} == expected


def test_generator_writes_every_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schemas", str(tmp_path)]) == 0
    for model in ARTIFACTS:
        assert (tmp_path / schema_file_name(model)).read_text() == render_schema(model)
    assert len(capsys.readouterr().out.splitlines()) == len(ARTIFACTS)


@pytest.mark.parametrize("model", ARTIFACTS, ids=lambda m: m.FILE_NAME)
def test_every_field_is_described_and_the_version_is_required(model: type[Artifact]) -> None:
    schema = json.loads(render_schema(model))
    assert schema["required"][0] == VERSION_KEY
    assert schema["properties"][VERSION_KEY]["const"] == model.SCHEMA_VERSION
    assert schema["additionalProperties"] is False
    # Every field of the file and of each of its parts says what it is.
    for name, part in {model.__name__: schema, **schema.get("$defs", {})}.items():
        assert part.get("description"), f"{name} has no description"
        for field, node in part["properties"].items():
            assert node.get("description"), f"{name}.{field} has no description"


def test_a_version_1_plan_still_reads_as_version_3(tmp_path: Path) -> None:
    # Version 2 only added `excluded` (lm-eval tasks the plan does not train), version 3
    # `split`: a plan written by hand for version 1 reads with none excluded and no split.
    plan = read_artifact(
        _write(tmp_path, {"schema": 1, "priority_domains": ["a"]}), ImprovementPlan
    )
    assert (plan.schema_version, plan.priority_domains, plan.excluded) == (3, ["a"], [])
    assert plan.split is None


def test_a_version_1_joint_record_reads_as_version_2_without_its_settings(
    tmp_path: Path,
) -> None:
    # Version 2 added what the joint step trained with (the train steps' options) and where:
    # a version-1 file did not record them, and reads with them unknown (null, empty).
    new = _joint()
    old = {k: new[k] for k in new if k in {
        "step", "cycle", "model", "sources", "examples", "truncated", "steps",
        "learning_rate", "rank", "final_loss", "loss_curve", "train_seconds",
        "peak_memory_mb", "adapter",
    }} | {"schema": 1}  # fmt: skip
    record = read_artifact(_write(tmp_path, old), JointRecord)
    assert record.schema_version == 2 and record.config is None and record.device is None
    assert (record.resumed_from, record.versions, record.steps) == (0, {}, new["steps"])


def test_a_version_2_plan_reads_with_its_domains_analysed_on_all_items(tmp_path: Path) -> None:
    # A version 2 plan was made from dev and test items alike: its domains say `all`.
    old = _plan() | {"schema": 2}
    del old["split"]
    for domain in old["domains"]:
        del domain["split"]
    plan = read_artifact(_write(tmp_path, old), ImprovementPlan)
    assert plan.schema_version == 3 and plan.split is None
    assert plan.domains and {d.split for d in plan.domains} == {"all"}
    assert plan.priority_domains == old["priority_domains"]


def test_a_version_2_report_still_reads_as_version_3_without_retention(tmp_path: Path) -> None:
    # Version 3 only added `retention`: a report written before had none to give.
    old = _report() | {"schema": 2}
    del old["retention"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    report = read_artifact(path, ValidationReport)
    assert (report.schema_version, report.retention) == (3, None)
    assert report.verdict == old["verdict"]


def test_the_report_refuses_a_combination_that_is_not_the_candidates(tmp_path: Path) -> None:
    from kaizen.api.runner import ConfigurationError
    from kaizen.evaluator.validate import retention_record

    candidate = results(domain_records("geo", [1, 1]))
    combination = _combination()
    path = tmp_path / "combination.json"
    path.write_text(json.dumps(combination))
    candidate["model"]["adapters"] = [combination["adapter"]]
    with pytest.raises(ConfigurationError, match=rf"{path}: suite: demo 1 is not the candidate's"):
        retention_record(path, candidate)
    path.write_text(json.dumps(combination | {"suite": candidate["suite"]}))
    candidate["model"]["adapters"] = ["/a/train-geo/adapter"]
    with pytest.raises(ConfigurationError, match=rf"{path}: adapter: the chosen adapter"):
        retention_record(path, candidate)
