"""What the operator keeps of the API objects it reads: not `metadata.managedFields`, and of a
step Job not its pod template.

A real API server sends every object with its `managedFields` (server-side apply's record of
which client set which field, a nest of small dicts). Parsed, a completed step Job takes 43 KB,
of which `managedFields` are 28 KB and the pod template (`spec.template`) 9 KB of the rest; a
running cycle takes 44 KB, 13 KB of it `managedFields`. Neither the operator nor kopf reads
them: the engine learns a Job's state from its metadata, `spec.suspend` and `status`, and a
step's result from its pod. Yet the operator holds many objects at once: each reconciliation
in flight holds its cycle, the cycle's Jobs and their pods while it waits for the API server;
kopf holds every watch event queued for a worker and the last body of every cycle for its
timer. So every object is slimmed as soon as it is parsed: by `kaizen.operator.kube` for what
the API calls return, and on kopf's watch stream (`kaizen.operator.metrics.
stamp_watch_arrivals`) for every watch event (docs/reliability.md, memory). Code that needs a
Job's pod template must read the Job itself, not a listed or watched copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def slim(obj: Any, *, job: bool = False) -> Any:
    """`obj` without `metadata.managedFields`, and a Job (`kind: Job` of `batch/v1`, or any
    object when `job`: the items of a list of Jobs carry no kind) without `spec.template`;
    removed in place. Anything else is unchanged."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        is_job = job or (obj.get("kind") == "Job" and obj.get("apiVersion") == "batch/v1")
        spec = obj.get("spec")
        if is_job and isinstance(spec, dict):
            spec.pop("template", None)
    return obj


def slim_all(objs: Iterable[Any], *, job: bool = False) -> list[Any]:
    """Each object of `objs` slimmed (in place), as a list (`job`: they are Jobs)."""
    return [slim(obj, job=job) for obj in objs]
