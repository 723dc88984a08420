"""Spec edits: a cycle runs the spec of the generation that started it, and says so when edited.

The rule (docs/deploy.md, "Editing a cycle"): the first reconciliation that launches a step
copies the spec into `status.runSpec` (and its generation into `status.runGeneration`); every
step of the cycle, its Jobs included, is built from that copy. An edit made after that is never
run, valid or not, while the cycle runs or after it finished, so a baseline and a candidate can
never be evaluated with different settings. Instead:

- the `SpecApplied` condition turns False, reason `EditNotRun` (or `InvalidEdit` for a spec
  that does not validate, with the validation message), naming the fields that differ; a
  Warning Event says the same once per edit;
- a finished cycle whose spec was edited reads `Ready=False` and `Stalled=True` with that
  reason (Argo CD: Degraded; kstatus: Failed): its results are not those of the spec it
  shows. `Succeeded` keeps the outcome of the run;
- every condition, and `status.observedGeneration`, carry the current generation: the edit
  was seen and answered;
- reverting the edit turns `SpecApplied` True again (Event `EditReverted`) and the conditions
  back to the run's.

A spec that was invalid before any step ran is not a start: fixing it starts the cycle (see
`kaizen.operator.reconciler`). Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from kaizen.api.resource import ImprovementCycle
from kaizen.api.status import Condition, ImprovementCycleStatus
from kaizen.cycle import conditions as cond
from kaizen.cycle.types import CycleEvent

SPEC_APPLIED = "SpecApplied"
APPLIED = "Applied"
EDIT_NOT_RUN = "EditNotRun"
INVALID_EDIT = "InvalidEdit"
EDIT_REVERTED = "EditReverted"
#: Fields named in a message, at most.
_SHOWN_FIELDS = 5


def snapshot(cycle: ImprovementCycle, status: ImprovementCycleStatus) -> None:
    """Record the spec the cycle runs, once: at its first reconciliation that starts work."""
    if status.run_spec is None:
        status.run_spec = cycle.spec.model_copy(deep=True)
        status.run_generation = cycle.metadata.generation


def changed_fields(before: Any, after: Any, prefix: str = "spec") -> list[str]:
    """Dotted paths (camelCase, as in the YAML) where two wire forms of a spec differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(before.keys() | after.keys()):
            found += changed_fields(before.get(key), after.get(key), f"{prefix}.{key}")
        return found
    return [] if before == after else [prefix]


def _fields(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_FIELDS])
    more = len(names) - _SHOWN_FIELDS
    return shown + (f" and {more} more" if more > 0 else "")


def edit_problem(
    cycle: ImprovementCycle, status: ImprovementCycleStatus, spec_error: str | None
) -> tuple[str, str] | None:
    """(reason, what) when the stored spec is not the one the cycle runs; None when it is.

    `cycle.spec` is the stored spec, parsed (ignored when `spec_error` says it does not parse).
    """
    if spec_error is not None:
        return INVALID_EDIT, f"does not validate ({spec_error})"
    if status.run_spec is not None:
        fields = changed_fields(status.run_spec.to_wire(), cycle.spec.to_wire())
        return (EDIT_NOT_RUN, f"changes {_fields(fields)}") if fields else None
    generation, ran = cycle.metadata.generation, status.run_generation
    if generation is not None and ran is not None and generation != ran:
        # A cycle from before runSpec was recorded: only the generation tells.
        return EDIT_NOT_RUN, "changes the spec"
    return None


def _message(generation: int | None, ran: int | None, what: str, finished: bool) -> str:
    edited = f"the spec of generation {generation} {what}"
    if finished:
        return (
            f"{edited}; it was not run: this cycle finished with the spec of generation {ran}. "
            "A cycle never changes settings once started: revert the edit, or create a new "
            "cycle to run it"
        )
    return (
        f"{edited}; it will not be run: this cycle keeps running the spec of generation {ran}. "
        "A cycle never changes settings once started: revert the edit, or create a new cycle "
        "to run it"
    )


def answer(
    cycle: ImprovementCycle,
    status: ImprovementCycleStatus,
    *,
    now: str,
    spec_error: str | None = None,
    finished: bool,
) -> list[CycleEvent]:
    """Set `SpecApplied` (and, for a finished cycle, Ready and Stalled) for the stored spec.

    Returns the Events to post: one when an edit is first seen (or a newer one), one when
    it was reverted; none when nothing changed, so answering twice is harmless.
    """
    generation = cycle.metadata.generation
    ran = status.run_generation if status.run_generation is not None else generation
    previous = next((c for c in status.conditions if c.type == SPEC_APPLIED), None)
    problem = edit_problem(cycle, status, spec_error)
    events: list[CycleEvent] = []
    if problem is None:
        state: cond.ConditionStatus = "True"
        reason, message = APPLIED, f"this cycle runs the spec of generation {ran}"
        if previous is not None and previous.status == "False":
            events.append(
                CycleEvent("Normal", EDIT_REVERTED, f"the spec is again that of generation {ran}")
            )
    else:
        state, (reason, what) = "False", problem
        message = _message(generation, ran, what, finished)
        news = (
            previous is None
            or previous.status != "False"
            or previous.reason != reason
            or previous.observed_generation != generation
        )
        if news:
            events.append(CycleEvent("Warning", reason, message))
    conditions = cond.set_condition(
        status.conditions, SPEC_APPLIED, state, reason, message, now=now, generation=generation
    )
    if problem is not None and finished:
        conditions = cond.set_condition(
            conditions, cond.READY, "False", reason, message, now=now, generation=generation
        )
        conditions = cond.set_condition(
            conditions, cond.STALLED, "True", reason, message, now=now, generation=generation
        )
    status.conditions = _at_generation(conditions, generation)
    return events


def _at_generation(conditions: list[Condition], generation: int | None) -> list[Condition]:
    """Every condition marked as observed at `generation` (the edit was seen and answered)."""
    return [
        c
        if c.observed_generation == generation
        else c.model_copy(update={"observed_generation": generation})
        for c in conditions
    ]
