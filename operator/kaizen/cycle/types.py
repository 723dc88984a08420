"""Value types the cycle engine exchanges with its executors (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kaizen.api.status import ImprovementCycleStatus, StepState
from kaizen.api.summary import StepSummary

StepKind = Literal["evaluator", "trainer"]


@dataclass(frozen=True)
class StepInvocation:
    """One step to launch: the same argv runs in a Job container and in a local subprocess."""

    name: str
    """Step name, e.g. `evaluate-baseline`, `train-geography`."""

    kind: StepKind
    """Which image runs it: the evaluator's or the trainer's."""

    job_name: str
    """Deterministic Job name (a DNS-1123 label, at most 63 characters)."""

    argv: tuple[str, ...]
    """Command line; starts with `python -m kaizen.evaluator` or `python -m kaizen.trainer`."""

    artifacts_dir: str
    """Where the step writes its artifacts."""

    attempt: int = 1
    """Launch number of this step."""


@dataclass(frozen=True)
class StepObservation:
    """What an executor saw of one launched step."""

    name: str
    state: StepState
    """Queued (waiting for quota), Running, Succeeded or Failed; Pending if not seen yet."""

    exit_code: int | None = None
    summary: StepSummary | None = None
    """The parsed summary, when the step wrote a readable one."""

    message: str | None = None
    """What the executor can say when there is no summary (e.g. the Job's failure reason)."""

    reason: str | None = None
    """Why, in one CamelCase word, when the executor knows better than the engine (e.g.
    `JobRejected`: the API refused to create the step's Job)."""


@dataclass(frozen=True)
class CycleEvent:
    """A Kubernetes Event (or a local log line) to emit."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What to do next. Applying it twice is harmless; computing it twice gives the same."""

    status: ImprovementCycleStatus
    start: tuple[StepInvocation, ...] = ()
    stop_running_steps: bool = False
    """Delete the cycle's unfinished Jobs (the cycle failed: free the GPUs)."""

    events: tuple[CycleEvent, ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        return self.status.phase in ("Succeeded", "Failed")
