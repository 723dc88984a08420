"""The chain engine: pure, idempotent decisions about an `ImprovementChain` (no I/O).

`reconcile_chain` takes the chain (spec and status), what an executor observed of the chain's
cycles, and the time, and returns a `ChainDecision`: the new status, the cycle to create (if
any), the cycles to delete, the lineage records folded in this time, the Events, and when to
look again. Finished cycles are folded into the lineage in the order they were made (their
index), each exactly once; a cycle is only deleted after it was folded (history limits) or
when `Replace` replaces it, and a running cycle is never changed. The operator and `kaizen run`
both drive their chains with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kaizen.api.chain import (
    STATUS_LINEAGE_LIMIT,
    ChainCycleRecord,
    ChainPhase,
    ImprovementChain,
    ImprovementChainStatus,
    LineageScores,
    VersionReference,
    parse_time,
    rfc3339,
)
from kaizen.api.resource import ImprovementCycle, ObjectMeta
from kaizen.api.spec import ImprovementCycleSpec, ReferenceSpec
from kaizen.api.status import ImprovementCycleStatus, Phase
from kaizen.api.summary import ScoreDigest
from kaizen.cycle import conditions as cond
from kaizen.cycle.deferral import exhausted, exhausted_message, tried_since_promotion
from kaizen.cycle.types import CycleEvent

LABEL_CHAIN = "kaizen.dev/chain"
LABEL_CHAIN_INDEX = "kaizen.dev/chain-index"
ANNOTATION_CHAIN_GENERATION = "kaizen.dev/chain-generation"

INVALID_SPEC = "InvalidSpec"
#: Failures a new cycle from the same spec would repeat: the chain stalls until its spec changes.
NEEDS_A_PERSON = frozenset({"InvalidSpec", "ConfigurationError", "JobRejected"})
#: Reason of a cycle that disappeared before it finished, and of one `Replace` deleted.
CYCLE_DELETED = "CycleDeleted"
CYCLE_REPLACED = "Replaced"
_MESSAGE_MAX = 300


@dataclass(frozen=True)
class ObservedCycle:
    """What an executor sees of one cycle the chain made."""

    name: str
    index: int
    """The cycle's number in the chain (label `kaizen.dev/chain-index`)."""
    status: ImprovementCycleStatus | None = None
    chain_generation: int | None = None
    """Annotation `kaizen.dev/chain-generation`: the chain's generation that created it."""
    deleting: bool = False
    """It has a deletionTimestamp (going away)."""
    spec: ImprovementCycleSpec | None = None
    """Its spec, when it parses (to tell whether its results can be a later cycle's reference)."""

    @property
    def finished(self) -> bool:
        return self.status is not None and self.status.phase in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass
class ChainDecision:
    """What to do about a chain now."""

    status: ImprovementChainStatus
    create: ImprovementCycle | None = None
    """The next cycle (the executor adds the ownerReference)."""
    delete: list[str] = field(default_factory=list)
    """Cycles to delete: beyond the history limits, or replaced."""
    recorded: list[ChainCycleRecord] = field(default_factory=list)
    """Lineage records folded in by this decision (append them to the lineage artifact)."""
    events: list[CycleEvent] = field(default_factory=list)
    wake_at: datetime | None = None
    """Look at the chain again at this time at the latest (the next scheduled run)."""


def cycle_name(chain: str, index: int) -> str:
    """The name of the chain's `index`-th cycle."""
    return f"{chain}-{index}"


def _scores(digest: ScoreDigest | None, test: float | None) -> LineageScores | None:
    """A version's scores: its evaluation over all items, and the validation gate's figure on
    the test items (`test`) when the cycle got that far."""
    if digest is None:
        return None
    return LineageScores(overall=digest.overall, domains=dict(digest.domains), test=test)


def _record(
    cycle: ObservedCycle, status: ImprovementChainStatus, now: datetime
) -> ChainCycleRecord:
    """The lineage record of a finished (or vanished) cycle; the chain's version before it."""
    seen = cycle.status
    validation = seen.validation if seen else None
    verdict = validation.verdict if validation else None
    if seen is None or seen.phase != Phase.SUCCEEDED:
        phase, promoted = "Failed", False
        reason = (seen.failure_reason if seen else None) or CYCLE_DELETED
    else:
        phase = "Succeeded"
        promoted = verdict == "Promote" and (seen.combination or seen.merged) is not None
        if promoted:
            reason = "Promoted"
        elif verdict is None:
            reason = "NothingToImprove"
        else:
            reason = {"Reject": "Rejected"}.get(verdict, verdict)
    adapters = list(seen.promoted_adapters) if promoted and seen else list(status.adapters)
    message = (seen.message if seen else None) or (
        "deleted before it finished" if seen is None else None
    )
    plan = seen.plan if seen else None
    return ChainCycleRecord(
        cycle=cycle.name,
        index=cycle.index,
        trained=list(plan.priority_domains) if plan else [],
        weak=list(plan.weak_domains) if plan and plan.weak_domains is not None else None,
        from_version=status.version,
        version=status.version + (1 if promoted else 0),
        phase=phase,
        verdict=verdict,
        reason=reason,
        promoted=promoted,
        adapters=adapters,
        baseline=_scores(
            seen.baseline if seen else None, validation.baseline_score if validation else None
        ),
        candidate=_scores(
            seen.candidate if seen else None, validation.candidate_score if validation else None
        ),
        overall_delta=validation.overall_delta if validation else None,
        p_value=validation.p_value if validation else None,
        start_time=seen.start_time if seen else None,
        completion_time=(seen.completion_time if seen else None) or rfc3339(now),
        message=message[:_MESSAGE_MAX] if message else None,
        chain_generation=cycle.chain_generation,
        report_path=seen.report_path if seen else None,
    )


def evaluation_digest(spec: ImprovementCycleSpec) -> str:
    """A digest of a cycle's evaluation settings: equal digests evaluate the same items."""
    text = json.dumps(spec.evaluation.to_wire(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reference(cycle: ObservedCycle, record: ChainCycleRecord) -> VersionReference | None:
    """The promoted candidate's evaluation, as the reference of the cycles after it."""
    seen = cycle.status
    results = seen.candidate.results_path if seen and seen.candidate else None
    if not record.promoted or results is None or cycle.spec is None:
        return None
    return VersionReference(
        results=results, name=f"v{record.version}", evaluation_digest=evaluation_digest(cycle.spec)
    )


def _fold(status: ImprovementChainStatus, record: ChainCycleRecord) -> CycleEvent:
    """Move the chain's version on by one finished cycle; the Event that says so."""
    status.lineage = [*status.lineage, record][-STATUS_LINEAGE_LIMIT:]
    status.last_verdict = record.reason
    if record.promoted:
        status.version = record.version
        status.adapters = list(record.adapters)
        status.reference = None  # set by the caller from the cycle, when it can be one
        status.cycles_without_promotion = 0
        status.score = record.candidate.overall if record.candidate else status.score
        status.test_score = record.candidate.test if record.candidate else None
    else:
        status.cycles_without_promotion += 1
        if record.baseline is not None:
            # The cycle measured the current version again (its baseline): keep the latest.
            status.score = record.baseline.overall
            if record.baseline.test is not None:
                status.test_score = record.baseline.test
    for value in (record.baseline.overall if record.baseline else None, status.score):
        if value is not None and (status.best_score is None or value > status.best_score):
            status.best_score = value
    if record.promoted:
        return CycleEvent(
            "Normal",
            "VersionPromoted",
            f"cycle {record.cycle} promoted version {record.version} "
            f"(overall {_fmt(record.score)}, change {_fmt(record.overall_delta, '+.3f')})",
        )
    if record.phase == "Failed":
        return CycleEvent(
            "Warning",
            "CycleFailed",
            f"cycle {record.cycle} failed ({record.reason}): {record.message or ''}"[:1024],
        )
    return CycleEvent(
        "Normal",
        "CycleNotPromoted",
        f"cycle {record.cycle}: {record.reason}; version {record.version} stays "
        f"(overall {_fmt(status.score)})",
    )


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _stop_reason(chain: ImprovementChain, status: ImprovementChainStatus) -> str | None:
    stop = chain.spec.stop
    if stop.max_cycles is not None and status.cycles_started >= stop.max_cycles:
        return "MaxCycles"
    if stop.plateau_cycles is not None and status.cycles_without_promotion >= stop.plateau_cycles:
        return "Plateau"
    # The held-out figure: the test items the validation gate compares on, which neither the
    # analysis, the training data nor the choice of combination ever read. The score over all
    # items pools in the dev items the cycles trained towards and chose by.
    target = stop.target_score
    if target is not None and status.test_score is not None and status.test_score >= target:
        return "TargetScore"
    # Back to back, the next cycle could only repeat one since the last promotion. On a
    # schedule the next run may find new data; with plateauCycles the user said when to stop.
    if chain.spec.schedule is None and stop.plateau_cycles is None and exhausted(status):
        return "Exhausted"
    return None


def _stop_message(chain: ImprovementChain, reason: str, status: ImprovementChainStatus) -> str:
    stop = chain.spec.stop
    return {
        "MaxCycles": f"maxCycles {stop.max_cycles} reached",
        "Plateau": f"{status.cycles_without_promotion} cycles in a row without a promotion "
        f"(plateauCycles {stop.plateau_cycles})",
        "TargetScore": f"score on the test items {_fmt(status.test_score)} reached "
        f"targetScore {stop.target_score}",
        "Exhausted": exhausted_message(status),
    }[reason]


def _stalled_by(status: ImprovementChainStatus, generation: int | None) -> ChainCycleRecord | None:
    """The last cycle, when it failed in a way the same spec would repeat."""
    if not status.lineage:
        return None
    last = status.lineage[-1]
    same_spec = last.chain_generation is None or last.chain_generation == generation
    if last.phase == "Failed" and last.reason in NEEDS_A_PERSON and same_spec:
        return last
    return None


def next_cycle(
    chain: ImprovementChain,
    index: int,
    adapters: Sequence[str],
    reference: VersionReference | None = None,
    defer: Sequence[str] = (),
) -> ImprovementCycle:
    """The chain's `index`-th cycle: the template, starting from `adapters`; the domains of
    `defer` (`tried_since_promotion`) are added to its `analysis.deferDomains`.

    With a `reference` (the current version's own evaluation) made with the template's
    evaluation settings, and no reference in the template, the cycle's candidate is also
    compared with it (`spec.validation.reference`).
    """
    template = chain.spec.template
    spec = template.spec.model_copy(deep=True)
    spec.model = spec.model.model_copy(update={"adapters": list(adapters)})
    deferred = spec.analysis.defer_domains
    deferred += [domain for domain in defer if domain not in deferred]
    if (
        reference is not None
        and spec.validation.reference is None
        and reference.evaluation_digest == evaluation_digest(spec)
    ):
        spec.validation = spec.validation.model_copy(
            update={"reference": ReferenceSpec(results=reference.results, name=reference.name)}
        )
    labels = {
        **template.metadata.labels,
        LABEL_CHAIN: chain.metadata.name,
        LABEL_CHAIN_INDEX: str(index),
    }
    annotations = dict(template.metadata.annotations)
    if chain.metadata.generation is not None:
        annotations[ANNOTATION_CHAIN_GENERATION] = str(chain.metadata.generation)
    metadata = ObjectMeta.model_validate(
        {
            "name": cycle_name(chain.metadata.name, index),
            "namespace": chain.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
        }
    )
    return ImprovementCycle(metadata=metadata, spec=spec)


class _Schedule:
    """The chain's cron schedule, read in its time zone."""

    def __init__(self, cron: str, time_zone: str) -> None:
        self.cron = cron
        self.zone = ZoneInfo(time_zone)

    def latest(self, now: datetime) -> datetime:
        """The latest scheduled time at or before `now`."""
        from croniter import croniter

        local = now.astimezone(self.zone)
        # get_prev is strictly before its start: start a second later to include `now` itself.
        found: datetime = croniter(self.cron, local + timedelta(seconds=1)).get_prev(datetime)
        return found

    def following(self, now: datetime) -> datetime:
        """The first scheduled time after `now`."""
        from croniter import croniter

        found: datetime = croniter(self.cron, now.astimezone(self.zone)).get_next(datetime)
        return found


def reconcile_chain(
    chain: ImprovementChain, cycles: Sequence[ObservedCycle], now: datetime
) -> ChainDecision:
    """Decide what the chain does now (see the module docstring)."""
    spec = chain.spec
    generation = chain.metadata.generation
    previous = chain.status
    status = (
        previous.model_copy(deep=True)
        if previous is not None
        else ImprovementChainStatus(adapters=list(spec.template.spec.model.adapters))
    )
    decision = ChainDecision(status=status)
    events = decision.events

    # 1. Fold finished cycles into the lineage, in the order they were made.
    recorded_upto = max((r.index for r in status.lineage), default=0)
    ordered = sorted(cycles, key=lambda c: c.index)
    status.cycles_started = max([status.cycles_started, *(c.index for c in ordered)])
    for cycle in ordered:
        if cycle.index > recorded_upto and cycle.finished:
            record = _record(cycle, status, now)
            events.append(_fold(status, record))
            if record.promoted:
                status.reference = _reference(cycle, record)
            decision.recorded.append(record)
            recorded_upto = cycle.index
    active = [c for c in ordered if c.index > recorded_upto and not c.deleting]
    current = active[-1] if active else None
    if current is None and status.current_cycle:
        index = int(status.current_cycle.rsplit("-", 1)[-1])
        if index > recorded_upto:
            # The running cycle vanished (deleted by someone): record it, do not wait for it.
            record = _record(ObservedCycle(status.current_cycle, index), status, now)
            events.append(_fold(status, record))
            decision.recorded.append(record)
            recorded_upto = index
    status.current_cycle = current.name if current else None

    # 2. What stops the chain from starting a cycle now.
    stalled = _stalled_by(status, generation)
    stop_reason = None if stalled else _stop_reason(chain, status)
    status.stop_reason = stop_reason
    blocked = stalled is not None or stop_reason is not None or spec.suspend

    # 3. Triggers.
    due = False
    status.next_run_time = None
    if spec.schedule is not None and not blocked:
        schedule = _Schedule(spec.schedule.cron, spec.schedule.time_zone)
        anchor_text = status.last_schedule_time or chain.metadata.creation_timestamp
        anchor = parse_time(anchor_text) if anchor_text else now
        latest = schedule.latest(now)
        if latest > anchor:
            status.last_schedule_time = rfc3339(latest)
            late = (now - latest).total_seconds()
            deadline = spec.schedule.starting_deadline_seconds
            if deadline is not None and late > deadline:
                events.append(
                    CycleEvent(
                        "Warning",
                        "MissedSchedule",
                        f"the run due at {rfc3339(latest)} is {late:.0f}s late, past "
                        f"startingDeadlineSeconds {deadline}: skipped",
                    )
                )
            elif current is None:
                due = True
            elif spec.concurrency_policy == "Replace":
                record = _record(current, status, now)
                record.phase, record.reason, record.promoted = "Failed", CYCLE_REPLACED, False
                record.version, record.adapters = status.version, list(status.adapters)
                record.message = f"replaced by the run due at {rfc3339(latest)}"
                events.append(_fold(status, record))
                decision.recorded.append(record)
                decision.delete.append(current.name)
                events.append(
                    CycleEvent(
                        "Normal", "CycleReplaced", f"deleted {current.name}: {record.message}"
                    )
                )
                current, status.current_cycle = None, None
                # The replaced cycle counts as one without a promotion (a plateau may end here).
                status.stop_reason = _stop_reason(chain, status)
                blocked = status.stop_reason is not None
                due = not blocked
            elif spec.after_previous:
                status.deferred_schedule_time = rfc3339(latest)
            else:
                events.append(
                    CycleEvent(
                        "Normal",
                        "ScheduleSkipped",
                        f"the run due at {rfc3339(latest)} is skipped: {current.name} is still "
                        "running (concurrencyPolicy Forbid)",
                    )
                )
        if not blocked:
            following = schedule.following(now)
            status.next_run_time = rfc3339(following)
            decision.wake_at = following
    if spec.after_previous and current is None and not blocked and not due:
        # Back to back without a schedule; with one, only a run deferred while a cycle ran
        # (and not past its starting deadline, as for any scheduled run).
        deferred = status.deferred_schedule_time
        due = spec.schedule is None or deferred is not None
        deadline = spec.schedule.starting_deadline_seconds if spec.schedule else None
        if deferred is not None and deadline is not None:
            late = (now - parse_time(deferred)).total_seconds()
            if late > deadline:
                due = False
                status.deferred_schedule_time = None
                events.append(
                    CycleEvent(
                        "Warning",
                        "MissedSchedule",
                        f"the run due at {deferred} (deferred while a cycle ran) is {late:.0f}s "
                        f"late, past startingDeadlineSeconds {deadline}: skipped",
                    )
                )
    if due:
        status.deferred_schedule_time = None

    # 4. Start the next cycle.
    if due:
        index = status.cycles_started + 1
        decision.create = next_cycle(
            chain,
            index,
            status.adapters,
            status.reference,
            tried_since_promotion(status.lineage),
        )
        status.cycles_started = index
        status.current_cycle = decision.create.metadata.name
        events.append(
            CycleEvent(
                "Normal",
                "CycleStarted",
                f"cycle {status.current_cycle} started from version {status.version} "
                f"({len(status.adapters)} adapter(s))",
            )
        )
        status.stop_reason = None

    # 5. History limits: only folded, finished cycles; newest kept.
    decision.delete += _beyond_history(chain, ordered, recorded_upto, decision.delete)

    # 6. Phase, message, conditions.
    _summarise(chain, status, stalled, previous, events, now)
    return decision


def _beyond_history(
    chain: ImprovementChain,
    cycles: Sequence[ObservedCycle],
    recorded_upto: int,
    deleting: Sequence[str],
) -> list[str]:
    folded = [
        c
        for c in cycles
        if c.finished and c.index <= recorded_upto and not c.deleting and c.name not in deleting
    ]
    succeeded = [c for c in folded if c.status and c.status.phase == Phase.SUCCEEDED]
    failed = [c for c in folded if c not in succeeded]
    doomed = []
    for group, limit in (
        (succeeded, chain.spec.successful_cycles_history_limit),
        (failed, chain.spec.failed_cycles_history_limit),
    ):
        newest_first = sorted(group, key=lambda c: c.index, reverse=True)
        doomed += [c.name for c in newest_first[limit:]]
    return sorted(doomed, key=lambda name: int(name.rsplit("-", 1)[-1]))


def _summarise(
    chain: ImprovementChain,
    status: ImprovementChainStatus,
    stalled: ChainCycleRecord | None,
    previous: ImprovementChainStatus | None,
    events: list[CycleEvent],
    now: datetime,
) -> None:
    spec, generation = chain.spec, chain.metadata.generation
    if stalled is not None:
        phase, reason = ChainPhase.STALLED, "CycleFailed"
        message = (
            f"cycle {stalled.cycle} failed ({stalled.reason}); a new cycle from the same spec "
            f"would fail alike: fix the chain's spec. {stalled.message or ''}"
        ).strip()
    elif status.current_cycle:
        phase, reason = ChainPhase.RUNNING, "CycleRunning"
        message = f"running {status.current_cycle} from version {status.version}"
        if spec.suspend:
            message += " (suspended: no cycle after it)"
    elif status.stop_reason:
        phase, reason = ChainPhase.COMPLETED, status.stop_reason
        message = f"completed: {_stop_message(chain, status.stop_reason, status)}"
    elif spec.suspend:
        phase, reason, message = ChainPhase.SUSPENDED, "Suspended", "suspended"
    else:
        phase, reason = ChainPhase.WAITING, "Waiting"
        message = f"waiting for the next run at {status.next_run_time or 'the next trigger'}"
    message = f"{message}; version {status.version}, score {_fmt(status.score)}"
    if status.test_score is not None:
        message += f" ({_fmt(status.test_score)} on the test items)"
    if phase == ChainPhase.COMPLETED and (previous is None or previous.phase != phase):
        events.append(CycleEvent("Normal", "ChainCompleted", message))
    if phase == ChainPhase.STALLED and (previous is None or previous.phase != phase):
        events.append(CycleEvent("Warning", "ChainStalled", message))
    status.phase = phase
    status.message = message
    status.observed_generation = generation
    healthy: cond.ConditionStatus = "False" if stalled else "True"
    values: dict[str, tuple[cond.ConditionStatus, str]] = {
        cond.READY: (healthy, reason),
        cond.RECONCILING: ("False", reason),
        cond.STALLED: ("True" if stalled else "False", reason),
    }
    conditions = status.conditions
    for type_, (state, why) in values.items():
        conditions = cond.set_condition(
            conditions, type_, state, why, message, now=rfc3339(now), generation=generation
        )
    status.conditions = conditions


def invalid_chain(
    previous: ImprovementChainStatus | None, generation: int | None, message: str, now: datetime
) -> ChainDecision:
    """The decision for a chain whose spec cannot be used: Stalled, naming the fields; nothing runs."""
    status = previous.model_copy(deep=True) if previous else ImprovementChainStatus()
    events = []
    if status.phase != ChainPhase.STALLED or status.message != message:
        events.append(CycleEvent("Warning", INVALID_SPEC, message[:1024]))
    status.phase = ChainPhase.STALLED
    status.message = message
    status.observed_generation = generation
    status.next_run_time = None
    conditions = status.conditions
    for type_, state in (
        (cond.READY, "False"),
        (cond.RECONCILING, "False"),
        (cond.STALLED, "True"),
    ):
        conditions = cond.set_condition(
            conditions,
            type_,
            state,  # type: ignore[arg-type]
            INVALID_SPEC,
            message,
            now=rfc3339(now),
            generation=generation,
        )
    status.conditions = conditions
    return ChainDecision(status=status, events=events)
