"""A more realistic Kubernetes API emulator on top of ``kmock.KubernetesEmulator`` (kmock 0.8).

Plain kmock stores objects as merged dicts and streams every stored object on every watch.
:class:`RealisticEmulator` keeps kmock's discovery, object store (``emulator.objects``, with the
history of every object) and reaction DSL, but serves all object reads and writes itself:

* ``metadata.uid``, ``resourceVersion`` (one global counter), ``creationTimestamp`` and
  ``generation`` are stamped on create; the namespace comes from the URL; ``generateName``
  generates a name; create answers ``201``.
* writes: JSON-patch (all RFC 6902 ops, ``test`` failures answer ``422``), merge-patch,
  strategic-merge-patch (approximated as a merge-patch: lists are replaced), server-side apply
  (approximated as create-or-merge-patch, no field managers), and ``PUT`` as a replace.
  A no-op write changes nothing (no new resourceVersion, no watch event).
* ``409 Conflict`` when a body carries a ``metadata.resourceVersion`` other than the stored one.
* ``generation`` is bumped only when the object outside ``metadata`` (and ``status`` for
  resources with a status subresource) changes.
* ``/status`` semantics for resources that declare the ``status`` subresource: writes to the
  main object keep the stored status; writes to ``/status`` change only ``status``; create drops
  ``status`` (Pods start as ``phase: Pending``).
* lists: ``kind: <Kind>List``, ``apiVersion``, a numeric ``resourceVersion``; ``labelSelector``
  (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``) and ``fieldSelector`` (dotted
  paths, ``=``/``==``/``!=``) on lists, watches and delete-collection.
* watches: ``timeoutSeconds`` ends the stream; ``resourceVersion=N`` replays the recorded
  events after ``N`` (never older ones); no or ``0`` resourceVersion sends the current objects
  as ``ADDED`` first; a too-old resourceVersion gets an ``ERROR`` event with ``410 Gone``;
  ``allowWatchBookmarks`` gets a ``BOOKMARK`` before a timeout; streamed as ``application/json``.
* deletion: finalizers keep the object with a ``deletionTimestamp`` until the last finalizer is
  removed; ``preconditions`` are checked; ownerReference garbage collection on removal
  (``Background`` and ``Foreground`` remove dependents recursively, ``Orphan`` strips the
  ownerReference). As on a real API server, batch/v1 Jobs default to ``Orphan`` when no
  ``propagationPolicy`` is given (set :attr:`RealisticEmulator.job_default_orphan` to change).
* Jobs get the API server's defaults (``backoffLimit: 6``, ``completions``, ``parallelism``,
  ``suspend: false``, template labels).
* ``GET .../pods/<name>/log`` returns the stored log text; ``PUT`` to the same URL stores it
  (an emulator-only verb used by the job simulator).
* fault injection: :meth:`RealisticEmulator.add_fault` makes the Nth matching request answer an
  error without touching state; :meth:`RealisticEmulator.drop_watches` ends all open watches;
  :meth:`RealisticEmulator.restart` does too and forgets the watch history, as an API server
  restart does (a watch from an older resourceVersion gets ``410 Gone``);
  :meth:`RealisticEmulator.advance_clock` moves the clock of watch timeouts on, so a test sees
  ``timeoutSeconds`` end a watch without waiting for it.

kmock's own reactions (``emulator['get /x'] << 404``) still take priority over this layer;
a request answered by such a reaction changes no state.
* scale: kmock routes a request by scanning its log of served requests, so the layer keeps
  only the newest ``request_log_limit`` (8) — reactions sliced by request index are not
  supported; ``request_counts`` and ``requests_by_token`` count every request; lists and
  watches read one namespace's objects through an index.

The emulator belongs to its own event loop: use it through HTTP; read ``emulator.objects`` only
for assertions (the cluster handle in ``tests.kube.cluster`` does it thread-safely).

The package is split by concept: :mod:`.common` (errors, timestamps, names), :mod:`.patch`,
:mod:`.selector`, :mod:`.faults`, :mod:`.resources`, and the emulator's layers, each a subclass
of the one before: :mod:`.store`, :mod:`.reads`, :mod:`.deletion`, :mod:`.writes` and
:mod:`.realistic` (:class:`RealisticEmulator`).
"""

from tests.kube.emulator.common import ALL_VERBS, ApiError, b64, is_custom, now_iso, random_suffix
from tests.kube.emulator.faults import Fault
from tests.kube.emulator.patch import PatchTestFailed, json_patch, merge_patch
from tests.kube.emulator.realistic import RealisticEmulator, make_emulator
from tests.kube.emulator.resources import (
    STANDARD_RESOURCES,
    register_crd,
    register_standard_resources,
)
from tests.kube.emulator.selector import match_fields, match_labels

__all__ = [
    "ALL_VERBS",
    "ApiError",
    "Fault",
    "RealisticEmulator",
    "STANDARD_RESOURCES",
    "b64",
    "is_custom",
    "json_patch",
    "make_emulator",
    "match_fields",
    "match_labels",
    "merge_patch",
    "now_iso",
    "PatchTestFailed",
    "random_suffix",
    "register_crd",
    "register_standard_resources",
]
