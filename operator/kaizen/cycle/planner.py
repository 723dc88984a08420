"""The steps of a cycle and their command lines: one argv per step, the same for Job and subprocess.

Every path is derived from the artifact root, the cycle's namespace and name, and the
step name, so any executor (and any re-run) computes the same invocation.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from kaizen.api.spec import ImprovementCycleSpec
from kaizen.cycle.types import StepInvocation, StepKind

EVALUATE_BASELINE = "evaluate-baseline"
ANALYZE = "analyze"
TRAIN_PREFIX = "train-"
MERGE = "merge"
EVALUATE_CANDIDATE = "evaluate-candidate"
VALIDATE = "validate"

PYTHON = "python"
_DNS_LABEL_MAX = 63


def dns_label(text: str) -> str:
    """`text` as a DNS-1123 label fragment: lowercase alphanumerics and dashes."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return label or "x"


def train_step_name(domain: str) -> str:
    """Step name of the adapter training for `domain` (a DNS label fragment)."""
    return TRAIN_PREFIX + dns_label(domain)


def job_name(cycle: str, step: str, attempt: int = 1) -> str:
    """Deterministic Job name, at most 63 characters, unique per cycle, step and attempt."""
    name = f"{cycle}-{step}" + (f"-a{attempt}" if attempt > 1 else "")
    if len(name) <= _DNS_LABEL_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: _DNS_LABEL_MAX - 11].rstrip('-')}-{digest}"


def artifacts_dir(root: str, namespace: str, cycle: str, step: str) -> str:
    """`<root>/<namespace>/<cycle>/<step>` (POSIX: it is a path inside the Job's volume)."""
    return str(PurePosixPath(root) / namespace / cycle / step)


class StepPlanner:
    """Builds the invocation of each step of one cycle."""

    def __init__(
        self, spec: ImprovementCycleSpec, *, namespace: str, cycle: str, artifact_root: str
    ):
        self.spec = spec
        self.namespace = namespace
        self.cycle = cycle
        self.root = artifact_root

    def dir(self, step: str) -> str:
        return artifacts_dir(self.root, self.namespace, self.cycle, step)

    @property
    def cycle_dir(self) -> str:
        return str(PurePosixPath(self.root) / self.namespace / self.cycle)

    def _common(self, step: str) -> list[str]:
        tracking = self.spec.tracking
        argv = ["--output", self.dir(step), "--step", step, "--cycle", self.cycle]
        argv += ["--tracking-mode", tracking.mode, "--tracking-project", tracking.project]
        if tracking.entity:
            argv += ["--tracking-entity", tracking.entity]
        return argv

    def _model(self, extra_adapters: tuple[str, ...] = ()) -> list[str]:
        model = self.spec.model
        argv = ["--model", model.name]
        if model.revision:
            argv += ["--revision", model.revision]
        for adapter in (*model.adapters, *extra_adapters):
            argv += ["--adapter", adapter]
        return argv

    def _invocation(
        self, step: str, kind: StepKind, argv: list[str], attempt: int
    ) -> StepInvocation:
        return StepInvocation(
            name=step,
            kind=kind,
            job_name=job_name(self.cycle, step, attempt),
            argv=tuple(argv),
            artifacts_dir=self.dir(step),
            attempt=attempt,
        )

    def _evaluate(self, step: str, adapters: tuple[str, ...], attempt: int) -> StepInvocation:
        evaluation = self.spec.evaluation
        argv = [PYTHON, "-m", "kaizen.evaluator", "evaluate", *self._model(adapters)]
        argv += ["--suite", evaluation.suite]
        argv += ["--max-new-tokens", str(evaluation.max_new_tokens)]
        argv += ["--batch-size", str(evaluation.batch_size)]
        if evaluation.domains:
            argv += ["--domains", ",".join(evaluation.domains)]
        if evaluation.limit is not None:
            argv += ["--limit", str(evaluation.limit)]
        for task in evaluation.lm_eval_tasks:
            argv += ["--lm-eval-task", task]
        return self._invocation(step, "evaluator", argv + self._common(step), attempt)

    def evaluate_baseline(self, attempt: int = 1) -> StepInvocation:
        return self._evaluate(EVALUATE_BASELINE, (), attempt)

    def evaluate_candidate(self, merged_adapter: str, attempt: int = 1) -> StepInvocation:
        return self._evaluate(EVALUATE_CANDIDATE, (merged_adapter,), attempt)

    def results_path(self, step: str) -> str:
        return str(PurePosixPath(self.dir(step)) / "results.json")

    def plan_path(self) -> str:
        return str(PurePosixPath(self.dir(ANALYZE)) / "plan.json")

    def adapter_path(self, step: str) -> str:
        return str(PurePosixPath(self.dir(step)) / "adapter")

    def analyze(self, baseline_results: str, attempt: int = 1) -> StepInvocation:
        analysis = self.spec.analysis
        argv = [PYTHON, "-m", "kaizen.evaluator", "analyze", "--baseline", baseline_results]
        argv += ["--max-domains", str(analysis.max_priority_domains)]
        argv += ["--threshold", str(analysis.score_threshold)]
        return self._invocation(ANALYZE, "evaluator", argv + self._common(ANALYZE), attempt)

    def train(self, domain: str, plan: str, attempt: int = 1) -> StepInvocation:
        step = train_step_name(domain)
        training = self.spec.training
        argv = [PYTHON, "-m", "kaizen.trainer", "train", *self._model()]
        argv += ["--suite", self.spec.evaluation.suite, "--domain", domain, "--plan", plan]
        argv += ["--rank", str(training.rank), "--alpha", str(training.alpha)]
        argv += ["--dropout", str(training.dropout)]
        argv += ["--target-modules", *training.target_modules]
        argv += ["--learning-rate", str(training.learning_rate), "--steps", str(training.steps)]
        argv += ["--batch-size", str(training.batch_size)]
        argv += ["--max-seq-length", str(training.max_seq_length), "--seed", str(training.seed)]
        argv += ["--replay-fraction", str(training.replay_fraction)]
        if training.extra_data:
            argv += ["--extra-data", training.extra_data]
        return self._invocation(step, "trainer", argv + self._common(step), attempt)

    def merge(self, sources: list[tuple[str, str]], attempt: int = 1) -> StepInvocation:
        merge = self.spec.merge
        argv = [PYTHON, "-m", "kaizen.trainer", "merge", *self._model()]
        for domain, path in sources:
            argv += ["--source", f"{domain}={path}"]
        argv += ["--combination", merge.combination, "--density", str(merge.density)]
        argv += ["--seed", str(merge.seed)]
        return self._invocation(MERGE, "trainer", argv + self._common(MERGE), attempt)

    def validate(self, baseline: str, candidate: str, attempt: int = 1) -> StepInvocation:
        gates = self.spec.validation
        argv = [PYTHON, "-m", "kaizen.evaluator", "validate"]
        argv += ["--baseline", baseline, "--candidate", candidate]
        argv += ["--min-improvement", str(gates.min_improvement)]
        argv += ["--max-regression", str(gates.max_regression)]
        argv += ["--significance", str(gates.significance)]
        argv += [
            "--require-significance" if gates.require_significance else "--no-require-significance"
        ]
        return self._invocation(VALIDATE, "evaluator", argv + self._common(VALIDATE), attempt)
