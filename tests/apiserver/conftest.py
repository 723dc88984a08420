"""Fixtures of the `apiserver` tier: one real etcd + kube-apiserver + kube-controller-manager for
the tests of this package (``apiserver``: stopped after its last test, not at the end of the whole
session), a fresh namespace per test (``namespace``), the Helm chart's ServiceAccount and RBAC
(``chart_identity``), and ``backend`` (emulator and real server).

Every test that uses ``apiserver`` (directly or through another fixture) is marked ``apiserver``.
Without binaries (``scripts/kube-apiserver.sh build`` failed or never ran, or
``KAIZEN_APISERVER=skip``) those tests are skipped with the reason, in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.backends import Backend
from tests.apiserver.operator_run import install_chart_identity
from tests.apiserver.server import ApiServer, find_binaries, running_apiserver
from tests.kube.cluster import running_cluster
from tests.kube.emulator import random_suffix


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "apiserver" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.apiserver)


@pytest.fixture(scope="package")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real API server on 127.0.0.1 with the generated CRD installed; stopped after the
    package's last test (every process checked gone)."""
    found = find_binaries()
    if isinstance(found, str):
        pytest.skip(f"no real kube-apiserver (the apiserver tier): {found}")
    with running_apiserver(tmp_path_factory.mktemp("apiserver"), found) as server:
        yield server
    left = [p.name for p in server.processes() if p.alive()]
    assert not left, f"still running after stop: {left}"


@pytest.fixture(scope="package")
def chart_identity(apiserver: ApiServer) -> tuple[str, str]:
    """The chart's ServiceAccount and RBAC, installed once: (namespace, account)."""
    pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) is not available")
    namespace, account, _ = install_chart_identity(apiserver)
    return namespace, account


@pytest.fixture
def namespace(apiserver: ApiServer) -> Iterator[str]:
    """A new namespace in which pods can be created (its default ServiceAccount has a token).
    Its cycles are removed afterwards (the namespace stays: no namespace controller runs)."""
    name = apiserver.create_namespace(f"test-{random_suffix()}")
    yield name
    apiserver.delete_cycles(name)


@pytest.fixture(params=["emulator", pytest.param("apiserver", marks=pytest.mark.apiserver)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The same test on a fresh emulator and on the real server (tests/apiserver/backends.py)."""
    if request.param == "emulator":
        with running_cluster(tmp_path) as cluster:
            namespace = f"test-{random_suffix()}"
            yield Backend(
                "emulator", namespace, cluster.api_client, cluster.restart_apiserver, cluster
            )
    else:
        server = request.getfixturevalue("apiserver")
        namespace = server.create_namespace(f"test-{random_suffix()}")
        yield Backend("apiserver", namespace, server.api_client, server.restart_apiserver, server)
        server.delete_cycles(namespace)
