"""The learning benchmarks' own pieces: the Korrin suite they build, and whole chained cycles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kaizen.api import parse_cycle
from kaizen.runtime.scoring import normalize as normalize_question
from kaizen.runtime.suites import load_suite

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from compounding import build_worlds, cycle_manifest  # noqa: E402
from learning import build_suite, reusable_base  # noqa: E402


def test_the_korrin_suite_is_known_only_by_facts_and_held_out(tmp_path: Path) -> None:
    suite = load_suite(str(build_suite(tmp_path / "suite")))
    assert suite.domains[0] == "korrin"
    assert len(suite.knowledge.for_domain("korrin").facts) == 12
    # Nothing a trainer reads repeats an evaluation question.
    asked = {normalize_question(item.question) for item in suite.items}
    taught = {normalize_question(line.question) for line in suite.training}
    assert not asked & taught
    capabilities = {item.capability for item in suite.items if item.domain == "korrin"}
    assert capabilities == {"factual_recall", "cross_referencing", "multi_step"}


def test_korrin_can_be_known_only_by_passages(tmp_path: Path) -> None:
    suite = load_suite(str(build_suite(tmp_path / "suite", knowledge="passages")))
    korrin = suite.knowledge.for_domain("korrin")
    assert not korrin.facts
    assert [p.title for p in korrin.passages] == ["Korrin", "Vaskel", "Queen Ysolde"]
    assert not [line for line in suite.training if line.domain == "korrin"]
    assert suite.has_training_source("korrin")
    # The same evaluation items as with its facts: the two ways compare item for item.
    facts = load_suite(str(build_suite(tmp_path / "facts")))
    assert [i.id for i in suite.items] == [i.id for i in facts.items]


def test_the_chained_cycle_is_the_demo_cycle_pointed_at_korrin(tmp_path: Path) -> None:
    options = type(
        "Options",
        (),
        {"model": "m", "max_new_tokens": 48, "steps": 80, "synthesis_examples": 96,
         "score_threshold": 0.9, "max_priority_domains": 1},
    )()  # fmt: skip
    cycle = parse_cycle(cycle_manifest(tmp_path / "suite", options))
    assert cycle.spec.evaluation.suite == str(tmp_path / "suite")
    assert cycle.spec.analysis.max_priority_domains == 1
    assert cycle.spec.analysis.score_threshold == 0.9
    assert cycle.spec.training.synthesis.examples == 96
    assert cycle.spec.training.passes is None
    options.passes = 4.0  # type: ignore[attr-defined]
    assert parse_cycle(cycle_manifest(tmp_path / "suite", options)).spec.training.passes == 4.0


def test_a_base_evaluation_is_reused_only_for_the_same_suite_model_and_length(
    tmp_path: Path,
) -> None:
    from kaizen.api.artifacts import EvaluationResults, write_artifact
    from tests.api.artifact_samples import SAMPLES

    suite = build_suite(tmp_path / "suite")
    results = tmp_path / "results.json"
    assert not reusable_base(results, suite, "m", 48)  # nothing there yet
    sample = SAMPLES[EvaluationResults]()

    def write(digest: str, model: str, adapters: list[str], tokens: int) -> None:
        data = json.loads(json.dumps(sample))
        data["suite"]["digest"] = digest
        data["model"].update({"name": model, "adapters": adapters})
        data["generation"]["max_new_tokens"] = tokens
        write_artifact(results, EvaluationResults.model_validate(data))

    digest = load_suite(str(suite)).digest
    write(digest, "m", [], 48)
    assert reusable_base(results, suite, "m", 48)
    for other in (("sha256:0", "m", [], 48), (digest, "n", [], 48), (digest, "m", ["/a"], 48),
                  (digest, "m", [], 32)):  # fmt: skip
        write(*other)
        assert not reusable_base(results, suite, "m", 48), other


@pytest.mark.e2e
def test_the_passes_sweep_scores_dev_items_after_each_pass(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    args = [
        sys.executable, str(BENCHMARKS / "passes.py"), "--model", str(tiny_model_dir),
        "--out", str(tmp_path / "out"), "--domains", "zephyria", "--max-passes", "2",
        "--checkpoint-every", "1", "--synthesis-examples", "8",
    ]  # fmt: skip
    process = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "passes.json").read_text())
    zephyria = report["domains"]["zephyria"]
    per_pass = zephyria["lines"] / 8
    assert list(zephyria["passes"]) == ["1", "2"]
    for passes, row in zephyria["passes"].items():
        # the adapter scored is the one kept nearest to that many passes over the set
        assert abs(row["step"] - int(passes) * per_pass) <= 1
        assert set(row["dev"]) == set(report["base"]) >= {"zephyria", "geography"}
        assert row["loss_last_pass"] > 0
    # only dev items were scored
    results = json.loads((tmp_path / "out" / "evaluate-zephyria-p1" / "results.json").read_text())
    assert {item["split"] for item in results["items"]} == {"dev"}


@pytest.mark.cycle
def test_chained_cycles_run_and_report_what_each_trained_on(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    args = [
        sys.executable, str(BENCHMARKS / "compounding.py"), "--model", str(tiny_model_dir),
        "--out", str(tmp_path / "out"), "--cycles", "2", "--steps", "2",
        "--synthesis-examples", "8", "--max-new-tokens", "4",
    ]  # fmt: skip
    process = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "compounding.json").read_text())
    first = report["cycles"][0]
    assert first["starts_from"] == []
    assert set(first["before"]) >= {"paraphrases", "two facts", "geography"}
    # The tiny random model scores 0 everywhere, so which domain it trains is a tie-break;
    # whichever it is, the card says what it read, and nothing was seen before.
    ((domain, card),) = first["training"].items()
    assert card["lines"] == sum(card["by_source"].values()) > 0 and card["repeated"] == 0
    # The tiny random model cannot improve: the chain stops after a cycle that was not
    # promoted, and says so; a promoted cycle is followed by one that starts from it.
    for earlier, later in zip(report["cycles"], report["cycles"][1:], strict=False):
        assert earlier["verdict"] == "Promote"
        assert later["starts_from"] == earlier["promoted"]
    assert f"{first['cycle']}: {first['verdict'] or first['phase']}" in process.stdout


def test_the_worlds_suite_holds_each_suites_invented_world_and_the_first_ones_real_domains(
    tmp_path: Path,
) -> None:
    suite = load_suite(str(build_worlds(tmp_path / "suite", ["velorine", "tova", "quarry"])))
    assert suite.domains == ["chemistry_x", "tova", "quarry", "geography"]
    for name, world in (("velorine", "chemistry_x"), ("tova", "tova"), ("quarry", "quarry")):
        source = load_suite(str(BENCHMARKS / "suites" / name))
        expected = {(i.id, i.split) for i in source.items if i.domain == world}
        assert {(i.id, i.split) for i in suite.items if i.domain == world} == expected
        ours, theirs = suite.knowledge.for_domain(world), source.knowledge.for_domain(world)
        assert [replace(f, where="") for f in ours.facts] == [
            replace(f, where="") for f in theirs.facts
        ]
        assert [p.text for p in ours.passages] == [p.text for p in theirs.passages]
        assert [ours.statement(f) for f in ours.facts] == [
            theirs.statement(f) for f in theirs.facts
        ]
    # geography once, from the first suite (the others carry the same items)
    assert sum(i.domain == "geography" for i in suite.items) == 28


def test_a_relation_name_two_worlds_define_is_kept_apart(tmp_path: Path) -> None:
    root = tmp_path / "suites"
    for world, capital in (("asel", "Orrin"), ("brell", "Tamsk")):
        folder = root / world
        folder.mkdir(parents=True)
        (folder / "suite.yaml").write_text(
            f'name: {world}\nversion: "1"\ndomains: [{world}, geography]\n'
            "capabilities: [factual_recall]\ndefaults: {scorer: contains}\n"
        )
        relation = {
            "kind": "relation", "name": "capital", "statement": f"{{subject}}'s seat ({world}) is {{object}}.",
            "questions": ["What is the seat of {subject}?"],
        }  # fmt: skip
        fact = {"kind": "fact", "domain": world, "subject": world.title(), "relation": "capital",
                "object": capital}  # fmt: skip
        (folder / "knowledge.jsonl").write_text(
            json.dumps(relation) + "\n" + json.dumps(fact) + "\n"
        )
        items = [
            {"id": f"{world}-1", "domain": world, "capability": "factual_recall",
             "question": f"Which city is {world.title()} run from?", "answer": capital},
            {"id": f"{world}-g", "domain": "geography", "capability": "factual_recall",
             "question": "What is the capital of France?", "answer": "Paris"},
        ]  # fmt: skip
        (folder / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    suite = load_suite(str(build_worlds(tmp_path / "suite", ["asel", "brell"], root=root)))
    knowledge = suite.knowledge
    stated = sorted(knowledge.statement(f) for f in knowledge.facts)
    assert stated == ["Asel's seat (asel) is Orrin.", "Brell's seat (brell) is Tamsk."]
    assert sorted(knowledge.relations) == ["brell_capital", "capital"]
    assert [i.id for i in suite.items] == ["asel-1", "asel-g", "brell-1"]
