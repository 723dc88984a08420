"""When a cycle is reconciled, and how many at once: what every trigger shares.

Reconciliations of one cycle never overlap (one `asyncio.Lock` per cycle). At most
`limit` (`OperatorSettings.max_reconciliations`) are in flight at once (`pacing.Slots`), and a
run takes its slot after the cycle's lock and before it reads anything: a run waiting for
either holds no API object. A request that comes while a run has not read the cycle yet is
folded into that run, which reads the newer state anyway: at most one run per cycle waits.

Job events `request` a run and return at once (the run is a task of its own); the other
triggers (a cycle created, resumed or edited; the safety-net timer; a retry) await theirs with
`reconcile`. Awaiting it in the Job-event handler kept each event, and every later event of
the same Job in kopf's queue for it, for as long as the run waited: at 500 cycles on a
saturated API server, 950-1,600 copies of Job events (docs/reliability.md, memory).

A run that answers a Job's change (a watch event, not the listing at start-up) knows, before
it reads anything, that the cycle has Jobs to look at and which of them it will read the pods
of (`pods_wanted`): `job_news` tells `_reconcile`, which then reads the cycle, its Jobs and
those pods at once rather than one after the other (`CycleReconciler`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from kaizen.operator import metrics
from kaizen.operator.observe import pods_wanted
from kaizen.operator.pacing import JobSignatures, Retries, SettledCycles, Slots, job_signature

logger = logging.getLogger(__name__)

#: Job-event arrivals kept per cycle for the next reconciliation (a bound, not a rule).
MAX_PENDING_ARRIVALS = 64

Key = tuple[str, str]
OutcomeT = TypeVar("OutcomeT")


class CycleRuns(Generic[OutcomeT]):
    """The runs of each cycle's reconciliation (`_reconcile`, defined by the subclass)."""

    def __init__(self, limit: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        #: Bounds the reconciliations in flight.
        self.slots = Slots(limit)
        #: Finished cycles that need nothing: no reconciliation on resume or on Job events.
        self.settled = SettledCycles()
        #: Prompt retries (with backoff) of reconciliations that failed outside kopf's retries.
        self.retries = Retries(self.reconcile)
        #: What each Job looked like when it last caused a reconciliation (see JobSignatures).
        self.job_signatures = JobSignatures()
        # When each cycle's last reconciliation that went through ended (`monotonic()`).
        self._reconciled_at: dict[Key, float] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        # Cycles with a run that has not read the cycle yet: later requests fold into it.
        self._unstarted: set[Key] = set()
        # The runs `request` started, and the Job signatures the next run of a cycle records.
        self._requests: set[asyncio.Task[None]] = set()
        self._signatures: dict[Key, dict[str, tuple[Any, ...]]] = {}
        # Cycles with Job events waiting for a run, with the Jobs whose pods it will read; and
        # the same for the run in progress (`job_news`).
        self._news: dict[Key, set[str]] = {}
        self._answering: dict[Key, frozenset[str]] = {}
        # Metrics only. Job events not yet answered, by cycle; and by cycle and Job name, when
        # the operator first knew that a Job of an unfinished step ended, and how (watch, list).
        self._arrivals: dict[Key, list[metrics.JobEvent]] = {}
        self._ended: dict[Key, dict[str, tuple[float, str]]] = {}

    async def _reconcile(self, namespace: str, name: str) -> OutcomeT | None:
        raise NotImplementedError

    def job_news(self, namespace: str, name: str) -> frozenset[str] | None:
        """For the run in progress of a cycle: None when no Job event asked for it; else the
        Jobs the events showed needing a look at their pods (ended, or no ready pod)."""
        return self._answering.get((namespace, name))

    @property
    def busy(self) -> int:
        """How many cycles are being reconciled right now (each holds a slot)."""
        return self.slots.in_flight

    async def reconcile(
        self, namespace: str, name: str, *, job_event: metrics.JobEvent | None = None
    ) -> OutcomeT | None:
        """Reconcile one cycle; None when it is gone, being deleted, finished and settled (its
        status answers its spec: nothing to do), or folded into a waiting run.

        `job_event`: the Job event that asks for this run, for the latency metrics: the run
        that answers it (this one, or the waiting run it is folded into) records its queueing,
        and the run whose status patch records the Job's outcome the time from its arrival.
        """
        key = (namespace, name)
        self._note(key, job_event, None)
        if key in self._unstarted:
            return None  # a run that has not read the cycle yet answers this request too
        self._unstarted.add(key)
        return await self._run(key)

    def request(
        self,
        namespace: str,
        name: str,
        *,
        job_event: metrics.JobEvent | None = None,
        job: Mapping[str, Any] | None = None,
        changed: bool = False,
    ) -> bool:
        """Ask for a reconciliation of the cycle without waiting for it (a Job event's); False
        when it is folded into a run that has not read the cycle yet.

        The run happens in a task of its own, so the caller (kopf's worker for the Job) lets go
        of its watch event at once: awaiting the run kept that event, and the Job's later ones
        queued behind it, for as long as the cycle's lock and a slot took. `job` (a Job as the
        event showed it) is recorded in `job_signatures` once a run that read the cycle after
        it succeeds. A failed run is retried by `retries` (0.2 s, doubling), and logged.
        `changed`: the watch saw the Job change (a MODIFIED event, not one of the objects
        listed at start-up, which belong as often to finished cycles): the run then reads the
        cycle's Jobs and the pods it will need at once with the cycle (`job_news`).
        """
        key = (namespace, name)
        self._note(key, job_event, job)
        if changed:
            news = self._news.setdefault(key, set())
            if job is not None and (job_name := (job.get("metadata") or {}).get("name")):
                if pods_wanted(job):
                    news.add(job_name)
                else:
                    news.discard(job_name)
        if key in self._unstarted:
            return False
        self._unstarted.add(key)
        task = asyncio.get_running_loop().create_task(
            self._requested(key), name=f"kaizen-reconcile-{namespace}/{name}"
        )
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)
        return True

    async def drain(self) -> None:
        """Wait until every requested run has ended (tests; the operator stopping)."""
        while self._requests:
            await asyncio.gather(*list(self._requests), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the requested runs and pending retries (the operator is stopping)."""
        for task in list(self._requests):
            task.cancel()
        await self.drain()
        await self.retries.close()

    def _note(
        self,
        key: Key,
        job_event: metrics.JobEvent | None,
        job: Mapping[str, Any] | None,
    ) -> None:
        """Keep what the next run of the cycle answers: the event (metrics), the Job's
        signature (only its name and a tuple: no API object is held while the run waits)."""
        if job_event is not None:
            if job_event.job == "finished":
                ended = self._ended.setdefault(key, {})
                ended.setdefault(job_event.name, (job_event.arrived, "watch"))
            pending = self._arrivals.setdefault(key, [])
            pending.append(job_event)
            del pending[:-MAX_PENDING_ARRIVALS]
        if job is not None and (job_name := (job.get("metadata") or {}).get("name")):
            self._signatures.setdefault(key, {})[job_name] = job_signature(job)

    def forget_job(self, namespace: str, cycle: str, job: Mapping[str, Any]) -> None:
        """A Job was deleted: forget its signature, also the one a waiting run would record."""
        self.job_signatures.forget(namespace, job)
        (self._signatures.get((namespace, cycle)) or {}).pop(
            str((job.get("metadata") or {}).get("name") or ""), None
        )

    async def _requested(self, key: Key) -> None:
        try:
            await self._run(key)
        except Exception as error:  # noqa: BLE001 - retried soon, and by the timer
            delay = self.retries.failed(*key)
            logger.warning(
                "Reconciling cycle %s/%s after a Job event failed (%s); %s",
                *key,
                error,
                f"retrying in {delay:g} s" if delay is not None else "a retry is pending",
            )

    async def _run(self, key: Key) -> OutcomeT | None:
        """One run, holding the cycle's unstarted mark until it has the cycle's lock and a
        slot: only then does it read, so requests until then fold into it."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        started = False
        arrivals: list[metrics.JobEvent] = []
        signatures: dict[str, tuple[Any, ...]] = {}
        news: set[str] | None = None
        try:
            async with lock, self.slots.slot():
                started = True
                self._unstarted.discard(key)
                # Events that came before this run read the cycle are answered by it.
                arrivals = self._arrivals.pop(key, [])
                signatures = self._signatures.pop(key, {})
                news = self._news.pop(key, None)
                if news is not None:
                    self._answering[key] = frozenset(news)
                metrics.record_event_queue(arrivals, time.monotonic())
                with metrics.reconcile_timer():
                    outcome = await self._reconcile(*key)
                self.retries.succeeded(*key)
                self._reconciled_at[key] = self.monotonic()
                for job_name, signature in signatures.items():
                    self.job_signatures.record(key[0], job_name, signature)
                return outcome
        except Exception:
            metrics.record_error()
            if arrivals:  # still unanswered: the retry answers them
                pending = self._arrivals.setdefault(key, [])
                pending[:0] = arrivals
                del pending[:-MAX_PENDING_ARRIVALS]
            if signatures:  # recorded by the retry, unless a newer event of the Job came
                self._signatures[key] = {**signatures, **self._signatures.get(key, {})}
            if news is not None:  # the retry reads those pods too
                self._news.setdefault(key, set()).update(news)
            raise
        finally:
            self._answering.pop(key, None)
            if not started:  # cancelled while waiting: the next request starts a run
                self._unstarted.discard(key)
            if not lock.locked() and key not in self._unstarted:
                self._locks.pop(key, None)

    def reconciled_within(self, namespace: str, name: str, seconds: float) -> bool:
        """Whether a reconciliation of the cycle went through in the last `seconds`."""
        done = self._reconciled_at.get((namespace, name))
        return done is not None and self.monotonic() - done < seconds
