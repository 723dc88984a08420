"""`training.json`, `data_card.json` and `merge.json`: what the train and merge steps leave behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from kaizen.api import fields as f
from kaizen.api.artifacts_base import (
    VERSION_KEY,
    Artifact,
    ModelRef,
    Record,
    SuiteRef,
    optional_key,
)

# -- training.json ---------------------------------------------------------------------------


class LoraConfig(Record):
    """The LoRA and training settings of a step that trained an adapter (train, joint)."""

    rank: int
    """LoRA rank."""
    alpha: int
    """LoRA alpha."""
    dropout: float
    """Dropout on the LoRA input."""
    target_modules: list[str]
    """Modules that got LoRA weights, or `all-linear`."""
    learning_rate: float
    """AdamW learning rate (the peak, under a decaying schedule)."""
    steps: int
    """Optimiser steps asked for."""
    batch_size: int
    """Examples per step."""
    seed: int
    """Seed of initialisation, dropout and batch order."""
    max_grad_norm: float
    """Gradient clipping norm (0: off)."""
    ema_decay: float | None = optional_key()
    """The adapter is a moving average of its weights over the last steps at this decay
    (absent: the last step's weights)."""
    checkpoint_every: int
    """Steps between checkpoints."""
    max_seq_length: int
    """Tokens per example, at most."""
    group_by_length: bool = False
    """Batches grouped by example length within seeded windows (less padding)."""
    precision: str = f.DEFAULT_PRECISION
    """`auto`, `bf16` or `fp32` as asked (`autocast` says what ran)."""
    gradient_checkpointing: bool = False
    """Activations recomputed in the backward pass."""
    packing: bool = False
    """Each batch's examples packed into fewer rows (attention kept within each example)."""
    pack_length: int = 0
    """Tokens per packed row (0: the batch's longest example)."""
    lr_schedule: str = f.DEFAULT_LR_SCHEDULE
    """`constant`, `linear` or `cosine` (after the warmup: stay, or decay to 0 at the end)."""
    warmup_ratio: float = f.DEFAULT_WARMUP_RATIO
    """Share of the steps the learning rate rose over."""
    quantization: str = f.DEFAULT_QUANTIZATION
    """`none`, or `4bit`: the frozen base in 4-bit NF4 (QLoRA)."""
    parallelism: str = f.DEFAULT_PARALLELISM
    """`ddp` (the base on every process) or `fsdp` (the base sharded over them)."""
    processes: int = 1
    """Training processes (ranks) that shared each batch: GPUs per node times nodes."""


class TrainingConfig(LoraConfig):
    """Everything that decided the adapter: the LoRA settings and how the training set was made."""

    capability_weight: int
    """Copies of each example of a targeted capability."""
    replay_fraction: float
    """Share of the training set drawn from other domains (rehearsal)."""
    replay_examples: int
    """Rehearsal examples added."""
    anchor_ratio: float = 0.0
    """Anchors added per rehearsal line (`--anchor-ratio`; 0: none)."""
    preserve_weight: float = 0.0
    """Weight of the KL to the model before training on the rehearsal and anchor lines
    (`--preserve-weight`; 0: off)."""
    synthesis_examples: int = 0
    """Most items synthesised from the domain's knowledge (0: none)."""
    passes: float | None = None
    """Passes over the training set the steps were derived from (null: `steps` as given)."""
    max_steps: int | None = None
    """With `passes`, the most steps allowed."""
    min_steps: int | None = None
    """With `passes`, the fewest steps allowed (null: before version 3, or no passes)."""
    teacher: str = "none"
    """Distillation mode: `none` or `context`."""
    teacher_model: str | None = None
    """The teacher model (null: the model being trained)."""
    teacher_share: float = 1.0
    """Share of the synthesised items the teacher answered."""
    distill_weight: float = 0.0
    """Weight of the token-level distillation KL term (0: off)."""
    distill_top_k: int = f.DEFAULT_DISTILL_TOP_K
    """Teacher tokens per answer position the KL compared."""
    distill_temperature: float = f.DEFAULT_DISTILL_TEMPERATURE
    """Temperature of the KL's distributions (the term is scaled by its square)."""


class PlanUse(Record):
    """What the step took from the plan."""

    path: str | None
    """The `plan.json` given (null: none)."""
    targeted_capabilities: list[str]
    """Capabilities whose examples were repeated."""


class ExampleCounts(Record):
    """How the training set was made."""

    pool: int
    """Examples from the suite's training pool for the domain."""
    extra: int
    """Examples from `--extra-data`."""
    training_set: int
    """Examples after repetition and rehearsal."""
    used: int
    """Examples left after tokenisation."""
    truncated: int
    """Examples cut at `max_seq_length`."""
    dropped_no_answer_tokens: int
    """Examples dropped because their prompt alone filled `max_seq_length`."""
    answer_tokens: int
    """Answer tokens (the ones with a loss) in all."""
    synthesized: int = 0
    """Items synthesised from knowledge that made it into the training set."""
    teacher: int = 0
    """Of those, items answered by the teacher."""
    contaminated: int = 0
    """Lines dropped by the contamination guard (listed in the data card)."""


class DistillationUse(Record):
    """What token-level distillation did (docs/training-data.md)."""

    teacher: str | None
    """The teacher model (null: the model being trained, with its adapters)."""
    positions: int
    """Answer tokens that got the teacher's top-k targets."""
    top_k_mass: float
    """Mean probability the teacher put on its top-k tokens: how much of its distribution
    the KL saw."""
    teacher_seconds: float
    """Wall time of the teacher's pass over the training set (not in `train_seconds`)."""
    kl_curve: list[float]
    """The KL term (before weight and temperature²) of every step."""
    final_kl: float | None
    """Mean KL term over the last steps."""


class PreservationUse(Record):
    """What the KL to the model before training did on the rehearsal and anchor lines
    (`--preserve-weight`, docs/training-data.md)."""

    weight: float
    """The term's weight."""
    examples: int
    """Lines that got the model's own top-k targets (rehearsal and anchors)."""
    positions: int
    """Their answer tokens."""
    top_k_mass: float
    """Mean probability the model put on its top-k tokens there."""
    seconds: float
    """Wall time of the model's pass over those lines (not in `train_seconds`)."""
    kl_curve: list[float]
    """The KL term (before weights and temperature²) of every step, over every answer token
    with targets (a teacher's too, when distilling)."""
    final_kl: float | None
    """Mean KL term over the last steps."""


def _training_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A training.json of version 1 as version 2: its steps were a fixed count (no passes)."""
    return {**raw, VERSION_KEY: 2}


def _training_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A training.json of version 2 as version 3: the passes rule had no lower bound."""
    return {**raw, VERSION_KEY: 3}


def _training_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """A training.json of version 3 as version 4: no rehearsal line was an anchor."""
    return {**raw, VERSION_KEY: 4}


def _training_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """A training.json of version 4 as version 5: nothing was preserved by a KL term."""
    return {**raw, VERSION_KEY: 5}


class TrainingRecord(Artifact):
    """`training.json`: how one domain's adapter was trained."""

    FILE_NAME: ClassVar[str] = "training.json"
    KIND: ClassVar[str] = "training record"

    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda raw: _training_v4(_training_v3(_training_v2(_training_v1(raw)))),
        2: lambda raw: _training_v4(_training_v3(_training_v2(raw))),
        3: lambda raw: _training_v4(_training_v3(raw)),
        4: _training_v4,
    }

    schema_version: Literal[5] = Field(default=5, alias="schema")
    """Layout version of this file (2: `passes` and `max_steps` in `config`; 3: `min_steps`;
    4: `anchor_ratio`; 5: `preserve_weight` and `preservation`)."""
    step: str
    """Step name, e.g. `train-geography`."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    domain: str
    """The domain trained."""
    suite: SuiteRef
    """The suite whose training pool was used."""
    model: ModelRef
    """The base model."""
    config: TrainingConfig
    """Training settings."""
    plan: PlanUse
    """What was taken from the plan."""
    examples: ExampleCounts
    """The training set."""
    steps: int
    """Optimiser steps done (including those before a resume)."""
    resumed_from: int
    """Step of the checkpoint this run resumed from (0: a fresh run)."""
    loss_curve: list[float]
    """Training loss of every step (with distillation: cross-entropy + weight × T² × KL)."""
    final_loss: float
    """Mean loss over the last steps."""
    train_seconds: float
    """Time spent in optimiser steps."""
    seconds_per_step: float
    """`train_seconds` per step."""
    tokens_per_second: float | None
    """Training tokens per second (null when no time was measured)."""
    peak_memory_mb: float
    """Peak memory, MiB."""
    trainable_parameters: int
    """Parameters of the adapter."""
    total_parameters: int
    """Parameters of base model plus adapter."""
    device: str
    """Torch device."""
    autocast: str | None
    """Autocast dtype, when mixed precision was used."""
    versions: dict[str, str]
    """Versions of torch, transformers and peft."""
    adapter: str
    """The adapter folder (peft format)."""
    data_card: str | None = None
    """The step's `data_card.json`: where every training line came from."""
    distillation: DistillationUse | None = None
    """Token-level distillation, when it was on."""
    preservation: PreservationUse | None = None
    """The KL to the model before training on the rehearsal and anchor lines, when it was on."""


# -- data_card.json --------------------------------------------------------------------------


class CardLine(Record):
    """One training line, as shown in a data card."""

    source: str
    """Where it came from: `pool`, `FILE:LINE` (extra data), `synthesis:<kind>`,
    `teacher:<kind>`, `replay:<domain>`."""
    capability: str | None
    """The capability it exercises."""
    question: str
    """The question."""
    answer: str
    """The answer trained on."""


class DroppedLine(Record):
    """A line left out, and why."""

    source: str
    """Where it came from."""
    question: str
    """Its question."""
    answer: str | None = None
    """Its answer (a teacher's rejected answer, for instance)."""
    reason: str
    """Why it was left out."""


class SynthesisReport(Record):
    """How the synthesised share of the training set was chosen."""

    budget: int
    """Most items asked for (`--synthesis-examples`)."""
    facts: int
    """Facts of the domain."""
    passages: int
    """Passages of the domain."""
    available: dict[str, int]
    """Candidate items the knowledge supports, by capability."""
    chosen: dict[str, int]
    """Items chosen, by capability."""
    weights: dict[str, float]
    """Weight of each capability in the mix (docs/training-data.md)."""
    diagnosis: str | None
    """The analysis's knowledge-vs-reasoning hint for the domain."""
    targeted_capabilities: list[str]
    """Capabilities the plan targets."""
    failed_items: int
    """The domain's failed evaluation items the synthesis was steered by."""
    behind_failures: int
    """Candidates about entities of failed items (taken first)."""
    earlier_lines: int = 0
    """Synthesised questions the model's promoted adapters were already trained on (found
    through their `data.jsonl`); candidates among them come after new ones."""
    repeated: int = 0
    """Chosen items that repeat such an earlier line (when too few new ones remain)."""


class TeacherUse(Record):
    """What the teacher did."""

    mode: str
    """`context`: the teacher saw the facts in its prompt."""
    model: str | None
    """The teacher model (null: the model being trained)."""
    share: float
    """Share of the synthesised items it was asked."""
    asked: int
    """Answers asked for."""
    accepted: int
    """Answers that stated the known fact, kept for training."""
    paraphrases_asked: int = 0
    """Rewordings of recall questions asked for (`--teacher-paraphrases`)."""
    paraphrases_kept: int = 0
    """Rewordings kept: questions naming the same entities, not giving the answer away."""


class RehearsalReport(Record):
    """How the rehearsal lines were spread over the other domains."""

    fraction: float
    """Share of the set drawn from the other domains (`--replay-fraction`)."""
    focus: float
    """Share of those lines spread by resemblance rather than evenly (`--replay-focus`)."""
    knowledge: bool = False
    """Whether the other domains' facts were rehearsed in every wording (`--replay-knowledge`)."""
    resemblance: dict[str, float]
    """Each other domain's resemblance to this set: cosine of TF-IDF word vectors, in [0, 1]."""
    shares: dict[str, float]
    """Each other domain's share of the rehearsal lines (`by_domain` has the counts drawn)."""
    anchor_ratio: float = 0.0
    """Anchors asked for per rehearsal line (`--anchor-ratio`)."""
    anchors: int = 0
    """Anchors in the set: this domain's relations asked of other domains' entities, with the
    model's own answers before training (`by_source`'s `anchor`)."""
    anchors_asked: int = 0
    """Anchor questions the model answered (the rest of the answers were not needed), general
    anchors included."""
    general: int = 0
    """General anchors in the set: the model's own answers to everyday questions before
    training, rehearsed in the share of the other domains that gave no line, all of the
    rehearsal when none did (`kaizen.trainer.general`; `by_source`'s `anchor`)."""


def _data_card_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A data_card.json of version 1 as version 2: its steps were a fixed count (no passes)."""
    return {**raw, VERSION_KEY: 2}


def _data_card_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A data_card.json of version 2 as version 3: how rehearsal was spread was not recorded."""
    return {**raw, VERSION_KEY: 3}


def _data_card_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """A data_card.json of version 3 as version 4: no rehearsal line was an anchor."""
    return {**raw, VERSION_KEY: 4}


def _data_card_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """A data_card.json of version 4 as version 5: no rehearsal line was a general anchor."""
    return {**raw, VERSION_KEY: 5}


class DataCard(Artifact):
    """`data_card.json`: the training set of one adapter, where each line came from and why."""

    FILE_NAME: ClassVar[str] = "data_card.json"
    KIND: ClassVar[str] = "data card"
    #: The training set it describes, one JSON line per example, in the same folder.
    DATA_FILE: ClassVar[str] = "data.jsonl"

    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda raw: _data_card_v4(_data_card_v3(_data_card_v2(_data_card_v1(raw)))),
        2: lambda raw: _data_card_v4(_data_card_v3(_data_card_v2(raw))),
        3: lambda raw: _data_card_v4(_data_card_v3(raw)),
        4: _data_card_v4,
    }

    schema_version: Literal[5] = Field(default=5, alias="schema")
    """Layout version of this file (2: `passes`; 3: `rehearsal`; 4: the anchors in
    `rehearsal`)."""
    step: str
    """Step name, e.g. `train-geography`."""
    domain: str
    """The domain trained."""
    suite: SuiteRef
    """The suite the pool and knowledge came from."""
    seed: int
    """The seed every choice was made with (the same seed gives the same set)."""
    steps: int
    """Optimiser steps of this adapter."""
    passes: float | None = None
    """The passes over this set that `steps` were derived from (`⌈passes × total / batch
    size⌉`, at most the step's `--max-steps`); null: a fixed step count."""
    learning_rate: float
    """Learning rate of this adapter."""
    total: int
    """Lines in the training set (repeats and replay included)."""
    by_source: dict[str, int]
    """Lines by source kind (`pool`, `extra`, `synthesis:<kind>`, `teacher:<kind>`, `replay`)."""
    by_capability: dict[str, int]
    """Lines by capability."""
    by_domain: dict[str, int]
    """Lines by domain (replay brings the others)."""
    synthesis: SynthesisReport | None = None
    """How the synthesised items were chosen (null: synthesis off or no knowledge)."""
    teacher: TeacherUse | None = None
    """Distillation (null: off)."""
    rehearsal: RehearsalReport | None = None
    """How the rehearsal lines were spread (null: none, or a card written before version 3)."""
    dropped: list[DroppedLine] = Field(default_factory=list)
    """Lines left out: contamination, duplicates, rejected teacher answers."""
    unread: list[str] | None = optional_key()
    """The parts of the domain's documents (the suite's `documents`) not read as prose, so not
    learnt from: `file:line: what` each (a code block, a table, front matter); absent when
    nothing was left out."""
    examples: list[CardLine] = Field(default_factory=list)
    """A few lines of each source."""
    data: str
    """The training set itself, one JSON line each (`data.jsonl`)."""


# -- merge.json ------------------------------------------------------------------------------


class MergeConfig(Record):
    """The merge settings asked for."""

    combination: str
    """peft combination type."""
    density: float
    """Share of weights kept by the pruning combinations."""
    seed: int
    """Seed of the random pruning (`dare_*`)."""
    candidates: list[str] = Field(default_factory=list)
    """Further methods asked for (`--candidate`)."""
    search_densities: list[float] = Field(default_factory=list)
    """Densities also tried (`--search-density`)."""
    search_weights: list[str] = Field(default_factory=list)
    """Weight rules also tried (`--search-weight`)."""
    routed: bool | None = optional_key()
    """True when routed adapters were also asked for (`--routed`); absent otherwise."""


class MergePointRecord(Record):
    """One merge the step made (`kaizen.api.merge_grid`)."""

    name: str
    """The point's name: its method, `-d<density>` and `-wn`/`-winvn` when not the plain one."""
    method: str
    """peft combination type."""
    density: float | None
    """Share of each adapter's entries kept (null: the method prunes nothing)."""
    weight_rule: f.WeightRule
    """Each adapter's weight by the number n of adapters: `one`, `n` or `1/n`."""
    weight: float
    """That weight, for this merge's number of adapters."""
    rank: int
    """Rank of the merged adapter."""
    adapter: str
    """Its folder (`adapter/` for the first, `candidates/<name>/adapter` for the others)."""
    seconds: float
    """Wall time of combining and saving it (the model load is not in it)."""


class MergedSource(Record):
    """One adapter that went into the merge."""

    domain: str
    """The adapter's domain."""
    path: str
    """Its folder."""
    rank: int
    """Its LoRA rank."""
    alpha: float
    """Its LoRA alpha."""
    target_modules: list[str] | str | None
    """Its target layer names (or peft's pattern string)."""


def _merge_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A merge.json of version 1 as version 2: it did not list its merges."""
    return {**raw, VERSION_KEY: 2}


class MergeRecord(Artifact):
    """`merge.json`: how the domain adapters were combined into the candidate."""

    FILE_NAME: ClassVar[str] = "merge.json"
    KIND: ClassVar[str] = "merge record"

    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _merge_v1}

    schema_version: Literal[2] = Field(default=2, alias="schema")
    """Layout version of this file (2: `merges`, and the search settings in `config`)."""
    step: str
    """Step name."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    model: ModelRef
    """The base model."""
    config: MergeConfig
    """Merge settings asked for."""
    combination: str
    """The combination applied (`copy` when there was a single source)."""
    rank: int
    """Rank of the merged adapter."""
    sources: list[MergedSource]
    """The adapters merged, in order."""
    seconds: float
    """Wall time of the merge."""
    versions: dict[str, str]
    """Versions of torch, transformers and peft."""
    adapter: str
    """The merged adapter folder (peft format)."""
    merges: list[MergePointRecord] = Field(default_factory=list)
    """Every merge made, the first (`adapter`) first; empty when a single source was copied
    and in a version-1 file."""
    routed: dict[str, str] | None = optional_key()
    """The folders of routed adapters (`routes.json`, `kaizen.runtime.routing`) written beside
    the merges, by candidate name (`routed`; `routed-<first merge>`, whose prompts that name
    no route get that merge); absent unless `--routed` asked for them."""
