"""Value types shared by the cycle spec and the step arguments: one bound and one default each.

A setting that a user writes in `spec` and a step program reads from its command line is
declared here once, so the CRD schema, `kaizen check` and the step programs accept exactly
the same values and fall back to the same default.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

# -- evaluation ------------------------------------------------------------------------------

MaxNewTokens = Annotated[int, Field(ge=1, le=4096)]
DEFAULT_MAX_NEW_TOKENS = 32

EvalBatchSize = Annotated[int, Field(ge=1, le=1024)]
#: Start high: a batch that does not fit is halved and the smaller size kept.
DEFAULT_EVAL_BATCH_SIZE = 64

ItemLimit = Annotated[int, Field(ge=1)]

# -- analysis --------------------------------------------------------------------------------

MaxPriorityDomains = Annotated[int, Field(ge=1, le=32)]
DEFAULT_MAX_PRIORITY_DOMAINS = 2

ScoreThreshold = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_SCORE_THRESHOLD = 0.7

# -- training --------------------------------------------------------------------------------

LoraRank = Annotated[int, Field(ge=1, le=512)]
DEFAULT_LORA_RANK = 8

LoraAlpha = Annotated[int, Field(ge=1, le=4096)]
DEFAULT_LORA_ALPHA = 16

LoraDropout = Annotated[float, Field(ge=0.0, lt=1.0)]
DEFAULT_LORA_DROPOUT = 0.0

DEFAULT_TARGET_MODULES = ("all-linear",)

LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]
DEFAULT_LEARNING_RATE = 1e-3

TrainSteps = Annotated[int, Field(ge=1, le=1_000_000)]
DEFAULT_TRAIN_STEPS = 30

TrainBatchSize = Annotated[int, Field(ge=1, le=4096)]
DEFAULT_TRAIN_BATCH_SIZE = 8

MaxSeqLength = Annotated[int, Field(ge=16, le=32768)]
DEFAULT_MAX_SEQ_LENGTH = 128

Seed = Annotated[int, Field(ge=0)]

MaxGradNorm = Annotated[float, Field(ge=0.0)]
#: Gradients are clipped to this norm (0 turns clipping off).
DEFAULT_MAX_GRAD_NORM = 1.0

CheckpointEvery = Annotated[int, Field(ge=1)]
DEFAULT_CHECKPOINT_EVERY = 10

ReplayFraction = Annotated[float, Field(ge=0.0, lt=1.0)]
#: Rehearsal keeps what the model knew (docs/design.md: without it geography fell 90% → 30%).
DEFAULT_REPLAY_FRACTION = 0.5

SynthesisExamples = Annotated[int, Field(ge=0, le=100_000)]
#: Items synthesised from a domain's knowledge per adapter (0: none).
DEFAULT_SYNTHESIS_EXAMPLES = 96

TeacherMode = Literal["none", "context"]
DEFAULT_TEACHER_MODE: TeacherMode = "none"

TeacherShare = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_TEACHER_SHARE = 1.0

DistillWeight = Annotated[float, Field(ge=0.0, le=100.0)]
#: Weight of the KL term of token-level distillation when it is on (the step's argument
#: defaults to 0: off).
DEFAULT_DISTILL_WEIGHT = 0.5

DistillTopK = Annotated[int, Field(ge=1, le=1024)]
#: Teacher tokens kept per answer position (the KL is taken over these).
DEFAULT_DISTILL_TOP_K = 16

DistillTemperature = Annotated[float, Field(gt=0.0, le=100.0)]
DEFAULT_DISTILL_TEMPERATURE = 1.0

# -- merging ---------------------------------------------------------------------------------

Combination = Literal["linear", "cat", "ties", "dare_linear", "dare_ties"]
COMBINATIONS: tuple[str, ...] = ("linear", "cat", "ties", "dare_linear", "dare_ties")
DEFAULT_COMBINATION: Combination = "ties"

Density = Annotated[float, Field(gt=0.0, le=1.0)]
DEFAULT_DENSITY = 0.5

# -- validation ------------------------------------------------------------------------------

MinImprovement = Annotated[float, Field(ge=-1.0, le=1.0)]
DEFAULT_MIN_IMPROVEMENT = 0.0

MaxRegression = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_MAX_REGRESSION = 0.1

Significance = Annotated[float, Field(gt=0.0, lt=1.0)]
DEFAULT_SIGNIFICANCE = 0.05

# -- tracking --------------------------------------------------------------------------------

TrackingMode = Literal["offline", "online", "disabled"]
DEFAULT_TRACKING_MODE: TrackingMode = "offline"
DEFAULT_TRACKING_PROJECT = "kaizen"
