"""The cycle engine: pure, idempotent decisions about what a cycle does next.

`reconcile` takes the cycle (spec and status) and what an executor observed of the
steps the status lists as launched, and returns a `Decision`: the complete new status,
the steps to launch, whether to stop the cycle's other steps, and the events to emit.
It decides from `status` alone, never from "a Job is absent", so finished steps are
never started again, and the same inputs always give the same decision. It knows no step by
name: it walks the table of step kinds in `catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping

from kaizen.api.numbers import format_p
from kaizen.api.resource import ImprovementCycle
from kaizen.api.status import Condition, ImprovementCycleStatus, Phase, StepRecord, StepState
from kaizen.api.summary import EXIT_CONFIG_ERROR, StepSummary
from kaizen.cycle import conditions as cond
from kaizen.cycle import edits
from kaizen.cycle.catalog import (
    STEP_KINDS,
    StepKind,
    headline,
    kind_named,
    kind_of,
    needs_domains,
    priority_domains,
    retention_phrase,
)
from kaizen.cycle.planner import StepPlanner
from kaizen.cycle.types import CycleEvent, Decision, StepInvocation, StepObservation

#: A step whose Job disappeared before its outcome was recorded is relaunched this often.
MAX_ATTEMPTS = 3
TERMINAL_STEP_STATES = (StepState.SUCCEEDED, StepState.FAILED)
TERMINAL_PHASES = (Phase.SUCCEEDED, Phase.FAILED)

CONFIGURATION_ERROR = "ConfigurationError"
STEP_FAILED = "StepFailed"
INVALID_SPEC = "InvalidSpec"
#: The API refused to create a step's Job: retried (quota, admission), or the cycle fails
#: when the refusal cannot change (422 Invalid).
JOB_REJECTED = "JobRejected"
#: The outcome of a cycle whose suite could not detect the target improvement.
INCONCLUSIVE = "Inconclusive"
#: The chosen combination kept less than `merge.minRetention` of some adapter's gain.
RETENTION_BELOW_TARGET = "RetentionBelowTarget"
#: Reasons of a step that is moving normally (anything else names a problem).
PROGRESS_REASONS = frozenset({None, "Launched", "Relaunched", "Queued", "Running"})


def reconcile(
    cycle: ImprovementCycle,
    observations: Mapping[str, StepObservation],
    *,
    artifact_root: str,
    now: str,
    spec_error: str | None = None,
) -> Decision:
    """Decide the next status and actions of `cycle` from its status and the observations.

    The cycle runs `status.runSpec`, the spec it started with (`kaizen.cycle.edits`); when the
    stored spec was edited since, `cycle.spec` is that edit (not run, only answered), and
    `spec_error` its validation problem when it does not parse (`cycle.spec` is then the run
    spec).
    """
    meta = cycle.metadata
    status = (cycle.status or ImprovementCycleStatus()).model_copy(deep=True)
    status.observed_generation = meta.generation
    if status.phase in TERMINAL_PHASES:
        # Finished: nothing runs again; an edit is answered (SpecApplied, Ready, Stalled).
        status.conditions = _summary_conditions(status, now, meta.generation)
        found = edits.answer(cycle, status, now=now, spec_error=spec_error, finished=True)
        return Decision(status=status, events=tuple(found))
    edits.snapshot(cycle, status)
    stored = cycle
    assert status.run_spec is not None
    cycle = cycle.model_copy(update={"spec": status.run_spec})
    planner = StepPlanner(
        cycle.spec,
        namespace=meta.namespace,
        cycle=meta.name,
        artifact_root=artifact_root,
        uid=meta.uid,
    )
    if status.start_time is None:
        status.start_time = now
    status.artifacts_path = planner.cycle_dir
    run = _Run(status, planner, now, meta.generation)

    for record in status.steps:
        if record.state not in TERMINAL_STEP_STATES:
            run.observe(record, observations.get(record.name))

    failed = [r for r in status.steps if r.state == StepState.FAILED]
    if failed:
        run.fail_cycle(failed[0])
    else:
        run.advance(cycle)
    run.refresh_conditions()
    finished = status.phase in TERMINAL_PHASES
    run.events += edits.answer(stored, status, now=now, spec_error=spec_error, finished=finished)
    return Decision(
        status=status,
        start=tuple(run.starts),
        stop_running_steps=run.stop_running,
        events=tuple(run.events),
    )


def invalid_spec(
    status: ImprovementCycleStatus | None, *, generation: int | None, message: str, now: str
) -> Decision:
    """The decision for a spec that does not validate: Failed at once, never retried."""
    status = (status or ImprovementCycleStatus()).model_copy(deep=True)
    status.observed_generation = generation
    already = (
        status.phase == Phase.FAILED
        and status.failure_reason == INVALID_SPEC
        and status.message == message
    )
    status.phase = Phase.FAILED
    status.failure_reason = INVALID_SPEC
    status.message = message
    status.completion_time = status.completion_time if already else now
    for record in status.steps:
        # Their Jobs are deleted with this decision: no step may still read Running.
        if record.state not in TERMINAL_STEP_STATES:
            record.state = StepState.FAILED
            record.reason = "Cancelled"
            record.message = "stopped because the spec does not validate"
            record.completion_time = now
    status.conditions = _summary_conditions(status, now, generation)
    events = () if already else (CycleEvent("Warning", INVALID_SPEC, message),)
    return Decision(status=status, stop_running_steps=True, events=events)


class _Run:
    """The mutable working state of one `reconcile` call."""

    def __init__(
        self, status: ImprovementCycleStatus, planner: StepPlanner, now: str, generation: int | None
    ):
        self.status = status
        self.planner = planner
        self.now = now
        self.generation = generation
        self.starts: list[StepInvocation] = []
        self.events: list[CycleEvent] = []
        self.stop_running = False

    # -- observations ------------------------------------------------------------------

    def observe(self, record: StepRecord, seen: StepObservation | None) -> None:
        state = seen.state if seen else StepState.PENDING
        if state == StepState.PENDING:
            self._not_seen(record)
            if seen is not None and seen.reason and record.state == StepState.PENDING:
                # Not created yet, and the executor knows why (the API refused the Job).
                record.reason, record.message = seen.reason, seen.message
        elif state in (StepState.QUEUED, StepState.RUNNING):
            queued = state == StepState.QUEUED
            reason = (seen.reason if seen else None) or ("Queued" if queued else "Running")
            message = (seen.message if seen else None) or (
                "waiting for quota or capacity" if queued else "running"
            )
            # A pod stuck on its image or waiting for a node says so here, and again when it
            # moves on; the same observation twice changes nothing.
            if (record.state, record.reason, record.message) != (state, reason, message):
                record.state, record.reason, record.message = state, reason, message
        elif state == StepState.SUCCEEDED:
            assert seen is not None
            self._succeeded(record, seen)
        else:
            assert seen is not None
            self._failed(record, seen)

    def _not_seen(self, record: StepRecord) -> None:
        if record.state == StepState.PENDING:
            # Launched but never seen: launching again is harmless (creation is idempotent).
            self.starts.append(self._invocation(record.name, record.attempt))
            return
        if record.attempt >= MAX_ATTEMPTS:
            self._record_failure(
                record,
                "JobLost",
                f"the Job of step {record.name} disappeared {record.attempt} times",
            )
            return
        # The Job vanished before its outcome was recorded (deleted by hand, node lost):
        # relaunch under a new name; a step that already finished reuses its artifacts.
        invocation = self._invocation(record.name, record.attempt + 1)
        self.events.append(
            CycleEvent(
                "Warning",
                "JobLost",
                f"Job {record.job_name} disappeared; relaunching as {invocation.job_name}",
            )
        )
        record.attempt = invocation.attempt
        record.job_name = invocation.job_name
        record.state = StepState.PENDING
        record.reason, record.message = "Relaunched", "the previous Job disappeared"
        record.start_time = self.now
        self.starts.append(invocation)

    def _succeeded(self, record: StepRecord, seen: StepObservation) -> None:
        summary = seen.summary
        if summary is None:
            detail = f": {seen.message}" if seen.message else ""
            self._record_failure(
                record,
                "SummaryMissing",
                f"step {record.name} succeeded but left no readable summary{detail}",
            )
            return
        if not summary.ok:
            self._record_failure(
                record, summary.reason, summary.message or "the step reported a failure"
            )
            return
        problem = self._fold(record.name, summary)
        if problem:
            self._record_failure(record, "SummaryIncomplete", problem)
            return
        record.state = StepState.SUCCEEDED
        record.reason = "StepSucceeded"
        record.message = summary.message or headline(record.name, summary)
        if summary.reused:
            record.message += " (earlier output made from the same inputs, reused)"
        if summary.trimmed:
            cut = ", ".join(f"{field} {count}" for field, count in sorted(summary.trimmed.items()))
            record.message += f" (left out to fit 4 KiB: {cut}; all of it is in the artifacts)"
        record.digest = summary.digest
        record.artifacts_dir = summary.artifacts_dir or record.artifacts_dir
        record.completion_time = self.now
        self.events.append(
            CycleEvent("Normal", "StepSucceeded", f"{record.name}: {record.message}")
        )

    def _failed(self, record: StepRecord, seen: StepObservation) -> None:
        summary = seen.summary
        if summary is not None and not summary.ok:
            reason, message = summary.reason, summary.message
        else:
            reason = seen.reason or STEP_FAILED
            message = seen.message or f"exit code {seen.exit_code}"
        if seen.exit_code == EXIT_CONFIG_ERROR and (summary is None or summary.ok):
            # A step that names its own permanent failure (SummaryTooLarge) keeps that reason.
            reason = CONFIGURATION_ERROR
        self._record_failure(record, reason, message or "the step failed")

    def _record_failure(self, record: StepRecord, reason: str, message: str) -> None:
        record.state = StepState.FAILED
        record.reason = reason
        record.message = message
        record.completion_time = self.now
        self.events.append(CycleEvent("Warning", reason, f"step {record.name} failed: {message}"))

    def _fold(self, step: str, summary: StepSummary) -> str | None:
        """Copy a step's digest into status; returns a problem when the summary lacks it."""
        kind = kind_of(step)
        digest = getattr(summary, kind.summary_field)
        if digest is None:
            return f"step {step} reported no {kind.missing}"
        kind.fold(self.status, digest)
        return None

    # -- progress ----------------------------------------------------------------------

    def _record(self, name: str) -> StepRecord | None:
        return next((r for r in self.status.steps if r.name == name), None)

    def _done(self, name: str) -> bool:
        record = self._record(name)
        return record is not None and record.state == StepState.SUCCEEDED

    def _launch(self, name: str) -> None:
        if self._record(name) is not None:
            return
        invocation = self._invocation(name, 1)
        self.status.steps.append(
            StepRecord(
                name=name,
                job_name=invocation.job_name,
                state=StepState.PENDING,
                attempt=1,
                start_time=self.now,
                reason="Launched",
                message="launched",
                artifacts_dir=invocation.artifacts_dir,
            )
        )
        self.starts.append(invocation)
        self.events.append(
            CycleEvent("Normal", "StepStarted", f"started step {name} (Job {invocation.job_name})")
        )

    def _priority_domains(self) -> list[str]:
        return priority_domains(self.status)

    def _step_names(self, kind: StepKind) -> list[str]:
        """The steps of `kind` in this cycle (per-domain kinds: one per priority domain)."""
        if not kind.enabled(self.planner, self.status):
            return []
        if kind.per_domain:
            return [kind.step_name(d) for d in self._priority_domains()]
        return [kind.name]

    def _kind_done(self, name: str) -> bool:
        kind = kind_named(name)
        if not kind.enabled(self.planner, self.status):
            return True
        steps = self._step_names(kind)
        return bool(steps) and all(self._done(step) for step in steps)

    def _invocation(self, name: str, attempt: int) -> StepInvocation:
        kind = kind_of(name)
        domain = None
        if kind.per_domain:
            domain = next(d for d in self._priority_domains() if kind.step_name(d) == name)
        args = kind.build(self.planner, self.status, domain)
        return self.planner.invocation(args, attempt)

    def advance(self, cycle: ImprovementCycle) -> None:
        """Launch every step whose prerequisites succeeded, or finish the cycle."""
        for kind in STEP_KINDS:
            if not all(self._kind_done(after) for after in kind.after):
                continue
            if not kind.enabled(self.planner, self.status):
                continue
            steps = self._step_names(kind)
            if kind.per_domain and not steps:
                # The analyze step's message names each domain's score and item count.
                analyzed = self._record("analyze")
                self._succeed(
                    cycle,
                    "NothingToImprove",
                    (analyzed and analyzed.message)
                    or "no domain scored below the threshold; nothing to train",
                )
                return
            if len(set(steps)) != len(steps):
                self._fail(
                    "DomainNameClash",
                    f"priority domains {self._priority_domains()} map to the same step names",
                )
                return
            for step in steps:
                self._launch(step)
        if all(self._kind_done(kind.name) for kind in STEP_KINDS):
            self._finish_validated(cycle)
            return
        self.status.phase = _phase(self.status)
        self.status.message = self._progress_message()

    def _progress_message(self) -> str:
        held = _held(self.status)
        if held:
            # Something a person must fix holds a step up: that is the news.
            return f"{held[0].name}: {held[0].message or held[0].reason}"
        active = [r.name for r in self.status.steps if r.state not in TERMINAL_STEP_STATES]
        queued = [r.name for r in self.status.steps if r.state == StepState.QUEUED]
        if queued:
            return f"waiting for quota: {', '.join(queued)}"
        return f"running: {', '.join(active)}" if active else "waiting"

    def _finish_validated(self, cycle: ImprovementCycle) -> None:
        validation = self.status.validation
        assert validation is not None
        if validation.verdict == "Promote" and self.status.combination is not None:
            self.status.promoted_adapters = [
                *cycle.spec.model.adapters,
                self.status.combination.path,
            ]
            reason = "Promoted"
            message = (
                f"candidate promoted: overall {validation.overall_delta:+.3f}, "
                f"p={format_p(validation.p_value)}"
            )
        elif validation.verdict == "Inconclusive":
            # The suite, not the candidate, is the problem: the model stays as it was and the
            # message says what would make the next verdict conclusive. A Normal Event: the
            # cycle did its work (a Warning would read as a malfunction to alerting).
            self.status.promoted_adapters = list(cycle.spec.model.adapters)
            reason = INCONCLUSIVE
            mde = validation.minimum_detectable_effect
            detectable = (
                "no improvement" if mde is None else f"only improvements of {mde:.3f} or more"
            )
            message = (
                f"candidate inconclusive: overall {validation.overall_delta:+.3f}, "
                f"p={format_p(validation.p_value)}, but the suite detects {detectable} "
                f"at the configured power; add items to the suite or raise "
                f"spec.validation.targetImprovement"
            )
        else:
            self.status.promoted_adapters = list(cycle.spec.model.adapters)
            reason = "Rejected"
            why = "; ".join(validation.reasons) or "a gate failed"
            message = f"candidate rejected: {why}"
        self._succeed(cycle, reason, message)

    def _succeed(self, cycle: ImprovementCycle, reason: str, message: str) -> None:
        if reason == "NothingToImprove":
            self.status.promoted_adapters = list(cycle.spec.model.adapters)
        combination = self.status.combination
        if combination is not None:
            # The combination's own target is news whatever the verdict: a promotion that
            # kept too little of what an adapter learned must not look like a clean one.
            message += f"; {combination.chosen}: {retention_phrase(combination)}"
            if combination.target_met is False:
                self.events.append(
                    CycleEvent(
                        "Warning",
                        RETENTION_BELOW_TARGET,
                        f"no combination kept {combination.target:.2f} of every adapter's "
                        f"gain on the dev items; the best, {combination.chosen}, kept "
                        f"{combination.min_retention:.2f} (combination.json lists them all)",
                    )
                )
        self.status.phase = Phase.SUCCEEDED
        self.status.completion_time = self.now
        self.status.message = message
        self.events.append(CycleEvent("Normal", reason, message))

    def fail_cycle(self, failed: StepRecord) -> None:
        # A configuration error or a refused Job needs a person; anything else is a failed step.
        reason = (
            failed.reason if failed.reason in (CONFIGURATION_ERROR, JOB_REJECTED) else STEP_FAILED
        )
        self._fail(reason, f"step {failed.name} failed ({failed.reason}): {failed.message}")

    def _fail(self, reason: str, message: str) -> None:
        status = self.status
        for record in status.steps:
            if record.state not in TERMINAL_STEP_STATES:
                record.state = StepState.FAILED
                record.reason = "Cancelled"
                record.message = "stopped because the cycle failed"
                record.completion_time = self.now
                self.stop_running = True
        status.phase = Phase.FAILED
        status.failure_reason = reason
        status.message = message
        status.completion_time = self.now
        self.events.append(CycleEvent("Warning", "CycleFailed", message))

    # -- conditions --------------------------------------------------------------------

    def refresh_conditions(self) -> None:
        status, now, gen = self.status, self.now, self.generation
        conditions = status.conditions
        nothing_to_do = status.phase == Phase.SUCCEEDED and not self._priority_domains()
        for type_, names, after_plan in self._stages():
            state, reason, message = _stage_state(self.status, names, nothing_to_do and after_plan)
            conditions = cond.set_condition(
                conditions, type_, state, reason, message, now=now, generation=gen
            )
        status.conditions = conditions
        status.conditions = _summary_conditions(status, now, gen)

    def _stages(self) -> list[tuple[str, list[str], bool]]:
        """(condition, its steps, whether it waits for priority domains) per condition; a
        condition several kinds make up (training: the domain adapters and the joint one)
        covers the steps of all of them."""
        stages: dict[str, tuple[list[str], bool]] = {}
        for kind in STEP_KINDS:
            steps = self._step_names(kind)
            if kind.per_domain and not steps:
                # Before the plan names domains, show whatever was launched (if anything).
                steps = [r.name for r in self.status.steps if kind.owns(r.name)]
            names, waits = stages.get(kind.condition, ([], False))
            stages[kind.condition] = (names + steps, waits or needs_domains(kind))
        return [(condition, names, waits) for condition, (names, waits) in stages.items()]


def _stage_state(
    status: ImprovementCycleStatus, names: list[str], not_required: bool
) -> tuple[cond.ConditionStatus, str, str]:
    if not_required:
        return "False", "NotRequired", "no domain needed training"
    records = [r for r in status.steps if r.name in names]
    if not names or not records:
        return "Unknown", "Pending", "waiting for earlier steps"
    failed = [r for r in records if r.state == StepState.FAILED]
    if failed:
        return "False", failed[0].reason or STEP_FAILED, failed[0].message or "failed"
    if len(records) == len(names) and all(r.state == StepState.SUCCEEDED for r in records):
        return "True", "StepSucceeded", "; ".join(r.message or r.name for r in records)[:1000]
    if any(r.state == StepState.QUEUED for r in records):
        return "Unknown", "Queued", "waiting for quota or capacity"
    return (
        "Unknown",
        "Running",
        ", ".join(r.name for r in records if r.state not in TERMINAL_STEP_STATES),
    )


def _summary_conditions(
    status: ImprovementCycleStatus, now: str, gen: int | None
) -> list[Condition]:
    conditions = status.conditions
    message = status.message or ""
    values: dict[str, tuple[cond.ConditionStatus, str]]
    if status.phase == Phase.SUCCEEDED:
        verdict = status.validation.verdict if status.validation else None
        reason = {"Promote": "Promoted", "Reject": "Rejected", "Inconclusive": INCONCLUSIVE}.get(
            verdict or "", "NothingToImprove"
        )
        values = {
            cond.SUCCEEDED: ("True", reason),
            cond.READY: ("True", reason),
            cond.RECONCILING: ("False", reason),
            cond.STALLED: ("False", reason),
        }
    elif status.phase == Phase.FAILED:
        reason = status.failure_reason or STEP_FAILED
        values = {
            cond.SUCCEEDED: ("False", reason),
            cond.READY: ("False", reason),
            cond.RECONCILING: ("False", reason),
            cond.STALLED: ("True", reason),
        }
    else:
        # A step held up by something a person must fix (a refused Job, an image that cannot
        # be pulled, no node for its pod) names the problem in Reconciling.
        held = _held(status)
        if held:
            reason, message = held[0].reason or "Running", held[0].message or message
        elif any(r.state == StepState.QUEUED for r in status.steps):
            reason = "Queued"
        else:
            reason = "Running"
        values = {
            cond.SUCCEEDED: ("Unknown", reason),
            cond.READY: ("False", reason),
            cond.RECONCILING: ("True", reason),
            cond.STALLED: ("False", reason),
        }
    for type_, (state, why) in values.items():
        conditions = cond.set_condition(
            conditions, type_, state, why, message, now=now, generation=gen
        )
    return conditions


def _held(status: ImprovementCycleStatus) -> list[StepRecord]:
    """Unfinished steps held up by something a person must fix (their reason says what)."""
    return [
        r
        for r in status.steps
        if r.state not in TERMINAL_STEP_STATES and r.reason not in PROGRESS_REASONS
    ]


def _phase(status: ImprovementCycleStatus) -> Phase:
    """The phase of the latest kind of step launched."""
    for kind in reversed(STEP_KINDS):
        if any(kind.owns(r.name) for r in status.steps):
            return kind.phase
    return Phase.PENDING
