"""An in-process Kubernetes API over real HTTP, and the real kopf operator running against it.

Usage (plain functions, usable from any test folder)::

    from tests.kube.cluster import running_cluster, running_operator, wait_for
    from tests.kube.jobsim import JobSimulator

    def test_cycle(tmp_path):
        with running_cluster(tmp_path) as cluster:        # emulator on http://127.0.0.1:<port>
            api = kubernetes.client.CustomObjectsApi(cluster.api_client())
            with JobSimulator(cluster, "ns1"), running_operator(cluster, "kaizen.operator", "ns1"):
                api.create_namespaced_custom_object("kaizen.dev", "v1alpha1", "ns1",
                                                    "improvementcycles", body)
                obj = wait_for(lambda: cluster.get("kaizen.dev/v1alpha1/improvementcycles",
                                                   "ns1", "c1"),
                               until=lambda o: o and o.get("status", {}).get("phase") == "Succeeded")

or with the fixtures from ``tests/kube/conftest.py`` (``cluster``, ``namespace``), which other
folders can reuse with ``pytest_plugins = ["tests.kube.conftest"]`` or by importing them.

* :func:`running_cluster` starts :class:`~tests.kube.emulator.RealisticEmulator` as a real
  localhost HTTP server in a background thread with its own event loop, writes a kubeconfig
  pointing at it, and yields a :class:`Cluster` handle: ``url``, ``kubeconfig_path``,
  ``api_client()`` (the official client, configured from that kubeconfig explicitly),
  read-only snapshots for assertions (``objects``, ``get``, ``history``, ``pod_log``), fault
  injection (``add_fault``, ``drop_watches``, ``restart_apiserver``) and ``kubectl(...)``. On exit it raises if the
  emulator itself failed with an unexpected (non-API) error while serving.
* :func:`running_operator` runs the real kopf operator (``kopf run --standalone -n NS``) in
  this process, in a thread (``kopf.testing.KopfRunner``), with ``KUBECONFIG`` set to the
  cluster's kubeconfig, the module's handlers registered in a fresh registry, and test
  settings (no scanning, standalone, short watch timeouts). The operator module's own
  ``@kopf.on.startup`` handlers apply on top. If the module has no ``@kopf.on.login`` handler,
  one that reads the kubeconfig is added. On exit the operator is stopped; an exception of the
  operator process is re-raised; with ``check_errors=True`` any ERROR log record fails too.
  ``handle.records`` holds the log records (kopf's and the module's) for assertions.
* :func:`wait_for` polls a probe until a predicate holds; on timeout it raises AssertionError
  with the last observed value.

Everything acts through HTTP; the emulator's objects are read through its own event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import importlib
import logging
import pprint
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import kmock
import kubernetes
import yaml

from tests.kube.emulator import Fault, RealisticEmulator, make_emulator, register_crd

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

CYCLES = "kaizen.dev/v1alpha1/improvementcycles"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
EVENTS = "v1/events"


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], Any] = bool,
    *,
    timeout: float = 60.0,
    interval: float = 0.02,
    what: str | None = None,
) -> T:
    """Call ``probe`` until ``until(value)`` is true; return the value.

    Exceptions from the probe count as observations. On timeout, raise AssertionError showing
    the last observed value (or exception).
    """
    deadline = time.monotonic() + timeout
    last: Any = "<never observed>"
    while True:
        try:
            last = probe()
            if until(last):
                return last
        except Exception as e:  # noqa: BLE001 - an observation like any other
            last = e
        if time.monotonic() >= deadline:
            shown = last if isinstance(last, BaseException) else pprint.pformat(last, width=100)
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or getattr(until, '__name__', 'condition')};"
                f" last observed:\n{shown}"
            )
        time.sleep(interval)


class Cluster:
    """A handle to a running emulator; see the module docstring."""

    def __init__(self, workdir: Path, crds: Sequence[dict[str, Any]] = ()) -> None:
        self.workdir = workdir
        self.kubeconfig_path = workdir / "kubeconfig.yaml"
        self.url = ""
        self.emulator: RealisticEmulator
        self._crds = list(crds)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="kube-emulator", daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Cluster:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._failure is not None:
            raise RuntimeError("the emulator failed to start") from self._failure
        if not self.url:
            raise RuntimeError("the emulator did not start in 30s")
        self._write_kubeconfig()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError("the emulator thread did not stop")
        if self._failure is not None:
            raise RuntimeError("the emulator thread failed") from self._failure

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - surfaced by start()/stop()
            self._failure = e
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self.emulator = make_emulator()
        for crd in self._crds:
            register_crd(self.emulator, crd)
        self._stopping = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator, port=None) as server:
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stopping.wait()
            self.emulator.drop_watches()  # let open watch streams end before the server closes
            await asyncio.sleep(0)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "tester", "namespace": "default"},
                }
            ],
            "current-context": "emulator",
        }
        self.kubeconfig_path.write_text(yaml.safe_dump(config))

    # ------------------------------------------------------------ clients

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new official client, configured explicitly from this cluster's kubeconfig."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig_path))

    def load_kube_config(self) -> None:
        """Make this cluster the default of the ``kubernetes`` package (global state!)."""
        kubernetes.config.load_kube_config(config_file=str(self.kubeconfig_path))

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the emulator; FileNotFoundError if kubectl is not on PATH."""
        exe = shutil.which("kubectl")
        if exe is None:
            raise FileNotFoundError("kubectl is not on PATH")
        cmd = [
            exe,
            "--kubeconfig",
            str(self.kubeconfig_path),
            "--cache-dir",
            str(self.workdir / "kubectl-cache"),
            *args,
        ]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    # ------------------------------------------------------------ emulator access (thread-safe)

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        """Run ``fn()`` inside the emulator's event loop and return its result."""
        assert self._loop is not None

        async def _run() -> T:
            return fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(_run(), self._loop)
        return future.result(timeout=timeout)

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Deep copies of the live objects of a resource (e.g. ``"batch/v1/jobs"``)."""
        res = kmock.resource(resource)

        def snapshot() -> list[dict[str, Any]]:
            return [
                copy.deepcopy(obj.raw)
                for (r, ns, _), obj in self.emulator.objects.items()
                if r == res and not obj.deleted and (namespace is None or ns == namespace)
            ]

        return self.call(snapshot)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A deep copy of one live object, or None."""
        for obj in self.objects(resource, namespace):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    def history(
        self, resource: str, namespace: str | None, name: str
    ) -> list[dict[str, Any] | None]:
        """All stored versions of an object (None marks a deletion)."""
        res = kmock.resource(resource)

        def snapshot() -> list[dict[str, Any] | None]:
            key = (res, namespace, name)
            if key not in self.emulator.objects:
                return []
            return [
                None if v is None else copy.deepcopy(v.raw)
                for v in self.emulator.objects[key].history
            ]

        return self.call(snapshot)

    def pod_log(self, namespace: str, name: str) -> str:
        return self.call(lambda: self.emulator.pod_logs.get((namespace, name), ""))

    def add_fault(self, **kwargs: Any) -> Fault:
        """Make the ``nth`` request matching method/resource/subresource/name answer an error.

        E.g. ``cluster.add_fault(method="PATCH", resource=CYCLES, subresource="status",
        status=409, reason="Conflict", nth=2)``. The returned Fault counts ``seen``/``fired``.
        """
        return self.call(lambda: self.emulator.add_fault(**kwargs))

    def drop_watches(self) -> None:
        """End all open watch streams (clients must re-list/re-watch)."""
        self.call(self.emulator.drop_watches)

    def restart_apiserver(self) -> None:
        """As an API server restart: watches end and their history is gone (410 Gone for a
        watch from an older resourceVersion); objects stay. Same name on the real server's handle."""
        self.call(self.emulator.restart)

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock of watch timeouts on (``timeoutSeconds`` without waiting)."""
        self.call(lambda: self.emulator.advance_clock(seconds))

    def request_counts(self) -> dict[str, int]:
        """Requests served so far, by ``"<METHOD> <resource>[/<subresource>]"`` (WATCH for watches)."""
        return self.call(lambda: dict(self.emulator.request_counts))

    def requests_by_token(self) -> dict[str, int]:
        """Requests served so far, by the bearer token of the client that sent them."""
        return self.call(lambda: dict(self.emulator.requests_by_token))

    def requests_of(self, token: str) -> dict[str, int]:
        """Requests served so far to the client with bearer ``token``, by
        ``"<METHOD> <resource>[/<subresource>]"`` (WATCH for watches)."""
        return self.call(
            lambda: {
                kind: count
                for (sender, kind), count in self.emulator.requests_by_token_and_kind.items()
                if sender == token
            }
        )

    def write_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for this emulator with its own token (to count one client's requests)."""
        config = yaml.safe_load(self.kubeconfig_path.read_text())
        config["users"][0]["user"]["token"] = token
        path.write_text(yaml.safe_dump(config))
        return path

    def requests_served(self) -> int:
        """How many requests the emulator has served so far."""
        return self.call(lambda: self.emulator.requests_served)

    @property
    def unexpected_errors(self) -> list[BaseException]:
        return self.call(lambda: list(self.emulator.unexpected_errors))


@contextlib.contextmanager
def running_cluster(
    workdir: Path | str | None = None, *, crds: Sequence[dict[str, Any] | str | Path] = ()
) -> Iterator[Cluster]:
    """Start an emulator (standard Kaizen resources registered, plus ``crds``: dicts or YAML
    paths) and yield its :class:`Cluster` handle; stop it on exit."""
    loaded: list[dict[str, Any]] = []
    for crd in crds:
        loaded.append(crd if isinstance(crd, dict) else yaml.safe_load(Path(crd).read_text()))
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kube-emulator-"))
        cluster = Cluster(Path(workdir), loaded).start()
        ok = False
        try:
            yield cluster
            ok = True
        finally:
            errors = cluster.unexpected_errors if cluster._thread.is_alive() else []
            cluster.stop()
        if ok and errors:
            raise AssertionError(f"the emulator failed while serving: {errors!r}") from errors[0]


# ------------------------------------------------------------------------------------------
# The operator
# ------------------------------------------------------------------------------------------


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class OperatorHandle:
    """What :func:`running_operator` yields."""

    def __init__(self, runner: Any, collector: _Collector, registry: Any) -> None:
        self.runner = runner
        self.registry = registry
        self._collector = collector

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self._collector.records)

    @property
    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= logging.ERROR]

    def messages(self, level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


def operator_test_settings() -> Any:
    """kopf settings for tests; the operator's own startup handlers may change them further."""
    import kopf

    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 60
    settings.watching.connect_timeout = 5
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.idle_timeout = 1.0
    settings.queueing.exit_timeout = 1.0
    settings.background.cancellation_polling = 1
    settings.process.ultimate_exiting_timeout = 10
    return settings


def _load_registry(module: str) -> Any:
    """Import (or re-import) ``module`` so that its handlers land in a fresh registry."""
    import kopf
    from kopf._core.intents import causes

    registry = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        if module in sys.modules:
            importlib.reload(sys.modules[module])
        else:
            importlib.import_module(module)
    finally:
        kopf.set_default_registry(previous)

    has_login = any(
        getattr(h, "activity", None) == causes.Activity.AUTHENTICATION
        for h in registry._activities.get_all_handlers()
    )
    if not has_login:

        @kopf.on.login(registry=registry)
        def _login_with_test_kubeconfig(**kwargs: Any) -> Any:
            return kopf.login_with_kubeconfig(**kwargs)

    return registry


@contextlib.contextmanager
def running_operator(
    cluster: Cluster,
    module: str,
    namespace: str,
    *,
    extra_args: Sequence[str] = (),
    settings: Any | None = None,
    check_errors: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[OperatorHandle]:
    """Run the real kopf operator of ``module`` (importable name) in this process.

    ``kopf run --standalone -n NAMESPACE [extra_args]`` in a thread via
    ``kopf.testing.KopfRunner``, with ``KUBECONFIG`` (and ``env``) set for the run.
    """
    import kopf.testing

    registry = _load_registry(module)
    collector = _Collector()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collector)
    run_env = {"KUBECONFIG": str(cluster.kubeconfig_path), **(env or {})}
    args = ["run", "--standalone", "-n", namespace, "--verbose", *extra_args]
    runner = kopf.testing.KopfRunner(
        args,
        registry=registry,
        settings=settings if settings is not None else operator_test_settings(),
        env=run_env,
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


__all__ = [
    "CYCLES",
    "Cluster",
    "EVENTS",
    "JOBS",
    "OperatorHandle",
    "PODS",
    "REPO_ROOT",
    "running_cluster",
    "running_operator",
    "operator_test_settings",
    "wait_for",
]
