"""The one `train_lora` call both training steps make (`kaizen.trainer.steps.AdapterRun`).

The train and joint steps hand their model, examples and settings to `AdapterRun.train`; what
it adds is theirs alike: every step's metrics logged as `train/<name>`, the checkpoint key
(model, revision, adapters and what the step names), progress on rank 0 only, and the
tracker's summary and adapter artifact (rank 0 only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaizen.api.args_combination import JointArgs
from kaizen.api.args_training import TrainArgs
from kaizen.runtime.models import load_model
from kaizen.runtime.tracking import Tracker
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.distributed import SINGLE, Parallel
from kaizen.trainer.steps import AdapterRun, base_key, lora_settings
from tests.trainer.conftest import LUMORA
from tests.trainer.test_joint import _joint_argv


class RecordingRun:
    """Stands in for a W&B run: what the tracker was given."""

    def __init__(self) -> None:
        self.logged: list[tuple[int | None, dict[str, Any]]] = []
        self.summary: dict[str, Any] = {}
        self.artifacts: list[Any] = []

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.logged.append((step, metrics))

    def log_artifact(self, artifact: Any) -> None:
        self.artifacts.append(artifact)


def test_the_checkpoint_key_is_the_one_checkpoints_on_disk_carry() -> None:
    """A checkpoint written before the steps shared this key must still be resumed."""
    joint = JointArgs.from_argv(_joint_argv(Path("/m"), ["a=/a.jsonl"], Path("/o")))
    assert base_key(joint, "joint") == '["/m", null, [], "joint"]'
    train = TrainArgs.from_argv(
        ["train", "--model", "/m", "--revision", "r1", "--adapter", "/v1", "--suite", "/s"]
        + ["--domain", "d", "--output", "/o"]
    )
    assert base_key(train) == '["/m", "r1", ["/v1"]]'
    assert base_key(train, {"teacher": "/t"}) == '["/m", "r1", ["/v1"], {"teacher": "/t"}]'


def test_an_adapter_run_logs_every_step_and_resumes_only_a_checkpoint_of_its_own_base(
    tiny_model_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    args = JointArgs.from_argv(
        _joint_argv(tiny_model_dir, ["lumora=/a.jsonl"], tmp_path, "--steps", "2")
    )
    settings = lora_settings(args)
    examples = tokenize_examples(
        tokenizer, [Example(q, a) for q, a in LUMORA], args.max_seq_length
    ).examples

    def train(base: list[Any]) -> tuple[Any, RecordingRun]:
        recorded = RecordingRun()
        run = AdapterRun(args, tmp_path, SINGLE, Tracker(recorded))
        result = run.train(
            load_model(str(tiny_model_dir), device="cpu"),
            examples,
            settings,
            pad_token_id=tokenizer.pad_token_id,
            base=base,
        )
        run.finish({"final_loss": result.final_loss}, "joint-adapter", result.adapter_dir)
        return result, recorded

    first, recorded = train(["joint"])
    assert first.resumed_from == 0 and first.steps == 2
    assert [step for step, _ in recorded.logged] == [1, 2]
    assert all(set(metrics) == {"train/loss", "train/lr"} for _, metrics in recorded.logged)
    assert [m["train/lr"] for _, m in recorded.logged] == [settings.learning_rate] * 2
    assert [metrics["train/loss"] for _, metrics in recorded.logged] == first.loss_curve
    assert recorded.summary == {"final_loss": first.final_loss}
    assert [artifact.name for artifact in recorded.artifacts] == ["joint-adapter"]

    # The same base finds its finished checkpoint; another base (a train step's) does not.
    again, _ = train(["joint"])
    assert again.resumed_from == 2
    other, _ = train([])
    assert other.resumed_from == 0 and other.steps == 2


def test_only_rank_0_uploads_the_adapter(tmp_path: Path) -> None:
    args = JointArgs.from_argv(_joint_argv(Path("/m"), ["a=/a.jsonl"], tmp_path))
    (tmp_path / "adapter").mkdir()
    for rank, uploads in ((1, 0), (0, 1)):
        recorded = RecordingRun()
        run = AdapterRun(args, tmp_path, Parallel(rank=rank, world_size=2), Tracker(recorded))
        run.finish({"final_loss": 0.5}, "joint-adapter", tmp_path / "adapter")
        assert recorded.summary == {"final_loss": 0.5}
        assert len(recorded.artifacts) == uploads
