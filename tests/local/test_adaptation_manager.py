"""`AdaptationManager`: domain adapters trained and merged through the trainer's own programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.workflow import AdaptationManager


# Two train programs and a merge program, each a subprocess: seconds on CPU.
@pytest.mark.e2e
def test_adapters_are_trained_per_domain_and_merged(tiny_model_dir: Path, tmp_path: Path) -> None:
    manager = AdaptationManager(str(tiny_model_dir), output_root=tmp_path / "adapters")
    paths = {
        domain: manager.create_targeted_adapter(domain, suite="demo", steps=2, batch_size=4)
        for domain in ("zephyria", "meridian_lark")
    }
    for path in paths.values():
        assert (Path(path) / "adapter_config.json").exists()
    assert [h["domain"] for h in manager.adaptation_history] == ["zephyria", "meridian_lark"]
    assert all(h["training_examples"] > 0 for h in manager.adaptation_history)
    merged = manager.merge_adapters(paths, combination="ties", density=0.5)
    config = json.loads((Path(merged) / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    routed = manager.route_adapters(paths, suite="demo", fallback=True)
    table = json.loads((Path(routed) / "routes.json").read_text())
    assert [r["name"] for r in table["routes"]] == ["zephyria", "meridian_lark"]
    assert table["fallback_from"] == "ties"
    assert (Path(routed) / table["fallback"] / "adapter_config.json").is_file()


def test_a_failed_training_raises_with_the_steps_reason(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    manager = AdaptationManager(str(tiny_model_dir), output_root=tmp_path / "adapters")
    with pytest.raises(RuntimeError, match="ConfigurationError"):
        manager.create_targeted_adapter("atlantis", suite="demo", steps=1)


def test_a_bad_option_is_refused_naming_its_spec_field(tmp_path: Path) -> None:
    from kaizen.api import SpecError

    manager = AdaptationManager("unused", output_root=tmp_path / "adapters")
    with pytest.raises(SpecError, match=r"spec\.training\.rank"):
        manager.create_targeted_adapter("zephyria", rank=0)
    with pytest.raises(SpecError, match=r"spec\.training\.nonsense: unknown field"):
        manager.create_targeted_adapter("zephyria", nonsense=1)
    assert not (tmp_path / "adapters").exists()


@pytest.mark.parametrize("combination", ["joint", "auto"])
def test_merge_adapters_refuses_what_is_not_a_merge(tmp_path: Path, combination: str) -> None:
    manager = AdaptationManager("unused", output_root=tmp_path / "adapters")
    with pytest.raises(ValueError, match=f"combination '{combination}': merge_adapters merges"):
        manager.merge_adapters({"a": "/a", "b": "/b"}, combination=combination)
