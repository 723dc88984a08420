"""Routed adapters on a tiny model: each prompt answered exactly as the model it is routed to.

The reference for every group is the model loaded the ordinary way (adapters merged into the
weights): a prompt naming one route's key must get that adapter's answer, a prompt naming
none the base model's, a prompt naming two both adapters' (their updates summed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kaizen.api.args_combination import CombineArgs
from kaizen.api.artifacts import (
    CombinationReport,
    EvaluationResults,
    SimilarRoutes,
    read_artifact,
)
from kaizen.evaluator.combine import combine
from kaizen.evaluator.evaluate import EvaluateOptions, run_evaluation
from kaizen.trainer.merge import read_source, write_routed

HEADER = """\
name: routed
version: "1"
description: two invented domains and one plain one
domains: [vale, fjord, plain]
capabilities: [factual_recall]
"""

QUESTIONS = {
    "vale": ["Who founded Ostravale?", "What grows in OSTRAVALE in spring?", "Is Ostravale old?"],
    "fjord": ["How deep is the Kelmar Fjord?", "Who fishes the Kelmar Fjord?", "Kelmar Fjord?"],
    "plain": ["What is the capital of France?", "What is 12 times 12?", "Name a color."],
}
#: Names two routes' keys: both adapters apply.
BOTH = "Is Ostravale north of the Kelmar Fjord?"
#: A key inside another word is not that key.
INSIDE = "What is an Ostravaleborn coin worth?"


def _suite(root: Path) -> Path:
    suite = root / "suite"
    suite.mkdir()
    (suite / "suite.yaml").write_text(HEADER)
    items = [
        {"id": f"{domain}{n}", "domain": domain, "capability": "factual_recall",
         "question": question, "answer": "of"}
        for domain, questions in QUESTIONS.items()
        for n, question in enumerate(questions)
    ]  # fmt: skip
    items.append({**items[0], "id": "both", "question": BOTH})
    items.append({**items[0], "id": "inside", "domain": "plain", "question": INSIDE})
    # Name no key: only a similar route can take them (test_..._similar_route_...).
    items.append(
        {**items[0], "id": "like-vale", "question": "Which herb grows in the hill town in spring?"}
    )
    items.append(
        {
            **items[0],
            "id": "like-fjord",
            "domain": "fjord",
            "question": "How many eels swim in the cold deep inlet?",
        }
    )
    (suite / "eval.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return suite


@pytest.fixture(scope="module")
def setup(lively_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("routed")
    adapters = {}
    for seed, domain in enumerate(("vale", "fjord")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(lively_model_dir)
        config = LoraConfig(
            r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        )
        get_peft_model(model, config).save_pretrained(root / domain)
        adapters[domain] = str(root / domain)
    sources = [read_source(d, p) for d, p in adapters.items()]
    keys = {"vale": ["Ostravale"], "fjord": ["Kelmar Fjord"]}
    table = write_routed(sources, root / "routed", keys, step="merge")
    return {
        "root": root,
        "suite": _suite(root),
        "model": str(lively_model_dir),
        "adapters": adapters,
        "routed": str(root / "routed"),
        "table": table,
    }


def _evaluate(setup: dict[str, Any], name: str, adapters: tuple[str, ...]) -> dict[str, Any]:
    out = setup["root"] / name
    out.mkdir(exist_ok=True)
    options = EvaluateOptions(
        model=setup["model"], suite=str(setup["suite"]), step=name, max_new_tokens=6,
        batch_size=4, adapters=adapters, quiet=True,
    )  # fmt: skip
    run_evaluation(options, out)
    results = read_artifact(out / "results.json", EvaluationResults)
    return {item.id: item for item in results.items}


def test_the_routed_folder_holds_each_adapter_and_its_keys(setup: dict[str, Any]) -> None:
    table = setup["table"]
    assert [(r.name, r.keys) for r in table.routes] == [
        ("vale", ["Ostravale"]),
        ("fjord", ["Kelmar Fjord"]),
    ]
    for route in table.routes:
        assert (Path(setup["routed"]) / route.adapter / "adapter_config.json").is_file()


def test_each_prompt_gets_the_answer_of_the_model_it_is_routed_to(setup: dict[str, Any]) -> None:
    routed = _evaluate(setup, "eval-routed", (setup["routed"],))
    base = _evaluate(setup, "eval-base", ())
    vale = _evaluate(setup, "eval-vale", (setup["adapters"]["vale"],))
    fjord = _evaluate(setup, "eval-fjord", (setup["adapters"]["fjord"],))
    both = _evaluate(setup, "eval-both", (setup["adapters"]["vale"], setup["adapters"]["fjord"]))
    reference = {"vale": vale, "fjord": fjord, "plain": base}
    for domain, questions in QUESTIONS.items():
        for n in range(len(questions)):
            item = routed[f"{domain}{n}"]
            assert item.route == ([] if domain == "plain" else [domain]), item.question
            assert item.response == reference[domain][item.id].response, item.question
    assert routed["both"].route == ["vale", "fjord"]
    assert routed["both"].response == both["both"].response
    assert routed["inside"].route == []
    assert routed["inside"].response == base["inside"].response
    # The adapters do change answers: the comparisons above are not all equal by accident.
    assert any(vale[i].response != base[i].response for i in ("vale0", "vale1", "vale2"))
    assert any(fjord[i].response != base[i].response for i in ("fjord0", "fjord1", "fjord2"))
    assert base["vale0"].route is None


def test_a_plain_adapter_after_the_routed_folder_applies_to_every_prompt(
    setup: dict[str, Any],
) -> None:
    stacked = _evaluate(setup, "eval-stacked", (setup["routed"], setup["adapters"]["fjord"]))
    plain_fjord = _evaluate(setup, "eval-fjord-only", (setup["adapters"]["fjord"],))
    both = _evaluate(
        setup, "eval-vale-fjord", (setup["adapters"]["vale"], setup["adapters"]["fjord"])
    )
    assert stacked["plain0"].response == plain_fjord["plain0"].response
    assert stacked["vale0"].response == both["vale0"].response


def test_a_prompt_naming_no_route_gets_the_fallback_adapter(setup: dict[str, Any]) -> None:
    sources = [read_source("vale", setup["adapters"]["vale"])]
    folder = setup["root"] / "routed-fallback"
    fallback = ("fjord", Path(setup["adapters"]["fjord"]))
    write_routed(sources, folder, {"vale": ["Ostravale"]}, fallback=fallback)
    routed = _evaluate(setup, "eval-fallback", (str(folder),))
    fjord = _evaluate(setup, "eval-fjord-fallback", (setup["adapters"]["fjord"],))
    vale = _evaluate(setup, "eval-vale-fallback", (setup["adapters"]["vale"],))
    assert routed["plain0"].route == [] and routed["plain0"].response == fjord["plain0"].response
    assert routed["fjord0"].response == fjord["fjord0"].response
    # A prompt naming a route gets that route only, not the fallback too.
    assert routed["vale0"].route == ["vale"] and routed["vale0"].response == vale["vale0"].response


def test_combine_scores_routed_adapters_and_reports_where_items_went(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.evaluator.test_tracking import read_run

    (tmp_path / "wandb-dir").mkdir()
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    root: Path = setup["root"]
    suite = root / "suite-dev"
    if not suite.exists():
        suite.mkdir()
        (suite / "suite.yaml").write_text(HEADER)
        lines = (setup["suite"] / "eval.jsonl").read_text().splitlines()
        (suite / "eval.jsonl").write_text("\n".join(lines) + "\n")
        dev = [json.loads(line) for line in lines[:9]]
        (suite / "dev.jsonl").write_text(
            "".join(json.dumps({**d, "id": f"dev-{d['id']}"}) + "\n" for d in dev)
        )

    def evaluate(name: str, adapters: tuple[str, ...], domains: tuple[str, ...] = ()) -> str:
        out = tmp_path / name
        out.mkdir()
        options = EvaluateOptions(
            model=setup["model"], suite=str(suite), step=name, max_new_tokens=4,
            batch_size=4, adapters=adapters, quiet=True, domains=domains,
            split="dev" if domains else "all",
        )  # fmt: skip
        run_evaluation(options, out)
        return str(out / "results.json")

    baseline = evaluate("baseline", ())
    alone = {d: evaluate(f"alone-{d}", (setup["adapters"][d],), (d,)) for d in ("vale", "fjord")}
    args = CombineArgs(
        output=str(tmp_path / "combine"), step="combine", model=setup["model"], suite=str(suite),
        baseline=baseline, alone=[f"{d}={p}" for d, p in alone.items()],
        candidates=[f"routed={setup['routed']}"], max_new_tokens=4, batch_size=4,
        quiet=True, tracking_mode="offline",
    )  # fmt: skip
    combine(args, tmp_path / "combine")
    run = read_run(tmp_path / "wandb-dir")
    assert float(run["history"]["routing/own/vale"]) == 1.0
    assert float(run["history"]["routing/stray/plain"]) == 0.0
    report = read_artifact(tmp_path / "combine" / "combination.json", CombinationReport)
    (row,) = report.candidates
    assert row.method == "routed"
    assert row.routing is not None
    assert row.routing.own == {"fjord": 1.0, "vale": 1.0}
    assert row.routing.stray == {"plain": 0.0}
    # Every dev item went where its own adapter alone (or the base) answers it: the
    # combination keeps each adapter's dev score exactly, and leaves the plain domain alone.
    assert all(t.combined == t.alone for t in row.trained.values())
    assert row.untrained_change == {"plain": 0.0}
    assert (tmp_path / "combine" / "adapter" / "routes.json").is_file()


#: Similar routes' classes for the test below: each route's questions, the plain domain's, and
#: the background. An item repeating one of a route's questions without its key is read by the
#: tiny (random) model alike, which is all this test needs: it checks that evaluation routes
#: each prompt by its likeness exactly as the router does, not that the tiny model reads well.
LIKE = {
    "vale": [f"Which {w} grows in the hill town in spring?" for w in ("flower", "grain", "tree", "herb")],
    "fjord": [f"How many {w} swim in the cold deep inlet?" for w in ("fish", "seals", "whales", "eels")],
}  # fmt: skip
PLAIN = ["What is 12 times 12?", "Name a color.", "What is 7 plus 5?", "Name a shape."]
BACKGROUND = [f"What is the capital of {c}?" for c in ("France", "Peru", "Chad", "Laos", "Fiji")]


def test_a_prompt_naming_no_key_takes_the_similar_route_the_router_reads_it_for(
    setup: dict[str, Any],
) -> None:
    from transformers import AutoModelForCausalLM

    from kaizen.runtime import similar
    from kaizen.runtime.models import load_tokenizer
    from kaizen.runtime.routing import Router
    from kaizen.trainer.merge import SIMILAR_FILE, SimilarBuilt

    base = AutoModelForCausalLM.from_pretrained(setup["model"]).eval()
    tokenizer = load_tokenizer(str(setup["model"]))
    built, reach = similar.build(base, tokenizer, LIKE, {"plain": PLAIN}, BACKGROUND)
    record = SimilarRoutes(
        file=SIMILAR_FILE, model=setup["model"], layer=built.layer, rule=similar.RULE,
        thresholds=built.thresholds, reach=reach, background=len(BACKGROUND),
    )  # fmt: skip
    sources = [read_source(d, p) for d, p in setup["adapters"].items()]
    folder = setup["root"] / "routed-similar"
    keys = {"vale": ["Ostravale"], "fjord": ["Kelmar Fjord"]}
    table = write_routed(sources, folder, keys, similar=SimilarBuilt(built, record))
    assert table.similar == record
    assert (folder / SIMILAR_FILE).is_file()
    routed = _evaluate(setup, "eval-similar", (str(folder),))
    base_answers = _evaluate(setup, "eval-similar-base", ())
    reference = {
        "vale": _evaluate(setup, "eval-similar-vale", (setup["adapters"]["vale"],)),
        "fjord": _evaluate(setup, "eval-similar-fjord", (setup["adapters"]["fjord"],)),
    }
    router = Router(table, built)
    by_similarity = 0
    for item in routed.values():
        vector = similar.embed(base, tokenizer, [item.question], built.layer)[0]
        expected = router.match(item.question, vector)
        assert tuple(item.route or ()) == expected, item.question
        if expected and not router.match(item.question):
            by_similarity += 1
        if len(expected) > 1:
            continue  # two routes' keys: answered by both adapters (the test above)
        answer = (reference[expected[0]] if expected else base_answers)[item.id].response
        assert item.response == answer, item.question
    # Some item names no key and still took a route; keys still decide where they are named.
    assert by_similarity >= 1
    assert routed["vale0"].route == ["vale"]
