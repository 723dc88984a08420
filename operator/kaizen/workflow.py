"""The Python API: run improvement cycles from code, in the shape of the original design note.

    from kaizen.workflow import ContinuousImprovementWorkflow
    workflow = ContinuousImprovementWorkflow("manifests/samples/kaizen.dev_v1alpha1_improvementcycle.yaml")
    summary = workflow.run_improvement_cycle()     # one whole cycle, locally
    summaries = workflow.run(cycles=3)             # keep improving: each cycle starts from the promoted model
    workflow.lineage                               # the chain's lineage (also in <artifacts>/<ns>/<name>/lineage.json)

`FeedbackCollector` turns evaluation results into an improvement plan and
`AdaptationManager` trains and merges adapters; both run the same code as the
cycle's steps (the evaluator's analysis, the trainer's programs), so results made
from Python and from a cluster are interchangeable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic.alias_generators import to_camel

from kaizen.api import (
    ImprovementCycle,
    ImprovementCycleStatus,
    StepSummary,
    parse_cycle,
    parse_spec,
)
from kaizen.api.args import StepArgs
from kaizen.api.artifacts import EvaluationResults, read_artifact
from kaizen.api.lineage import ChainLineage
from kaizen.api.summary import EXIT_OK
from kaizen.cycle.planner import StepPlanner
from kaizen.local.chain import LocalChainRunner, chain_from_cycle
from kaizen.local.executor import CycleResult, LocalExecutor, load_cycle_file, run_step_process


@dataclass
class ImprovementSummary:
    """What one cycle did: scores before and after, the verdict, the adapters to continue from."""

    cycle: str
    phase: str
    verdict: str | None
    baseline: dict[str, float]
    candidate: dict[str, float]
    overall_before: float | None
    overall_after: float | None
    p_value: float | None
    promoted_adapters: list[str]
    artifacts: str
    status: ImprovementCycleStatus = field(repr=False)

    @classmethod
    def from_result(cls, result: CycleResult) -> ImprovementSummary:
        status = result.status
        validation = status.validation
        return cls(
            cycle=result.cycle.metadata.name,
            phase=status.phase.value,
            verdict=validation.verdict if validation else None,
            baseline=dict(status.baseline.domains) if status.baseline else {},
            candidate=dict(status.candidate.domains) if status.candidate else {},
            overall_before=status.baseline.overall if status.baseline else None,
            overall_after=status.candidate.overall if status.candidate else None,
            p_value=validation.p_value if validation else None,
            promoted_adapters=list(status.promoted_adapters),
            artifacts=str(result.directory),
            status=status,
        )


class ContinuousImprovementWorkflow:
    """Runs improvement cycles locally, chaining each from the previous cycle's promoted adapters.

    `run(cycles=N)` is a local `ImprovementChain` (`kaizen.local.chain`): the same engine as the
    operator's chains decides, and the lineage is written to
    `<artifacts>/<namespace>/<chain>/lineage.json` (`self.lineage` after a run).
    """

    def __init__(
        self,
        cycle: ImprovementCycle | dict[str, Any] | str | Path,
        *,
        artifacts: str | Path = "artifacts",
        quiet: bool = False,
    ) -> None:
        if isinstance(cycle, ImprovementCycle):
            self.cycle = cycle
        elif isinstance(cycle, dict):
            self.cycle = parse_cycle(cycle)
        else:
            self.cycle = load_cycle_file(cycle)
        self.executor = LocalExecutor(artifacts, quiet=quiet)
        self.history: list[ImprovementSummary] = []
        self.lineage: ChainLineage | None = None

    def run_improvement_cycle(self) -> ImprovementSummary:
        """Evaluate → analyze → train → merge → validate, once; returns the summary."""
        result = self.executor.run(self.cycle)
        summary = ImprovementSummary.from_result(result)
        self.history.append(summary)
        return summary

    def next_cycle(self, summary: ImprovementSummary) -> ImprovementCycle:
        """The following cycle: same spec, starting from the promoted adapters."""
        spec = self.cycle.spec.model_copy(deep=True)
        spec.model.adapters = list(summary.promoted_adapters)
        name = _next_name(self.cycle.metadata.name)
        metadata = self.cycle.metadata.model_copy(update={"name": name})
        return self.cycle.model_copy(update={"spec": spec, "metadata": metadata, "status": None})

    def run(self, cycles: int = 1, *, stop_when_rejected: bool = True) -> list[ImprovementSummary]:
        """Run up to `cycles` cycles in a row (the feedback loop), as a local chain.

        The cycles are named `<name>-1`, `<name>-2`, … (`<name>` less a trailing `-<n>`). A
        cycle that promotes nothing is followed by one that defers the domains it trained (the
        next weakest domain is trained instead); with `stop_when_rejected` the chain stops
        once no domain below the threshold is left untried since the last promotion (the next
        cycle would repeat one), without it it runs all `cycles`.
        """
        # A plateau of `cycles` never ends the chain before its last cycle, and a chain with a
        # plateau is never `Exhausted` (the user's stop rule decides): so all of them run.
        plateau = None if stop_when_rejected else cycles
        chain = chain_from_cycle(self.cycle, cycles, plateau=plateau)
        runner = LocalChainRunner(self.executor)
        result = runner.run(chain)
        self.lineage = result.lineage
        summaries = [ImprovementSummary.from_result(r) for r in result.results]
        self.history.extend(summaries)
        if result.results:
            # A later run() or run_improvement_cycle() continues after the last cycle.
            self.cycle = result.results[-1].cycle
            self.cycle = self.next_cycle(summaries[-1])
        return summaries


def _next_name(name: str) -> str:
    head, _, tail = name.rpartition("-")
    if head and tail.isdigit():
        return f"{head}-{int(tail) + 1}"
    return f"{name}-2"


class FeedbackCollector:
    """Collects evaluation results and turns them into an improvement plan (the analyze step's logic)."""

    def __init__(self, *, threshold: float = 0.7, max_domains: int = 2) -> None:
        self.threshold = threshold
        self.max_domains = max_domains
        self.feedback_db: dict[str, dict[str, Any]] = {}
        self._results: dict[str, Any] | None = None

    def collect_evaluation_feedback(
        self, results: EvaluationResults | dict[str, Any] | str | Path
    ) -> dict[str, dict[str, Any]]:
        """Record per-domain scores and weaknesses from a results.json (its path, model or dict).

        A file is read through `EvaluationResults`, so one of an unknown schema version is
        refused with an `ArtifactError` naming it.
        """
        if isinstance(results, EvaluationResults):
            loaded = results.to_dict()
        elif isinstance(results, dict):
            loaded = results
        else:
            loaded = read_artifact(results, EvaluationResults).to_dict()
        self._results = loaded
        plan = self.generate_improvement_plan()
        stamp = datetime.now(UTC).isoformat()
        for domain, entry in loaded.get("domains", {}).items():
            self.feedback_db[domain] = {
                "score": entry.get("score"),
                "n": entry.get("n"),
                "priority": domain in plan.get("priority_domains", []),
                "timestamp": stamp,
            }
        return self.feedback_db

    def generate_improvement_plan(self) -> dict[str, Any]:
        """Priority domains, targeted capabilities, failure kinds and training recommendations."""
        if self._results is None:
            raise ValueError("collect_evaluation_feedback() first")
        from kaizen.evaluator.analysis import build_plan

        # Not a cycle: a domain without dev items is planned on its test items (need_dev).
        return build_plan(
            self._results,
            threshold=self.threshold,
            max_domains=self.max_domains,
            need_dev=False,
        )


class AdaptationManager:
    """Trains domain adapters and merges them, through the trainer's own programs.

    Each call builds the step's typed arguments with the cycle planner, from a spec made of
    the manager's model and the call's options (so a bad option is refused naming its spec
    field, with the spec's defaults: rehearsal included), and runs the step program as a
    subprocess exactly as `kaizen run` does. Nothing in this process's environment changes.
    """

    def __init__(
        self,
        base_model: str,
        adapters: Sequence[str] = (),
        *,
        output_root: str | Path = "artifacts/adapters",
        quiet: bool = True,
    ):
        self.base_model = base_model
        self.adapters = list(adapters)
        self.output_root = Path(output_root)
        self.quiet = quiet
        self.adaptation_history: list[dict[str, Any]] = []

    def _planner(self, suite: str, **sections: dict[str, Any]) -> StepPlanner:
        spec = parse_spec(
            {
                "model": {"name": self.base_model, "adapters": self.adapters},
                "evaluation": {"suite": suite},
                "tracking": {"mode": "disabled"},
                **sections,
            }
        )
        return StepPlanner(
            spec, namespace="adapters", cycle="manager", artifact_root=str(self.output_root)
        )

    def _run(self, args: StepArgs) -> StepSummary:
        args = args.model_copy(update={"quiet": self.quiet})
        summary_path = Path(args.output).parent / ".summaries" / f"{Path(args.output).name}.json"
        outcome = run_step_process(args.command(), summary_path)
        summary = outcome.summary
        if outcome.exit_code != EXIT_OK or summary is None or not summary.ok:
            reason = summary.reason if summary else "StepFailed"
            message = summary.message if summary else outcome.message
            raise RuntimeError(f"{args.COMMAND} failed ({reason}): {message}")
        return summary

    def create_targeted_adapter(
        self, domain: str, *, suite: str = "demo", plan: str | None = None, **training: Any
    ) -> str:
        """Train one LoRA adapter for `domain`; returns its path.

        `training` takes the fields of `spec.training` in snake_case (`steps`, `rank`,
        `learning_rate`, `replay_fraction`, …); `plan` is an analyze step's plan.json.
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        planner = self._planner(suite, training=_camel(training))
        args = planner.train_args(domain, plan)
        args = args.model_copy(update={"output": str(self.output_root / f"{domain}_{stamp}")})
        summary = self._run(args)
        adapter = summary.adapter
        assert adapter is not None
        self.adaptation_history.append(
            {
                "domain": domain,
                "adapter_path": adapter.path,
                "training_examples": adapter.examples,
                "final_loss": adapter.final_loss,
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )
        return adapter.path

    def merge_adapters(
        self, adapter_paths: dict[str, str], *, combination: str = "ties", density: float = 0.5
    ) -> str:
        """Merge `{domain: adapter path}` into one adapter with a peft method; returns its path."""
        from kaizen.api.fields import COMBINATIONS

        if combination not in COMBINATIONS:
            raise ValueError(
                f"combination {combination!r}: merge_adapters merges with one of "
                f"{', '.join(COMBINATIONS)}; joint and auto are a cycle's merge.combination"
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        planner = self._planner("demo", merge={"combination": combination, "density": density})
        args = planner.merge_args(list(adapter_paths.items()))
        args = args.model_copy(update={"output": str(self.output_root / f"merged_{stamp}")})
        merged = self._run(args).merge
        assert merged is not None
        return merged.path

    def route_adapters(
        self,
        adapter_paths: dict[str, str],
        *,
        suite: str = "demo",
        fallback: bool = False,
        similar: bool = False,
    ) -> str:
        """Keep `{domain: adapter path}` apart as routed adapters (docs/routing.md): each
        applied only to the prompts that name its domain's knowledge in `suite` (with
        `similar`, also to those the model reads as asking about it); with `fallback` (two or
        more adapters), the prompts that name none get their TIES merge. Returns the routed
        folder, which loads like any adapter (`adapters=[...]`)."""
        from kaizen.api.fields import ROUTED

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        planner = self._planner(suite, merge={"combination": "ties"})
        args = planner.merge_args(list(adapter_paths.items()))
        output = self.output_root / f"routed_{stamp}"
        update = {"output": str(output), "routed": True, "suite": suite, "similar": similar}
        args = args.model_copy(update=update)
        self._run(args)
        name = f"{ROUTED}-ties" if fallback and len(adapter_paths) > 1 else ROUTED
        return str(output / "candidates" / name / "adapter")


def _camel(options: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(key): value for key, value in options.items()}
