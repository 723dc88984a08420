"""The emulator or the real API server, seen the same way (the ``backend`` fixture's values).

The ``backend`` fixture (tests/apiserver/conftest.py) runs a test twice: ``[emulator]`` (a fresh
emulator from tests/kube/, fast tier) and ``[apiserver]`` (the session's real server and a fresh
namespace, marked ``apiserver``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes

G, V, P = "kaizen.dev", "v1alpha1", "improvementcycles"


@dataclass
class Backend:
    """The emulator or the real server, seen the same way."""

    name: str  # "emulator" or "apiserver"
    namespace: str
    api_client: Callable[[], kubernetes.client.ApiClient]
    restart: Callable[[], None]  # an API server restart: watches end, their history is gone
    handle: Any  # tests.kube.cluster.Cluster or tests.apiserver.server.ApiServer

    @property
    def co(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client())

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client())

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api_client())


def cycle(name: str, **spec: Any) -> dict[str, Any]:
    """An ImprovementCycle the CRD's schema accepts (``spec`` defaults to a model name)."""
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "ImprovementCycle",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": spec or {"model": {"name": "m"}},
    }
