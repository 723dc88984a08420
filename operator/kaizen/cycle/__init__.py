"""The cycle engine: pure decisions about an `ImprovementCycle` (no I/O, no Kubernetes)."""

from kaizen.cycle.engine import MAX_ATTEMPTS, invalid_spec, reconcile
from kaizen.cycle.planner import StepPlanner, job_name, train_step_name
from kaizen.cycle.types import CycleEvent, Decision, StepInvocation, StepObservation

__all__ = [
    "MAX_ATTEMPTS",
    "CycleEvent",
    "Decision",
    "StepInvocation",
    "StepObservation",
    "StepPlanner",
    "invalid_spec",
    "job_name",
    "reconcile",
    "train_step_name",
]
