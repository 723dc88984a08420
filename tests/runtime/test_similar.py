"""Similar routes: thresholds set on the classes' own questions, matching, the file, the reading.

`fit` and `Similar.match` are checked on vectors made by hand (clusters whose answers are
known); `embed` on the tiny model: a prompt's vector does not depend on the padding side or
on the other prompts of its batch, which is what lets evaluation, the merge step and
`kaizen route` read the same prompt alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kaizen.api.artifacts import Route, RouteTable, SimilarRoutes, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.runtime.routing import Router, load_router, read_routes
from kaizen.runtime.similar import Similar, embed, fit

torch = pytest.importorskip("torch")

DIM = 16


def _cluster(axis: int, n: int, seed: int, spread: float = 0.15) -> torch.Tensor:
    """`n` vectors around the unit vector of `axis` (plus a shared offset the centring removes)."""
    generator = torch.Generator().manual_seed(seed)
    centre = torch.zeros(DIM)
    centre[axis] = 1.0
    return centre + 3.0 + spread * torch.randn(n, DIM, generator=generator)


def _fitted() -> tuple[Similar, dict[str, float]]:
    return fit(
        {"vale": _cluster(0, 12, 1), "fjord": _cluster(1, 12, 2)},
        {"plain": _cluster(2, 12, 3)},
        torch.cat([_cluster(axis, 6, 10 + axis) for axis in range(3, 9)]),
        layer=5,
    )


def test_each_route_reaches_its_own_questions_and_no_other_class_passes_its_threshold() -> None:
    similar, reach = _fitted()
    assert set(similar.thresholds) == {"vale", "fjord"}
    assert reach == {"vale": 1.0, "fjord": 1.0}
    # The threshold is the highest score any question of another class gets: none passes.
    for route in ("vale", "fjord"):
        highest = max(
            float(similar.scores(vectors, own=name)[route].max())
            for name, vectors in similar.classes.items()
            if name != f"route:{route}"
        )
        assert highest == similar.thresholds[route]


def test_a_prompt_goes_through_the_route_it_is_like_and_none_when_it_is_like_no_route() -> None:
    similar, _ = _fitted()
    for axis, seed, route in ((0, 99, "vale"), (1, 98, "fjord")):
        found = similar.match(_cluster(axis, 1, seed)[0])
        assert found is not None
        assert found[0] == route
        assert found[1] > similar.thresholds[route]
    # Like the suite's other domain, or like the background: no route.
    assert similar.match(_cluster(2, 1, 97)[0]) is None
    assert similar.match(_cluster(5, 1, 96)[0]) is None


def test_a_route_whose_questions_are_like_the_background_reaches_few_of_them() -> None:
    background = torch.cat([_cluster(axis, 6, 10 + axis) for axis in range(3, 9)])
    vague = torch.cat([_cluster(3, 6, 40), _cluster(4, 6, 41)])  # everyday questions
    similar, reach = fit({"vague": vague, "vale": _cluster(0, 12, 1)}, {}, background, layer=5)
    assert reach["vale"] == 1.0
    assert reach["vague"] <= 0.5
    assert similar.match(_cluster(3, 1, 95)[0]) is None


def test_keys_come_first_and_a_prompt_without_a_vector_is_matched_by_keys_only() -> None:
    similar, _ = _fitted()
    table = RouteTable(
        rule="test",
        routes=[
            Route(name="vale", adapter="a", keys=["Ostravale"]),
            Route(name="fjord", adapter="b", keys=["Kelmar"]),
        ],
    )
    router = Router(table, similar)
    like_vale = _cluster(0, 1, 99)[0]
    # Names the fjord: the key decides, whatever the prompt is like.
    assert router.match("Who fishes the Kelmar?", like_vale) == ("fjord",)
    # Names nothing: its likeness decides; without its vector, keys only.
    assert router.match("Who founded it?", like_vale) == ("vale",)
    assert router.match("Who founded it?") == ()
    assert Router(table).match("Who founded it?", like_vale) == ()


def _routed_folder(root: Path, similar: Similar, **changes: object) -> Path:
    (root / "a").mkdir(parents=True)
    (root / "a" / "adapter_config.json").write_text("{}")
    similar.save(root / "similar.safetensors")
    record = SimilarRoutes(
        file="similar.safetensors",
        model="tiny",
        layer=similar.layer,
        rule="test",
        thresholds={"vale": similar.thresholds["vale"]},
        background=36,
    )
    record = record.model_copy(update=changes)
    table = RouteTable(
        rule="test", routes=[Route(name="vale", adapter="a", keys=["Ostravale"])], similar=record
    )
    write_artifact(root / "routes.json", table)
    return root


def test_a_routed_folder_reads_its_similar_routes_back(tmp_path: Path) -> None:
    similar, _ = _fitted()
    folder = _routed_folder(tmp_path / "routed", similar)
    router = load_router(folder)
    assert router.similar is not None
    assert router.similar.layer == 5
    assert router.match("Who founded it?", _cluster(0, 1, 99)[0]) == ("vale",)
    assert router.match("Who founded it?", _cluster(5, 1, 96)[0]) == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"file": "../similar.safetensors"}, r"similar\.file: .* not a file inside"),
        ({"file": "gone.safetensors"}, r"similar\.file: .* not a file inside"),
        ({"thresholds": {"lake": 0.1}}, r"similar\.thresholds: no route named \['lake'\]"),
    ],
)
def test_a_similar_file_outside_the_folder_or_a_threshold_of_no_route_is_refused(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    similar, _ = _fitted()
    folder = _routed_folder(tmp_path / "routed", similar, **changes)
    with pytest.raises(ConfigurationError, match=message):
        read_routes(folder)


def test_a_vectors_file_without_a_routes_vectors_is_refused(tmp_path: Path) -> None:
    similar, _ = _fitted()
    folder = _routed_folder(tmp_path / "routed", similar)
    del similar.classes["route:vale"]
    similar.save(folder / "similar.safetensors")
    with pytest.raises(ConfigurationError, match=r"similar\.file: .*lacks the vectors"):
        load_router(folder)


def test_a_prompts_vector_does_not_depend_on_padding_or_on_its_batch(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from kaizen.runtime.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = load_tokenizer(str(tiny_model_dir))
    texts = ["Who signs off on access?", "Which pool serves the large models of the gateway?", "Hi"]
    alone = torch.stack([embed(model, tokenizer, [text], 1)[0] for text in texts])
    for side in ("left", "right"):
        tokenizer.padding_side = side
        together = embed(model, tokenizer, texts, 1)
        assert torch.allclose(together, alone, atol=1e-5), side
    assert alone.shape == (3, model.config.hidden_size)
    # A different prompt reads differently.
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)


def test_kaizen_route_reads_a_prompt_naming_no_key_with_the_tables_model(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from transformers import AutoModelForCausalLM

    from kaizen.local.cli import main
    from kaizen.runtime import similar as similar_routes
    from kaizen.runtime.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = load_tokenizer(str(tiny_model_dir))
    routes = {"vale": [f"Which {w} grows in the hill town?" for w in ("herb", "tree", "grain")]}
    background = [f"What is the capital of {c}?" for c in ("France", "Peru", "Chad", "Laos")]
    built, _ = similar_routes.build(model, tokenizer, routes, {}, background)
    folder = _routed_folder(tmp_path / "routed", built, model=str(tiny_model_dir))
    texts = ["Who rules Ostravale?", "Which herb grows in the hill town?", "What is 2 + 2?"]
    router = load_router(folder)
    expected = [router.match(t, embed(model, tokenizer, [t], built.layer)[0]) for t in texts]
    # One of the route's own questions is read as the route's (by the tiny model too).
    assert expected[1] == ("vale",)
    assert main(["route", str(folder), *texts]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [tuple(line["routes"]) for line in lines] == expected
    assert lines[0]["by"] == "keys"
    assert lines[1]["by"] == "similar"
    assert lines[2]["by"] == ("similar" if expected[2] else None)
    # --keys-only does not load the model: a prompt naming no key takes no route.
    assert main(["route", "--keys-only", str(folder), texts[1]]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["routes"], line["by"]) == ([], None)
