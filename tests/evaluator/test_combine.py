"""The combine step on a tiny model: candidates scored on dev items only, the choice kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.args_combination import CombineArgs
from kaizen.api.artifacts import CombinationReport, read_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.evaluator.combine import combine
from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation

HEADER = """\
name: two
version: "1"
description: two domains, dev items in their own file
domains: [alpha, beta]
capabilities: [factual_recall]
"""


def _items(prefix: str, domain: str, count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{n}", "domain": domain, "capability": "factual_recall",
         "question": f"{prefix} question {n}?", "answer": "of"}
        for n in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def setup(lively_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A suite (4 test + 2 dev items per domain), two random adapters, baseline and alone results."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("combine")
    suite = root / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text(HEADER)
    test = _items("ta", "alpha", 4) + _items("tb", "beta", 4)
    dev = _items("da", "alpha", 2) + _items("db", "beta", 2)
    (suite / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in test))
    (suite / "dev.jsonl").write_text("".join(json.dumps(i) + "\n" for i in dev))
    adapters = {}
    for seed, name in enumerate(("one", "two")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(lively_model_dir)
        config = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        )
        get_peft_model(model, config).save_pretrained(root / name)
        adapters[name] = str(root / name)

    def evaluate(out: str, adapter: str | None = None, **kw: Any) -> str:
        options = EvaluateOptions(
            model=str(lively_model_dir), suite=str(suite), step=out, max_new_tokens=4,
            batch_size=8, adapters=(adapter,) if adapter else (), quiet=True, **kw,
        )  # fmt: skip
        (root / out).mkdir()
        run_evaluation(options, root / out)
        return str(root / out / "results.json")

    return {
        "root": root,
        "suite": str(suite),
        "model": str(lively_model_dir),
        "adapters": adapters,
        "baseline": evaluate("baseline"),
        "alone": {"alpha": evaluate("alone", adapters["one"], domains=("alpha",), split="dev")},
    }


def _args(setup: dict[str, Any], out: str, baseline: str | None = None) -> CombineArgs:
    return CombineArgs(
        output=str(setup["root"] / out),
        model=setup["model"],
        suite=setup["suite"],
        baseline=baseline or setup["baseline"],
        alone=[f"{d}={p}" for d, p in setup["alone"].items()],
        candidates=[f"{n}={p}" for n, p in setup["adapters"].items()],
        max_new_tokens=4,
        batch_size=8,
        tracking_mode="disabled",
        quiet=True,
    )


def _rows(report: CombinationReport) -> list[dict[str, Any]]:
    keep = ("name", "domains", "trained", "untrained_change", "min_retention", "rank")
    return [{k: getattr(c, k) for k in keep} for c in report.candidates]


def test_candidates_are_scored_on_dev_items_and_the_choice_is_copied(setup: dict[str, Any]) -> None:
    args = _args(setup, "combine")
    out = Path(args.output)
    out.mkdir()
    summary = combine(args, out)
    report = read_artifact(out / "combination.json", CombinationReport)
    assert [c.name for c in report.candidates] and report.split == "dev"
    for candidate in report.candidates:
        scored = json.loads(Path(candidate.results).read_text())["items"]
        assert sorted(i["id"] for i in scored) == ["da0", "da1", "db0", "db1"]
        assert set(candidate.trained) == {"alpha"} and set(candidate.untrained_change) == {"beta"}
    chosen = next(c for c in report.candidates if c.rank == 1)
    assert report.chosen == chosen.name
    assert (out / "adapter" / "adapter_config.json").read_bytes() == (
        Path(setup["adapters"][chosen.name]) / "adapter_config.json"
    ).read_bytes()
    assert summary.combination is not None and summary.combination.path == str(out / "adapter")
    assert summary.combination.candidates == 2


def test_the_test_items_never_reach_the_choice(setup: dict[str, Any]) -> None:
    """Rewriting every test item of the baseline changes nothing the choice reads;
    rewriting a dev item changes the base it measures retention from."""
    baseline = json.loads(Path(setup["baseline"]).read_text())
    reference = combine(_args(setup, "ref"), Path(setup["root"] / "ref"))
    assert reference.combination is not None

    def variant(name: str, split: str) -> CombinationReport:
        changed = json.loads(json.dumps(baseline))
        for item in changed["items"]:
            if item["split"] == split:
                item["score"], item["correct"] = 1.0 - item["score"], not item["correct"]
        path = setup["root"] / f"{name}.json"
        path.write_text(json.dumps(changed))
        out = setup["root"] / name
        out.mkdir()
        combine(_args(setup, name, str(path)), out)
        return read_artifact(out / "combination.json", CombinationReport)

    original = read_artifact(setup["root"] / "ref" / "combination.json", CombinationReport)
    assert _rows(variant("test-flipped", "test")) == _rows(original)
    dev_flipped = variant("dev-flipped", "dev")
    assert _rows(dev_flipped) != _rows(original)
    base = {d: row.base for d, row in original.candidates[0].trained.items()}
    assert {d: row.base for d, row in dev_flipped.candidates[0].trained.items()} == {
        d: 1.0 - b for d, b in base.items()
    }


def test_each_merged_candidate_carries_its_merge_settings(setup: dict[str, Any]) -> None:
    """With the merge step's merge.json, every candidate's row says how it was merged (method,
    density, weight); a candidate the merge step did not make (here `joint`) has its name's."""
    from kaizen.api.artifacts import MergeRecord, write_artifact
    from tests.api.artifact_samples import _merge

    record = _merge()
    record["merges"] = [
        {**record["merges"][0], "name": "one", "adapter": setup["adapters"]["one"]},
        {**record["merges"][1], "name": "two", "adapter": setup["adapters"]["two"]},
    ]
    merge_json = write_artifact(setup["root"] / "merge.json", MergeRecord.model_validate(record))
    args = _args(setup, "with-record").model_copy(
        update={
            "merge_record": str(merge_json),
            "candidates": [
                f"one={setup['adapters']['one']}",
                f"two={setup['adapters']['two']}",
                f"joint={setup['adapters']['one']}",
            ],
        }
    )
    combine(args, Path(args.output))
    report = read_artifact(Path(args.output) / "combination.json", CombinationReport)
    settings = {c.name: (c.method, c.density, c.weight, c.weight_rule) for c in report.candidates}
    assert settings == {
        "one": ("ties", 0.5, 1.0, "one"),
        "two": ("ties", 1.0, 2.0, "n"),
        "joint": ("joint", None, None, None),
    }
    assert report.merge_seconds == 0.8  # the two merges' seconds in merge.json
    # Without it, the rows say nothing they do not know.
    plain = read_artifact(setup["root"] / "ref" / "combination.json", CombinationReport)
    assert {(c.method, c.weight) for c in plain.candidates} == {(None, None)}
    assert plain.merge_seconds is None


def test_alone_results_of_other_items_are_refused(setup: dict[str, Any]) -> None:
    # alpha's adapter's results given as beta's: none of beta's dev items are in them.
    args = _args(setup, "wrong").model_copy(update={"alone": [f"beta={setup['alone']['alpha']}"]})
    with pytest.raises(ConfigurationError, match="other dev items than the baseline"):
        combine(args, Path(args.output))


def test_the_validation_report_carries_the_chosen_combinations_retention(
    setup: dict[str, Any],
) -> None:
    """The real files: combine, the candidate evaluated with the chosen adapter, validate
    with --combination; report.json holds the chosen row of combination.json, on dev items."""
    from kaizen.api.artifacts import ValidationReport
    from kaizen.evaluator.retention import UNDEFINED
    from kaizen.evaluator.validate import Gates, validate_step
    from kaizen.runtime.tracking import TrackingOptions

    root = setup["root"]
    combine(_args(setup, "chosen"), root / "chosen")
    combination = read_artifact(root / "chosen" / "combination.json", CombinationReport)
    options = EvaluateOptions(
        model=setup["model"], suite=setup["suite"], step="evaluate-candidate", max_new_tokens=4,
        batch_size=8, adapters=(combination.adapter,), quiet=True,
    )  # fmt: skip
    (root / "candidate").mkdir()
    run_evaluation(options, root / "candidate")

    def validate(name: str, candidate: str, path: Path) -> ValidationReport:
        validate_step(
            setup["baseline"],
            candidate,
            root / name,
            step="validate",
            gates=Gates(require_significance=False),
            tracking=TrackingOptions(mode="disabled"),
            combination=path,
        )
        return read_artifact(root / name / "report.json", ValidationReport)

    report = validate(
        "validate",
        str(root / "candidate" / "results.json"),
        combination_path := root / "chosen" / "combination.json",
    )
    chosen = next(c for c in combination.candidates if c.name == combination.chosen)
    kept = report.retention
    assert kept is not None and kept.split == "dev" and kept.path == str(combination_path)
    assert kept.chosen == combination.chosen
    assert kept.candidates == [c.name for c in combination.candidates]
    assert (kept.target, kept.target_met) == (combination.target, combination.target_met)
    assert (kept.min_retention, kept.mean_gain) == (chosen.min_retention, chosen.mean_gain)
    assert kept.untrained_change == chosen.untrained_change and set(kept.untrained_change) == {
        "beta"
    }
    assert set(kept.trained) == {"alpha"}
    for domain, row in chosen.trained.items():
        got = kept.trained[domain]
        assert (got.base, got.alone, got.combined, got.retention, got.items) == (
            row.base, row.alone, row.combined, row.retention, row.items,
        )  # fmt: skip
        assert got.undefined == (UNDEFINED if row.retention is None else None)
    # The gate itself read the test items only: 4 a domain.
    assert report.items == 8

    # The baseline carries none of the chosen adapters: the combination is not its.
    with pytest.raises(ConfigurationError, match="not among the candidate's adapters"):
        validate("other", setup["baseline"], combination_path)
    broken = root / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match=str(broken)):
        validate("broken", str(root / "candidate" / "results.json"), broken)


def test_a_model_split_over_devices_chooses_what_one_device_does(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--device-map auto` (a cycle with `evaluation.deviceMap: auto` passes it to combine as to
    its evaluations) loads every candidate through the evaluate step's own placement; it
    scores and chooses as one device does. No GPU here: the host memory the placement may
    use is capped below the model's size, so accelerate moves some of each candidate's
    blocks to disk, through the same hooks that carry activations between GPUs."""
    import torch

    from kaizen.runtime import models

    whole = models.load_model(setup["model"], device="cpu")
    size = sum(p.numel() * p.element_size() for p in whole.parameters())
    place, load = models.placement_options, models.load_model
    placements: list[tuple[str, str | None]] = []
    loaded: list[dict[str, Any]] = []

    def scarce_host_memory(device_map: str, max_gpu_memory: str | None = None) -> dict[str, Any]:
        placements.append((device_map, max_gpu_memory))
        options = place(device_map, max_gpu_memory)
        if device_map == "auto":  # a smaller machine than this one: blocks spill to disk
            options |= {"max_memory": {"cpu": size * 85 // 100}, "offload_folder": str(tmp_path)}
        return options

    def recorded(*args: Any, **kwargs: Any) -> Any:
        model = load(*args, **kwargs)
        options = kwargs["load_options"]
        spread = set(getattr(model, "hf_device_map", {"": "cpu"}).values())
        loaded.append({"dtype": kwargs["dtype"], "attention": options["attn_implementation"],
                       "devices": spread})  # fmt: skip
        return model

    monkeypatch.setattr(models, "placement_options", scarce_host_memory)
    monkeypatch.setattr(models, "load_model", recorded)
    reports, responses = {}, {}
    for device_map in ("single", "auto"):
        name = f"placed-{device_map}"
        args = CombineArgs.model_validate(
            _args(setup, name).model_dump()
            | {"device_map": device_map, "max_gpu_memory": "1Gi", "attention": "eager",
               "precision": "fp32"}
        )  # fmt: skip
        (setup["root"] / name).mkdir()
        summary = combine(args, setup["root"] / name)
        assert summary.ok
        reports[device_map] = read_artifact(
            setup["root"] / name / "combination.json", CombinationReport
        )
        responses[device_map] = {
            c.name: [
                (r["id"], r["response"], r["score"])
                for r in json.loads(Path(c.results).read_text())["items"]
            ]
            for c in reports[device_map].candidates
        }
    candidates = len(setup["adapters"])
    assert placements == [("single", "1Gi")] * candidates + [("auto", "1Gi")] * candidates
    assert all((load["dtype"], load["attention"]) == (torch.float32, "eager") for load in loaded)
    assert all(load["devices"] == {"cpu"} for load in loaded[:candidates])
    assert all({"cpu", "disk"} <= load["devices"] for load in loaded[candidates:]), loaded
    single, split = reports["single"], reports["auto"]
    # Not vacuous: the candidates answer differently, so the choice between them means something.
    assert len({tuple(r) for r in responses["single"].values()}) == candidates
    assert responses["auto"] == responses["single"]
    assert split.chosen == single.chosen
    assert _rows(split) == _rows(single)
    assert [(c.mean_gain, c.min_retention) for c in split.candidates] == [
        (c.mean_gain, c.min_retention) for c in single.candidates
    ]
