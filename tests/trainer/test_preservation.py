"""Keeping what the model knew (--preserve-weight): the KL to the model before training on the
rehearsal and anchor lines only, weighed apart from a teacher's, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.summary import EXIT_OK, SUMMARY_PATH_ENV, parse_summary
from kaizen.runtime.models import load_model
from kaizen.trainer.cli import main
from kaizen.trainer.data import Example, tokenize_examples
from kaizen.trainer.distillation import kl_to_teacher, teacher_targets
from kaizen.trainer.lora import LoraSettings, train_lora

# The line to keep (another domain's), and two lines of the domain being learned.
KEPT = ("How many legs does a spider have?", "Eight.")
LEARNED = [
    ("Which river flows through Lumora?", "The Silverrun."),
    ("Who founded Lumora?", "Queen Ilse founded Lumora long ago."),
]


@pytest.fixture
def examples(tokenizer, tiny_model_dir):
    """The kept line with the model's own targets (preserve), the learned ones without any."""
    pairs = [KEPT, *LEARNED]
    tokenized = tokenize_examples(tokenizer, [Example(q, a) for q, a in pairs], 128).examples
    kept, _ = teacher_targets(
        load_model(str(tiny_model_dir), device="cpu"),
        tokenized[:1],
        top_k=16,
        temperature=1.0,
        vocabulary=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        preserve=True,
    )
    return [*kept, *tokenized[1:]]


def test_each_position_weighs_as_its_weight_says() -> None:
    import torch

    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # two positions, two tokens
    ids = torch.tensor([[[0, 1], [0, 1]]])
    teacher = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]).log()
    mask = torch.tensor([[True, True]])
    each = kl_to_teacher(logits[:, :1], ids[:, :1], teacher[:, :1], mask[:, :1], 1.0).item()
    assert each > 0  # by symmetry both positions are this far from the teacher

    assert kl_to_teacher(logits, ids, teacher, mask, 1.0).item() == pytest.approx(each)
    weights = torch.tensor([[3.0, 0.0]])
    # The mean over both positions of 3 × KL and 0 × KL.
    assert kl_to_teacher(logits, ids, teacher, mask, 1.0, weights).item() == pytest.approx(
        1.5 * each
    )


def _train(model_dir, examples, tokenizer, out: Path, preserve_weight: float):
    return train_lora(
        load_model(str(model_dir), device="cpu"),
        examples,
        LoraSettings(steps=12, batch_size=3, learning_rate=3e-2, preserve_weight=preserve_weight),
        out,
        pad_token_id=tokenizer.pad_token_id,
        progress=False,
    )


def test_the_term_holds_the_kept_line_where_the_model_had_it(
    tiny_model_dir, tokenizer, examples, tmp_path
) -> None:
    # A weight too small to matter, and one that dominates: the same batches, the same
    # cross-entropy on every line; the KL reported is the unweighted one on the kept line.
    loose = _train(tiny_model_dir, examples, tokenizer, tmp_path / "loose", 1e-6)
    held = _train(tiny_model_dir, examples, tokenizer, tmp_path / "held", 20.0)

    # LoRA's B matrices start at zero: at the first step the student is the model before.
    assert held.kl_curve[0] == pytest.approx(0.0, abs=1e-5)
    assert held.loss_curve[0] == pytest.approx(loose.loss_curve[0], abs=1e-5)
    assert loose.kl_curve[-1] > 0.01
    assert held.kl_curve[-1] < loose.kl_curve[-1] / 2


def test_a_teachers_lines_and_the_kept_lines_weigh_apart(
    tiny_model_dir, tokenizer, examples, tmp_path
) -> None:
    # Every line with targets: the learned ones a teacher's (here the model itself, so the
    # KL starts at 0 everywhere). With the distillation weight at 0 only the kept line's KL
    # counts; the loss differs from a run that weighs both.
    model = load_model(str(tiny_model_dir), device="cpu")
    taught, _ = teacher_targets(
        model,
        examples[1:],
        top_k=16,
        temperature=1.0,
        vocabulary=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    mixed = [examples[0], *taught]

    def run(out: Path, distill: float, preserve: float):
        return train_lora(
            load_model(str(tiny_model_dir), device="cpu"),
            mixed,
            LoraSettings(
                steps=4,
                batch_size=3,
                learning_rate=3e-2,
                distill_weight=distill,
                preserve_weight=preserve,
            ),  # fmt: skip
            out,
            pad_token_id=tokenizer.pad_token_id,
            progress=False,
        )

    kept_only = run(tmp_path / "kept", 0.0, 5.0)
    both = run(tmp_path / "both", 5.0, 5.0)
    assert kept_only.loss_curve[0] == pytest.approx(both.loss_curve[0], abs=1e-5)  # KL 0 at first
    assert kept_only.loss_curve[1:] != both.loss_curve[1:]
    # A plain run refuses lines without targets only when a teacher is asked for.
    with pytest.raises(ValueError, match="some examples have no teacher targets"):
        train_lora(
            model,
            examples,
            LoraSettings(steps=1, batch_size=3, distill_weight=1.0, preserve_weight=1.0),
            tmp_path / "refused",
            pad_token_id=tokenizer.pad_token_id,
            progress=False,
        )


def test_the_train_step_preserves_the_rehearsal_lines(
    tiny_model_dir, tiny_suite, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(SUMMARY_PATH_ENV, str(tmp_path / "summary"))
    out = tmp_path / "out"
    args = [
        "train",
        "--model", str(tiny_model_dir),
        "--suite", str(tiny_suite),
        "--domain", "lumora",
        "--output", str(out),
        "--rank", "4", "--alpha", "8",
        "--steps", "3", "--batch-size", "4", "--max-seq-length", "96",
        "--replay-fraction", "0.5",
        "--preserve-weight", "2",
        "--tracking-mode", "disabled",
        "--quiet",
    ]  # fmt: skip

    assert main(args) == EXIT_OK, parse_summary((tmp_path / "summary").read_bytes()).message

    record = json.loads((out / "training.json").read_text())
    data = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    rehearsed = [line for line in data if line["source"].startswith("replay:")]
    assert rehearsed and len(rehearsed) < len(data)
    assert record["schema"] == 5
    assert record["config"]["preserve_weight"] == 2.0
    assert record["distillation"] is None
    preservation = record["preservation"]
    assert preservation["weight"] == 2.0
    assert preservation["examples"] == len(rehearsed)
    assert 0 < preservation["positions"] < record["examples"]["answer_tokens"]
    assert len(preservation["kl_curve"]) == 3
    # Without rehearsal lines there is nothing to preserve: the term is off, and says so.
    plain = tmp_path / "plain"
    args[args.index("--output") + 1] = str(plain)
    args[args.index("--replay-fraction") + 1] = "0"
    assert main(args) == EXIT_OK
    record = json.loads((plain / "training.json").read_text())
    assert record["config"]["preserve_weight"] == 0.0
    assert record["preservation"] is None
