"""The table of step kinds the engine iterates: what each step is, needs, shows and records.

A step kind is one row: its name, the phase and the condition it belongs to, the summary field it must report and the status slot that field
is folded into, the kinds it waits for, whether it runs once per priority domain, how its
typed arguments (which also name the program and so the image) are built from the spec and
the status so far, and its one-line headline.
The engine knows no step by name: adding a step kind is one row here plus its program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kaizen.api.args import StepArgs
from kaizen.api.numbers import format_p
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import StepSummary
from kaizen.cycle import conditions as cond
from kaizen.cycle.planner import (
    ANALYZE,
    EVALUATE_BASELINE,
    EVALUATE_CANDIDATE,
    MERGE,
    TRAIN_PREFIX,
    VALIDATE,
    StepPlanner,
    bounded_label,
    dns_label,
    train_step_name,
)

TRAIN = TRAIN_PREFIX.rstrip("-")

#: Builds a step's arguments: (planner, status so far, domain for per-domain kinds).
ArgsBuilder = Callable[[StepPlanner, ImprovementCycleStatus, str | None], StepArgs]
#: Copies a reported digest into the status.
Folder = Callable[[ImprovementCycleStatus, Any], None]


@dataclass(frozen=True)
class StepKind:
    """One kind of step of a cycle."""

    name: str
    """Step name; for a per-domain kind, the prefix of `<name>-<domain>`."""

    phase: Phase
    """The cycle's phase while this kind is the latest one launched."""

    condition: str
    """The stage condition this kind's steps make up."""

    summary_field: str
    """The `StepSummary` field the step must report (its digest)."""

    missing: str
    """What is missing when that field is absent, for the failure message."""

    fold: Folder
    """Puts the digest into its status slot."""

    build: ArgsBuilder
    """The step's typed arguments."""

    headline: Callable[[Any], str]
    """One line for humans from the digest."""

    after: tuple[str, ...] = ()
    """Kinds whose steps must all have succeeded before this one starts."""

    per_domain: bool = False
    """One step per priority domain of the plan (run in parallel)."""

    def step_name(self, domain: str | None = None) -> str:
        """`<name>-<domain>` for a per-domain kind, else the name."""
        if self.per_domain and domain:
            return bounded_label(f"{self.name}-{dns_label(domain)}")
        return self.name

    def owns(self, step: str) -> bool:
        """True when `step` is a step of this kind."""
        if self.per_domain:
            return step.startswith(self.name + "-")
        return step == self.name


# -- status slots ------------------------------------------------------------------------------


def _fold_baseline(status: ImprovementCycleStatus, digest: Any) -> None:
    status.baseline = digest


def _fold_plan(status: ImprovementCycleStatus, digest: Any) -> None:
    status.plan = digest


def _fold_adapter(status: ImprovementCycleStatus, digest: Any) -> None:
    status.adapters = [a for a in status.adapters if a.domain != digest.domain] + [digest]


def _fold_merged(status: ImprovementCycleStatus, digest: Any) -> None:
    status.merged = digest


def _fold_candidate(status: ImprovementCycleStatus, digest: Any) -> None:
    status.candidate = digest


def _fold_validation(status: ImprovementCycleStatus, digest: Any) -> None:
    status.validation = digest
    if digest.html_report_path:
        status.report_path = digest.html_report_path


# -- where earlier steps left their outputs ----------------------------------------------------


def priority_domains(status: ImprovementCycleStatus) -> list[str]:
    """The plan's priority domains (none before the analyze step reported)."""
    return list(status.plan.priority_domains) if status.plan else []


def _baseline_results(planner: StepPlanner, status: ImprovementCycleStatus) -> str:
    return (status.baseline and status.baseline.results_path) or planner.results_path(
        EVALUATE_BASELINE
    )


def _build_evaluate_baseline(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    return planner.evaluate_args(EVALUATE_BASELINE)


def _build_analyze(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    return planner.analyze_args(_baseline_results(planner, status))


def _build_train(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    assert domain is not None
    plan = (status.plan and status.plan.plan_path) or planner.plan_path()
    scores = dict(status.baseline.domains) if status.baseline else {}
    return planner.train_args(domain, plan, scores, priority_domains(status))


def _build_merge(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    by_domain = {a.domain: a.path for a in status.adapters}
    sources = [
        (d, by_domain.get(d) or planner.adapter_path(train_step_name(d)))
        for d in priority_domains(status)
    ]
    return planner.merge_args(sources)


def _build_evaluate_candidate(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    merged = (status.merged and status.merged.path) or planner.adapter_path(MERGE)
    return planner.evaluate_args(EVALUATE_CANDIDATE, (merged,))


def _build_validate(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    candidate = (status.candidate and status.candidate.results_path) or planner.results_path(
        EVALUATE_CANDIDATE
    )
    return planner.validate_args(_baseline_results(planner, status), candidate)


# -- headlines ---------------------------------------------------------------------------------


def _evaluation_headline(e: Any) -> str:
    return f"overall score {e.overall:.3f} on {e.items} items"


def _plan_headline(p: Any) -> str:
    return f"priority domains: {', '.join(p.priority_domains) or 'none'}"


def _adapter_headline(a: Any) -> str:
    loss = f", final loss {a.final_loss:.3f}" if a.final_loss is not None else ""
    return f"adapter for {a.domain} trained{loss}"


def _merge_headline(m: Any) -> str:
    return f"merged {len(m.sources)} adapter(s) with {m.combination}"


def _validation_headline(v: Any) -> str:
    return f"verdict {v.verdict}: overall {v.overall_delta:+.3f}, p={format_p(v.p_value)}"


#: Every step kind of a cycle, in the order the cycle runs them.
STEP_KINDS: tuple[StepKind, ...] = (
    StepKind(
        name=EVALUATE_BASELINE,
        phase=Phase.EVALUATING,
        condition=cond.BASELINE_EVALUATED,
        summary_field="evaluation",
        missing="evaluation scores",
        fold=_fold_baseline,
        build=_build_evaluate_baseline,
        headline=_evaluation_headline,
    ),
    StepKind(
        name=ANALYZE,
        phase=Phase.ANALYZING,
        condition=cond.WEAKNESS_ANALYZED,
        summary_field="plan",
        missing="plan",
        fold=_fold_plan,
        build=_build_analyze,
        headline=_plan_headline,
        after=(EVALUATE_BASELINE,),
    ),
    StepKind(
        name=TRAIN,
        phase=Phase.TRAINING,
        condition=cond.ADAPTERS_TRAINED,
        summary_field="adapter",
        missing="adapter",
        fold=_fold_adapter,
        build=_build_train,
        headline=_adapter_headline,
        after=(ANALYZE,),
        per_domain=True,
    ),
    StepKind(
        name=MERGE,
        phase=Phase.MERGING,
        condition=cond.ADAPTERS_MERGED,
        summary_field="merge",
        missing="merged adapter",
        fold=_fold_merged,
        build=_build_merge,
        headline=_merge_headline,
        after=(TRAIN,),
    ),
    StepKind(
        name=EVALUATE_CANDIDATE,
        phase=Phase.EVALUATING,
        condition=cond.CANDIDATE_EVALUATED,
        summary_field="evaluation",
        missing="evaluation scores",
        fold=_fold_candidate,
        build=_build_evaluate_candidate,
        headline=_evaluation_headline,
        after=(MERGE,),
    ),
    StepKind(
        name=VALIDATE,
        phase=Phase.VALIDATING,
        condition=cond.VALIDATED,
        summary_field="validation",
        missing="verdict",
        fold=_fold_validation,
        build=_build_validate,
        headline=_validation_headline,
        after=(EVALUATE_CANDIDATE,),
    ),
)

_BY_NAME = {kind.name: kind for kind in STEP_KINDS}


def kind_named(name: str) -> StepKind:
    """The kind called `name` (raises KeyError)."""
    return _BY_NAME[name]


def kind_of(step: str) -> StepKind:
    """The kind a step name belongs to (raises ValueError for an unknown step)."""
    for kind in STEP_KINDS:
        if kind.owns(step):
            return kind
    raise ValueError(f"unknown step {step!r}")


def needs_domains(kind: StepKind) -> bool:
    """True for a per-domain kind and every kind that waits for one (directly or not)."""
    return kind.per_domain or any(needs_domains(kind_named(a)) for a in kind.after)


def headline(step: str, summary: StepSummary) -> str:
    """The kind's one line for a step's summary, or `<step> completed`."""
    try:
        kind = kind_of(step)
    except ValueError:
        return f"{step} completed"
    digest = getattr(summary, kind.summary_field)
    return kind.headline(digest) if digest is not None else f"{step} completed"
