"""Training data for one domain: the suite's pool, the plan's emphasis, extra examples, tokens.

The training set of a train-`<domain>` step is the suite's training pool for that domain
plus any examples from an `--extra-data` JSONL file, with the examples of the
capabilities the plan targets repeated so they weigh more, shuffled with the seed.
Examples are tokenised exactly as the evaluator prompts the model
(`format_training_text`), and the loss is taken on the answer tokens only.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api.artifacts import ArtifactError, ImprovementPlan, read_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.runtime.suites.records import utf8_lines

if TYPE_CHECKING:  # pragma: no cover - torch and transformers are slow to import
    import torch
    from transformers import PreTrainedTokenizerBase

#: Label value that `torch.nn.CrossEntropyLoss` (and so every HF causal LM) ignores.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One question and its reference answer."""

    question: str
    answer: str
    capability: str | None = None
    source: str = "pool"
    """`pool` for the suite's training pool, `FILE:LINE` for an extra example."""


@dataclass(frozen=True)
class TeacherTargets:
    """A teacher's top-k next-token distribution at each answer token of one example.

    Row `i` belongs to the example's `i`-th answer token (`predicted_positions`): the
    teacher's `k` most likely tokens at that position and their log-probabilities over the
    whole vocabulary at the distillation temperature.
    """

    ids: torch.Tensor
    """Token ids, int32, shape `[answer tokens, k]`, most likely first."""
    logprobs: torch.Tensor
    """Their log-probabilities, float32, same shape."""
    preserve: bool = False
    """Targets of the model before training, on a rehearsal or anchor line: their KL term
    weighs `--preserve-weight`, a teacher's `--distill-weight` (`distillation`)."""


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids of prompt + answer, with labels masked to the answer."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool = False
    teacher: TeacherTargets | None = field(default=None, compare=False, repr=False)
    """The teacher's targets for token-level distillation (`distillation.teacher_targets`)."""

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def read_plan(path: str | Path) -> ImprovementPlan:
    """Read the analyze step's `plan.json` through its model; ConfigurationError (exit 3) when unusable.

    Training uses `priority_domains` and `targeted_capabilities`; a plan written by hand
    needs only `schema` and `priority_domains` (docs/artifacts.md).
    """
    try:
        return read_artifact(path, ImprovementPlan)
    except ArtifactError as error:
        raise ConfigurationError(str(error)) from error


def _text_field(record: dict[str, Any], field: str, where: str, required: bool) -> str | None:
    value = record.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        what = "missing" if value is None else f"must be a non-empty string, got {value!r}"
        raise ConfigurationError(f"{where}: {field}: {what}")
    return unicodedata.normalize("NFC", value)  # as suites are read (records.read_jsonl)


def read_extra_examples(path: str | Path, domain: str) -> list[Example]:
    """Examples for `domain` from a JSONL file of `{question, answer[, domain, capability]}` lines.

    Lines that name another domain are skipped, so one file can feed every train step.
    Blank lines are ignored; anything else malformed is an error naming file and line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"extra data file {path} does not exist") from None
    except OSError as error:
        raise ConfigurationError(f"extra data file {path} cannot be read: {error}") from None
    # As suite files are read: past a byte order mark, other encodings refused at their line.
    lines = utf8_lines(path, data)
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"{where}: invalid JSON: {error.msg}") from None
        if not isinstance(record, dict):
            raise ConfigurationError(
                f"{where}: expected a JSON object, got {type(record).__name__}"
            )
        question = _text_field(record, "question", where, required=True)
        answer = _text_field(record, "answer", where, required=True)
        line_domain = _text_field(record, "domain", where, required=False)
        capability = _text_field(record, "capability", where, required=False)
        if line_domain is not None and line_domain != domain:
            continue
        assert question is not None and answer is not None  # required fields
        examples.append(Example(question, answer, capability, source=where))
    return examples


def examples_from_pool(pool: Iterable[Any]) -> list[Example]:
    """Convert a suite's training pool (`TrainExample`s) to `Example`s."""
    return [Example(item.question, item.answer, getattr(item, "capability", None)) for item in pool]


def assemble_examples(
    pool: Sequence[Example],
    *,
    domain: str,
    suite: str,
    extra: Sequence[Example] = (),
    replay: Sequence[Example] = (),
    targeted_capabilities: Sequence[str] = (),
    capability_weight: int = 2,
    seed: int = 0,
) -> list[Example]:
    """The shuffled training set: pool + extra (targeted capabilities repeated `capability_weight` times) + replay."""
    if capability_weight < 1:
        raise ConfigurationError(f"capability weight must be at least 1, got {capability_weight}")
    if not pool and not extra:
        raise ConfigurationError(
            f"suite {suite!r} has no training examples for domain {domain!r} (and no --extra-data was given)"
        )
    targeted = set(targeted_capabilities)
    examples: list[Example] = []
    for example in [*pool, *extra]:
        # Repetition rather than loss weights: it keeps the loop a plain mean over
        # answer tokens and makes a targeted example appear in more batches.
        copies = capability_weight if example.capability in targeted else 1
        examples.extend([example] * copies)
    examples.extend(replay)
    random.Random(seed).shuffle(examples)
    return examples


def tokenize_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, max_seq_length: int
) -> TokenizedExample:
    """Prompt and answer tokens with labels on the answer (and end of turn) only."""
    from kaizen.runtime.models import format_training_text

    prompt, full_text = format_training_text(tokenizer, example.question, example.answer)
    # Tokenise the prompt on its own, exactly as the evaluator does (the template already
    # holds the special tokens), so the prompt/answer boundary is exact and the prompt
    # tokens are the ones the model sees at evaluation time.
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full_text[len(prompt) :], add_special_tokens=False)["input_ids"]
    input_ids = list(prompt_ids) + list(answer_ids)
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(answer_ids)
    truncated = len(input_ids) > max_seq_length
    return TokenizedExample(
        tuple(input_ids[:max_seq_length]), tuple(labels[:max_seq_length]), truncated
    )


@dataclass(frozen=True)
class TokenizedSet:
    """Tokenised training examples and what truncation did to them."""

    examples: tuple[TokenizedExample, ...]
    truncated: int
    """Examples cut at `max_seq_length` that kept some answer tokens."""
    dropped: int
    """Examples whose prompt alone filled `max_seq_length`: nothing left to learn from."""
    sources: tuple[str, ...] = ()
    """Each kept example's `Example.source`, in the same order."""


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_seq_length: int
) -> TokenizedSet:
    """Tokenise every example; drop those with no answer token left after truncation."""
    if max_seq_length < 2:
        raise ConfigurationError(f"max sequence length must be at least 2, got {max_seq_length}")
    kept, sources, truncated, dropped = [], [], 0, 0
    for example in examples:
        tokens = tokenize_example(tokenizer, example, max_seq_length)
        if tokens.answer_tokens == 0:
            dropped += 1
            continue
        truncated += tokens.truncated
        kept.append(tokens)
        sources.append(example.source)
    if not kept:
        raise ConfigurationError(
            f"max sequence length {max_seq_length} leaves no answer token in any of the "
            f"{len(examples)} examples: the prompts alone are that long"
        )
    return TokenizedSet(tuple(kept), truncated, dropped, tuple(sources))


def predicted_positions(labels: Sequence[int]) -> list[int]:
    """Positions of the answer tokens a causal LM predicts: labelled, after the first token."""
    return [i for i in range(1, len(labels)) if labels[i] != IGNORE_INDEX]


#: The keys `collate` adds for token-level distillation (not model inputs).
TEACHER_KEYS = ("teacher_ids", "teacher_logprobs", "teacher_mask", "teacher_preserve")


def collate(batch: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch into `input_ids`, `attention_mask` and `labels` tensors.

    Right padding keeps every row's positions starting at 0, as in generation after the
    (left-padded) prompt; padded positions are masked out of attention and loss.

    When examples carry teacher targets, four more tensors hold them (`TEACHER_KEYS`):
    `teacher_ids` and `teacher_logprobs` (`[batch, width, k]`) at the position whose logits
    predict each answer token (one before it, as the causal LM shifts its labels),
    `teacher_mask` (`[batch, width]`), true at those positions, and `teacher_preserve`
    (`[batch, width]`), true at those of examples whose targets are `TeacherTargets.preserve`. A batch may mix
    examples with and without targets (rehearsal lines with the model's own targets beside
    the trained domain's lines): the rows without any have no masked position.
    """
    import torch

    width = max(len(item.input_ids) for item in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        length = len(item.input_ids)
        input_ids[row, :length] = torch.tensor(item.input_ids)
        labels[row, :length] = torch.tensor(item.labels)
        attention_mask[row, :length] = 1
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    taught = [item.teacher for item in batch if item.teacher is not None]
    if not taught:
        return tensors
    k = taught[0].ids.shape[1]
    teacher_ids = torch.zeros((len(batch), width, k), dtype=torch.long)
    teacher_logprobs = torch.zeros((len(batch), width, k), dtype=torch.float32)
    teacher_mask = torch.zeros((len(batch), width), dtype=torch.bool)
    teacher_preserve = torch.zeros((len(batch), width), dtype=torch.bool)
    for row, item in enumerate(batch):
        if item.teacher is None:
            continue
        answer = predicted_positions(item.labels)
        if item.teacher.ids.shape != (len(answer), k):
            raise ValueError(
                f"teacher targets of shape {tuple(item.teacher.ids.shape)} for an example "
                f"with {len(answer)} answer tokens (k = {k})"
            )
        # The logits at position i - 1 predict the token at i.
        positions = torch.tensor(answer, dtype=torch.long) - 1
        teacher_ids[row, positions] = item.teacher.ids.long()
        teacher_logprobs[row, positions] = item.teacher.logprobs.float()
        teacher_mask[row, positions] = True
        teacher_preserve[row, positions] = item.teacher.preserve
    tensors.update(
        teacher_ids=teacher_ids,
        teacher_logprobs=teacher_logprobs,
        teacher_mask=teacher_mask,
        teacher_preserve=teacher_preserve,
    )
    return tensors
