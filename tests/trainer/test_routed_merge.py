"""The merge step's routed candidate, and training on top of a routed folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kaizen.api.args_combination import MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import MergeRecord, RouteTable, read_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.runtime.routing import load_router, read_routes, resolve
from kaizen.trainer.programs import merge
from kaizen.trainer.steps import base_adapters, check_adapters
from tests.trainer.conftest import LUMORA, SPIDERS
from tests.trainer.test_merge import _train


@pytest.fixture(scope="module")
def adapters(
    tiny_model_dir: Path, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Two rank-4 adapters on different facts."""
    root = tmp_path_factory.mktemp("routed-adapters")
    return {
        "lumora": _train(tiny_model_dir, tokenizer, root / "lumora", LUMORA, rank=4),
        "spiders": _train(tiny_model_dir, tokenizer, root / "spiders", SPIDERS, rank=4),
    }


def _args(
    tmp_path: Path, model: Path, sources: dict[str, Path], suite: str, **kw: Any
) -> MergeArgs:
    return MergeArgs(
        output=str(tmp_path / "merge"), step="merge", model=str(model),
        sources=[f"{d}={p}" for d, p in sources.items()], routed=True, suite=suite,
        tracking_mode="disabled", quiet=True, **kw,
    )  # fmt: skip


def test_the_merge_step_writes_routed_adapters_beside_its_merges(
    tiny_model_dir: Path,
    adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    sources = {"zephyria": adapters["lumora"], "meridian_lark": adapters["spiders"]}
    args = _args(tmp_path, tiny_model_dir, sources, "demo", similar=True)
    assert "--similar" in args.to_argv()
    summary = merge(args, tmp_path / "merge")
    assert "routed adapters routed, routed-ties" in summary.message
    record = read_artifact(tmp_path / "merge" / "merge.json", MergeRecord)
    routed = tmp_path / "merge" / "candidates" / "routed" / "adapter"
    with_fallback = tmp_path / "merge" / "candidates" / "routed-ties" / "adapter"
    assert record.routed == {"routed": str(routed), "routed-ties": str(with_fallback)}
    assert record.config.routed is True
    table = read_routes(routed)
    assert table.fallback is None
    # routed-ties: the same routes, and the merge step's ties merge for every other prompt.
    fallback = read_routes(with_fallback)
    assert (fallback.fallback, fallback.fallback_from) == ("fallback", "ties")
    assert [r.keys for r in fallback.routes] == [r.keys for r in table.routes]
    merged = tmp_path / "merge" / "adapter" / "adapter_model.safetensors"
    copied = with_fallback / "fallback" / "adapter_model.safetensors"
    assert copied.read_bytes() == merged.read_bytes()
    assert resolve([str(with_fallback)], "geography") == [str(with_fallback / "fallback")]
    assert [r.name for r in table.routes] == ["zephyria", "meridian_lark"]
    assert "Zephyria" in table.routes[0].keys and "Meridian Lark" in table.routes[1].keys
    # Similar routes: every route has a threshold, set against the demo's other domains (its
    # geography and science knowledge) and the background (the core suite's questions: the
    # demo's own are its classes); both folders hold them.
    assert table.similar is not None and fallback.similar == table.similar
    assert set(table.similar.thresholds) == {"zephyria", "meridian_lark"}
    assert table.similar.background > 100 and table.similar.model == str(tiny_model_dir)
    assert all(0.0 <= share <= 1.0 for share in table.similar.reach.values())
    router = load_router(routed)
    assert router.similar is not None
    assert set(router.similar.classes) == {
        "route:zephyria", "route:meridian_lark", "other:geography", "other:science", "background",
    }  # fmt: skip
    assert (with_fallback / "similar.safetensors").read_bytes() == (
        routed / "similar.safetensors"
    ).read_bytes()
    # Each route's adapter is its source, byte for byte.
    for route, source in zip(table.routes, sources.values(), strict=True):
        copied = routed / route.adapter / "adapter_model.safetensors"
        assert copied.read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    # A training step on a domain starts from that domain's route; others from none of them.
    assert resolve([str(routed)], "zephyria") == [str(routed / table.routes[0].adapter)]
    check_adapters([str(routed)])
    train = TrainArgs(
        output=str(tmp_path / "t"), step="t", model="m", suite="demo", domain="meridian_lark",
        adapters=[str(routed)],
    )  # fmt: skip
    assert base_adapters(train) == [str(routed / table.routes[1].adapter)]


def test_a_single_adapter_is_routed_too(
    tiny_model_dir: Path,
    adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    merge(
        _args(tmp_path, tiny_model_dir, {"zephyria": adapters["lumora"]}, "demo"),
        tmp_path / "merge",
    )
    table = read_artifact(
        tmp_path / "merge" / "candidates" / "routed" / "adapter" / "routes.json", RouteTable
    )
    assert [r.name for r in table.routes] == ["zephyria"]
    # One adapter has nothing to merge: no fallback candidate.
    assert not (tmp_path / "merge" / "candidates" / "routed-ties").exists()


def test_a_domain_without_names_is_left_out_and_none_at_all_is_refused(
    tiny_model_dir: Path,
    adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    # velorine's geography has no knowledge at all: no name, written in any case.
    velorine = str(Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "velorine")
    sources = {"chemistry_x": adapters["lumora"], "geography": adapters["spiders"]}
    merge(_args(tmp_path / "a", tiny_model_dir, sources, velorine), tmp_path / "a" / "merge")
    table = read_routes(tmp_path / "a" / "merge" / "candidates" / "routed" / "adapter")
    assert [r.name for r in table.routes] == ["chemistry_x"]
    assert list(table.left_out) == ["geography"]
    # The tiny model's 600-token vocabulary writes every word in pieces: to it "velorine" is as
    # invented as any, so the lower-case names are keys too.
    assert "velorine" in table.routes[0].keys and "Anna Brisk" in table.routes[0].keys
    only = {"geography": adapters["spiders"]}
    with pytest.raises(ConfigurationError, match="no domain of .*geography.* has a name"):
        merge(_args(tmp_path / "b", tiny_model_dir, only, velorine), tmp_path / "b" / "merge")


def test_without_similar_routes_a_folder_routes_by_keys_only(
    tiny_model_dir: Path,
    adapters: dict[str, Path],
    tmp_path: Path,
) -> None:
    args = _args(tmp_path, tiny_model_dir, {"zephyria": adapters["lumora"]}, "demo")
    assert "--similar" not in args.to_argv()
    merge(args, tmp_path / "merge")
    routed = tmp_path / "merge" / "candidates" / "routed" / "adapter"
    assert read_routes(routed).similar is None
    assert "similar" not in (routed / "routes.json").read_text()
    assert not (routed / "similar.safetensors").exists()


def test_routed_without_a_suite_is_refused() -> None:
    with pytest.raises(ValidationError, match="--routed needs --suite"):
        MergeArgs(output="o", step="s", model="m", sources=["a=/a"], routed=True)


def test_the_background_holds_everyday_and_invented_world_questions_but_not_the_suites_own() -> (
    None
):
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.merge import background_questions

    everything = background_questions(set())
    core = {example.question for example in load_suite("core").training}
    assert core <= set(everything)
    # The demo's invented worlds are asked about too: naming something unfamiliar is not
    # what routes a question.
    assert any("Zephyria" in q for q in everything)
    assert everything == sorted(everything)
    held = {q for q in everything if "Zephyria" in q}
    assert not any("Zephyria" in q for q in background_questions(held))
