"""The `ImprovementChain` resource: a cycle template run again and again, each cycle starting from
the adapters the previous ones promoted, with a schedule, stop conditions and a lineage.

A chain owns its cycles (`<chain>-<n>`, with an ownerReference) and never edits one: it only
creates the next cycle, and deletes finished cycles beyond the history limits. Everything worth
keeping of a finished cycle is folded into `status.lineage` (and the lineage artifact) first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kaizen.api._base import ApiModel
from kaizen.api.resource import API_VERSION, SpecError, format_validation_error
from kaizen.api.spec import ImprovementCycleSpec
from kaizen.api.status import Condition

CHAIN_KIND = "ImprovementChain"
CHAIN_PLURAL = "improvementchains"
CHAIN_SINGULAR = "improvementchain"
CHAIN_SHORT_NAMES = ["chain", "ichain"]

#: Longest chain name: its cycles are `<chain>-<n>` (DNS labels of at most 63 characters).
CHAIN_NAME_MAX = 52
#: Most lineage entries kept in `status.lineage` (the lineage artifact keeps every one).
STATUS_LINEAGE_LIMIT = 30

_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Five whitespace-separated fields, or one of the macros (as a CronJob's `schedule`).
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+(\s+\S+){4})$"
_CRON = re.compile(CRON_PATTERN)


def check_cron(expression: str) -> str:
    """The expression, stripped, when it is a five-field cron schedule or a macro; else ValueError."""
    text = " ".join(expression.split())
    if not _CRON.match(text):
        raise ValueError(
            f"{expression!r} is not a cron schedule: five fields (minute hour day-of-month month "
            f"day-of-week, e.g. '0 2 * * *') or one of {', '.join(_MACROS)}"
        )
    from croniter import croniter

    if not croniter.is_valid(text):
        raise ValueError(f"{expression!r} is not a valid cron schedule")
    return text


def check_time_zone(name: str) -> str:
    """The name when it is an IANA time zone (`Europe/Berlin`, `UTC`); else ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from None
    return name


class ChainSchedule(ApiModel):
    """When cycles start, as a CronJob's schedule."""

    # The pattern goes to the CRD (the API server's check); the validator says what is wrong.
    cron: str = Field(min_length=1, json_schema_extra={"pattern": CRON_PATTERN})
    """Cron schedule: `minute hour day-of-month month day-of-week` (`0 2 * * *`: 02:00 daily),
    or `@daily`, `@weekly`, `@hourly` …"""

    time_zone: str = Field(default="UTC", min_length=1)
    """IANA time zone the schedule is read in (daylight-saving changes included)."""

    starting_deadline_seconds: int | None = Field(default=None, ge=1)
    """A scheduled time missed by more than this (the operator was down, the chain suspended or
    a cycle still running) is skipped instead of run late. Unset: the latest missed time runs."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("time_zone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        return check_time_zone(value)


class ChainStop(ApiModel):
    """When the chain stops starting cycles (any one that is met). None: it runs until suspended."""

    max_cycles: int | None = Field(default=None, ge=1, le=100_000)
    """Start at most this many cycles."""

    plateau_cycles: int | None = Field(default=None, ge=1, le=1000)
    """Stop after this many cycles in a row without a promotion (a plateau)."""

    target_score: float | None = Field(default=None, gt=0.0, le=1.0)
    """Stop once the current version's score on the suite's test items reaches this (the
    held-out items the validation gate compares on; `status.testScore`)."""


class CycleTemplateMeta(ApiModel):
    """Labels and annotations every cycle of the chain gets (its name is `<chain>-<n>`)."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of each cycle (the chain adds `kaizen.dev/chain` and `kaizen.dev/chain-index`)."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of each cycle."""


class CycleTemplate(ApiModel):
    """The cycle to run again and again."""

    metadata: CycleTemplateMeta = Field(default_factory=CycleTemplateMeta)
    """Labels and annotations of each cycle."""

    spec: ImprovementCycleSpec = Field(default_factory=ImprovementCycleSpec)
    """The cycle's spec. `model.adapters` is the starting stack of the first cycle only: each
    later cycle starts from the adapters promoted so far."""


ConcurrencyPolicy = Literal["Forbid", "Replace"]


class ImprovementChainSpec(ApiModel):
    """A model that keeps improving: one cycle after another, each from the last promoted version."""

    template: CycleTemplate = Field(default_factory=CycleTemplate)
    """The cycle each run creates."""

    schedule: ChainSchedule | None = None
    """Start a cycle at these times (a nightly chain). With `afterPrevious` as well, a time that
    came while a cycle was running is not skipped: the next cycle starts when that one ends."""

    after_previous: bool = False
    """Start the next cycle as soon as the previous one ends (without `schedule`: back to back)."""

    concurrency_policy: ConcurrencyPolicy = "Forbid"
    """What a scheduled time does while a cycle is running: `Forbid` lets the running cycle
    finish (the time is skipped, or run afterwards with `afterPrevious`); `Replace` deletes the
    running cycle and starts a new one. A chain is a sequence, so cycles never run side by side."""

    suspend: bool = False
    """Start no new cycle (a running one finishes undisturbed)."""

    stop: ChainStop = Field(default_factory=ChainStop)
    """Stop conditions."""

    successful_cycles_history_limit: int = Field(default=3, ge=0, le=1000)
    """Finished cycles that succeeded kept as objects; older ones are deleted (their record stays
    in the lineage, their artifacts on the volume)."""

    failed_cycles_history_limit: int = Field(default=1, ge=0, le=1000)
    """Failed cycles kept as objects; older ones are deleted (their record stays in the lineage)."""

    @model_validator(mode="after")
    def _has_a_trigger(self) -> ImprovementChainSpec:
        if self.schedule is None and not self.after_previous:
            raise ValueError(
                "a chain needs a trigger: set schedule (cron), afterPrevious: true, or both"
            )
        return self


class ChainPhase(StrEnum):
    """Where the chain stands."""

    WAITING = "Waiting"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    COMPLETED = "Completed"
    STALLED = "Stalled"


class LineageScores(ApiModel):
    """Headline scores of one model version on the chain's suite."""

    overall: float
    """Micro-averaged score over all items (0–1)."""

    domains: dict[str, float] = Field(default_factory=dict)
    """Score per domain (0–1)."""

    test: float | None = None
    """Overall score on the suite's test items, as the validation gate measured it (held out
    from training and from every choice); none when the cycle was not validated."""


class ChainCycleRecord(ApiModel):
    """One finished cycle of the chain, and the model version it left."""

    cycle: str
    """The cycle's name (it may have been deleted since; this record stays)."""

    index: int = Field(ge=1)
    """The cycle's number in the chain (1 for the first)."""

    from_version: int = Field(ge=0)
    """The model version the cycle started from (0: the template's model and adapters)."""

    version: int = Field(ge=0)
    """The model version after the cycle: `fromVersion + 1` when it promoted, else unchanged."""

    phase: str
    """`Succeeded` or `Failed`."""

    verdict: str | None = None
    """The validation verdict (`Promote`, `Reject`, …) when the cycle got that far."""

    reason: str
    """CamelCase outcome: `Promoted`, `Rejected`, `NothingToImprove`, or the failure reason."""

    promoted: bool = False
    """Whether the cycle's candidate became the new version."""

    adapters: list[str] = Field(default_factory=list)
    """The adapter stack of the version after the cycle (what the next cycle starts from)."""

    trained: list[str] = Field(default_factory=list)
    """The domains the cycle trained an adapter for (its plan's priority domains)."""

    weak: list[str] | None = None
    """Every domain the cycle could have trained (below the threshold on its dev items);
    null when its analysis did not say."""

    baseline: LineageScores | None = None
    """Scores of the version the cycle started from."""

    candidate: LineageScores | None = None
    """Scores of the cycle's candidate, on the same items."""

    overall_delta: float | None = None
    """Candidate minus baseline overall score."""

    p_value: float | None = None
    """p-value of the paired test of the overall change."""

    start_time: str | None = None
    """When the cycle started (RFC 3339)."""

    completion_time: str | None = None
    """When the cycle ended, or when the chain found it gone (RFC 3339)."""

    message: str | None = None
    """The cycle's last message."""

    chain_generation: int | None = None
    """The chain's `metadata.generation` when it created the cycle (which spec made it)."""

    report_path: str | None = None
    """The cycle's HTML report (`index.html` on the artifact volume), when it has one."""

    @property
    def score(self) -> float | None:
        """The overall score of the version this cycle left."""
        chosen = self.candidate if self.promoted else self.baseline
        return chosen.overall if chosen else None

    @property
    def test_score(self) -> float | None:
        """The test-item score of the version this cycle left, when the cycle was validated."""
        chosen = self.candidate if self.promoted else self.baseline
        return chosen.test if chosen else None


class VersionReference(ApiModel):
    """The current version's own evaluation: what the next cycle's candidate is compared with."""

    results: str
    """The `results.json` of the candidate evaluation that made the current version."""

    name: str
    """How the comparison names it: `v<N>`."""

    evaluation_digest: str
    """Digest of the evaluation settings it was made with: the next cycle compares with it
    only when its own settings are the same (the same items)."""


class ImprovementChainStatus(ApiModel):
    """Observed state of a chain; bounded: the full lineage lives in the lineage artifact."""

    observed_generation: int | None = None
    """The `metadata.generation` last acted on."""

    phase: ChainPhase = ChainPhase.WAITING
    """Waiting, Running, Suspended, Completed or Stalled."""

    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Reconciling and Stalled (kstatus)."""

    current_cycle: str | None = None
    """The cycle running now."""

    cycles_started: int = 0
    """Cycles the chain has created."""

    version: int = 0
    """The current model version: how many cycles promoted (0: the template's model)."""

    adapters: list[str] = Field(default_factory=list)
    """The current version's adapter stack: the next cycle's `spec.model.adapters`."""

    reference: VersionReference | None = None
    """The current version's evaluation: the next cycle's `spec.validation.reference` (its
    candidate must also not be significantly worse than the version as it was promoted)."""

    score: float | None = None
    """The current version's overall score."""

    best_score: float | None = None
    """The best overall score of any version so far."""

    test_score: float | None = None
    """The current version's overall score on the suite's test items, from the latest cycle
    that validated it (what `stop.targetScore` reads); none before any validation."""

    last_verdict: str | None = None
    """The outcome of the latest finished cycle (Promoted, Rejected, … or its failure reason)."""

    cycles_without_promotion: int = 0
    """Finished cycles in a row that promoted nothing."""

    last_schedule_time: str | None = None
    """The latest scheduled time acted on (run or skipped)."""

    next_run_time: str | None = None
    """When the next cycle is due (RFC 3339), when known."""

    deferred_schedule_time: str | None = None
    """A scheduled time that came while a cycle ran; with `afterPrevious` it runs next."""

    lineage: list[ChainCycleRecord] = Field(default_factory=list)
    """The latest finished cycles, oldest first (at most 30; the artifact has them all)."""

    lineage_config_map: str | None = None
    """ConfigMap holding the whole lineage artifact (`lineage.json`)."""

    stop_reason: str | None = None
    """Why the chain completed: MaxCycles, Plateau, TargetScore or Exhausted (a chain with
    neither a schedule nor plateauCycles whose last cycle, not promoted, left no domain below
    the threshold untried since the last promotion: the next would repeat one)."""

    message: str | None = None
    """The latest human-readable news."""


class ChainMeta(BaseModel):
    """The part of `metadata` a chain reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(
        min_length=1, max_length=CHAIN_NAME_MAX, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    namespace: str = "default"
    generation: int | None = None
    uid: str | None = None
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")


class ImprovementChain(BaseModel):
    """An `ImprovementChain` object: metadata, spec and (optional) status."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = CHAIN_KIND
    metadata: ChainMeta
    spec: ImprovementChainSpec
    status: ImprovementChainStatus | None = None


def parse_chain_spec(spec: dict[str, Any] | None) -> ImprovementChainSpec:
    """Validate a chain spec (camelCase keys) or raise `SpecError` naming the fields."""
    try:
        return ImprovementChainSpec.model_validate(spec or {}, by_alias=True, by_name=False)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, "spec")) from None


def parse_chain(obj: dict[str, Any]) -> ImprovementChain:
    """Validate a whole chain object (from YAML or the API) or raise `SpecError`."""
    if not isinstance(obj, dict):
        raise SpecError(["the document is not a mapping"])
    problems = []
    if obj.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION!r}, got {obj.get('apiVersion')!r}")
    if obj.get("kind") != CHAIN_KIND:
        problems.append(f"kind: expected {CHAIN_KIND!r}, got {obj.get('kind')!r}")
    if problems:
        raise SpecError(problems)
    try:
        meta = ChainMeta.model_validate(obj.get("metadata") or {})
    except ValidationError as error:
        raise SpecError(format_validation_error(error, "metadata")) from None
    extra = sorted(set(obj) - {"apiVersion", "kind", "metadata", "spec", "status"})
    if extra:
        raise SpecError([f"{key}: unknown field" for key in extra])
    spec = parse_chain_spec(obj.get("spec"))
    status = None
    if obj.get("status"):
        try:
            status = ImprovementChainStatus.model_validate(obj["status"])
        except ValidationError as error:
            raise SpecError(format_validation_error(error, "status")) from None
    return ImprovementChain(metadata=meta, spec=spec, status=status)


def rfc3339(moment: datetime) -> str:
    """A timezone-aware time as RFC 3339 UTC with seconds precision (as Kubernetes writes it)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (`...Z` or with an offset) as a timezone-aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
