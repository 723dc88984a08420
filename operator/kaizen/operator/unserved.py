"""A watched resource that the API server does not serve for a while: kopf watches it again
with backoff instead of stopping the operator, and the operator does not start before the
server serves its cycles.

Listing or watching a custom resource answers `404 page not found` while the API server does
not serve it: for a moment right after the server restarts (its `/readyz` may answer before the
CRD's resource is served, and the operator's watches reconnect at once: seen once in CI on the
1.20 test server under load), and while a CRD is deleted and created again. kopf (1.45) stops
the whole operator on that answer: `api.request` retries only connection errors, timeouts,
5xx, 403 and 429, so the `APINotFoundError` of the list (`fetching.fetch_objs`) or the watch
(`api.stream`) leaves `watching.continuous_watch` and `watching.infinite_watch`, ends the
resource's watcher task (`queueing.watcher`; kopf logs "Watcher for … has failed"), and the
orchestrator re-raises it ("Multidimensional multitasker has failed: 404 page not found"), so
`kopf run` exits. No setting changes that: `settings.networking.error_backoffs` covers only the
errors above, `settings.watching.reconnect_backoff` only a stream that ended without one.

So, like a client-go reflector, the operator lists and watches such a resource again for as
long as it takes, after 1, 2, 4, 8, 16 s and then every 30 s (`retry_delay`), and says so: a
WARNING for each try names the resource, the namespace, the server's answer and how long the
resource has been unserved; an INFO line when it is served again. A CRD that is really gone
is not waited for in silence: with kopf's CRD scanning on (the Helm chart's default) kopf
notices the deletion, stops the watcher (warning "Unresolved resources cannot be served") and
starts a new one when the CRD returns; with scanning off, the warnings go on until it returns.
kopf has no hook for this: `watching.infinite_watch` (looked up by the watcher at each start)
is wrapped once per process, as `kaizen.operator.metrics.stamp_watch_arrivals` wraps it too.

Starting in such a moment is another matter: kopf reads which resources the server serves
once, when its startup handlers are done (`observation.resource_observer` calls
`scanning.scan_resources`), and takes a group version that `/apis` lists but whose discovery
document answers 404 (`scanning._read_version`), or that `/apis` does not list, for one with no
resources: "Unresolved resources cannot be served", and no watcher of the cycles is started.
With CRD scanning off that lasts until the operator restarts; with it on, until the CRD object
changes (it does not after an API server restart). So the startup handler first waits, with
the same backoff and a WARNING per try, until discovery lists the cycles (`wait_until_served`).
The liveness endpoint answers only after the startup handlers: past the chart's startupProbe
(2 minutes) the pod is restarted, and waits again.

A CRD created again while the operator runs meets the same lag. With scanning on, kopf scans
the CRD's group again at each event of the CRD object (`observation.
process_discovered_resource_event`), and serves what that scan finds; the last event of a new
CRD is the one that makes it Established, and discovery lists the resource a moment later. A
scan that runs in that moment finds no cycles, and no later event of the CRD comes to scan
again: the cycles are never served until the operator restarts (a CI run on the 1.20 test
server hit it, under load). So kopf's scans are wrapped too (`rescan_lagging_discovery`): when
a scan of the operator's group misses one of its resources whose CRD is Established, not
being deleted, and serves the version, discovery is behind the CRD, and the scan is made
again after 1, 2, 4, 8, 16 s and then every 30 s, with a WARNING each time, until discovery
lists the resource or the CRD stops being so (deleted, or not Established any more); after
`LAG_WAIT_LIMIT` (5 minutes: discovery lags by seconds) it goes on without it, with an ERROR,
so that a broken discovery cannot hold the operator's first scan for ever. A CRD
that is missing, being deleted or not Established is not waited for: the scan's answer is
right then, and kopf's next CRD event scans again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection
from typing import Any, Protocol

import urllib3

from kaizen.operator.kube import ApiException
from kaizen.operator.observe import true_condition

logger = logging.getLogger(__name__)
_log = logger  # for the wrapper of kopf's scan, whose `logger` argument is kopf's

#: The delay before the first try again (seconds); each next one doubles, up to `MAX_DELAY`.
FIRST_DELAY = 1.0
#: The longest delay between two tries (seconds), as client-go's reflectors cap theirs.
MAX_DELAY = 30.0
#: Set on the wrapper, so that a second call (a reloaded handlers module) does not wrap again.
_MARK = "_kaizen_retries_unserved"
#: The same mark for the wrapper of kopf's discovery scan.
_SCAN_MARK = "_kaizen_rescans_lagging_discovery"
#: How long a scan waits for discovery to list a resource whose CRD is Established (seconds).
#: Discovery lags a CRD by seconds; a server whose discovery lags by minutes is broken, and the
#: operator's first scan (which every watch waits for) must not wait on it for ever.
LAG_WAIT_LIMIT = 300.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th 404 in a row (1, 2, 4, 8, 16, then 30)."""
    # The exponent is bounded: the tries go on for as long as it takes (days, in 30 s steps).
    doublings = min(max(0, failures - 1), 16)
    return min(MAX_DELAY, FIRST_DELAY * float(2**doublings))


def retry_unserved_watches() -> bool:
    """Make kopf list and watch a resource again (with backoff) when the API server answers
    404 for it, instead of stopping the operator. Idempotent; False, with a warning, when kopf
    no longer has the private functions this relies on (a 404 then stops the operator)."""
    try:
        from kopf._cogs.clients import errors, watching
    except ImportError:  # pragma: no cover - a kopf without the private modules
        logger.warning("kopf's watching module moved: a 404 of a watch will stop the operator")
        return False
    original = getattr(watching, "infinite_watch", None)
    not_found = getattr(errors, "APINotFoundError", None)
    if original is None or not_found is None:  # pragma: no cover - a kopf that moved them
        logger.warning("kopf has no infinite_watch: a 404 of a watch will stop the operator")
        return False
    if getattr(original, _MARK, False):
        return True
    setattr(watching, "infinite_watch", _retrying(original, not_found))  # noqa: B010 - private
    return True


def _retrying(
    original: Callable[..., AsyncGenerator[Any, None]], not_found: type[Exception]
) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(original)
    async def infinite_watch(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        resource, namespace = kwargs.get("resource"), kwargs.get("namespace")
        where = f"in namespace {namespace!r}" if namespace is not None else "cluster-wide"
        failures = 0
        unserved_since = 0.0
        while True:
            try:
                async with contextlib.aclosing(original(*args, **kwargs)) as stream:
                    async for event in stream:
                        if failures:
                            logger.info(
                                "%s %s is served again after %.0f s: watching it",
                                resource,
                                where,
                                time.monotonic() - unserved_since,
                            )
                            failures = 0
                        yield event
                # kopf's stream ends only in its own tests (`_iterations`): so does this one.
                return
            except not_found as error:
                if not failures:
                    unserved_since = time.monotonic()
                failures += 1
                delay = retry_delay(failures)
                logger.warning(
                    "The API server does not serve %s %s (404: %s; for %.0f s now): its CRD "
                    "is missing, or not served yet after an API server restart. Listing and "
                    "watching it again in %.0f s (retry %d)",
                    resource,
                    where,
                    getattr(error, "message", None) or error,
                    time.monotonic() - unserved_since,
                    delay,
                    failures,
                )
                await asyncio.sleep(delay)

    setattr(infinite_watch, _MARK, True)
    return infinite_watch


class Discovery(Protocol):
    """The discovery calls of `kaizen.operator.kube.Kube`."""

    async def api_group_versions(self, group: str) -> list[str]: ...

    async def api_resources(self, group: str, version: str) -> list[str] | None: ...


async def discovery_gap(kube: Discovery, group: str, version: str, plural: str) -> str | None:
    """Why kopf's scan would not find `plural` in `group`/`version` now, or None when it would:
    `/apis` must list the group version, and its document must list the resource."""
    if version not in await kube.api_group_versions(group):
        return f"/apis lists no {group}/{version}"
    listed = await kube.api_resources(group, version)
    if listed is None:
        return f"/apis/{group}/{version} answers 404"
    if plural not in listed:
        return f"/apis/{group}/{version} lists no {plural}"
    return None


async def wait_until_served(kube: Discovery, group: str, version: str, plural: str) -> float:
    """Return once discovery lists `plural` in `group`/`version` (as kopf's start-up scan reads
    it), asking again after 1, 2, 4, 8, 16 s and then every 30 s, with a WARNING each time it
    does not, for as long as it takes; the seconds waited. A server that does not answer or
    answers 429 or 5xx is asked again too; any other error (401, 403) is raised."""
    resource = f"{plural}.{version}.{group}"
    started = time.monotonic()
    failures = 0
    while True:
        try:
            gap = await discovery_gap(kube, group, version, plural)
        except ApiException as error:
            if error.status != 429 and (error.status or 0) < 500:
                raise
            gap = f"discovery answers {error.status} {error.reason}"
        except (OSError, urllib3.exceptions.HTTPError) as error:
            gap = f"the API server does not answer: {error}"
        waited = time.monotonic() - started
        if gap is None:
            if failures:
                logger.info("%s is served after %.0f s: starting", resource, waited)
            return waited
        failures += 1
        delay = retry_delay(failures)
        logger.warning(
            "The API server does not serve %s yet (%s; for %.0f s now): its CRD is missing, not "
            "Established yet, or not served yet after an API server restart. kopf reads the "
            "served resources once, at start-up, and would not serve the cycles: waiting for "
            "them before starting. Asking again in %.0f s (try %d)",
            resource,
            gap,
            waited,
            delay,
            failures,
        )
        await asyncio.sleep(delay)


#: Reads whether the CRD `<plural>.<group>` is Established, not being deleted, and serves the
#: version: `(settings, logger, plural) -> bool`, with kopf's credentials.
CrdReady = Callable[[Any, Any, str], Awaitable[bool]]


def crd_ready(crd: dict[str, Any] | None, version: str) -> bool:
    """A CRD object (None: there is none) is Established, not being deleted, and serves
    `version`: discovery is due to list its resource."""
    if not crd or (crd.get("metadata") or {}).get("deletionTimestamp"):
        return False
    versions = (crd.get("spec") or {}).get("versions") or []
    return true_condition(crd, "Established") is not None and any(
        v.get("name") == version and v.get("served") for v in versions
    )


def rescan_lagging_discovery(group: str, version: str, plurals: Collection[str]) -> bool:
    """Make kopf's discovery scans of `group` scan again (with backoff) while they miss one of
    `plurals` in `version` whose CRD is Established: discovery has not caught up with the CRD
    yet. Idempotent; False, with a warning, when kopf no longer has the private function this
    relies on (a CRD created again may then stay unserved until the operator restarts)."""
    try:
        from kopf._cogs.clients import api, errors, scanning
    except ImportError:  # pragma: no cover - a kopf without the private modules
        logger.warning("kopf's scanning module moved: a CRD created again may not be served")
        return False
    original = getattr(scanning, "scan_resources", None)
    if original is None:  # pragma: no cover - a kopf that moved it
        logger.warning("kopf has no scan_resources: a CRD created again may not be served")
        return False
    if getattr(original, _SCAN_MARK, False):
        return True

    async def ready(settings: Any, log: Any, plural: str) -> bool:
        url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}"
        try:
            crd = await api.get(url, settings=settings, logger=log)
        except errors.APINotFoundError:
            return False
        except Exception as error:  # noqa: BLE001 - any failure leaves kopf's scan as it was
            # Not readable (RBAC without `get` on CRDs, a server that does not answer): the
            # scan's answer stands, as it would without this wrapper.
            logger.debug("Cannot read the CRD %s.%s (%s): not waiting for it", plural, group, error)
            return False
        return crd_ready(crd, version)

    wrapped = _rescanning(original, group, version, plurals, ready)
    setattr(scanning, "scan_resources", wrapped)  # noqa: B010 - private
    return True


def _rescanning(
    original: Callable[..., Awaitable[Collection[Any]]],
    group: str,
    version: str,
    plurals: Collection[str],
    ready: CrdReady,
    limit: float = LAG_WAIT_LIMIT,
) -> Callable[..., Awaitable[Collection[Any]]]:
    @functools.wraps(original)
    async def scan_resources(
        *, settings: Any, logger: Any, groups: Collection[str] | None = None
    ) -> Collection[Any]:
        resources = await original(settings=settings, logger=logger, groups=groups)
        if groups is not None and group not in groups:
            return resources
        started = time.monotonic()
        failures = 0
        waited_for: set[str] = set()
        while True:
            listed = {(r.group, r.version, r.plural) for r in resources}
            missing = [p for p in plurals if (group, version, p) not in listed]
            lagging = [p for p in missing if await ready(settings, logger, p)]
            waited = time.monotonic() - started
            if not lagging:
                listed_now, given_up = waited_for - set(missing), waited_for & set(missing)
                if listed_now:
                    _log.info(
                        "Discovery lists %s after %.0f s: serving it",
                        _names(listed_now, version, group),
                        waited,
                    )
                if given_up:
                    _log.info(
                        "Not waiting for %s any more: its CRD is gone, being deleted, or not "
                        "Established",
                        _names(given_up, version, group),
                    )
                return resources
            waited_for.update(lagging)
            if waited >= limit:
                _log.error(
                    "Discovery has not listed %s for %.0f s although its CRD is Established: "
                    "going on without it. kopf serves it once its CRD changes again or the "
                    "operator restarts",
                    _names(lagging, version, group),
                    waited,
                )
                return resources
            failures += 1
            delay = retry_delay(failures)
            _log.warning(
                "Discovery does not list %s yet although its CRD is Established (for %.0f s "
                "now): kopf would not serve it until its CRD changes again. Scanning again in "
                "%.0f s (try %d)",
                _names(lagging, version, group),
                waited,
                delay,
                failures,
            )
            await asyncio.sleep(delay)
            resources = await original(settings=settings, logger=logger, groups=groups)

    setattr(scan_resources, _SCAN_MARK, True)
    return scan_resources


def _names(plurals: Collection[str], version: str, group: str) -> str:
    return ", ".join(f"{p}.{version}.{group}" for p in sorted(plurals))
