"""Artifact files are written and read through versioned models; their JSON Schemas must not drift."""

from __future__ import annotations

import json
from pathlib import Path

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
from tests.api.artifact_samples import (
    SAMPLES,
    _combination,
    _joint,
    _lineage,
    _merge,
    _plan,
    _report,
    _results,
)
from tests.evaluator.results_factory import domain_records, results

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "docs" / "schemas"
REGENERATE = "run `python -m kaizen.api.artifacts --schemas docs/schemas`"

#: Files past their first layout (docs/artifacts.md keeps the history).
LAYOUT_VERSIONS: dict[type[Artifact], int] = {
    EvaluationResults: 2,
    ImprovementPlan: 3,
    CombinationReport: 3,
    DataCard: 5,
    TrainingRecord: 5,
    JointRecord: 2,
    MergeRecord: 2,
    ChainLineage: 2,
    ValidationReport: 3,
}


def test_the_guide_names_each_files_version_and_its_history() -> None:
    # docs/artifacts.md's table of files gives each one's current version, and its history
    # table has a row for every version past the first.
    guide = (REPO / "docs" / "artifacts.md").read_text()
    for model in ARTIFACTS:
        name = f"| `{model.FILE_NAME}` |"
        current = [
            line
            for line in guide.splitlines()
            if line.startswith(name) and "`" + model.__name__ + "`" in line
        ]
        assert len(current) == 1, f"{model.FILE_NAME}: no row in the table of files"
        assert f"| {model.SCHEMA_VERSION} |" in current[0], f"{model.FILE_NAME}: version"
        for version in range(2, model.SCHEMA_VERSION + 1):
            assert f"{name} {version} |" in guide, f"{model.FILE_NAME} {version}: no history row"


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


def _write(tmp_path: Path, content: object, name: str = "plan.json") -> Path:
    path = tmp_path / name
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
        "anchor_ratio",
        "synthesis_examples",
        "passes",
        "max_steps",
        "min_steps",
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
    # These results have test items only: not a cycle, so zep is planned on them all the same.
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


def test_version_1_merge_and_combination_files_read_without_the_grid(tmp_path: Path) -> None:
    # Version 2 added each merge's settings (merge.json `merges`, the search in `config`) and
    # each candidate's in combination.json: a version-1 file reads with them empty or null.
    merge = _merge()
    old_merge = {k: v for k, v in merge.items() if k != "merges"} | {"schema": 1}
    old_merge["config"] = {k: merge["config"][k] for k in ("combination", "density", "seed")}
    record = read_artifact(_write(tmp_path, old_merge, "merge.json"), MergeRecord)
    assert record.schema_version == 2 and record.merges == []
    assert (record.config.search_densities, record.config.search_weights) == ([], [])
    combination = _combination()
    grid_keys = {"method", "density", "weight", "weight_rule"}
    later = {"merge_seconds", "max_untrained_drop"}  # versions 2 and 3
    old_combination = {k: v for k, v in combination.items() if k not in later} | {
        "schema": 1,
        "candidates": [
            {k: v for k, v in row.items() if k not in grid_keys | {"untrained_p"}}
            for row in combination["candidates"]
            if "routing" not in row  # routed adapters came after version 1
        ],
    }
    report = read_artifact(_write(tmp_path, old_combination, "combination.json"), CombinationReport)
    assert report.schema_version == 3 and report.merge_seconds is None
    assert [(c.name, c.method, c.weight) for c in report.candidates] == [
        ("joint", None, None), ("ties-wn", None, None), ("ties", None, None),
    ]  # fmt: skip
    # Version 3 added the untrained domains' p-values and the tolerance: a version-2 file
    # reads with none.
    version_2 = {k: v for k, v in combination.items() if k != "max_untrained_drop"} | {
        "schema": 2,
        "candidates": [
            {k: v for k, v in row.items() if k != "untrained_p"}
            for row in combination["candidates"]
        ],
    }
    report = read_artifact(_write(tmp_path, version_2, "combination.json"), CombinationReport)
    assert report.max_untrained_drop is None
    assert all(c.untrained_p == {} for c in report.candidates)


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


@pytest.mark.parametrize("model", [TrainingRecord, DataCard], ids=lambda m: m.FILE_NAME)
def test_a_version_1_training_record_or_card_reads_as_a_fixed_step_count(
    model: type[Artifact], tmp_path: Path
) -> None:
    # Version 2 added the passes the steps were derived from: a version-1 file trained a
    # fixed count, and reads with passes (and the bound) unknown.
    new = SAMPLES[model]()
    old = json.loads(json.dumps(new)) | {"schema": 1}
    for part in (old, old.get("config", {})):
        part.pop("passes", None)
        part.pop("max_steps", None)
        part.pop("min_steps", None)
        part.pop("rehearsal", None)
    read = read_artifact(_write(tmp_path, old, model.FILE_NAME), model)
    assert read.schema_version == LAYOUT_VERSIONS[model]
    if isinstance(read, TrainingRecord):
        assert read.config.passes is None and read.config.max_steps is None
        assert read.config.min_steps is None
        assert read.config.steps == new["config"]["steps"]
    else:
        assert isinstance(read, DataCard)
        assert read.passes is None and read.steps == new["steps"]
        assert read.rehearsal is None


def test_a_version_2_data_card_reads_without_its_rehearsal_spread(tmp_path: Path) -> None:
    # Version 3 added how the rehearsal lines were spread over the other domains.
    old = SAMPLES[DataCard]() | {"schema": 2}
    old.pop("rehearsal")
    read = read_artifact(_write(tmp_path, old, DataCard.FILE_NAME), DataCard)
    assert isinstance(read, DataCard)
    assert read.schema_version == 5 and read.rehearsal is None and read.passes == old["passes"]


def test_version_3_records_read_as_version_4_without_anchors(tmp_path: Path) -> None:
    # Version 4 added the anchors (a share of the rehearsal lines; none before).
    card = SAMPLES[DataCard]() | {"schema": 3}
    card["rehearsal"] = {
        k: v for k, v in card["rehearsal"].items() if not k.startswith("anchor") and k != "general"
    }
    read = read_artifact(_write(tmp_path, card, DataCard.FILE_NAME), DataCard)
    assert read.schema_version == 5 and read.rehearsal is not None
    assert (read.rehearsal.anchor_ratio, read.rehearsal.anchors) == (0.0, 0)
    # Version 5 added the general anchors (none before).
    card = SAMPLES[DataCard]() | {"schema": 4}
    card["rehearsal"] = {k: v for k, v in card["rehearsal"].items() if k != "general"}
    read = read_artifact(_write(tmp_path, card, DataCard.FILE_NAME), DataCard)
    assert read.schema_version == 5 and read.rehearsal is not None
    assert read.rehearsal.general == 0
    record = SAMPLES[TrainingRecord]() | {"schema": 3}
    record.pop("preservation")
    record["config"] = {
        k: v for k, v in record["config"].items() if k not in ("anchor_ratio", "preserve_weight")
    }
    got = read_artifact(_write(tmp_path, record, TrainingRecord.FILE_NAME), TrainingRecord)
    assert got.schema_version == 5 and got.config.anchor_ratio == 0.0


def test_a_version_4_training_record_reads_without_preservation(tmp_path: Path) -> None:
    # Version 5 added the KL to the model before training on the rehearsal lines (off before).
    record = SAMPLES[TrainingRecord]() | {"schema": 4}
    record.pop("preservation")
    record["config"].pop("preserve_weight")
    got = read_artifact(_write(tmp_path, record, TrainingRecord.FILE_NAME), TrainingRecord)
    assert isinstance(got, TrainingRecord)
    assert got.schema_version == 5 and got.config.preserve_weight == 0.0
    assert got.preservation is None and got.distillation is not None


def test_a_version_1_lineage_reads_as_version_2_without_test_item_scores(tmp_path: Path) -> None:
    # Version 2 added each version's score on the test items (what stop.targetScore reads).
    new = _lineage()
    old = {**new, "schema": 1, "entries": []}
    for entry in new["entries"]:
        entry = dict(entry)
        for side in ("baseline", "candidate"):
            if side in entry:
                entry[side] = {k: v for k, v in entry[side].items() if k != "test"}
        old["entries"].append(entry)
    lineage = read_artifact(_write(tmp_path, old), ChainLineage)
    assert lineage.schema_version == 2 and len(lineage.entries) == 3
    first = lineage.entries[0]
    assert first.baseline is not None and first.candidate is not None
    assert (first.baseline.test, first.candidate.test) == (None, None)
    assert first.to_record().test_score is None
    assert (
        read_artifact(_write(tmp_path, new), ChainLineage).entries[0].to_record().test_score == 0.56
    )
