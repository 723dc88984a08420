"""Fixtures for tests that need a Kubernetes API: ``cluster``, ``namespace``, ``jobsim``.

Other test folders can use them with ``from tests.kube.conftest import cluster, namespace, jobsim``
(pytest picks up imported fixtures) or call ``running_cluster()`` / ``JobSimulator`` directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.cluster import Cluster, running_cluster
from tests.kube.emulator import random_suffix
from tests.kube.jobsim import JobSimulator


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh emulator on a random localhost port, with a kubeconfig in tmp_path."""
    with running_cluster(tmp_path) as handle:
        yield handle


@pytest.fixture
def namespace() -> str:
    return f"test-{random_suffix()}"


@pytest.fixture
def jobsim(cluster: Cluster, namespace: str) -> Iterator[JobSimulator]:
    """A running job simulator for ``namespace``; its internal errors fail the test."""
    with JobSimulator(cluster, namespace) as sim:
        yield sim
