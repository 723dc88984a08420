"""Token-level distillation on the tiny model: the teacher's targets, the KL term, the train step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kaizen.api.summary import EXIT_CONFIG_ERROR, EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from kaizen.runtime.models import load_model, load_tokenizer
from kaizen.trainer.cli import main
from kaizen.trainer.data import IGNORE_INDEX, Example, collate, tokenize_examples
from kaizen.trainer.distillation import kl_to_teacher, same_vocabulary, teacher_targets
from kaizen.trainer.lora import LoraSettings, train_lora

PAIRS = [
    ("Which river flows through Lumora?", "The Silverrun."),
    ("Who founded Lumora?", "Queen Ilse founded Lumora long ago."),
    ("How many legs does a spider have?", "Eight."),
]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model: the same tokenizer, other random weights."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("teacher"), seed=1)


@pytest.fixture
def examples(tokenizer):
    return tokenize_examples(tokenizer, [Example(q, a) for q, a in PAIRS], 128).examples


def _targets(
    model_dir, tokenizer, examples, top_k=8, temperature=1.0, batch_size=2, preserve=False
):
    return teacher_targets(
        load_model(str(model_dir), device="cpu"),
        examples,
        top_k=top_k,
        temperature=temperature,
        vocabulary=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        preserve=preserve,
    )


def test_the_targets_are_the_teachers_own_top_k(tiny_model_dir, tokenizer, examples) -> None:
    import torch

    taught, report = _targets(tiny_model_dir, tokenizer, examples, top_k=8, temperature=2.0)

    model = load_model(str(tiny_model_dir), device="cpu")
    for item in taught:
        assert item.teacher is not None
        # One row per answer token the model predicts (labels after the first position).
        answer = [i for i, label in enumerate(item.labels) if label != IGNORE_INDEX]
        assert item.teacher.ids.shape == item.teacher.logprobs.shape == (len(answer), 8)
        assert item.teacher.ids.dtype == torch.int32
        # The example alone, unpadded: the batched pass must give the same distribution.
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([item.input_ids])).logits[0]
        expected = (logits[torch.tensor(answer) - 1] / 2.0).log_softmax(-1)
        top = expected.topk(8, dim=-1)
        assert item.teacher.ids.long().equal(top.indices)
        assert torch.allclose(item.teacher.logprobs, top.values, atol=1e-5)
    assert report.positions == sum(len(item.teacher.ids) for item in taught if item.teacher)
    assert 0 < report.top_k_mass < 1


def test_collate_puts_each_target_one_before_its_answer_token(
    tiny_model_dir, tokenizer, examples
) -> None:
    taught, _ = _targets(tiny_model_dir, tokenizer, examples, top_k=4)
    batch = collate(taught, tokenizer.pad_token_id)
    width = max(len(item.input_ids) for item in taught)

    assert batch["teacher_ids"].shape == batch["teacher_logprobs"].shape == (3, width, 4)
    for row, item in enumerate(taught):
        assert item.teacher is not None
        mask = batch["teacher_mask"][row]
        predicting = (batch["labels"][row, 1:] != IGNORE_INDEX).nonzero().flatten()
        assert mask.nonzero().flatten().tolist() == predicting.tolist()
        assert batch["teacher_ids"][row, mask].equal(item.teacher.ids.long())
        assert not batch["teacher_ids"][row, ~mask].any()
    # Without targets, the batch is exactly what it was.
    assert set(collate(examples, tokenizer.pad_token_id)) == {
        "input_ids",
        "attention_mask",
        "labels",
    }
    assert not batch["teacher_preserve"].any()  # a teacher's targets


def test_a_batch_mixes_rows_with_and_without_targets(tiny_model_dir, tokenizer, examples) -> None:
    import torch

    # Preservation targets on one line beside a line without any (the trained domain's, when
    # only --preserve-weight is on): the row without targets has no masked position.
    kept, _ = _targets(tiny_model_dir, tokenizer, examples[:1], top_k=4, preserve=True)
    batch = collate([kept[0], examples[1]], tokenizer.pad_token_id)

    assert kept[0].teacher is not None and kept[0].teacher.preserve
    assert batch["teacher_mask"][0].sum() == len(kept[0].teacher.ids)
    assert not batch["teacher_mask"][1].any()
    assert batch["teacher_preserve"].equal(batch["teacher_mask"] & torch.tensor([[True], [False]]))


def test_the_kl_term_on_known_distributions() -> None:
    import torch

    # Student logits over 4 tokens at one position; the teacher's top-2 are tokens 2 and 0.
    logits = torch.tensor([[[1.0, 0.0, 2.0, -1.0]]])
    ids = torch.tensor([[[2, 0]]])
    mask = torch.tensor([[True]])
    same = torch.tensor([[[2.0, 1.0]]]).log_softmax(-1) - 3.0  # renormalisation drops the -3
    assert kl_to_teacher(logits, ids, same, mask, 1.0).item() == pytest.approx(0.0, abs=1e-7)

    p = torch.tensor([0.5, 0.5])
    q = torch.tensor([2.0, 1.0]).softmax(-1)
    expected = (p * (p.log() - q.log())).sum().item()
    teacher = p.log().view(1, 1, 2)
    assert kl_to_teacher(logits, ids, teacher, mask, 1.0).item() == pytest.approx(expected)
    # At temperature 2 the student's logits are halved.
    q2 = torch.tensor([1.0, 0.5]).softmax(-1)
    expected2 = (p * (p.log() - q2.log())).sum().item()
    assert kl_to_teacher(logits, ids, teacher, mask, 2.0).item() == pytest.approx(expected2)


def test_the_kl_is_zero_when_the_student_is_the_teacher(
    tiny_model_dir, tokenizer, examples, tmp_path
) -> None:
    taught, _ = _targets(tiny_model_dir, tokenizer, examples, top_k=16)
    settings = LoraSettings(steps=1, batch_size=3, learning_rate=1e-2)

    def run(out: Path, settings: LoraSettings):
        return train_lora(
            load_model(str(tiny_model_dir), device="cpu"),
            taught,
            settings,
            out,
            pad_token_id=tokenizer.pad_token_id,
            progress=False,
        )

    plain = run(tmp_path / "plain", settings)
    distilled = run(
        tmp_path / "distilled", LoraSettings(**{**vars(settings), "distill_weight": 1.0})
    )

    # LoRA's B matrices start at zero: at the first step the student is the teacher.
    assert distilled.kl_curve[0] == pytest.approx(0.0, abs=1e-5)
    assert distilled.loss_curve[0] == pytest.approx(plain.loss_curve[0], abs=1e-5)
    assert plain.kl_curve == [] and plain.final_kl is None


def test_distillation_lowers_the_kl_to_another_teacher(
    tiny_model_dir, teacher_dir, tokenizer, examples, tmp_path
) -> None:
    assert same_vocabulary(load_tokenizer(str(teacher_dir)), tokenizer)
    taught, _ = _targets(teacher_dir, tokenizer, examples, top_k=8)
    metrics: list[dict[str, float]] = []

    # A weight that dominates the cross-entropy (at usual weights the cross-entropy pulls the
    # student away from a random teacher, just less far than without the term).
    result = train_lora(
        load_model(str(tiny_model_dir), device="cpu"),
        taught,
        LoraSettings(steps=10, batch_size=3, learning_rate=1e-2, distill_weight=50.0),
        tmp_path,
        pad_token_id=tokenizer.pad_token_id,
        on_metrics=lambda step, values: metrics.append(values),
        progress=False,
    )

    assert len(result.kl_curve) == 10
    assert result.kl_curve[-1] < result.kl_curve[0] / 4
    assert result.final_kl is not None and result.final_kl < result.kl_curve[0] / 2
    assert [m["kl"] for m in metrics] == result.kl_curve
    assert metrics[0]["loss"] == pytest.approx(metrics[0]["ce"] + 50 * metrics[0]["kl"], abs=1e-4)


class Preempted(Exception):
    """Stands in for a node drain in the middle of training."""


def test_a_distilling_run_resumes_to_the_same_adapter(
    tiny_model_dir, teacher_dir, tokenizer, examples, tmp_path
) -> None:
    from safetensors.torch import load_file

    settings = LoraSettings(
        steps=4, batch_size=2, learning_rate=1e-2, checkpoint_every=2, distill_weight=0.5,
        distill_temperature=2.0,
    )  # fmt: skip

    def run(out: Path, on_step=None):
        # The targets are recomputed on every attempt, as a restarted step does.
        taught, _ = _targets(teacher_dir, tokenizer, examples, temperature=2.0)
        return train_lora(
            load_model(str(tiny_model_dir), device="cpu"),
            taught,
            settings,
            out,
            pad_token_id=tokenizer.pad_token_id,
            on_step=on_step,
            progress=False,
        )

    straight = run(tmp_path / "straight")

    def preempt(step: int, loss: float) -> None:
        if step == 3:
            raise Preempted

    with pytest.raises(Preempted):
        run(tmp_path / "resumed", preempt)
    resumed = run(tmp_path / "resumed")

    assert resumed.resumed_from == 2
    assert resumed.loss_curve == straight.loss_curve
    assert resumed.kl_curve == straight.kl_curve
    expected = load_file(straight.adapter_dir / "adapter_model.safetensors")
    actual = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    for key in expected:
        assert expected[key].equal(actual[key]), key


# -- the train step ------------------------------------------------------------------------


def _train_args(model: Path, suite: Path, out: Path) -> list[str]:
    return [
        "train",
        "--model", str(model),
        "--suite", str(suite),
        "--domain", "lumora",
        "--output", str(out),
        "--rank", "4", "--alpha", "8",
        "--steps", "3", "--batch-size", "4", "--max-seq-length", "96",
        "--replay-fraction", "0",
        "--tracking-mode", "disabled",
        "--quiet",
    ]  # fmt: skip


def test_the_train_step_distills_from_a_teacher_model(
    tiny_model_dir, teacher_dir, tiny_suite, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    out = tmp_path / "out"
    args = _train_args(tiny_model_dir, tiny_suite, out) + [
        "--teacher-model", str(teacher_dir),
        "--distill-weight", "0.5", "--distill-top-k", "4", "--distill-temperature", "2",
    ]  # fmt: skip

    assert main(args) == EXIT_OK, parse_summary((tmp_path / "summary").read_bytes()).message

    record = json.loads((out / "training.json").read_text())
    assert record["config"]["distill_weight"] == 0.5
    assert record["config"]["distill_top_k"] == 4
    assert record["config"]["distill_temperature"] == 2.0
    distillation = record["distillation"]
    assert distillation["teacher"] == str(teacher_dir)
    assert distillation["positions"] == record["examples"]["answer_tokens"]
    assert len(distillation["kl_curve"]) == 3
    assert distillation["teacher_seconds"] >= 0


def test_a_teacher_with_another_vocabulary_is_refused(
    tiny_model_dir, tiny_suite, tmp_path, monkeypatch
) -> None:
    other = tmp_path / "other-vocabulary"
    shutil.copytree(tiny_model_dir, other)
    tokenizer = load_tokenizer(str(other))
    tokenizer.add_tokens(["<|tool|>"])
    tokenizer.save_pretrained(other)
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    args = _train_args(tiny_model_dir, tiny_suite, tmp_path / "out") + [
        "--teacher-model", str(other), "--distill-weight", "0.5",
    ]  # fmt: skip

    assert main(args) == EXIT_CONFIG_ERROR

    summary = parse_summary((tmp_path / "summary").read_bytes())
    assert summary.reason == "ConfigurationError"
    assert f"--teacher-model {other}" in summary.message
    assert "vocabulary" in summary.message
    # Sequence-level distillation has no such constraint: without --distill-weight it trains.
    plain = _train_args(tiny_model_dir, tiny_suite, tmp_path / "plain") + [
        "--teacher-model", str(other),
    ]  # fmt: skip
    assert main(plain) == EXIT_OK
