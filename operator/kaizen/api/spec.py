"""The `ImprovementCycle` spec: what a user asks for, with a default and a description per field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from kaizen.api import fields as f
from kaizen.api._base import SpecModel
from kaizen.api.spec_resources import ResourcesSpec

#: The model shipped with Kaizen for machines without GPUs or hub access (see docs/design.md §5).
BUNDLED_MODEL = "bundled:smollm2-135m-instruct"


class ModelSpec(SpecModel):
    """The model to improve."""

    name: f.ArgValue = Field(default=BUNDLED_MODEL)
    """Hub id (`org/name`), a local or PVC path, or `bundled:smollm2-135m-instruct`."""

    adapters: list[f.ArgValue] = Field(default_factory=list)
    """LoRA adapters already promoted for this model, applied in order before anything else."""

    revision: f.ArgValue | None = None
    """Hub revision (branch, tag or commit) when `name` is a hub id."""

    @field_validator("name")
    @classmethod
    def _name_has_no_spaces(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("a model name or path must not contain whitespace")
        return value


class EvaluationSpec(SpecModel):
    """How the model is evaluated (baseline and candidate use the same settings and items)."""

    suite: f.ArgValue = Field(default="demo")
    """A suite shipped with Kaizen (`demo`) or a path to a suite directory (PVC or ConfigMap)."""

    max_new_tokens: f.MaxNewTokens = f.DEFAULT_MAX_NEW_TOKENS
    """Most tokens generated per item."""

    attention: f.Attention = f.DEFAULT_ATTENTION
    """Attention kernel of generation: `sdpa` (PyTorch's scaled-dot-product attention, flash
    kernels on GPUs) or `eager`."""

    precision: f.Precision = f.DEFAULT_PRECISION
    """Weights' dtype while evaluating: `auto` (bf16 on GPUs, float32 on CPUs), `bf16`, `fp32`.
    Baseline and candidate always use the same."""

    batch_size: f.EvalBatchSize = f.DEFAULT_EVAL_BATCH_SIZE
    """Prompts generated together. Larger is faster until memory runs out; when a batch does
    not fit, it is halved and the smaller size kept, so start high."""

    device_map: f.DeviceMap = f.DEFAULT_DEVICE_MAP
    """`single`: the model on one GPU (or the CPU). `auto`: its transformer blocks spread over
    all `resources.evaluator.gpus` GPUs of the evaluator's pod, then host memory if they do
    not suffice (accelerate's big-model inference), for models one GPU cannot hold, e.g. a
    70B model in bf16 over two 80 GB GPUs. The blocks run one GPU after another: this buys
    memory, not speed. Outputs are the same as on one device."""

    max_gpu_memory: f.Quantity | None = None
    """With `deviceMap: auto`, the most weight memory placed on each GPU (e.g. `60Gi`), to
    leave room for the generation cache of a batch; accelerate's default when empty."""

    limit: f.ItemLimit | None = None
    """Evaluate only the first `limit` items of each domain in each split, dev and test (for
    smoke tests)."""

    domains: list[f.ArgValue] = Field(default_factory=list)
    """Evaluate only these domains of the suite (all when empty)."""

    lm_eval_tasks: list[f.ArgValue] = Field(default_factory=list)
    """lm-evaluation-harness task names or task YAML paths run on the same model; each becomes a
    domain `lmeval:<task>` in the results (needs the evaluator image with `kaizen[lmeval]`)."""


class AnalysisSpec(SpecModel):
    """How the weakest domains are chosen for training."""

    max_priority_domains: f.MaxPriorityDomains = f.DEFAULT_MAX_PRIORITY_DOMAINS
    """At most this many domains get an adapter in one cycle."""

    score_threshold: f.ScoreThreshold = f.DEFAULT_SCORE_THRESHOLD
    """Only domains scoring below this are candidates for training."""

    defer_domains: list[f.ArgValue] = Field(default_factory=list)
    """Domains planned only after every other domain below the threshold. An
    ImprovementChain adds the domains its cycles trained since the last promotion without
    being promoted, so the next cycle moves on to the next weakest domain rather than repeat
    the one that did not pay."""


class SynthesisSpec(SpecModel):
    """Training items synthesised from a domain's knowledge (facts and passages of the suite)."""

    examples: f.SynthesisExamples = f.DEFAULT_SYNTHESIS_EXAMPLES
    """At most this many synthesised items per adapter, in the mix the analysis asks for
    (0 turns synthesis off). A domain without knowledge gets none."""


class TokenLevelSpec(SpecModel):
    """Token-level distillation: the student also matches the teacher's next-token distribution."""

    weight: f.DistillWeight = f.DEFAULT_DISTILL_WEIGHT
    """Weight of the KL term added to the answer tokens' cross-entropy (0 turns it off)."""

    top_k: f.DistillTopK = f.DEFAULT_DISTILL_TOP_K
    """Teacher tokens kept per answer position; the KL compares teacher and student on these
    tokens only, each renormalised over them."""

    temperature: f.DistillTemperature = f.DEFAULT_DISTILL_TEMPERATURE
    """Softmax temperature of both distributions (above 1 softens them); the KL term is scaled
    by its square."""


class TeacherSpec(SpecModel):
    """A teacher whose answers the student learns (distillation); see docs/training-data.md."""

    mode: f.TeacherMode = f.DEFAULT_TEACHER_MODE
    """`context`: the teacher answers each synthesised question with the relevant facts in
    its prompt; answers that do not state the known fact are dropped; the student learns to
    answer without the facts (context distillation). `none`: the synthesised wording is used."""

    model: f.ArgValue | None = Field(default=None)
    """The teacher model (hub id or path); the model being improved (with its adapters) when
    empty. For `tokenLevel` its tokenizer must have the student's vocabulary."""

    share: f.TeacherShare = f.DEFAULT_TEACHER_SHARE
    """Share of the synthesised items the teacher answers; raise it cycle by cycle for
    progressive distillation."""

    paraphrases: f.TeacherParaphrases = f.DEFAULT_TEACHER_PARAPHRASES
    """With `mode: context`, rewordings the teacher writes of each synthesised recall question
    (up to 3): more surface forms of each fact than its relation's templates give. One is
    kept when it is a question, names the same entities, gives neither the answer nor an
    alias of it away, and the teacher, given the facts, answers it with the original's
    answer; the rest are dropped and listed in the data card. A teacher larger than the
    student words them best: the bundled model mostly rewords with the relation's own words."""

    token_level: TokenLevelSpec | None = None
    """Token-level distillation on every training example (independent of `mode`): the
    teacher's top-k next-token distribution on each answer token, learnt through a KL term.
    Off when absent; `{}` turns it on with the defaults."""


class DomainTrainingSpec(SpecModel):
    """Settings of one domain's adapter that override the derived ones."""

    steps: f.TrainSteps | None = None
    """Optimiser steps of this domain's adapter (wins over `passes`)."""

    passes: f.TrainPasses | None = None
    """Passes over this domain's own training set (steps = passes × lines / batchSize, at
    most `maxSteps`), instead of the derived ones."""

    learning_rate: f.LearningRate | None = None
    """Learning rate of this domain's adapter."""


class RuntimeRef(SpecModel):
    """The Kubeflow Trainer runtime a TrainJob runs on."""

    name: str = Field(default="torch-distributed", min_length=1, max_length=253)
    """Name of the (Cluster)TrainingRuntime; it must have the torch ML policy and a
    replicated job `node` (as Kubeflow Trainer's `torch-distributed` has)."""

    kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] = "ClusterTrainingRuntime"
    """`ClusterTrainingRuntime` (cluster-wide) or `TrainingRuntime` (in the cycle's namespace)."""


class TrainJobSettings(SpecModel):
    """How a train step runs as a Kubeflow Trainer `TrainJob` (`backend: trainjob`)."""

    runtime_ref: RuntimeRef = Field(default_factory=RuntimeRef)
    """The training runtime."""

    num_nodes: int = Field(default=1, ge=1, le=1024)
    """Training nodes (pods); each gets `resources.trainer` and runs one process per GPU."""


class TrainingSpec(SpecModel):
    """LoRA training of one adapter per priority domain."""

    rank: f.LoraRank = f.DEFAULT_LORA_RANK
    """LoRA rank `r`."""

    alpha: f.LoraAlpha = f.DEFAULT_LORA_ALPHA
    """LoRA scaling `lora_alpha`."""

    dropout: f.LoraDropout = f.DEFAULT_LORA_DROPOUT
    """LoRA dropout."""

    target_modules: list[f.ArgValue] = Field(
        default_factory=lambda: list(f.DEFAULT_TARGET_MODULES), min_length=1
    )
    """Modules that get LoRA weights; `all-linear` means every linear layer but the output head."""

    learning_rate: f.LearningRate = f.DEFAULT_LEARNING_RATE
    """AdamW learning rate (the peak, under a decaying `lrSchedule`)."""

    lr_schedule: f.LrSchedule = f.DEFAULT_LR_SCHEDULE
    """How the learning rate moves over each adapter's steps after the warmup (`warmupRatio`):
    `constant`; or `linear` / `cosine`, a decay to 0 at the last step."""

    warmup_ratio: f.WarmupRatio = f.DEFAULT_WARMUP_RATIO
    """Share of the steps over which the rate rises from 0 to `learningRate` (0: none)."""

    steps: f.TrainSteps = f.DEFAULT_TRAIN_STEPS
    """Optimiser steps per adapter on average (the derived ones; ignored when `passes` is
    set)."""

    passes: f.TrainPasses | None = None
    """Train each adapter about this many passes over its own training set (epochs), its
    difficulty factor applied: steps = passes × factor × lines / batchSize, at most
    `maxSteps` (docs/training-data.md, "Per-domain settings"). Unset: `steps`."""

    max_steps: f.TrainSteps = f.DEFAULT_MAX_TRAIN_STEPS
    """The most steps `passes` gives one adapter (bounds the cost of a large set)."""

    min_steps: f.TrainSteps = f.DEFAULT_MIN_TRAIN_STEPS
    """The fewest steps `passes` gives one adapter: a set of a few lines may need more
    optimiser updates than its passes make to be learned at all (it then also forgets more)."""

    batch_size: f.TrainBatchSize = f.DEFAULT_TRAIN_BATCH_SIZE
    """Examples per optimiser step."""

    ema_decay: f.EmaDecay = f.DEFAULT_EMA_DECAY
    """Keep each adapter as a moving average of its weights over its last steps rather than
    its last step's weights (each step moves the average by min(emaDecay, (1 + t) / (10 + t)):
    about the last tenth of a run's steps; measured in docs/forgetting.md, "Averaged
    weights"). 0: off. Not with `parallelism: fsdp`."""

    max_seq_length: f.MaxSeqLength = f.DEFAULT_MAX_SEQ_LENGTH
    """Training examples are truncated to this many tokens."""

    seed: f.Seed = 0
    """Seed for data order and initialisation."""

    replay_fraction: f.ReplayFraction = f.DEFAULT_REPLAY_FRACTION
    """Share of each adapter's training set drawn from the suite's other domains (rehearsal),
    so the adapter learns its domain without forgetting what the model already knew."""

    replay_focus: f.ReplayFocus = f.DEFAULT_REPLAY_FOCUS
    """Share of those rehearsal lines given to the other domains in proportion to how much
    their training pools resemble the adapter's own set (the rest is spread evenly): an
    adapter forgets most where its new lines look like the old ones. 0: evenly."""

    replay_knowledge: bool = False
    """Rehearse the other domains' knowledge as well as their pools: every wording of each of
    their facts (each question of the relation and its inverse, answered with the fact's
    statement), guarded against the evaluation items."""

    anchor_ratio: f.AnchorRatio = f.DEFAULT_ANCHOR_RATIO
    """Anchors added to each adapter's set, per rehearsal line (0.5: half as many anchors as
    rehearsal lines, on top of them): the adapter's own relations asked of the entities the
    suite's other domains know ("What is the capital of Kenya?" beside an invented country's
    capital), answered by the model as it is before the adapter trains, its answers kept. They
    tell the adapter that its change is for its own domain's entities, not for every subject
    of the same questions. 0: none."""

    preserve_weight: f.PreserveWeight = f.DEFAULT_PRESERVE_WEIGHT
    """Keep what the model knew (learning without forgetting): weight of a KL term between the
    model as it is before the adapter trains (base and current adapters) and the one training,
    on the rehearsal and anchor lines' answer tokens, added to the cross-entropy. The
    rehearsal lines then hold the other domains' next-token distributions where they were,
    not only their reference answers. Needs rehearsal (`replayFraction` > 0). 0: off."""

    extra_data: f.ArgValue | None = Field(default=None)
    """Your own training data: a JSONL file of `{"question", "answer", "domain",
    "capability"}` lines (`domain` and `capability` optional) on a volume the Jobs mount (the
    artifact PVC). Each adapter adds the lines of its domain (lines without a domain go to
    every adapter) to the suite's training pool; a domain with no pool trains on them alone.
    A malformed line fails the train step naming the file and line."""

    synthesis: SynthesisSpec = Field(default_factory=SynthesisSpec)
    """Training items synthesised from the suite's knowledge, steered by the analysis."""

    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    """Distillation from a teacher (off by default)."""

    precision: f.Precision = f.DEFAULT_PRECISION
    """`auto`: bf16 on GPUs that support it (frozen base in bf16, LoRA weights and optimiser in
    float32 under bf16 autocast), float32 on CPUs; `bf16` or `fp32` force it."""

    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for long sequences and large
    models, for about a third more compute."""

    packing: bool = False
    """Lay each batch's examples end to end in fewer rows, attention kept within each example
    (positions restart per example, a block-diagonal mask): the same loss with less padding,
    faster when example lengths vary. Not with `teacher.tokenLevel`."""

    quantization: f.Quantization = f.DEFAULT_QUANTIZATION
    """`4bit`: the frozen base weights in 4-bit NF4 while training (QLoRA; bitsandbytes on
    CUDA GPUs, in the trainer image). The adapter is the same kind of LoRA adapter; merging
    and evaluation load the base as usual."""

    parallelism: f.Parallelism = f.DEFAULT_PARALLELISM
    """How the training processes (one per GPU, on every node) split the work. `ddp`: each
    holds the whole base model and the LoRA gradients are summed, for models one GPU holds;
    `fsdp`: the base is sharded over the processes (FSDP, each GPU holds 1/N of every weight
    and gathers a layer's weights as it runs), for models that do not fit on one GPU. The
    same adapter either way. Not with `quantization: 4bit` or a teacher that generates.
    With one process it trains as usual."""

    backend: Literal["job", "trainjob"] = "job"
    """What runs a train step: `job`, a `batch/v1` Job with one pod and all of its GPUs (a
    process per GPU); `trainjob`, a Kubeflow Trainer `TrainJob` over `trainJob.numNodes`
    nodes (needs Kubeflow Trainer in the cluster and the operator's TrainJob support,
    docs/deploy.md). Merge and the evaluator's steps always run as Jobs."""

    train_job: TrainJobSettings = Field(default_factory=TrainJobSettings)
    """TrainJob settings of `backend: trainjob`."""

    domains: dict[str, DomainTrainingSpec] = Field(default_factory=dict)
    """Per-domain overrides of `steps`, `passes` and `learningRate`. Without one, a domain's
    steps are derived from its baseline score (docs/training-data.md): weaker domains train
    longer, and the adapters' mean stays `steps` (or `passes`)."""


class MergeSearchSpec(SpecModel):
    """The merge settings `combination: auto` tries for every merge method of `candidates`,
    besides `density` and weight 1; each point is one more candidate scored on the dev items
    (`kaizen.api.merge_grid`, docs/ml-notes.md)."""

    densities: list[f.Density] = Field(
        default_factory=lambda: list(f.DEFAULT_SEARCH_DENSITIES), max_length=8
    )
    """Densities also tried by `ties` and `dare_*` (1.0 prunes nothing; `dare_*` skip it,
    being then `linear` / `ties`). Empty: only `density`."""

    weights: list[f.WeightRule] = Field(
        default_factory=lambda: list(f.DEFAULT_SEARCH_WEIGHTS), max_length=3
    )
    """Adapter weights also tried, by the number n of adapters: `1/n` (`cat`, `linear`, `svd`,
    `dare_*`: the mean of the updates instead of their sum), `n` (undoes `ties`'s average over
    the adapters that agree, so each keeps its update's size), `one`. Empty: weight 1 only."""

    @field_validator("densities", "weights")
    @classmethod
    def _no_repeats(cls, value: list[Any]) -> list[Any]:
        repeated = sorted({str(v) for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return value


class MergeSpec(SpecModel):
    """How what the per-domain adapters learned is combined into one candidate adapter."""

    combination: f.Combination = f.DEFAULT_COMBINATION
    """How to combine: a peft `add_weighted_adapter` method (`linear`, `cat`, `ties`,
    `dare_linear`, `dare_ties`, `svd`); `joint`, one adapter trained on the union of the
    priority domains' data; or `auto`, which tries each of `candidates`, scores it on the
    suite's dev items and keeps the one with the best worst-domain retention, then mean
    gain, then change on the untrained domains, preferring any that costs no untrained
    domain more than `validation.maxRegression` by a significant drop (docs/ml-notes.md)."""

    candidates: list[f.Candidate] = Field(
        default_factory=lambda: list(f.DEFAULT_CANDIDATES), min_length=1
    )
    """What `combination: auto` tries (each costs one evaluation of the dev items, a merge
    method one per point of `search`; `joint` also one training). `routed` keeps the domain
    adapters apart, each applied only to prompts naming its domain's knowledge: it needs the
    suite's knowledge, and serving it needs its route table (docs/routing.md)."""

    similar_routes: bool = False
    """With `routed` among the candidates: a prompt that names none of the routes' keys may
    still take the route of the domain it asks about, by the base model's reading of it
    against each domain's synthesised questions, the suite's other domains' and background
    questions (docs/routing.md, "Similar routes": measured reach and strays). false: keys
    only."""

    min_retention: f.MinRetention = f.DEFAULT_MIN_RETENTION
    """Target: in every trained domain the combination keeps at least this share of what the
    domain's adapter alone gained on the dev items; a cycle whose combination falls short
    says so in its status."""

    @field_validator("candidates")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"candidate(s) {', '.join(repeated)} listed more than once")
        return value

    density: f.Density = f.DEFAULT_DENSITY
    """Fraction of weights kept by `ties` and `dare_*`."""

    search: MergeSearchSpec = Field(default_factory=MergeSearchSpec)
    """Under `auto`, the densities and adapter weights tried besides `density` and weight 1
    (each point one more dev evaluation); ignored by a fixed `combination`."""

    seed: f.Seed = 0
    """Seed for the random pruning of `dare_*`."""


class LmEvalGateSpec(SpecModel):
    """Gates on lm-evaluation-harness tasks, which are measured but never trained."""

    max_drop: f.LmEvalMaxDrop | None = None
    """A task whose score drops by more than this blocks promotion (when lm-eval reports the
    task's standard error, only a drop that is also significant at `significance` does)."""

    min_scores: dict[str, f.LmEvalMinScore] = Field(default_factory=dict)
    """The candidate's score on each named task (lm-eval's task name) must reach this floor."""


class ReferenceSpec(SpecModel):
    """Results of a reference model to compare the candidate with, besides its baseline."""

    results: f.ArgValue
    """Its `results.json`, evaluated on the same suite items (a path the Jobs mount: the
    artifact PVC); a different suite digest fails the validate step as a configuration error."""

    name: f.ArgValue | None = None
    """How reports and reasons name it (e.g. `v3`); its model and adapters when absent."""


class ValidationSpec(SpecModel):
    """The gates a candidate must pass to be promoted."""

    min_improvement: f.MinImprovement = f.DEFAULT_MIN_IMPROVEMENT
    """The candidate's overall score must beat the baseline's by more than this."""

    max_regression: f.MaxRegression = f.DEFAULT_MAX_REGRESSION
    """A domain whose score drops by more than this is a regression and blocks promotion."""

    significance: f.Significance = f.DEFAULT_SIGNIFICANCE
    """Significance level of the paired (exact McNemar) test."""

    require_significance: bool = Field(default=True)
    """Promote only when the overall improvement is significant at `significance`."""

    power: f.Power = f.DEFAULT_POWER
    """Power at which the suite must be able to detect `targetImprovement`. A result that is
    not significant on a suite that cannot is `Inconclusive`, not `Reject`
    (docs/evaluation.md: the minimum detectable effect)."""

    target_improvement: f.TargetImprovement = f.DEFAULT_TARGET_IMPROVEMENT
    """The overall improvement the suite must be able to detect at `power` (the larger of
    this and `minImprovement` is used)."""

    max_slowdown: f.MaxSlowdown | None = None
    """Largest share of generation speed (tokens/s) the candidate may lose, e.g. `0.2`; not
    checked when absent. Each model is measured once: leave room for timing noise."""

    max_memory_increase: f.MaxMemoryIncrease | None = None
    """Largest relative increase of peak memory the candidate may bring, e.g. `0.1`; not
    checked when absent."""

    lm_eval: LmEvalGateSpec | None = None
    """Gates on the `evaluation.lmEvalTasks` scores (report-only when absent)."""

    reference: ReferenceSpec | None = None
    """A reference model's results on the same items (e.g. the previous promoted version of
    a chain): the candidate must not be significantly worse than it either."""


class SecretKeyRef(SpecModel):
    """A key of a Secret in the cycle's namespace."""

    name: f.SecretName
    """Secret name."""

    key: f.SecretKey
    """Key within the Secret."""


class TrackingSpec(SpecModel):
    """Experiment tracking with Weights & Biases."""

    project: f.ArgValue = f.DEFAULT_TRACKING_PROJECT
    """W&B project."""

    entity: f.ArgValue | None = None
    """W&B entity (team or user)."""

    mode: f.TrackingMode = f.DEFAULT_TRACKING_MODE
    """`online` needs `apiKeySecret`; `offline` writes run files into the artifact directory."""

    api_key_secret: SecretKeyRef | None = Field(default=None)
    """Secret holding `WANDB_API_KEY`."""


class ImprovementCycleSpec(SpecModel):
    """One evaluate → analyze → train → merge → validate cycle."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    """The model to improve."""

    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    """Evaluation settings."""

    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    """How priority domains are chosen."""

    training: TrainingSpec = Field(default_factory=TrainingSpec)
    """LoRA training settings."""

    merge: MergeSpec = Field(default_factory=MergeSpec)
    """How adapters are merged."""

    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    """Promotion gates."""

    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Job images and resources (operator only)."""

    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    """Weights & Biases tracking."""

    hub_token_secret: SecretKeyRef | None = Field(default=None)
    """Secret holding `HF_TOKEN` for gated or private hub models."""

    queue_name: f.NonEmptyLabelValue | None = Field(default=None)
    """Kueue LocalQueue; Jobs then carry `kueue.x-k8s.io/queue-name` and may wait as Queued."""

    max_step_retries: int = Field(default=1, ge=0, le=10)
    """Pod retries per step (`backoffLimit`); configuration errors are never retried."""

    @model_validator(mode="after")
    def _nodes_need_trainjob(self) -> ImprovementCycleSpec:
        if self.training.train_job.num_nodes > 1 and self.training.backend != "trainjob":
            raise ValueError(
                "training.trainJob.numNodes above 1 needs training.backend: trainjob "
                "(a Job runs one pod)"
            )
        if self.evaluation.max_gpu_memory is not None and self.evaluation.device_map != "auto":
            raise ValueError("evaluation.maxGpuMemory needs evaluation.deviceMap: auto")
        training = self.training
        if training.min_steps > training.max_steps:
            raise ValueError(
                f"training.minSteps ({training.min_steps}) must not exceed training.maxSteps "
                f"({training.max_steps})"
            )
        if training.parallelism == "fsdp" and training.quantization != "none":
            raise ValueError(
                "training.parallelism fsdp cannot be combined with training.quantization "
                f"{training.quantization} (shard a bf16 base, or quantize and use ddp)"
            )
        if training.parallelism == "fsdp" and (
            training.teacher.mode != "none" or training.teacher.token_level is not None
        ):
            raise ValueError(
                "training.parallelism fsdp cannot be combined with a training.teacher "
                "(the teacher generates with the whole model before training; use ddp)"
            )
        merge = self.merge
        if merge.similar_routes and not (
            merge.combination == f.AUTO and f.ROUTED in merge.candidates
        ):
            raise ValueError(
                "merge.similarRoutes needs the routed candidate: merge.combination auto with "
                "routed among merge.candidates (similar routes extend routed adapters' keys)"
            )
        if training.teacher.paraphrases and training.teacher.mode != "context":
            raise ValueError(
                "training.teacher.paraphrases needs training.teacher.mode context (the teacher "
                "that rewords the questions)"
            )
        if self.training.packing and self.training.teacher.token_level is not None:
            raise ValueError(
                "training.packing cannot be combined with training.teacher.tokenLevel "
                "(the teacher's targets are per example row)"
            )
        if training.preserve_weight > 0:
            if training.replay_fraction == 0:
                raise ValueError(
                    "training.preserveWeight needs rehearsal lines to preserve: set "
                    "training.replayFraction above 0"
                )
            if training.packing:
                raise ValueError(
                    "training.packing cannot be combined with training.preserveWeight "
                    "(the model's own targets are per example row)"
                )
        if training.parallelism == "fsdp" and training.ema_decay > 0:
            raise ValueError(
                "training.parallelism fsdp cannot be combined with training.emaDecay (the "
                "average is kept of whole weights; use ddp)"
            )
        if training.parallelism == "fsdp" and (
            training.preserve_weight > 0 or training.anchor_ratio > 0
        ):
            raise ValueError(
                "training.parallelism fsdp cannot be combined with training.preserveWeight or "
                "training.anchorRatio (the whole model reads or answers their lines before "
                "training; use ddp)"
            )
        return self
