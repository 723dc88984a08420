"""Value types shared by the cycle spec and the step arguments: one bound and one default each.

A setting that a user writes in `spec` and a step program reads from its command line is
declared here once, so the CRD schema, `kaizen check` and the step programs accept exactly
the same values and fall back to the same default.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

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

#: Numeric precision of training: `auto` is bf16 on GPUs that have it, float32 elsewhere.
Precision = Literal["auto", "bf16", "fp32"]
DEFAULT_PRECISION: Precision = "auto"

#: Attention kernel of the evaluator's model: PyTorch's scaled-dot-product attention (flash or
#: memory-efficient kernels where the device has them) or the plain eager implementation.
Attention = Literal["sdpa", "eager"]
DEFAULT_ATTENTION: Attention = "sdpa"

#: Where the evaluator puts the model: whole on one device, or its transformer blocks spread over
#: every GPU of the pod (then host memory) for models one GPU cannot hold.
DeviceMap = Literal["single", "auto"]
DEFAULT_DEVICE_MAP: DeviceMap = "single"

#: How the processes of a distributed train step split the work: every rank holds the whole
#: base (`ddp`, LoRA gradients summed) or a shard of it (`fsdp`, for bases one GPU cannot hold).
Parallelism = Literal["ddp", "fsdp"]
DEFAULT_PARALLELISM: Parallelism = "ddp"

#: Storage of the frozen base weights while training: as loaded, or 4-bit NF4 (QLoRA).
Quantization = Literal["none", "4bit"]
DEFAULT_QUANTIZATION: Quantization = "none"

LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]
DEFAULT_LEARNING_RATE = 1e-3

TrainSteps = Annotated[int, Field(ge=1, le=1_000_000)]
DEFAULT_TRAIN_STEPS = 30

#: Passes over an adapter's own training set (epochs); fractional passes are allowed.
TrainPasses = Annotated[float, Field(gt=0.0, le=1000.0)]
#: The most steps the passes rule gives one adapter (`spec.training.maxSteps`).
DEFAULT_MAX_TRAIN_STEPS = 400
#: The fewest steps the passes rule gives one adapter (`spec.training.minSteps`). 1: the rule
#: alone. A higher bound makes a tiny set learn more and forget more (measured;
#: docs/training-data.md), so it is the user's choice.
DEFAULT_MIN_TRAIN_STEPS = 1

TrainBatchSize = Annotated[int, Field(ge=1, le=4096)]
DEFAULT_TRAIN_BATCH_SIZE = 8

MaxSeqLength = Annotated[int, Field(ge=16, le=32768)]
DEFAULT_MAX_SEQ_LENGTH = 128

Seed = Annotated[int, Field(ge=0)]

LrSchedule = Literal["constant", "linear", "cosine"]
#: How the learning rate moves over a run, after a linear warmup over the first
#: `warmup_ratio` of the steps (none by default): it stays (`constant`) or decays to 0 at the
#: last step, in a straight line (`linear`) or along half a cosine (`cosine`).
DEFAULT_LR_SCHEDULE: LrSchedule = "constant"
WarmupRatio = Annotated[float, Field(ge=0.0, lt=1.0)]
DEFAULT_WARMUP_RATIO = 0.0

MaxGradNorm = Annotated[float, Field(ge=0.0)]
#: Gradients are clipped to this norm (0 turns clipping off).
DEFAULT_MAX_GRAD_NORM = 1.0

EmaDecay = Annotated[float, Field(ge=0.0, lt=1.0)]
#: The adapter saved is a moving average of its weights over the last steps at this decay
#: (kaizen.trainer.averaging), not the last step's; 0: off.
DEFAULT_EMA_DECAY = 0.0

CheckpointEvery = Annotated[int, Field(ge=1)]
DEFAULT_CHECKPOINT_EVERY = 10

ReplayFraction = Annotated[float, Field(ge=0.0, lt=1.0)]
#: Rehearsal keeps what the model knew (docs/design.md: without it geography fell 90% → 30%).
DEFAULT_REPLAY_FRACTION = 0.5

ReplayFocus = Annotated[float, Field(ge=0.0, le=1.0)]
#: An even split across the other domains: spreading by resemblance moved the forgetting
#: between domains rather than removing it (measured; docs/training-data.md).
DEFAULT_REPLAY_FOCUS = 0.0

AnchorRatio = Annotated[float, Field(ge=0.0, le=4.0)]
"""Anchors added per rehearsal line (the trained relations asked of other domains' entities,
with the model's own answers before training), in [0, 4]."""
DEFAULT_ANCHOR_RATIO = 0.0

PreserveWeight = Annotated[float, Field(ge=0.0, le=100.0)]
"""Weight of the KL between the model before training and the student on the rehearsal and
anchor lines (learning without forgetting), in [0, 100]; 0: off."""
DEFAULT_PRESERVE_WEIGHT = 0.0

SynthesisExamples = Annotated[int, Field(ge=0, le=100_000)]
#: Items synthesised from a domain's knowledge per adapter (0: none).
DEFAULT_SYNTHESIS_EXAMPLES = 96

TeacherMode = Literal["none", "context"]
DEFAULT_TEACHER_MODE: TeacherMode = "none"

TeacherShare = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_TEACHER_SHARE = 1.0

TeacherParaphrases = Annotated[int, Field(ge=0, le=3)]
#: Rewordings a context teacher writes of each synthesised recall question (0: none; at most
#: one per order of `teacher.PARAPHRASE_SHOTS`, `teacher.MAX_PARAPHRASES`).
DEFAULT_TEACHER_PARAPHRASES = 0

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

#: The ways peft's `add_weighted_adapter` combines adapters (the merge step's methods).
MergeMethod = Literal["linear", "cat", "ties", "dare_linear", "dare_ties", "svd"]
COMBINATIONS: tuple[str, ...] = ("linear", "cat", "ties", "dare_linear", "dare_ties", "svd")
#: One adapter trained on the union of the priority domains' data instead of one per domain.
JOINT = "joint"
#: The domain adapters kept apart, each applied only to the prompts that name its domain's
#: knowledge (`kaizen.runtime.routing`): an `auto` candidate only, since serving it needs the
#: route table (docs/routing.md).
ROUTED = "routed"


def is_routed_candidate(name: str) -> bool:
    """Whether a candidate's name is routed adapters: `routed`, or `routed-<merge>` (prompts
    naming no route get that merge)."""
    return name == ROUTED or name.startswith(f"{ROUTED}-")


#: A candidate way of combining what the domain adapters learned: a merge method, `joint` or
#: `routed`.
Candidate = Literal["linear", "cat", "ties", "dare_linear", "dare_ties", "svd", "joint", "routed"]
CANDIDATES: tuple[str, ...] = (*COMBINATIONS, JOINT, ROUTED)
#: Try `merge.candidates`, score each on the dev items and keep the best (docs/ml-notes.md).
AUTO = "auto"
Combination = Literal["linear", "cat", "ties", "dare_linear", "dare_ties", "svd", "joint", "auto"]
DEFAULT_COMBINATION: Combination = "ties"
DEFAULT_MERGE_METHOD: MergeMethod = "ties"
#: What `auto` tries by default: the two pruning merges, plain averaging, and joint training.
DEFAULT_CANDIDATES: tuple[Candidate, ...] = ("ties", "dare_ties", "linear", "joint")

#: Least share of an adapter's own gain that the combination must keep, in every domain.
MinRetention = Annotated[float, Field(ge=0.0, le=2.0)]
DEFAULT_MIN_RETENTION = 0.9

Density = Annotated[float, Field(gt=0.0, le=1.0)]
DEFAULT_DENSITY = 0.5

#: Each adapter's weight in a merge, by the number n of adapters merged: `one` (peft's
#: default: `cat` sums the updates, `ties` averages the entries the adapters agree on), `n`
#: (undoes that average, so each adapter's own update keeps its size), `1/n` (the mean of the
#: updates). `kaizen.api.merge_grid`.
WeightRule = Literal["one", "n", "1/n"]
WEIGHT_RULES: tuple[str, ...] = ("one", "n", "1/n")
#: What `auto` also tries for every merge method (`merge.search`): density 1.0 (no pruning)
#: besides `merge.density`, and each adapter weighted 1/n besides 1. Chosen from measurements
#: (docs/ml-notes.md): TIES at density 1.0 was the only merge to keep every domain's gain with
#: three adapters; 1/n lifted the summing methods (linear, cat, dare_*) on the demo; weight n
#: lowered every method in both runs.
DEFAULT_SEARCH_DENSITIES: tuple[float, ...] = (1.0,)
DEFAULT_SEARCH_WEIGHTS: tuple[WeightRule, ...] = ("1/n",)

# -- validation ------------------------------------------------------------------------------

MinImprovement = Annotated[float, Field(ge=-1.0, le=1.0)]
DEFAULT_MIN_IMPROVEMENT = 0.0

MaxRegression = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_MAX_REGRESSION = 0.1

Significance = Annotated[float, Field(gt=0.0, lt=1.0)]
DEFAULT_SIGNIFICANCE = 0.05

Power = Annotated[float, Field(gt=0.0, lt=1.0)]
#: The conventional 80%: a real improvement of the target size is missed one time in five.
DEFAULT_POWER = 0.8

TargetImprovement = Annotated[float, Field(gt=0.0, le=1.0)]
#: Five points on the overall score: a suite that cannot detect that is too small to decide.
DEFAULT_TARGET_IMPROVEMENT = 0.05

#: Largest share of generation speed (tokens/s) a candidate may lose, e.g. 0.2.
MaxSlowdown = Annotated[float, Field(ge=0.0, lt=1.0)]
#: Largest relative increase of peak memory a candidate may bring, e.g. 0.1 (10%).
MaxMemoryIncrease = Annotated[float, Field(ge=0.0, le=100.0)]
#: A drop of an lm-eval task's score (0-1) beyond which the task blocks promotion.
LmEvalMaxDrop = Annotated[float, Field(ge=0.0, le=1.0)]
#: A floor on an lm-eval task's candidate score (0-1).
LmEvalMinScore = Annotated[float, Field(ge=0.0, le=1.0)]

# -- tracking --------------------------------------------------------------------------------

TrackingMode = Literal["offline", "online", "disabled"]
DEFAULT_TRACKING_MODE: TrackingMode = "offline"
DEFAULT_TRACKING_PROJECT = "kaizen"

# -- Kubernetes-facing strings ---------------------------------------------------------------
# Values the operator copies into a Job (names, labels, resource quantities) are checked here
# with Kubernetes' own rules, so a bad one is refused at the spec, naming the spec field, and
# not by the API server when the first Job of that kind is created (after the baseline ran).

#: A DNS-1123 label (namespace and cycle names, and the folders `kaizen run` makes of them).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MAX = 63
#: A DNS-1123 subdomain (Secret names).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX = 253
#: A label value (empty, or alphanumerics with `-`, `_`, `.` inside), at most 63 characters.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_VALUE_MAX = 63
#: A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_MAX = 253 + 1 + 63
#: A key of a Secret's data.
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

DnsLabel = Annotated[str, Field(min_length=1, max_length=DNS_LABEL_MAX, pattern=DNS_LABEL_PATTERN)]
SecretName = Annotated[
    str, Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)]
NonEmptyLabelValue = Annotated[
    str, Field(min_length=1, max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)
]


def _label_key(value: str) -> str:
    if len(value) > LABEL_KEY_MAX or not re.match(LABEL_KEY_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a valid label key ({PATTERN_MEANINGS[LABEL_KEY_PATTERN]})"
        )
    return value


#: A label key (checked by a validator: a CRD schema cannot constrain map keys).
LabelKey = Annotated[str, AfterValidator(_label_key)]

#: A string that becomes one value of a step's command line (a model, a path, a domain...):
#: not empty and not starting with `-`, which the step would read as an option.
ARG_VALUE_PATTERN = r"^[^-]"
ArgValue = Annotated[str, Field(min_length=1, pattern=ARG_VALUE_PATTERN)]

#: A container image reference: no whitespace anywhere (Kubernetes refuses it around the name,
#: the container runtime inside).
IMAGE_PATTERN = r"^\S+$"
Image = Annotated[str, Field(min_length=1, pattern=IMAGE_PATTERN)]

# -- resource quantities ---------------------------------------------------------------------

#: Kubernetes' quantity syntax (`resource.Quantity`) without a sign: `4`, `1.5`, `500m`,
#: `32Gi`, `1e3`. The API server applies the same pattern to a CRD field that declares it.
QUANTITY_PATTERN = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: str | int) -> Decimal:
    """The number a Kubernetes quantity stands for (`500m` → 0.5, `1Gi` → 1073741824).

    Raises `ValueError` for anything the API server would refuse (and for negative values).
    """
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY.match(text):
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity (examples: 4, 1.5, 500m, 32Gi, 512Mi)"
        )
    for suffix, power in _BINARY.items():
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * (Decimal(1024) ** power)
    number, suffix = (text[:-1], text[-1]) if text[-1] in "numkMGTPE" else (text, "")
    try:
        return Decimal(number) * (Decimal(10) ** _DECIMAL[suffix])
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None


def _quantity_text(value: Any) -> Any:
    # YAML `cpu: 4` is an integer; Kubernetes takes it as the quantity "4" (int-or-string).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _positive_quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f"{value!r} must be more than zero")
    return value


#: A resource quantity above zero, written as a string or a whole number; kept as written.
Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(_positive_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


#: What each pattern above means, for error messages (pydantic would print the expression).
PATTERN_MEANINGS = {
    DNS_LABEL_PATTERN: "a DNS-1123 label: lowercase letters, digits and '-', starting and ending "
    "with a letter or digit",
    DNS_SUBDOMAIN_PATTERN: "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    LABEL_VALUE_PATTERN: "a label value: letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit",
    LABEL_KEY_PATTERN: "an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, "
    "'-', '_' or '.', starting and ending with a letter or digit",
    SECRET_KEY_PATTERN: "letters, digits, '-', '_' and '.'",
    ARG_VALUE_PATTERN: "must not start with '-' (a step would read it as an option)",
    IMAGE_PATTERN: "an image reference has no whitespace",
}
