"""lm-evaluation-harness tasks next to a Kaizen suite: local tasks run offline and fold into results.json.

The tests that run lm-eval need the `lmeval` extra and skip without it; the reference
handling and the folding are tested either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaizen.api.runner import ConfigurationError
from kaizen.evaluator import lmeval
from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation

QUESTIONS = [
    ("What is the capital of France?", ["Paris", "Rome", "Berlin"], 0),
    ("How many legs does a spider have?", ["six", "eight", "ten"], 1),
    ("What is 12 times 12?", ["124", "144", "122"], 1),
    ("Which river flows through Lumora?", ["the Silverrun", "the Thames", "the Nile"], 0),
    ("What colour is the sky?", ["green", "red", "blue"], 2),
    ("Which is a fruit?", ["apple", "chair", "cloud"], 0),
    ("Which animal barks?", ["cat", "dog", "fish"], 1),
    ("What is 2 plus 2?", ["3", "5", "4"], 2),
    ("Which is the largest planet?", ["Mars", "Jupiter", "Venus"], 1),
    ("What do bees make?", ["honey", "milk", "silk"], 0),
]


def write_suite(folder: Path) -> Path:
    """A Kaizen suite of the multiple-choice QUESTIONS (one domain)."""
    folder.mkdir(parents=True)
    manifest = {
        "name": "mc-agreement",
        "version": "1",
        "description": "multiple choice scored by log-likelihood",
        "domains": ["trivia"],
        "capabilities": ["factual_recall"],
        "defaults": {"scorer": "exact"},
    }
    (folder / "suite.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    with (folder / "eval.jsonl").open("w", encoding="utf-8") as handle:
        for number, (question, choices, label) in enumerate(QUESTIONS):
            item = {
                "id": f"mc-{number}",
                "domain": "trivia",
                "capability": "factual_recall",
                "question": question,
                "answer": choices[label],
                "choices": choices,
            }
            handle.write(json.dumps(item) + "\n")
    return folder


def write_tasks(folder: Path, tokenizer: Any) -> tuple[Path, Path]:
    """The same items as local lm-eval tasks: multiple choice, and generation until a newline.

    The context is exactly Kaizen's prompt (the chat template with the question), and each
    choice continues it directly (no target delimiter), as in Kaizen's log-likelihood scoring.
    """
    from kaizen.runtime.models import format_chat
    from kaizen.runtime.suites import load_suite

    folder.mkdir(parents=True)
    suite = load_suite(str(folder.parent / "suite"))
    data = folder / "items.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for item, (_, choices, label) in zip(suite.items, QUESTIONS, strict=True):
            prompt = format_chat(tokenizer, item.conversation())
            row = {"id": item.id, "prompt": prompt, "choices": choices, "label": label}
            handle.write(json.dumps(row) + "\n")
    common = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "cache")},
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "target_delimiter": "",
    }
    choice = common | {
        "task": "kaizen_mc",
        "output_type": "multiple_choice",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "metric_list": [{"metric": "acc"}],
    }
    generation = common | {
        "task": "kaizen_gen",
        "output_type": "generate_until",
        "doc_to_target": "{{choices[label]}}",
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": 4},
        "metric_list": [{"metric": "exact_match"}],
    }
    paths = folder / "kaizen_mc.yaml", folder / "kaizen_gen.yaml"
    for path, config in zip(paths, (choice, generation), strict=True):
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def local_tasks(lively_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("lm_eval")
    from kaizen.runtime.models import load_tokenizer

    root = tmp_path_factory.mktemp("lmeval")
    suite = write_suite(root / "suite")
    choice, generation = write_tasks(root / "tasks", load_tokenizer(str(lively_model_dir)))
    return {"root": root, "suite": suite, "choice": choice, "generation": generation}


@pytest.fixture(scope="module")
def folded(
    local_tasks: dict[str, Any], lively_model_dir: Path, monkeypatch_module: pytest.MonkeyPatch
) -> dict[str, Any]:
    """One evaluate run of the suite with both local lm-eval tasks on the same model."""
    monkeypatch_module.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch_module.setenv("HF_DATASETS_CACHE", str(local_tasks["root"] / "datasets"))
    options = EvaluateOptions(
        model=str(lively_model_dir),
        suite=str(local_tasks["suite"]),
        step="evaluate",
        batch_size=4,
        lm_eval_tasks=(str(local_tasks["choice"]), str(local_tasks["generation"])),
        quiet=True,
    )
    out = local_tasks["root"] / "out"
    run_evaluation(options, out)
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_local_tasks_fold_in_as_domains(folded: dict[str, Any]) -> None:
    domains = folded["domains"]
    assert set(domains) == {"trivia", "lmeval:kaizen_mc", "lmeval:kaizen_gen"}
    mc, gen = domains["lmeval:kaizen_mc"], domains["lmeval:kaizen_gen"]
    assert mc["n"] == gen["n"] == len(QUESTIONS)
    assert mc["metric"] == "acc" and gen["metric"] == "exact_match"
    assert mc["source"] == gen["source"] == "lm-eval"
    assert 0.0 <= gen["score"] <= 1.0
    assert folded["lmeval"]["version"] == lmeval.lm_eval_version()
    assert set(folded["lmeval"]["tasks"]) == {"kaizen_mc", "kaizen_gen"}
    # The suite's own overall score is the suite's alone.
    assert folded["overall"]["n"] == len(QUESTIONS)


def test_multiple_choice_accuracy_agrees_with_kaizen(folded: dict[str, Any]) -> None:
    kaizen = folded["domains"]["trivia"]["score"]
    assert 0.0 < kaizen < 1.0  # not vacuous: the model gets some right and some wrong
    assert folded["domains"]["lmeval:kaizen_mc"]["score"] == pytest.approx(kaizen)


def test_multiple_choice_log_likelihoods_agree_item_by_item(
    local_tasks: dict[str, Any], lively_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.evaluator.loglik import rank_choices
    from kaizen.runtime.models import format_chat, load_model, load_tokenizer
    from kaizen.runtime.suites import load_suite

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(local_tasks["root"] / "datasets"))
    tokenizer = load_tokenizer(str(lively_model_dir))
    model = load_model(str(lively_model_dir), device="cpu")
    suite = load_suite(str(local_tasks["suite"]))
    questions = [
        (format_chat(tokenizer, item.conversation()), item.choices or ()) for item in suite.items
    ]
    ranked, _ = rank_choices(model, tokenizer, questions, batch_size=4)
    results, output = lmeval.run_lm_eval(
        model, tokenizer, [str(local_tasks["choice"])], batch_size=4
    )
    samples = {s["doc"]["id"]: s for s in output["samples"]["kaizen_mc"]}
    for item, mine in zip(suite.items, ranked, strict=True):
        theirs = [float(r[0][0]) for r in samples[item.id]["resps"]]
        # lm-eval moves the prompt's final newline into every continuation, which adds the
        # same log-probability to each choice: the differences between choices are equal.
        assert [t - theirs[0] for t in theirs] == pytest.approx(
            [m - mine["logprobs"][0] for m in mine["logprobs"]], abs=1e-3
        )
        assert item.choices is not None
        assert (
            item.choices[max(range(len(theirs)), key=lambda i: (theirs[i], -i))] == mine["chosen"]
        )
    assert results[0].score == pytest.approx(
        sum(m["chosen"] == i.answers[0] for m, i in zip(ranked, suite.items, strict=True))
        / len(QUESTIONS)
    )


def test_references_split_into_names_and_local_files(tmp_path: Path) -> None:
    task = tmp_path / "tasks" / "mine.yaml"
    task.parent.mkdir()
    task.write_text("task: my_task\ndataset_path: json\n", encoding="utf-8")
    refs = lmeval.resolve_task_refs(["arc_easy", str(task), "hellaswag"])
    assert refs.names == ["arc_easy", "my_task", "hellaswag"]
    assert refs.include_paths == [str(task.parent.resolve())]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "not found"), ("dataset_path: json\n", "task: missing"), ("[unclosed", "readable")],
)
def test_bad_task_files_are_configuration_errors(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    task = tmp_path / "bad.yaml"
    if content is not None:
        task.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=problem):
        lmeval.resolve_task_refs([str(task)])


def test_a_missing_extra_is_a_configuration_error_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "lm_eval.models.huggingface", None)
    options = EvaluateOptions(
        model=str(tmp_path / "no-such-model"),
        suite="demo",
        step="evaluate",
        lm_eval_tasks=("arc_easy",),
    )
    with pytest.raises(lmeval.LmEvalUnavailable, match=r"kaizen\[lmeval\]"):
        run_evaluation(options, tmp_path / "out")


def test_task_results_read_the_primary_metric_and_count() -> None:
    output = {
        "results": {
            "group": {"alias": "group"},
            "arc": {"alias": "arc", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.6},
            "gen": {"alias": "gen", "exact_match,strict": 0.25, "exact_match_stderr,strict": "N/A"},
        },
        "configs": {
            "arc": {"metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}]},
            "gen": {"metric_list": [{"metric": "exact_match"}]},
        },
        "n-samples": {"arc": {"original": 10, "effective": 8}, "gen": {"original": 4}},
    }
    arc, gen = lmeval.task_results(output)
    assert (arc.task, arc.metric, arc.score, arc.n, arc.stderr) == ("arc", "acc", 0.5, 8, 0.1)
    assert arc.metrics == {"acc,none": 0.5, "acc_norm,none": 0.6}
    assert (gen.metric, gen.score, gen.n, gen.stderr) == ("exact_match", 0.25, 4, None)


def test_fold_adds_report_only_domains() -> None:
    results: dict[str, Any] = {"domains": {"geo": {"score": 0.5, "n": 2}}}
    task = lmeval.TaskResult(task="arc", metric="acc", score=0.75, n=4, stderr=0.2)
    lmeval.fold_results(results, [task])
    assert results["domains"]["lmeval:arc"] == {
        "score": 0.75,
        "n": 4,
        "metric": "acc",
        "stderr": 0.2,
        "source": "lm-eval",
    }
    assert results["domains"]["geo"] == {"score": 0.5, "n": 2}
    assert results["lmeval"]["tasks"]["arc"]["n"] == 4
