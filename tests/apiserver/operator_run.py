"""The Kaizen operator on the real API server, as the Helm chart runs it.

* :func:`install_chart_identity` renders charts/kaizen with Helm's own engine (default values)
  and applies what gives the operator its identity: the namespace, ServiceAccount, ClusterRole
  and ClusterRoleBinding. :meth:`ApiServer.service_account_kubeconfig` then gives a token of that
  ServiceAccount, so every call the operator makes goes through RBAC (not ``system:masters``).
* :func:`running_chart_operator` runs ``kopf run --standalone --all-namespaces`` (the chart's
  command line for one replica, with kopf's CRD scanning on) in this process, with that
  kubeconfig, like :func:`tests.kube.cluster.running_operator` does for the emulator.
* :class:`PhaseRecorder` watches the cycles of a namespace and keeps every phase they show (the
  emulator's handle has the history of each object; a real server has none to read).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from tests.apiserver.server import ApiServer
from tests.kube.cluster import OperatorHandle, _Collector, _load_registry, operator_test_settings

OPERATOR_MODULE = "kaizen.operator.handlers"
G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"
IDENTITY_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")


def install_chart_identity(server: ApiServer) -> tuple[str, str, list[dict[str, Any]]]:
    """Apply the chart's ServiceAccount and RBAC; returns (namespace, account, objects)."""
    from tests.charts.helm import NAMESPACE, load_chart, render

    objects = [o for o in render(load_chart()) if o["kind"] in IDENTITY_KINDS]
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    kubernetes.client.CoreV1Api(server.api_client()).create_namespace(
        {"metadata": {"name": NAMESPACE}}
    )
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    return NAMESPACE, account["metadata"]["name"], objects


@contextlib.contextmanager
def running_chart_operator(
    kubeconfig: Path,
    *,
    env: Mapping[str, str],
    check_errors: bool = True,
    timeout: float = 60,
) -> Iterator[OperatorHandle]:
    """``kopf run --standalone --all-namespaces`` of the Kaizen operator with ``kubeconfig``.

    ``env`` must already be in ``os.environ`` too (the handlers module reads its settings when
    it is imported). On exit the operator is stopped; with ``check_errors`` any ERROR log
    record fails.
    """
    import kopf.testing

    registry = _load_registry(OPERATOR_MODULE)
    settings = operator_test_settings()
    settings.scanning.disabled = False  # as deployed: kopf watches CRDs (the ClusterRole allows it)
    collector = _Collector()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collector)
    runner = kopf.testing.KopfRunner(
        ["run", "--standalone", "--all-namespaces", "--verbose"],
        registry=registry,
        settings=settings,
        env={"KUBECONFIG": str(kubeconfig), **env},
        timeout=timeout,
        catch_exceptions=True,
    )
    handle = OperatorHandle(runner, collector, registry)
    try:
        with runner:
            yield handle
    finally:
        root.removeHandler(collector)
        root.handlers[:] = [h for h in root.handlers if type(h).__name__ != "_KopfStreamHandler"]
        root.setLevel(old_level)
        logging.getLogger("asyncio").propagate = True
    if runner.exit_code not in (0, None):
        raise AssertionError(
            f"the operator exited with {runner.exit_code}:\n{runner.output[-5000:]}"
        )
    if check_errors and handle.errors:
        shown = "\n".join(f"{r.name}: {r.getMessage()}" for r in handle.errors)
        raise AssertionError(f"the operator logged errors:\n{shown}")


def forbidden_in(records: list[logging.LogRecord]) -> list[str]:
    """The log messages that report an RBAC refusal.

    A 403 saying "cannot find RESTMapping" is not one: right after a CRD is installed, the
    server's ownerReference admission does not know its kind yet (its REST mapper refreshes
    on its own) and refuses a blockOwnerDeletion to it for a moment; the operator retries.
    """
    messages = [r.getMessage() for r in records]
    return [
        m
        for m in messages
        if "403" in m and ("Forbidden" in m or "forbidden" in m) and "RESTMapping" not in m
    ]


def forbidden(handle: OperatorHandle) -> list[str]:
    """Log messages of the operator that report an RBAC refusal."""
    return forbidden_in(handle.records)


class PhaseRecorder(threading.Thread):
    """Every (cycle, phase) the cycles of a namespace go through, from a watch that starts again
    from its last resourceVersion whenever it ends, and lists again after an API server restart
    (410 Gone): a phase that came and went while it listed would be missed."""

    def __init__(self, server: ApiServer, namespace: str) -> None:
        super().__init__(daemon=True, name="phase-recorder")
        self.co = kubernetes.client.CustomObjectsApi(server.api_client())
        self.namespace = namespace
        self.phases: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.relists = 0  # times the watch history was gone (410) and the recorder listed again
        self._halt = threading.Event()
        listed = self.co.list_namespaced_custom_object(G, V, namespace, P)
        self._rv = listed["metadata"]["resourceVersion"]
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + 900  # bounded, whatever the test does
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                for event in kubernetes.watch.Watch().stream(
                    self.co.list_namespaced_custom_object,
                    G,
                    V,
                    self.namespace,
                    P,
                    resource_version=self._rv,
                    timeout_seconds=5,
                    _request_timeout=(5, 15),  # a server still starting may hold requests
                ):
                    obj = event["object"]
                    self._rv = obj["metadata"]["resourceVersion"]
                    self._seen(obj)
            except kubernetes.client.ApiException as error:
                self.errors.append(repr(error))
                if error.status == 410:  # after an API server restart: list again
                    self._relist()
                else:
                    self._halt.wait(0.2)
            except Exception as error:  # noqa: BLE001 - the server went away: watch again
                self.errors.append(repr(error))
                self._halt.wait(0.2)

    def _relist(self) -> None:
        self.relists += 1
        with contextlib.suppress(Exception):
            listed = self.co.list_namespaced_custom_object(G, V, self.namespace, P)
            for obj in listed["items"]:
                self._seen(obj)
            self._rv = listed["metadata"]["resourceVersion"]

    def _seen(self, obj: dict[str, Any]) -> None:
        phase = (obj.get("status") or {}).get("phase")
        seen = self.phases.setdefault(obj["metadata"]["name"], [])
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
