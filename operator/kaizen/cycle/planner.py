"""Step names, paths and arguments of one cycle: the typed argv of every step, from the spec.

The planner turns the cycle spec into the typed step arguments of `kaizen.api.args`; an
invocation renders them with `to_argv()`, so the Job container and the local subprocess get
the same command line and the step program parses it back into the same model. Every path
is derived from the artifact root, the cycle's namespace and name, and the step name, so
any executor (and any re-run) computes the same invocation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, cast

from kaizen.api import fields as f
from kaizen.api.args import EVALUATOR, AnalyzeArgs, EvaluateArgs, StepArgs, ValidateArgs
from kaizen.api.args_combination import CombineArgs, JointArgs, MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import CombinationReport, DataCard, MergeRecord
from kaizen.api.merge_grid import MergePoint, expand
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.cycle.types import StepInvocation

EVALUATE_BASELINE = "evaluate-baseline"
ANALYZE = "analyze"
TRAIN_PREFIX = "train-"
MERGE = "merge"
#: One adapter trained on the union of the priority domains' training sets.
JOINT = "joint"
#: Each domain's adapter alone on its dev items: `score-<domain>`.
SCORE_PREFIX = "score-"
#: Score the candidate combinations on the dev items and choose one.
COMBINE = "combine"
EVALUATE_CANDIDATE = "evaluate-candidate"
VALIDATE = "validate"

PYTHON = "python"
_DNS_LABEL_MAX = 63
RESULTS_FILE = "results.json"
PLAN_FILE = "plan.json"
#: The combine step's table of candidates and its choice.
COMBINATION_FILE = CombinationReport.FILE_NAME
ADAPTER_DIR = "adapter"
#: Where the merge step writes merges beyond its first (`candidates/<point>/adapter`).
CANDIDATES_DIR = "candidates"
#: The cycle's HTML report folder, beside the step folders.
REPORT_DIR = "report"


def dns_label(text: str) -> str:
    """`text` as a DNS-1123 label fragment: lowercase alphanumerics and dashes."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label or "x"


def bounded_label(text: str, limit: int = _DNS_LABEL_MAX) -> str:
    """`text` cut to `limit` characters, with a digest of the whole so cut names stay distinct.

    Step names become label values (`kaizen.dev/step`) and folder names: a label value has
    at most 63 characters, and a domain name has no bound.
    """
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 11].rstrip('-')}-{digest}"


def train_step_name(domain: str) -> str:
    """Step name of the adapter training for `domain` (a DNS label of at most 63 characters)."""
    return bounded_label(TRAIN_PREFIX + dns_label(domain))


def score_step_name(domain: str) -> str:
    """Step name of the scoring of `domain`'s adapter alone."""
    return bounded_label(SCORE_PREFIX + dns_label(domain))


#: Hex characters of the digest that ends every Job name.
JOB_DIGEST_LENGTH = 8


def job_name(cycle: str, step: str, attempt: int = 1, uid: str | None = None) -> str:
    """Deterministic Job name: a DNS-1123 label of at most 63 characters, unique by construction.

    `<cycle>-<step>[-a<attempt>]` alone reads well but is ambiguous: cycle `demo` with a
    domain `merge` (step `train-merge`) and cycle `demo-train` (step `merge`) would share
    `demo-train-merge`. So the name ends in a digest of the cycle's uid (its name where it has
    none, as under `kaizen run`), the step and the attempt: two steps never share a name, and
    a cycle re-created under the same name never meets the Jobs of its predecessor while
    they are being deleted. The readable part is cut to fit.
    """
    readable = f"{cycle}-{step}" + (f"-a{attempt}" if attempt > 1 else "")
    key = f"{uid or cycle}\0{step}\0{attempt}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:JOB_DIGEST_LENGTH]
    room = _DNS_LABEL_MAX - JOB_DIGEST_LENGTH - 1
    return f"{readable[:room].rstrip('-')}-{digest}"


def artifacts_dir(root: str, namespace: str, cycle: str, step: str) -> str:
    """`<root>/<namespace>/<cycle>/<step>` (POSIX: it is a path inside the Job's volume)."""
    return str(PurePosixPath(root) / namespace / cycle / step)


def difficulty_factor(
    domain: str,
    scores: Mapping[str, float],
    priority: Sequence[str],
    threshold: float,
) -> float:
    """How much longer than the average priority domain `domain` trains, from how far its
    baseline is below threshold.

    `scores` are the plan's (`PlanDigest.priority_scores`): each priority domain's baseline score on
    its dev items, so the gate's test items never set a training budget.

    Each priority domain weighs `0.5 + gap`, where `gap = (threshold - score) / threshold`
    clipped to [0, 1] (a domain scoring 0 weighs 1.5, one just under the threshold 0.5, one
    without a score 1); the factor is `weight / mean weight`, so the factors of the priority
    domains average 1: weaker domains train longer, the cycle's cost does not change.
    """

    def weight(name: str) -> float:
        if name not in scores or threshold <= 0:
            return 1.0
        gap = min(1.0, max(0.0, (threshold - scores[name]) / threshold))
        return 0.5 + gap

    domains = list(priority) or [domain]
    mean = sum(weight(d) for d in domains) / len(domains)
    return weight(domain) / mean


def domain_steps(
    steps: int,
    domain: str,
    scores: Mapping[str, float],
    priority: Sequence[str],
    threshold: float,
) -> int:
    """Optimiser steps of one domain's adapter: `steps × difficulty_factor`."""
    factor = difficulty_factor(domain, scores, priority, threshold)
    return max(1, min(1_000_000, round(steps * factor)))


def domain_passes(
    passes: float,
    domain: str,
    scores: Mapping[str, float],
    priority: Sequence[str],
    threshold: float,
) -> float:
    """Passes over one domain's own training set: `passes × difficulty_factor`, to 2 decimals
    (the train step turns them into steps once it knows the set's size)."""
    factor = difficulty_factor(domain, scores, priority, threshold)
    return max(0.01, min(1000.0, round(passes * factor, 2)))


class StepPlanner:
    """Builds the typed arguments, paths and invocations of the steps of one cycle."""

    def __init__(
        self,
        spec: ImprovementCycleSpec,
        *,
        namespace: str,
        cycle: str,
        artifact_root: str,
        uid: str | None = None,
    ):
        self.spec = spec
        self.namespace = namespace
        self.cycle = cycle
        self.uid = uid
        self.root = artifact_root

    # -- paths -----------------------------------------------------------------------------

    def dir(self, step: str) -> str:
        return artifacts_dir(self.root, self.namespace, self.cycle, step)

    @property
    def cycle_dir(self) -> str:
        return str(PurePosixPath(self.root) / self.namespace / self.cycle)

    def results_path(self, step: str) -> str:
        return str(PurePosixPath(self.dir(step)) / RESULTS_FILE)

    def plan_path(self) -> str:
        return str(PurePosixPath(self.dir(ANALYZE)) / PLAN_FILE)

    def adapter_path(self, step: str) -> str:
        return str(PurePosixPath(self.dir(step)) / ADAPTER_DIR)

    # -- typed arguments -------------------------------------------------------------------

    def _contract(self, step: str) -> dict[str, Any]:
        tracking = self.spec.tracking
        return {
            "output": self.dir(step),
            "step": step,
            "cycle": self.cycle,
            "tracking_mode": tracking.mode,
            "tracking_project": tracking.project,
            "tracking_entity": tracking.entity,
        }

    def _model(self, extra_adapters: Sequence[str] = ()) -> dict[str, Any]:
        model = self.spec.model
        return {
            "model": model.name,
            "revision": model.revision,
            "adapters": [*model.adapters, *extra_adapters],
        }

    def _inference(self) -> dict[str, Any]:
        """How every step that generates with the model loads it (`InferenceArgs`): the same
        for the evaluations and the combine step, so that the scores they compare agree."""
        evaluation = self.spec.evaluation
        return {
            "attention": evaluation.attention,
            "precision": evaluation.precision,
            "device_map": evaluation.device_map,
            "max_gpu_memory": evaluation.max_gpu_memory,
        }

    def evaluate_args(self, step: str, adapters: Sequence[str] = ()) -> EvaluateArgs:
        """An evaluation of the model plus the spec's adapters plus `adapters`."""
        evaluation = self.spec.evaluation
        return EvaluateArgs(
            **self._contract(step),
            **self._model(adapters),
            **self._inference(),
            suite=evaluation.suite,
            max_new_tokens=evaluation.max_new_tokens,
            batch_size=evaluation.batch_size,
            domains=list(evaluation.domains),
            limit=evaluation.limit,
            lm_eval_tasks=list(evaluation.lm_eval_tasks),
        )

    def analyze_args(self, baseline_results: str) -> AnalyzeArgs:
        analysis = self.spec.analysis
        return AnalyzeArgs(
            **self._contract(ANALYZE),
            baseline=baseline_results,
            max_domains=analysis.max_priority_domains,
            threshold=analysis.score_threshold,
            defer=list(analysis.defer_domains),
        )

    def domain_settings(
        self, domain: str, scores: Mapping[str, float], priority: Sequence[str]
    ) -> tuple[int, float]:
        """Steps and learning rate of `domain`'s adapter (see `domain_steps`); with passes
        (`domain_passes`), the steps are the train step's to decide and these are unused."""
        training = self.spec.training
        override = training.domains.get(domain)
        steps = domain_steps(
            training.steps, domain, scores, priority, self.spec.analysis.score_threshold
        )
        if override is not None and override.steps is not None:
            steps = override.steps
        rate = training.learning_rate
        if override is not None and override.learning_rate is not None:
            rate = override.learning_rate
        return steps, rate

    def domain_passes(
        self, domain: str, scores: Mapping[str, float], priority: Sequence[str]
    ) -> float | None:
        """Passes over `domain`'s own training set (the train step derives its steps from
        them), or None for a fixed step count: a domain's `steps` override wins, then its
        `passes` override, then `spec.training.passes` × its difficulty factor."""
        training = self.spec.training
        override = training.domains.get(domain)
        if override is not None and override.steps is not None:
            return None
        if override is not None and override.passes is not None:
            return override.passes
        if training.passes is None:
            return None
        threshold = self.spec.analysis.score_threshold
        return domain_passes(training.passes, domain, scores, priority, threshold)

    def train_args(
        self,
        domain: str,
        plan: str | None,
        scores: Mapping[str, float] | None = None,
        priority: Sequence[str] = (),
    ) -> TrainArgs:
        training = self.spec.training
        steps, learning_rate = self.domain_settings(domain, scores or {}, priority or [domain])
        passes = self.domain_passes(domain, scores or {}, priority or [domain])
        return TrainArgs(
            **self._contract(train_step_name(domain)),
            **self._model(),
            suite=self.spec.evaluation.suite,
            domain=domain,
            plan=plan,
            **self._lora_training(steps, learning_rate),
            replay_fraction=training.replay_fraction,
            replay_focus=training.replay_focus,
            replay_knowledge=training.replay_knowledge,
            anchor_ratio=training.anchor_ratio,
            preserve_weight=training.preserve_weight,
            extra_data=training.extra_data,
            synthesis_examples=training.synthesis.examples,
            passes=passes,
            max_steps=training.max_steps,
            min_steps=training.min_steps,
            teacher=training.teacher.mode,
            teacher_model=training.teacher.model,
            teacher_share=training.teacher.share,
            teacher_paraphrases=training.teacher.paraphrases,
            **self._distillation(),
        )

    def _lora_training(self, steps: int, learning_rate: float) -> dict[str, Any]:
        """The `LoraTrainingArgs` of every step that trains an adapter (train, joint): the
        spec's LoRA and training options, so the joint adapter trains as the domain ones do."""
        training = self.spec.training
        return {
            "rank": training.rank,
            "alpha": training.alpha,
            "dropout": training.dropout,
            "target_modules": list(training.target_modules),
            "learning_rate": learning_rate,
            "lr_schedule": training.lr_schedule,
            "warmup_ratio": training.warmup_ratio,
            "ema_decay": training.ema_decay,
            "steps": steps,
            "batch_size": training.batch_size,
            "max_seq_length": training.max_seq_length,
            "seed": training.seed,
            "precision": training.precision,
            "gradient_checkpointing": training.gradient_checkpointing,
            "packing": training.packing,
            "quantization": training.quantization,
            "parallelism": training.parallelism,
        }

    def _distillation(self) -> dict[str, Any]:
        """The token-level distillation arguments; a weight of 0 (off) without `tokenLevel`."""
        token_level = self.spec.training.teacher.token_level
        if token_level is None:
            return {"distill_weight": 0.0}
        return {
            "distill_weight": token_level.weight,
            "distill_top_k": token_level.top_k,
            "distill_temperature": token_level.temperature,
        }

    # -- combining the domain adapters -----------------------------------------------------

    def candidates(self) -> list[str]:
        """What the cycle tries: `merge.candidates` under `auto`, else the one combination."""
        merge = self.spec.merge
        return list(merge.candidates) if merge.combination == f.AUTO else [merge.combination]

    def merge_methods(self, domains: int) -> list[f.MergeMethod]:
        """The peft methods the merge step applies (the first one into `adapter/`).

        One domain's adapter needs no combining: the merge step copies it, once. Without a
        merge method (`combination: joint`) and without a joint step to stand in (a single
        domain), the copy is the candidate.
        """
        methods = [cast(f.MergeMethod, c) for c in self.candidates() if c in f.COMBINATIONS]
        if domains == 1:
            return methods[:1] or [f.DEFAULT_MERGE_METHOD]
        # The merge step writes the routed candidate too, and always makes one merge.
        if not methods and (not self.joint_wanted(domains) or self.routed_wanted()):
            return [f.DEFAULT_MERGE_METHOD]
        return methods

    def routed_wanted(self) -> bool:
        """Whether the merge step also keeps the adapters apart as routed adapters."""
        return f.ROUTED in self.candidates()

    def joint_wanted(self, domains: int) -> bool:
        """Whether a joint adapter is trained: asked for, and more than one domain to join."""
        return f.JOINT in self.candidates() and domains > 1

    def merge_search(self, domains: int) -> tuple[list[float], list[f.WeightRule]]:
        """The densities and weight rules the merge step tries besides the plain ones:
        `merge.search` under `auto` with adapters to combine, else none."""
        merge = self.spec.merge
        asked = [m for m in self.merge_methods(domains) if m in self.candidates()]
        if merge.combination != f.AUTO or domains < 2 or not asked:
            return [], []
        return list(merge.search.densities), list(merge.search.weights)

    def merge_points(self, domains: int) -> list[MergePoint]:
        """Every merge the merge step makes (`kaizen.api.merge_grid`), the first into
        `adapter/`; one domain's adapter is copied, once."""
        densities, weights = self.merge_search(domains)
        points = expand(self.merge_methods(domains), self.spec.merge.density, densities, weights)
        return points[:1] if domains == 1 else points

    def merge_candidate_path(self, name: str, domains: int) -> str:
        """The adapter the merge step writes for the point `name`."""
        if name == self.merge_points(domains)[0].name:
            return self.adapter_path(MERGE)
        return self.candidate_path(name)

    def routed_candidates(self, domains: int) -> list[str]:
        """The routed candidates the merge step writes: `routed` and, with adapters to merge,
        `routed-<first merge>` (prompts naming no route get that merge)."""
        if not self.routed_wanted():
            return []
        if domains < 2:
            return [f.ROUTED]
        return [f.ROUTED, f"{f.ROUTED}-{self.merge_points(domains)[0].name}"]

    def candidate_path(self, name: str) -> str:
        """Where the merge step writes a candidate beyond `adapter/` (a further merge point or
        a routed candidate): `candidates/<name>/adapter`."""
        return str(PurePosixPath(self.dir(MERGE)) / CANDIDATES_DIR / name / ADAPTER_DIR)

    def merge_record_path(self) -> str:
        """The merge step's merge.json."""
        return str(PurePosixPath(self.dir(MERGE)) / MergeRecord.FILE_NAME)

    def merge_args(self, sources: Sequence[tuple[str, str]]) -> MergeArgs:
        merge = self.spec.merge
        methods = self.merge_methods(len(sources))
        densities, weights = self.merge_search(len(sources))
        return MergeArgs(
            **self._contract(MERGE),
            **self._model(),
            sources=[f"{domain}={path}" for domain, path in sources],
            combination=methods[0],
            candidates=methods[1:],
            density=merge.density,
            search_densities=densities,
            search_weights=weights,
            seed=merge.seed,
            routed=self.routed_wanted(),
            suite=self.spec.evaluation.suite if self.routed_wanted() else None,
            similar=merge.similar_routes,
        )

    def data_path(self, step: str) -> str:
        """The training set a train step trained on."""
        return str(PurePosixPath(self.dir(step)) / DataCard.DATA_FILE)

    def joint_args(
        self,
        domains: Sequence[str],
        scores: Mapping[str, float] | None = None,
        trained: Mapping[str, int] | None = None,
    ) -> JointArgs:
        """The joint adapter: the domains' training sets together, for as many steps as
        their adapters took together (the same number of updates, spent on one adapter),
        with the train steps' LoRA and training options (precision, quantization, packing,
        parallelism, …): a model the train steps need several GPUs for, the joint step too.
        `trained` holds the steps each train step reported (under the passes rule only
        they know); a domain missing from it counts its planned steps."""
        training = self.spec.training
        steps = sum(
            (trained or {}).get(d) or self.domain_settings(d, scores or {}, domains)[0]
            for d in domains
        )
        return JointArgs(
            **self._contract(JOINT),
            **self._model(),
            data=[f"{d}={self.data_path(train_step_name(d))}" for d in domains],
            **self._lora_training(max(1, min(1_000_000, steps)), training.learning_rate),
        )

    def score_args(self, domain: str, adapter: str) -> EvaluateArgs:
        """`domain`'s adapter alone, on `domain`'s dev items only."""
        args = self.evaluate_args(score_step_name(domain), (adapter,))
        return args.model_copy(update={"domains": [domain], "split": "dev"})

    def combine_args(
        self,
        baseline: str,
        alone: Sequence[tuple[str, str]],
        candidates: Sequence[tuple[str, str]],
        merge_record: str | None = None,
    ) -> CombineArgs:
        evaluation = self.spec.evaluation
        return CombineArgs(
            **self._contract(COMBINE),
            **self._model(),
            **self._inference(),
            suite=evaluation.suite,
            baseline=baseline,
            alone=[f"{domain}={path}" for domain, path in alone],
            candidates=[f"{name}={path}" for name, path in candidates],
            min_retention=self.spec.merge.min_retention,
            max_untrained_drop=self.spec.validation.max_regression,
            significance=self.spec.validation.significance,
            merge_record=merge_record,
            domains=list(evaluation.domains),
            limit=evaluation.limit,
            max_new_tokens=evaluation.max_new_tokens,
            batch_size=evaluation.batch_size,
        )

    def combination_path(self) -> str:
        """The combine step's combination.json."""
        return str(PurePosixPath(self.dir(COMBINE)) / COMBINATION_FILE)

    def validate_args(
        self, baseline: str, candidate: str, combination: str | None = None
    ) -> ValidateArgs:
        """The gate; `combination` (default: the combine step's file) gives report.json the
        retention of the combination the candidate carries."""
        gates = self.spec.validation
        return ValidateArgs(
            **self._contract(VALIDATE),
            baseline=baseline,
            candidate=candidate,
            min_improvement=gates.min_improvement,
            max_regression=gates.max_regression,
            significance=gates.significance,
            require_significance=gates.require_significance,
            power=gates.power,
            target_improvement=gates.target_improvement,
            max_slowdown=gates.max_slowdown,
            max_memory_increase=gates.max_memory_increase,
            lm_eval_max_drop=gates.lm_eval.max_drop if gates.lm_eval else None,
            lm_eval_min_scores=[
                f"{task}={score:g}"
                for task, score in sorted(
                    (gates.lm_eval.min_scores if gates.lm_eval else {}).items()
                )
            ],
            reference=gates.reference.results if gates.reference else None,
            reference_name=gates.reference.name if gates.reference else None,
            html_report=self.report_dir(),
            combination=combination or self.combination_path(),
        )

    def report_dir(self) -> str:
        """Where the cycle's HTML report and plots go (`kaizen report` writes there too)."""
        return str(PurePosixPath(self.cycle_dir) / REPORT_DIR)

    # -- invocations -----------------------------------------------------------------------

    def invocation(self, args: StepArgs, attempt: int = 1) -> StepInvocation:
        """The launch of a step: its Job name for `attempt` and its rendered command line."""
        return StepInvocation(
            name=args.step,
            kind="evaluator" if args.PROGRAM == EVALUATOR else "trainer",
            job_name=job_name(self.cycle, args.step, attempt, self.uid),
            argv=tuple(args.command(PYTHON)),
            artifacts_dir=self.dir(args.step),
            attempt=attempt,
        )

    def evaluate_baseline(self, attempt: int = 1) -> StepInvocation:
        return self.invocation(self.evaluate_args(EVALUATE_BASELINE), attempt)

    def train(self, domain: str, plan: str | None, attempt: int = 1) -> StepInvocation:
        return self.invocation(self.train_args(domain, plan), attempt)
