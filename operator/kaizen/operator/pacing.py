"""When a cycle is reconciled: how many at once, soon again after a failure, and never for
nothing once it ended.

`Slots` bounds the reconciliations in flight: a reconciliation takes a slot before it reads its
cycle, Jobs and pods, so the ones waiting for a slot hold none of those objects (at 500 cycles
on a saturated API server, ~500 reconciliations in flight held ~2,200 listed Jobs at once).

`Retries` reconciles a cycle again after a failed attempt that no kopf retry covers (a Job
event, the safety-net timer), after 0.2 s, then twice as long after each further failure, up
to 30 s: five failed Job creations in a row used to wait for the 60 s timer. `SettledCycles`
remembers the cycles that ended and whose status already answers their current spec, so an
operator restart and the Job events of finished cycles (TTL deletions, stopped siblings) cost
no reconciliation: restart cost no longer grows with the number of finished cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from kaizen.operator import metrics

logger = logging.getLogger(__name__)

#: Seconds before the first retry after a failed reconciliation; doubled after each failure.
RETRY_FIRST_DELAY = 0.2
#: The longest wait between two retries of one cycle.
RETRY_MAX_DELAY = 30.0
#: Phases after which a cycle starts nothing more (the engine's terminal phases).
TERMINAL_PHASES = ("Succeeded", "Failed")

Key = tuple[str, str]


def backoff(
    failures: int, first: float = RETRY_FIRST_DELAY, maximum: float = RETRY_MAX_DELAY
) -> float:
    """The wait before the next attempt after `failures` (≥ 1) failures in a row."""
    return float(min(maximum, first * 2.0 ** max(0, min(failures - 1, 32))))


class Slots:
    """At most `limit` reconciliations in flight at once; the others wait (first come, first
    served) before they read anything.

    A reconciliation spends most of its time waiting for the API server's answers (the API
    calls run in a pool of `kaizen.operator.kube.API_CONCURRENCY` threads); past the pool's
    size more reconciliations in flight only wait for a thread while holding their cycle, its
    Jobs and its pods. The bound is `OperatorSettings.max_reconciliations`.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"at least one reconciliation must be allowed in flight, not {limit}")
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        #: Reconciliations holding a slot now / waiting for one / the most in flight at once.
        self.in_flight = 0
        self.waiting = 0
        self.peak = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with` (waiting for it first if need be)."""
        self.waiting += 1
        metrics.record_slots(self.in_flight, self.waiting)
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        metrics.record_slots(self.in_flight, self.waiting)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()
            metrics.record_slots(self.in_flight, self.waiting)


class Retries:
    """At most one pending retry per cycle, with exponential backoff between failures."""

    def __init__(
        self,
        attempt: Callable[[str, str], Awaitable[Any]],
        *,
        first: float = RETRY_FIRST_DELAY,
        maximum: float = RETRY_MAX_DELAY,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._attempt = attempt
        self._first = first
        self._maximum = maximum
        self._sleep = sleep
        self._failures: dict[Key, int] = {}
        self._pending: dict[Key, asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        """Cycles with a retry scheduled."""
        return len(self._pending)

    def failed(self, namespace: str, name: str) -> float | None:
        """Count a failure and schedule a retry; returns its delay (None: one is pending)."""
        key = (namespace, name)
        self._failures[key] = self._failures.get(key, 0) + 1
        if key in self._pending:
            return None
        delay = backoff(self._failures[key], self._first, self._maximum)
        self._pending[key] = asyncio.get_running_loop().create_task(
            self._retry(key, delay), name=f"kaizen-retry-{namespace}/{name}"
        )
        return delay

    def later(self, namespace: str, name: str, delay: float) -> bool:
        """Reconcile again after `delay` (something no watch event will announce, such as the
        end of an orphaned pod); False when a retry is already pending."""
        key = (namespace, name)
        if key in self._pending:
            return False
        self._pending[key] = asyncio.get_running_loop().create_task(
            self._retry(key, delay), name=f"kaizen-recheck-{namespace}/{name}"
        )
        return True

    def succeeded(self, namespace: str, name: str) -> None:
        """A reconciliation went through: the next failure starts from the first delay again."""
        self._failures.pop((namespace, name), None)

    async def _retry(self, key: Key, delay: float) -> None:
        try:
            await self._sleep(delay)
        finally:
            self._pending.pop(key, None)
        try:
            await self._attempt(*key)
        except Exception as error:  # noqa: BLE001 - retried again, later
            logger.warning("Retrying the reconciliation of %s/%s failed: %s", *key, error)
            self.failed(*key)

    async def close(self) -> None:
        """Cancel every pending retry (the operator is stopping)."""
        tasks = list(self._pending.values())
        self._pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def settled(body: Mapping[str, Any]) -> bool:
    """Whether a cycle ended and its status answers its current spec: nothing to reconcile.

    A finished cycle whose spec changed since (its status, or any condition, observed an older
    generation) is not settled: that edit must still be answered.
    """
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    generation = meta.get("generation")
    if status.get("phase") not in TERMINAL_PHASES or meta.get("deletionTimestamp"):
        return False
    if generation is None or status.get("observedGeneration") != generation:
        return False
    return all(
        c.get("observedGeneration") in (None, generation) for c in status.get("conditions") or []
    )


class SettledCycles:
    """The finished cycles known to need nothing, by (namespace, name) and uid."""

    def __init__(self) -> None:
        self._uids: dict[Key, str] = {}

    def __len__(self) -> int:
        return len(self._uids)

    def note(self, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
        """Remember (or forget) the cycle from its stored body; True when it is settled."""
        uid = (body.get("metadata") or {}).get("uid")
        if uid and settled(body):
            self._uids[(namespace, name)] = uid
            return True
        self._uids.pop((namespace, name), None)
        return False

    def covers(self, namespace: str, name: str, uid: str | None) -> bool:
        """Whether the cycle `name` with this uid is known settled (a recreated cycle is not)."""
        return uid is not None and self._uids.get((namespace, name)) == uid

    def __contains__(self, key: object) -> bool:
        """Whether the cycle `(namespace, name)` was settled when last read (any uid)."""
        return key in self._uids

    def forget(self, namespace: str, name: str) -> None:
        self._uids.pop((namespace, name), None)


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of an object's controller (for a step Job: its cycle), if any."""
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("uid"):
            return str(owner["uid"])
    return None


#: Job conditions the engine acts on (SuccessCriteriaMet, FailureTarget come just before them).
_DECISIVE_CONDITIONS = ("Complete", "Failed", "Suspended")
#: Conditions the Job controller sets when it has decided the Job's end, before it writes the
#: end itself (Complete or Failed) once the Job's pods have terminated.
_ENDING_CONDITIONS = ("SuccessCriteriaMet", "FailureTarget")


def job_fresh(job: Mapping[str, Any]) -> bool:
    """Whether a Job is as it was created: no status yet, and not suspended.

    Its event (the ADDED event of the Job the operator has just created, as a rule) tells the
    engine nothing it can act on: the step was recorded as launched when the Job was created,
    and the Job controller's first write (a pod created, `active: 1`) comes next. A suspended
    Job's is news: it waits for quota, which the step's status shows.
    """
    return not job.get("status") and not (job.get("spec") or {}).get("suspend")


def job_ending(job: Mapping[str, Any]) -> bool:
    """Whether the Job controller has decided a Job's end but not written it yet.

    Such a write (SuccessCriteriaMet or FailureTarget, `active` back to 0) tells the engine
    nothing it can act on: a step's outcome is read once the Job is Complete or Failed, which
    the controller writes next. Its reconciliation cost four requests per step for nothing.
    """
    conditions = [
        c.get("type") for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    ]  # fmt: skip
    return any(c in _ENDING_CONDITIONS for c in conditions) and not any(
        c in ("Complete", "Failed") for c in conditions
    )


def job_signature(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the engine can learn from a Job's own object (pods aside): two events with the same
    signature cannot change a decision, and the second costs no reconciliation."""
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    decisive = sorted(
        str(c.get("type"))
        for c in status.get("conditions") or []
        if c.get("type") in _DECISIVE_CONDITIONS and c.get("status") == "True"
    )
    return (
        (job.get("metadata") or {}).get("uid"),
        bool(spec.get("suspend")),
        bool(status.get("active")),
        status.get("ready") or 0,
        status.get("failed") or 0,
        tuple(decisive),
    )


class JobSignatures:
    """The signature of each step Job when its cycle was last reconciled because of it.

    The Job controller writes a Job's status several times per step (started, success
    criteria met, complete) and kopf reports each write; only the changes the engine acts on
    need a reconciliation. Forgotten when the Job is deleted; empty after a restart.
    """

    def __init__(self) -> None:
        self._seen: dict[Key, tuple[Any, ...]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def unchanged(self, namespace: str, job: Mapping[str, Any]) -> bool:
        name = str((job.get("metadata") or {}).get("name") or "")
        return bool(name) and self._seen.get((namespace, name)) == job_signature(job)

    def record(self, namespace: str, name: str, signature: tuple[Any, ...]) -> None:
        """The cycle was reconciled after Job `name` had this signature."""
        self._seen[(namespace, name)] = signature

    def forget(self, namespace: str, job: Mapping[str, Any]) -> None:
        self._seen.pop((namespace, str((job.get("metadata") or {}).get("name") or "")), None)
