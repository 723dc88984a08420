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

from kaizen.api import fields
from kaizen.api.args import StepArgs
from kaizen.api.numbers import format_p
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import StepSummary
from kaizen.cycle import conditions as cond
from kaizen.cycle.planner import (
    ANALYZE,
    COMBINE,
    EVALUATE_BASELINE,
    EVALUATE_CANDIDATE,
    JOINT,
    MERGE,
    SCORE_PREFIX,
    TRAIN_PREFIX,
    VALIDATE,
    StepPlanner,
    bounded_label,
    dns_label,
    score_step_name,
    train_step_name,
)

TRAIN = TRAIN_PREFIX.rstrip("-")
SCORE = SCORE_PREFIX.rstrip("-")

#: Builds a step's arguments: (planner, status so far, domain for per-domain kinds).
ArgsBuilder = Callable[[StepPlanner, ImprovementCycleStatus, str | None], StepArgs]
#: Copies a reported digest into the status.
Folder = Callable[[ImprovementCycleStatus, Any], None]
#: Whether a kind has steps in this cycle (from the spec and the status so far).
Enabled = Callable[[StepPlanner, ImprovementCycleStatus], bool]


def _always(planner: StepPlanner, status: ImprovementCycleStatus) -> bool:
    return True


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

    enabled: Enabled = _always
    """Whether the cycle runs this kind at all (a kind that does not run counts as done)."""

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


def _fold_joint(status: ImprovementCycleStatus, digest: Any) -> None:
    status.joint = digest


def _fold_alone(status: ImprovementCycleStatus, digest: Any) -> None:
    status.alone = {**status.alone, **digest.domains}


def _fold_merged(status: ImprovementCycleStatus, digest: Any) -> None:
    status.merged = digest


def _fold_combination(status: ImprovementCycleStatus, digest: Any) -> None:
    status.combination = digest


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


def planned_scores(status: ImprovementCycleStatus) -> dict[str, float]:
    """The priority domains' baseline scores on their dev items, as the analyze step
    reported them: what each adapter's steps are derived from (`domain_steps`).

    Never the baseline's overall domain scores, which include the gate's test items. A plan
    digest without scores (from a Kaizen before them) gives none: every domain then trains
    the configured steps.
    """
    plan = status.plan
    if plan is None or len(plan.priority_scores) != len(plan.priority_domains):
        return {}
    return dict(zip(plan.priority_domains, plan.priority_scores, strict=True))


def _build_train(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    assert domain is not None
    plan = (status.plan and status.plan.plan_path) or planner.plan_path()
    return planner.train_args(domain, plan, planned_scores(status), priority_domains(status))


def _adapter_of(planner: StepPlanner, status: ImprovementCycleStatus, domain: str) -> str:
    by_domain = {a.domain: a.path for a in status.adapters}
    return by_domain.get(domain) or planner.adapter_path(train_step_name(domain))


def _build_joint(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    # As many steps as the train steps took (under the passes rule only they knew how many).
    trained = {a.domain: a.steps for a in status.adapters if a.steps > 0}
    return planner.joint_args(priority_domains(status), planned_scores(status), trained)


def _build_score(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    assert domain is not None
    return planner.score_args(domain, _adapter_of(planner, status, domain))


def _build_merge(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    sources = [(d, _adapter_of(planner, status, d)) for d in priority_domains(status)]
    return planner.merge_args(sources)


def combination_candidates(
    planner: StepPlanner, status: ImprovementCycleStatus
) -> list[tuple[str, str]]:
    """(name, adapter) of every candidate the combine step scores, in `merge.candidates` order,
    each merge method's grid points (`merge.search`) after its plain one."""
    domains = len(priority_domains(status))
    points = planner.merge_points(domains)
    routed = [(name, planner.candidate_path(name)) for name in planner.routed_candidates(domains)]
    if domains == 1:
        # One adapter: the merge step copied it; only routing it is something else to try.
        return [("copy", planner.merge_candidate_path(points[0].name, domains)), *routed]
    by_method: dict[str, list[tuple[str, str]]] = {fields.ROUTED: routed} if routed else {}
    # A merge made only because the merge step always makes one (candidates `joint` and
    # `routed` alone) is not a candidate.
    for point in (p for p in points if p.method in planner.candidates()):
        by_method.setdefault(point.method, []).append(
            (point.name, planner.merge_candidate_path(point.name, domains))
        )
    if planner.joint_wanted(domains):
        joint = (status.joint and status.joint.path) or planner.adapter_path(JOINT)
        by_method["joint"] = [("joint", joint)]
    order = [c for c in planner.candidates() if c in by_method]
    return [
        pair
        for method in order + [m for m in by_method if m not in order]
        for pair in by_method[method]
    ]


def _build_combine(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    alone = [(d, planner.results_path(score_step_name(d))) for d in priority_domains(status)]
    domains = len(priority_domains(status))
    return planner.combine_args(
        _baseline_results(planner, status),
        alone,
        combination_candidates(planner, status),
        planner.merge_record_path() if domains > 1 and planner.merge_methods(domains) else None,
    )


def chosen_adapter(planner: StepPlanner, status: ImprovementCycleStatus) -> str:
    """The adapter the combine step chose (what the candidate is evaluated and promoted with)."""
    return (status.combination and status.combination.path) or planner.adapter_path(COMBINE)


def _build_evaluate_candidate(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    return planner.evaluate_args(EVALUATE_CANDIDATE, (chosen_adapter(planner, status),))


def _joint_enabled(planner: StepPlanner, status: ImprovementCycleStatus) -> bool:
    return planner.joint_wanted(len(priority_domains(status)))


def _merge_enabled(planner: StepPlanner, status: ImprovementCycleStatus) -> bool:
    return bool(planner.merge_methods(len(priority_domains(status))))


def _build_validate(
    planner: StepPlanner, status: ImprovementCycleStatus, domain: str | None
) -> StepArgs:
    candidate = (status.candidate and status.candidate.results_path) or planner.results_path(
        EVALUATE_CANDIDATE
    )
    combination = status.combination.report_path if status.combination else None
    return planner.validate_args(_baseline_results(planner, status), candidate, combination)


# -- headlines ---------------------------------------------------------------------------------


def _evaluation_headline(e: Any) -> str:
    return f"overall score {e.overall:.3f} on {e.items} items"


def _plan_headline(p: Any) -> str:
    return f"priority domains: {', '.join(p.priority_domains) or 'none'}"


def _adapter_headline(a: Any) -> str:
    loss = f", final loss {a.final_loss:.3f}" if a.final_loss is not None else ""
    return f"adapter for {a.domain} trained{loss}"


def _joint_headline(a: Any) -> str:
    loss = f", final loss {a.final_loss:.3f}" if a.final_loss is not None else ""
    return f"joint adapter trained on {a.domain}{loss}"


def _alone_headline(e: Any) -> str:
    scores = ", ".join(f"{d} {v:.3f}" for d, v in sorted(e.domains.items()))
    return f"adapter alone on its dev items: {scores} ({e.items} items)"


def _merge_headline(m: Any) -> str:
    return f"merged {len(m.sources)} adapter(s) with {m.combination}"


def retention_phrase(c: Any) -> str:
    """`min retention 0.93 (target 0.90, met)`, or why retention is undefined."""
    if c.min_retention is None:
        return "retention undefined (no adapter beat the base alone on its dev items)"
    verdict = "met" if c.target_met else "MISSED"
    return f"min retention {c.min_retention:.2f} (target {c.target:.2f}, {verdict})"


def _combination_headline(c: Any) -> str:
    per = ", ".join(
        f"{d} {'n/a' if r is None else f'{r:.2f}'}" for d, r in sorted(c.retention.items())
    )
    untrained = (
        f"; untrained domains {c.untrained_change:+.3f} at worst"
        if c.untrained_change is not None
        else ""
    )
    return f"chose {c.chosen} of {c.candidates}: {retention_phrase(c)} [{per}]{untrained}"


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
        name=JOINT,
        phase=Phase.TRAINING,
        condition=cond.ADAPTERS_TRAINED,
        summary_field="adapter",
        missing="joint adapter",
        fold=_fold_joint,
        build=_build_joint,
        headline=_joint_headline,
        after=(TRAIN,),
        enabled=_joint_enabled,
    ),
    StepKind(
        name=SCORE,
        phase=Phase.MERGING,
        condition=cond.ADAPTERS_MERGED,
        summary_field="evaluation",
        missing="evaluation scores",
        fold=_fold_alone,
        build=_build_score,
        headline=_alone_headline,
        after=(TRAIN,),
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
        enabled=_merge_enabled,
    ),
    StepKind(
        name=COMBINE,
        phase=Phase.MERGING,
        condition=cond.ADAPTERS_MERGED,
        summary_field="combination",
        missing="combination",
        fold=_fold_combination,
        build=_build_combine,
        headline=_combination_headline,
        after=(JOINT, SCORE, MERGE),
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
        after=(COMBINE,),
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
