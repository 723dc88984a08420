"""Typed arguments of the LoRA training steps: the options every training shares
(`LoraTrainingArgs`, also the joint step's base) and the per-domain train step's own
(`TrainArgs`), on the rendering and parsing of `kaizen.api.args`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from kaizen.api import fields as f
from kaizen.api.args import TRAINER, ModelArgs, Program, cli


class LoraTrainingArgs(ModelArgs):
    """Arguments of a step that trains a LoRA adapter (train, joint): the adapter's shape, the
    optimisation, and how the model is held while training (precision, gradient
    checkpointing, packing, quantization, the parallelism under torchrun). A cycle gives every
    such step its `spec.training`'s values, so that the joint adapter trains as the domain
    adapters do."""

    max_seq_length: f.MaxSeqLength = f.DEFAULT_MAX_SEQ_LENGTH
    """Truncate examples to this many tokens."""

    rank: f.LoraRank = f.DEFAULT_LORA_RANK
    """LoRA rank r."""

    alpha: f.LoraAlpha = f.DEFAULT_LORA_ALPHA
    """LoRA alpha; updates scale by alpha/rank."""

    dropout: f.LoraDropout = f.DEFAULT_LORA_DROPOUT
    """LoRA dropout."""

    target_modules: list[str] = Field(
        default_factory=lambda: list(f.DEFAULT_TARGET_MODULES),
        min_length=1,
        json_schema_extra=cli(nargs="+", metavar="NAME"),
    )
    """Modules that get LoRA weights, e.g. q_proj v_proj, or all-linear."""

    learning_rate: f.LearningRate = f.DEFAULT_LEARNING_RATE
    """AdamW learning rate (the peak, under a decaying --lr-schedule)."""

    lr_schedule: f.LrSchedule = f.DEFAULT_LR_SCHEDULE
    """After the warmup (--warmup-ratio), constant; or linear / cosine: a decay to 0 at the
    last step."""

    warmup_ratio: f.WarmupRatio = f.DEFAULT_WARMUP_RATIO
    """Share of the steps over which the learning rate rises from 0 (any schedule)."""

    steps: f.TrainSteps = f.DEFAULT_TRAIN_STEPS
    """Optimiser steps."""

    batch_size: f.TrainBatchSize = f.DEFAULT_TRAIN_BATCH_SIZE
    """Examples per optimiser step."""

    max_grad_norm: f.MaxGradNorm = f.DEFAULT_MAX_GRAD_NORM
    """Gradient clipping norm, 0 for none."""

    ema_decay: f.EmaDecay = f.DEFAULT_EMA_DECAY
    """Save a moving average of the adapter's weights over the last steps (each step moves it
    by min(decay, (1 + t) / (10 + t))) instead of the last step's weights; 0: off. Not with
    --parallelism fsdp."""

    seed: f.Seed = 0
    """Seed for initialisation, dropout and data order."""

    checkpoint_every: f.CheckpointEvery = f.DEFAULT_CHECKPOINT_EVERY
    """Checkpoint every K steps into OUTPUT/checkpoints; a restarted step resumes from the
    latest."""

    precision: f.Precision = f.DEFAULT_PRECISION
    """auto: bf16 on GPUs that support it (base weights in bf16, LoRA weights and optimiser in
    float32, bf16 autocast), float32 elsewhere; bf16 or fp32 force it (bf16 needs a GPU)."""

    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for long sequences and large
    models, about a third more compute."""

    packing: bool = False
    """Lay each batch's examples end to end in fewer rows (positions restart per example, a
    block-diagonal mask keeps attention within each): less padding, the same loss."""

    quantization: f.Quantization = f.DEFAULT_QUANTIZATION
    """4bit: the frozen base weights in 4-bit NF4 (QLoRA, bitsandbytes, CUDA only); the
    adapter trains in bf16/float32 as usual."""

    parallelism: f.Parallelism = f.DEFAULT_PARALLELISM
    """Under torchrun: ddp (every process holds the base, LoRA gradients summed) or fsdp (the
    base sharded over the processes, for models one GPU cannot hold). The same adapter."""

    @model_validator(mode="after")
    def _average_unsharded(self) -> LoraTrainingArgs:
        if self.ema_decay and self.parallelism == "fsdp":
            raise ValueError("--ema-decay cannot be combined with --parallelism fsdp")
        return self

    @field_validator("target_modules")
    @classmethod
    def _all_linear_alone(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError(f"target modules must be non-empty names, got {value}")
        if "all-linear" in value and len(value) > 1:
            raise ValueError("'all-linear' cannot be combined with other target modules")
        return value


class TrainArgs(LoraTrainingArgs):
    """Train a LoRA adapter for one domain: writes adapter/ (peft format) and training.json."""

    PROGRAM: ClassVar[Program] = TRAINER
    COMMAND: ClassVar[str] = "train"
    SUMMARY: ClassVar[str] = "train a LoRA adapter on one domain's training data"

    suite: str = Field(min_length=1)
    """Shipped suite name (e.g. demo) or suite directory."""

    domain: str = Field(min_length=1)
    """The suite domain to train on."""

    plan: str | None = Field(default=None, json_schema_extra=cli(metavar="PATH"))
    """plan.json of the analyze step: the domain must be a priority domain, and examples of
    its targeted capabilities are repeated --capability-weight times."""

    capability_weight: int = Field(default=2, ge=1, le=100)
    """Copies of each example whose capability the plan targets."""

    replay_fraction: f.ReplayFraction = f.DEFAULT_REPLAY_FRACTION
    """Share of the training set drawn from the suite's other domains' pools (rehearsal
    against forgetting), in [0, 1)."""

    replay_focus: f.ReplayFocus = f.DEFAULT_REPLAY_FOCUS
    """Share of the rehearsal lines spread over the other domains by their resemblance to this
    domain's set (TF-IDF cosine) instead of evenly, in [0, 1]."""

    replay_knowledge: bool = False
    """Rehearse the other domains' knowledge too: every wording of each of their facts (each
    relation question and its inverse), guarded against the evaluation items."""

    anchor_ratio: f.AnchorRatio = f.DEFAULT_ANCHOR_RATIO
    """Anchors added to the set per rehearsal line: this domain's relations asked of the other
    domains' entities, answered by the model before training (its own answers kept), in
    [0, 4]; 0: none."""

    preserve_weight: f.PreserveWeight = f.DEFAULT_PRESERVE_WEIGHT
    """Keep what the model knew: weight of the KL between the model before this step (base and
    current adapters) and the one training, on the rehearsal and anchor lines' answer tokens
    (top --distill-top-k tokens at --distill-temperature), added to the cross-entropy; 0: off."""

    extra_data: str | None = Field(
        default=None, min_length=1, json_schema_extra=cli(metavar="PATH")
    )
    """JSONL file of extra examples {question, answer[, domain, capability]}; lines for other
    domains are skipped."""

    synthesis_examples: f.SynthesisExamples = f.DEFAULT_SYNTHESIS_EXAMPLES
    """At most this many items synthesised from the domain's knowledge (0: none)."""

    passes: f.TrainPasses | None = None
    """Train about this many passes over the training set this step builds: steps =
    ceil(passes × lines / batch size), at most --max-steps; --steps is then not used."""

    max_steps: f.TrainSteps = f.DEFAULT_MAX_TRAIN_STEPS
    """With --passes, the most steps."""

    min_steps: f.TrainSteps = f.DEFAULT_MIN_TRAIN_STEPS
    """With --passes, the fewest steps (at most --max-steps)."""

    teacher: f.TeacherMode = f.DEFAULT_TEACHER_MODE
    """context: a teacher answers the synthesised questions with the facts in its prompt."""

    teacher_model: str | None = Field(
        default=None, min_length=1, json_schema_extra=cli(metavar="REF")
    )
    """Teacher model for --teacher context and --distill-weight (default: the model being
    trained, with its adapters); for --distill-weight its tokenizer must have the student's
    vocabulary."""

    teacher_share: f.TeacherShare = f.DEFAULT_TEACHER_SHARE
    """Share of the synthesised items the teacher answers."""

    teacher_paraphrases: f.TeacherParaphrases = f.DEFAULT_TEACHER_PARAPHRASES
    """With --teacher context: rewordings the teacher writes of each synthesised recall
    question, each kept when it is a question naming the same entities without giving the
    answer away (0: none)."""

    distill_weight: f.DistillWeight = 0.0
    """Token-level distillation: weight of the KL between the teacher's top-k next-token
    distribution and the student's on every answer token, added to the cross-entropy (0:
    off)."""

    distill_top_k: f.DistillTopK = f.DEFAULT_DISTILL_TOP_K
    """Teacher tokens kept per answer position for --distill-weight."""

    distill_temperature: f.DistillTemperature = f.DEFAULT_DISTILL_TEMPERATURE
    """Softmax temperature of the distillation KL (scaled by its square)."""

    @model_validator(mode="after")
    def _step_bounds(self) -> TrainArgs:
        if self.min_steps > self.max_steps:
            raise ValueError(
                f"--min-steps ({self.min_steps}) must not exceed --max-steps ({self.max_steps})"
            )
        return self
