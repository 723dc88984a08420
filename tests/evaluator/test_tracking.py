"""W&B tracking of the evaluate step, read back from the offline run files; --quiet means no bars.

The offline run's `.wandb` file is a log of protobuf records (leveldb's log format: 32 KiB
blocks, 7-byte record headers); reading it back checks what a later `wandb sync` would
upload: the run's group and job type, the metrics, the responses table and the results
artifact.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaizen.evaluator.evaluate import (
    RESPONSES_FILE,
    RESULTS_FILE,
    EvaluateOptions,
    TrackingOptions,
    evaluate_step,
    run_evaluation,
)
from kaizen.runtime.tracking import track

wandb = pytest.importorskip("wandb")


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline run's `.wandb` file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    position, block, pending = 7, 32768, b""  # a 7-byte file header, then 32 KiB blocks
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 2):  # a whole record, or its first part
            pending = chunk
        elif kind == 3:  # a middle part
            pending += chunk
        if kind in (1, 4):  # a whole record, or its last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            yield record


def item_key(item: Any) -> str:
    # A key with a slash may be stored whole or as its parts.
    return str(item.key or "/".join(item.nested_key))


def read_run(wandb_dir: Path) -> dict[str, Any]:
    """What the one offline run under `wandb_dir` recorded."""
    # Offline files are written by W&B's service process: stop it so everything is flushed.
    wandb.teardown()
    (run_dir,) = (wandb_dir / "wandb").glob("offline-run-*")
    run: dict[str, Any] = {"dir": run_dir, "history": {}, "summary": {}, "artifacts": {}}
    for record in wandb_records(next(run_dir.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["group"], run["job_type"] = record.run.run_group, record.run.job_type
            run["name"] = record.run.display_name
            run["config"] = {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "history":
            run["history"].update({item_key(i): i.value_json for i in record.history.item})
        elif kind == "summary":
            run["summary"].update({item_key(i): i.value_json for i in record.summary.update})
        elif kind == "artifact":
            contents = [entry.path for entry in record.artifact.manifest.contents]
            run["artifacts"][record.artifact.name] = (record.artifact.type, sorted(contents))
    return run


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "wandb-dir"
    folder.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(folder))
    return folder


def test_an_evaluation_run_holds_metrics_responses_and_the_results_file(
    lively_model_dir: Path, tmp_path: Path, wandb_dir: Path
) -> None:
    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite="demo",
        step="evaluate-baseline",
        limit=1,
        max_new_tokens=4,
        batch_size=4,
        tracking=TrackingOptions(mode="offline", project="kaizen-tests", cycle="cycle-7"),
        quiet=True,
    )
    out = tmp_path / "out"
    summary = evaluate_step(options, out)
    results = json.loads((out / RESULTS_FILE).read_text())
    run = read_run(wandb_dir)
    assert (run["group"], run["job_type"], run["name"]) == (
        "cycle-7",
        "evaluate",
        "evaluate-baseline",
    )
    assert run["config"]["suite"] == "demo" and run["config"]["temperature"] == 0.0
    assert float(run["history"]["overall/micro"]) == pytest.approx(results["overall"]["micro"])
    for domain, values in results["domains"].items():
        assert float(run["history"][f"domain/{domain}"]) == pytest.approx(values["score"])
    assert "performance/tokens_per_second" in run["history"]
    assert json.loads(run["summary"]["suite/digest"]) == results["suite"]["digest"]
    # The responses table: one row per item, in a table file of the run.
    assert json.loads(run["history"]["responses/_type"]) == "table-file"
    table_file = run["dir"] / "files" / json.loads(run["history"]["responses/path"])
    table = json.loads(table_file.read_text())
    assert len(table["data"]) == results["overall"]["n"] == len(results["items"])
    assert "response" in table["columns"] and "score" in table["columns"]
    # The results file (and the raw responses) as an artifact of type "evaluation".
    assert run["artifacts"]["cycle-7-evaluate-baseline-results"] == (
        "evaluation",
        sorted([RESULTS_FILE, RESPONSES_FILE]),
    )
    assert summary.ok and summary.evaluation is not None


def test_online_without_a_key_runs_offline(
    wandb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with track(
        mode="online",
        project="kaizen-tests",
        cycle="cycle-1",
        job_type="analyze",
        name="analyze",
        config={},
        directory=tmp_path,
    ) as tracker:
        assert tracker.enabled
        tracker.log({"x": 1.0})
    assert "no WANDB_API_KEY: logging offline" in capsys.readouterr().err
    run = read_run(wandb_dir)
    assert (run["group"], run["job_type"]) == ("cycle-1", "analyze")
    assert float(run["history"]["x"]) == 1.0


def test_disabled_tracking_writes_nothing(wandb_dir: Path, tmp_path: Path) -> None:
    with track(
        mode="disabled",
        project="kaizen-tests",
        cycle=None,
        job_type="evaluate",
        name="evaluate",
        config={},
        directory=tmp_path,
    ) as tracker:
        assert not tracker.enabled
        tracker.log({"x": 1.0})
        tracker.table("t", ["a"], [[1]])
        tracker.artifact("a", "evaluation", [tmp_path])
    assert not list(wandb_dir.rglob("*.wandb"))


def test_a_broken_wandb_never_fails_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("no network, no disk, no luck")

    monkeypatch.setattr(wandb, "init", broken)
    with track(
        mode="offline",
        project="kaizen-tests",
        cycle=None,
        job_type="evaluate",
        name="evaluate",
        config={},
        directory=tmp_path,
    ) as tracker:
        assert not tracker.enabled
    assert "W&B unavailable (no network, no disk, no luck)" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_shows_no_progress_bars(
    lively_model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], quiet: bool
) -> None:
    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite="demo",
        step="evaluate",
        limit=1,
        max_new_tokens=4,
        batch_size=4,
        tracking=TrackingOptions(mode="disabled"),
        quiet=quiet,
    )
    run_evaluation(options, tmp_path / "out")
    err = capfd.readouterr().err
    if quiet:
        assert "generate" not in err and "it/s" not in err and "%|" not in err
    else:
        assert "generate:" in err  # the generation progress bar


def test_a_validation_run_holds_the_chosen_combinations_retention(
    tmp_path: Path, wandb_dir: Path
) -> None:
    from kaizen.evaluator.gates import Gates
    from kaizen.evaluator.validate import validate_step
    from tests.api.artifact_samples import _combination
    from tests.evaluator.results_factory import domain_records, results

    baseline = results(domain_records("zep", [0, 0, 0, 0]) + domain_records("geo", [1, 0, 1, 0]))
    candidate = results(domain_records("zep", [1, 1, 1, 0]) + domain_records("geo", [1, 0, 1, 0]))
    combination = _combination() | {"suite": candidate["suite"]}
    candidate["model"]["adapters"] = [combination["adapter"]]
    paths = {}
    for name, content in (("b", baseline), ("c", candidate), ("combination", combination)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(content))
    validate_step(
        paths["b"],
        paths["c"],
        tmp_path / "validate",
        step="validate",
        gates=Gates(require_significance=False),
        tracking=TrackingOptions(mode="offline", project="kaizen-tests", cycle="cycle-7"),
        combination=paths["combination"],
    )
    run = read_run(wandb_dir)
    assert run["job_type"] == "validate"
    # joint was chosen: zep kept all of its adapter's gain; geo's retention is undefined
    # (its adapter alone gained nothing) and is not logged.
    assert float(run["history"]["retention/zep"]) == 1.0
    assert float(run["history"]["retention/min"]) == 1.0
    assert "retention/geo" not in run["history"]
