"""Merging tiny domain adapters with every combination peft offers the cycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.runtime.models import load_model
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.lora import LoraSettings, train_lora
from kaizen.trainer.merge import COMBINATIONS, check_compatible, merge_adapters, read_source
from tests.trainer.conftest import LUMORA, SPIDERS


def _train(tiny_model_dir: Path, tokenizer, out: Path, pairs, rank: int) -> Path:
    examples = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
    settings = LoraSettings(rank=rank, alpha=2 * rank, steps=8, batch_size=2, learning_rate=1e-2)
    model = load_model(str(tiny_model_dir), device="cpu")
    return train_lora(
        model, examples, settings, out, pad_token_id=tokenizer.pad_token_id, progress=False
    ).adapter_dir


@pytest.fixture(scope="module")
def adapters(
    tiny_model_dir: Path, tokenizer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two rank-8 adapters on different facts, and a rank-4 one."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        "lumora": _train(tiny_model_dir, tokenizer, root / "lumora", LUMORA, rank=8),
        "spiders": _train(tiny_model_dir, tokenizer, root / "spiders", SPIDERS, rank=8),
        "narrow": _train(tiny_model_dir, tokenizer, root / "narrow", SPIDERS, rank=4),
    }


def _logits(tiny_model_dir: Path, tokenizer, adapter_dirs: list[Path]):
    import torch

    model = load_model(str(tiny_model_dir), [str(path) for path in adapter_dirs], device="cpu")
    inputs = tokenizer(["Which river flows through Lumora?"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def _merge(tiny_model_dir, adapters, out, names, combination, seed=0):
    sources = [read_source(name, adapters[name]) for name in names]
    return merge_adapters(
        sources,
        out,
        load_base=lambda: load_model(str(tiny_model_dir), device="cpu"),
        combination=combination,
        density=0.5,
        seed=seed,
    )


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_combination_gives_a_loadable_adapter(
    tiny_model_dir, tokenizer, adapters, tmp_path, combination
) -> None:
    result = _merge(tiny_model_dir, adapters, tmp_path, ["lumora", "spiders"], combination)

    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert result.combination == combination
    assert config["r"] == result.rank == (16 if combination == "cat" else 8)
    base = _logits(tiny_model_dir, tokenizer, [])
    merged = _logits(tiny_model_dir, tokenizer, [result.adapter_dir])
    alone = _logits(tiny_model_dir, tokenizer, [adapters["lumora"]])
    assert not merged.allclose(base, atol=1e-5)
    assert not merged.allclose(alone, atol=1e-5)


def test_cat_is_exactly_the_sum_of_both_updates(
    tiny_model_dir, tokenizer, adapters, tmp_path
) -> None:
    result = _merge(tiny_model_dir, adapters, tmp_path, ["lumora", "spiders"], "cat")
    merged = _logits(tiny_model_dir, tokenizer, [result.adapter_dir])
    # load_model merges the two adapters one after the other into the weights: W + ΔA + ΔB.
    both = _logits(tiny_model_dir, tokenizer, [adapters["lumora"], adapters["spiders"]])
    assert merged.allclose(both, atol=1e-4)


def test_dare_is_repeatable_with_its_seed(tiny_model_dir, adapters, tmp_path) -> None:
    from safetensors.torch import load_file

    runs = {
        name: load_file(
            _merge(
                tiny_model_dir, adapters, tmp_path / name, ["lumora", "spiders"], "dare_ties", seed
            ).adapter_dir
            / "adapter_model.safetensors"
        )
        for name, seed in [("a", 0), ("b", 0), ("c", 1)]
    }
    assert all(runs["a"][key].equal(runs["b"][key]) for key in runs["a"])
    assert not all(runs["a"][key].equal(runs["c"][key]) for key in runs["a"])


def test_different_ranks_work_with_cat_only(tiny_model_dir, adapters, tmp_path) -> None:
    result = _merge(tiny_model_dir, adapters, tmp_path, ["lumora", "narrow"], "cat")
    assert result.rank == 12
    for combination in ("linear", "ties", "dare_linear", "dare_ties"):
        with pytest.raises(
            ConfigurationError,
            match=r"needs adapters of equal rank.*'lumora': 8.*'narrow': 4.*use 'cat'",
        ):
            _merge(tiny_model_dir, adapters, tmp_path, ["lumora", "narrow"], combination)


def test_single_source_is_copied_without_loading_the_model(adapters, tmp_path) -> None:
    def no_model():
        raise AssertionError("a single adapter needs no base model")

    result = merge_adapters(
        [read_source("lumora", adapters["lumora"])], tmp_path, load_base=no_model
    )

    assert result.combination == "copy"
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (result.adapter_dir / name).read_bytes() == (adapters["lumora"] / name).read_bytes()


def test_bad_sources_are_configuration_errors(adapters, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="is not a directory"):
        read_source("lumora", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="has no adapter_config.json"):
        read_source("lumora", tmp_path / "empty")
    (tmp_path / "empty" / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    with pytest.raises(ConfigurationError, match="has no adapter weights"):
        read_source("lumora", tmp_path / "empty")
    (tmp_path / "empty" / "adapter_model.safetensors").write_bytes(b"")
    (tmp_path / "empty" / "adapter_config.json").write_text('{"peft_type": "IA3"}')
    with pytest.raises(ConfigurationError, match="only LORA adapters"):
        read_source("lumora", tmp_path / "empty")

    source = read_source("lumora", adapters["lumora"])
    with pytest.raises(ConfigurationError, match="more than one source"):
        check_compatible([source, source], "ties", 0.5)
    with pytest.raises(ConfigurationError, match="density"):
        check_compatible([source], "ties", 0.0)
    with pytest.raises(ConfigurationError, match="unknown combination"):
        check_compatible([source], "magnitude_prune", 0.5)


def test_further_methods_are_written_beside_the_first_each_as_if_made_alone(
    tiny_model_dir, adapters, tmp_path
) -> None:
    """`also` writes candidates/<method>/adapter; each equals the same method merged alone."""
    from safetensors.torch import load_file

    sources = [read_source(name, adapters[name]) for name in ("lumora", "spiders")]
    both = merge_adapters(
        sources,
        tmp_path / "both",
        load_base=lambda: load_model(str(tiny_model_dir), device="cpu"),
        combination="ties",
        also=("dare_ties", "svd"),
        seed=3,
    )
    assert both.combination == "ties" and (both.adapter_dir / "adapter_config.json").is_file()
    assert set(both.candidates) == {"dare_ties", "svd"}
    for method in ("dare_ties", "svd"):
        path, rank = both.candidates[method]
        assert path == tmp_path / "both" / "candidates" / method / "adapter"
        alone = _merge(
            tiny_model_dir, adapters, tmp_path / method, ["lumora", "spiders"], method, 3
        )
        assert rank == alone.rank
        made, single = (
            load_file(p / "adapter_model.safetensors") for p in (path, alone.adapter_dir)
        )
        assert made.keys() == single.keys()
        assert all(made[key].allclose(single[key], atol=1e-6) for key in made), method


def test_grid_points_merge_at_their_own_density_and_weight(
    tiny_model_dir, adapters, tmp_path
) -> None:
    """Each point of `merge.search`'s grid is its own merge: weight n scales ties' averaged
    update by n (sqrt(n) on each LoRA factor), weight 1/n halves cat's sum into the mean, and
    density 1.0 keeps entries density 0.5 pruned."""
    from safetensors.torch import load_file

    from kaizen.api.merge_grid import expand

    sources = [read_source(name, adapters[name]) for name in ("lumora", "spiders")]
    points = expand(("ties", "cat"), 0.5, densities=[1.0], weights=["n", "1/n"])
    result = merge_adapters(
        sources,
        tmp_path,
        load_base=lambda: load_model(str(tiny_model_dir), device="cpu"),
        points=points,
    )
    assert result.combination == "ties" and set(result.points) == {p.name for p in points}
    assert set(result.candidates) == {p.name for p in points[1:]}
    assert set(result.point_seconds) == set(result.points)

    def weights(name: str):
        folder = result.adapter_dir if name == "ties" else result.candidates[name][0]
        return load_file(folder / "adapter_model.safetensors")

    ties, ties_n, ties_d1 = weights("ties"), weights("ties-wn"), weights("ties-d1")
    assert ties.keys() == ties_n.keys() == ties_d1.keys()
    assert all(ties_n[k].allclose(ties[k] * 2**0.5, atol=1e-6) for k in ties)
    assert not all(ties_d1[k].allclose(ties[k], atol=1e-6) for k in ties)
    # Density 1.0 prunes nothing before the sign election: more entries survive.
    kept = sum(int((t != 0).sum()) for t in ties.values())
    assert sum(int((t != 0).sum()) for t in ties_d1.values()) > kept
    cat, cat_mean = weights("cat"), weights("cat-winvn")
    for key_a in (key for key in cat if "lora_A" in key):
        key_b = key_a.replace("lora_A", "lora_B")
        update, mean = cat[key_b] @ cat[key_a], cat_mean[key_b] @ cat_mean[key_a]
        assert mean.allclose(update * 0.5, atol=1e-6), key_a
    assert result.candidates["cat-wn"][1] == 16 and result.rank == 8
