"""Conditions per the Kubernetes API conventions, and the phase they summarise.

`lastTransitionTime` changes only when a condition's `status` changes, so recomputing
the same conditions from the same state is a no-op (the engine's idempotence rests on it).
"""

from __future__ import annotations

from typing import Literal

from kaizen.api.status import Condition

ConditionStatus = Literal["True", "False", "Unknown"]

# One condition per stage of the cycle (the step table in `catalog` says which steps).
BASELINE_EVALUATED = "BaselineEvaluated"
WEAKNESS_ANALYZED = "WeaknessAnalyzed"
ADAPTERS_TRAINED = "AdaptersTrained"
ADAPTERS_MERGED = "AdaptersMerged"
CANDIDATE_EVALUATED = "CandidateEvaluated"
VALIDATED = "Validated"
# Summary conditions read by kstatus (Flux), Argo CD health checks and humans.
SUCCEEDED = "Succeeded"
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """A new list with `type_` set; keeps `lastTransitionTime` when `status` is unchanged."""
    previous = next((c for c in conditions if c.type == type_), None)
    transition = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]
