"""A real etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1, for the `apiserver` tier.

The binaries come from ``scripts/kube-apiserver.sh`` (Kubernetes v1.20.2 built from Debian's
sources, cached outside the repository), or from ``$KAIZEN_APISERVER_BIN`` (a folder holding
``etcd``, ``kube-apiserver`` and ``kube-controller-manager``, e.g. a newer release of your own).
:func:`find_binaries` returns them or the one-line reason there are none.

:class:`ApiServer` starts::

    etcd                     127.0.0.1:<port>, data in /dev/shm (or the work folder)
    kube-apiserver           https://127.0.0.1:<port>, RBAC, token and service-account
                             authentication, the default admission plugins plus
                             OwnerReferencesPermissionEnforcement; its own self-signed certificate
    kube-controller-manager  only the garbage collector and the service-account (+ token)
                             controllers: no Job controller, no scheduler, no kubelet (the job
                             simulator plays those), no namespace controller

and offers the handle the emulator's :class:`tests.kube.cluster.Cluster` offers where the two
can agree (``url``, ``kubeconfig_path``, ``api_client()``, ``kubectl()``, ``objects()``,
``get()``), plus what only a real server has: credentials of a ServiceAccount
(:meth:`ApiServer.service_account_kubeconfig`, a TokenRequest token), and a restart of the API
server itself (:meth:`ApiServer.restart_apiserver`: every watch ends, etcd keeps the state).

Every process is started with a parent-death signal and stopped by :meth:`ApiServer.stop`; every
wait is bounded. ``python -m tests.apiserver.server`` starts one for manual use until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "kube-apiserver.sh"
CRD_MANIFEST = REPO_ROOT / "manifests" / "crd" / "kaizen.dev_improvementcycles.yaml"

ADMIN_TOKEN = "kaizen-admin-token"
CONTROLLER_TOKEN = "kaizen-controller-manager-token"
#: Bounds of every wait here (each returns as soon as its condition holds). Generous: on a
#: 2-core machine whose CPU other jobs hold, etcd and the server took over 60 s to answer
#: their first TLS handshake, and a start that gives up fails every test of the tier.
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    apiserver: Path
    controller_manager: Path

    @classmethod
    def in_folder(cls, folder: Path) -> Binaries:
        return cls(folder / "etcd", folder / "kube-apiserver", folder / "kube-controller-manager")

    def missing(self) -> list[str]:
        return [
            str(p)
            for p in (self.etcd, self.apiserver, self.controller_manager)
            if not os.access(p, os.X_OK)
        ]


def find_binaries() -> Binaries | str:
    """The binaries to run, or the one-line reason the tier is skipped."""
    if os.environ.get("KAIZEN_APISERVER") == "skip":
        return "KAIZEN_APISERVER=skip"
    if shutil.which("openssl") is None:
        return "openssl is not installed (it makes the service-account signing key)"
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH (it installs the CRD and the chart's RBAC)"
    override = os.environ.get("KAIZEN_APISERVER_BIN")
    if override:
        binaries = Binaries.in_folder(Path(override))
        missing = binaries.missing()
        return (
            f"KAIZEN_APISERVER_BIN: not executable: {', '.join(missing)}" if missing else binaries
        )
    try:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "bin-dir"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{BUILD_SCRIPT.name} bin-dir failed: {error}"
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["no reason given"])[-1]
    binaries = Binaries.in_folder(Path(result.stdout.strip()))
    missing = binaries.missing()
    return f"incomplete kube-apiserver build: {', '.join(missing)}" if missing else binaries


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The child gets SIGTERM if the test process dies (no server outlives a killed run)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Process:
    """One server process with its log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name, self.argv, self.log = name, list(argv), log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self, grace: float = STOP_TIMEOUT) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _resource_path(resource: str, namespace: str | None, name: str | None = None) -> str:
    """``"batch/v1/jobs"`` / ``"v1/pods"`` to the REST path of a collection or an object."""
    parts = resource.split("/")
    if len(parts) == 2:
        base = f"/api/{parts[0]}"
        plural = parts[1]
    else:
        base = f"/apis/{parts[0]}/{parts[1]}"
        plural = parts[2]
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


class ApiServer:
    """See the module docstring. Use :func:`running_apiserver`, or ``start()``/``stop()``."""

    def __init__(self, workdir: Path, binaries: Binaries) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.kubeconfig_path = workdir / "admin.kubeconfig"
        self.url = ""
        self.ca_path = workdir / "certs" / "apiserver.crt"
        self._shm = None if not os.access("/dev/shm", os.W_OK) else Path("/dev/shm")
        self._etcd_port = _free_port()
        # Made by start(), removed by stop(): in memory when /dev/shm is writable.
        self._etcd_dir = (self._shm or workdir) / f"kaizen-etcd-{os.getpid()}-{self._etcd_port}"
        self._port = _free_port()
        self._sa_key = workdir / "service-accounts.key"
        peer = f"http://127.0.0.1:{_free_port()}"  # no peers: an unused loopback port
        self.etcd = _Process(
            "etcd",
            [
                str(binaries.etcd),
                "--name=kaizen-test",
                f"--data-dir={self._etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{self._etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self._etcd_port}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kaizen-test={peer}",
                "--initial-cluster-state=new",
                "--log-level=warn",
                "--logger=zap",
            ],
            workdir / "etcd.log",
        )
        self.apiserver = _Process(
            "kube-apiserver", self._apiserver_argv(), workdir / "kube-apiserver.log"
        )
        self.controller_manager = _Process(
            "kube-controller-manager",
            [
                str(binaries.controller_manager),
                f"--kubeconfig={workdir / 'controller-manager.kubeconfig'}",
                "--controllers=garbagecollector,serviceaccount,serviceaccount-token",
                f"--service-account-private-key-file={self._sa_key}",
                f"--root-ca-file={self.ca_path}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
            workdir / "kube-controller-manager.log",
        )

    def _apiserver_argv(self) -> list[str]:
        w = self.workdir
        return [
            str(self.binaries.apiserver),
            f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            "--insecure-port=0",
            f"--cert-dir={w / 'certs'}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={w / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self._sa_key}",
            f"--service-account-signing-key-file={self._sa_key}",
            "--api-audiences=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24",
            # The chart's improvementcycles/finalizers rule exists for this plugin.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            "--profiling=false",
            # The loopback address cannot be the `kubernetes` Service's endpoint: no reconciler.
            "--endpoint-reconciler-type=none",
            "--v=1",
        ]

    # ------------------------------------------------------------ lifecycle

    def start(self, crds: Sequence[Path] = (CRD_MANIFEST,)) -> ApiServer:
        """Start etcd and the API server, apply ``crds`` (and wait until they are served), then
        start the controller manager (its garbage collector then watches them from the start)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_credentials()
        try:
            self._etcd_dir.mkdir(mode=0o700)
            self.etcd.start()
            self._wait_http(
                f"http://127.0.0.1:{self._etcd_port}/health", self.etcd, "etcd to be healthy"
            )
            self._start_apiserver()
            for crd in crds:
                self.kubectl("apply", "-f", str(crd))
                name = yaml.safe_load(crd.read_text())["metadata"]["name"]
                self.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
                self.wait_published(yaml.safe_load(crd.read_text()))
            self.controller_manager.start()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_published(self, crd: dict[str, Any], timeout: float = START_TIMEOUT) -> None:
        """Wait until the CRD's schema is in the published OpenAPI (v2), which lags a moment
        behind ``Established``: until then kubectl cannot validate the resource client-side
        and lets unknown fields through (the server then prunes them)."""
        spec = crd["spec"]
        group_parts = spec["group"].split(".")
        wanted = {
            ".".join([*reversed(group_parts), v["name"], spec["names"]["kind"]])
            for v in spec["versions"]
            if v.get("served")
        }
        deadline = time.monotonic() + timeout
        while True:
            published = set(self.raw("GET", "/openapi/v2").get("definitions", {}))
            if wanted <= published:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{sorted(wanted - published)} not in /openapi/v2 after {timeout}s"
                )
            time.sleep(0.2)

    def _start_apiserver(self) -> None:
        self.apiserver.start()
        self.url = f"https://127.0.0.1:{self._port}"
        self._wait_http(f"{self.url}/readyz", self.apiserver, "kube-apiserver to be ready")
        self._write_kubeconfig(self.kubeconfig_path, ADMIN_TOKEN, "admin")

    def restart_apiserver(self) -> None:
        """Stop the API server and start it again on the same port: every open watch ends,
        etcd (and so every object and resourceVersion) is kept."""
        # SIGTERM; a server still waiting on open requests after a few seconds is killed.
        self.apiserver.stop(grace=5)
        self._start_apiserver()

    def stop(self) -> None:
        for process in (self.controller_manager, self.apiserver, self.etcd):
            process.stop()
        shutil.rmtree(self._etcd_dir, ignore_errors=True)

    def processes(self) -> list[_Process]:
        return [self.etcd, self.apiserver, self.controller_manager]

    def _write_credentials(self) -> None:
        key = self._sa_key
        if not key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"],
                check=True,
                capture_output=True,
                timeout=60,
            )
        # token,user,uid,"group1,group2"
        (self.workdir / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},kaizen-admin,kaizen-admin,"system:masters"\n'
            f'{CONTROLLER_TOKEN},system:kube-controller-manager,kcm,"system:masters"\n'
        )
        self._write_kubeconfig(
            self.workdir / "controller-manager.kubeconfig",
            CONTROLLER_TOKEN,
            "kube-controller-manager",
            server=f"https://127.0.0.1:{self._port}",
        )

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def _wait_http(self, url: str, process: _Process, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: object = None
        while True:
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited while waiting for {what}:\n{process.tail()}"
                )
            try:
                request = urllib.request.Request(
                    url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                )
                context = self._ssl_context() if url.startswith("https") else None
                with urllib.request.urlopen(request, timeout=5, context=context) as response:
                    if response.status == 200:
                        return
                    last = response.status
            except (OSError, urllib.error.URLError, ssl.SSLError) as error:
                last = error
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {START_TIMEOUT}s waiting for {what} (last: {last}):\n{process.tail()}"
                )
            time.sleep(0.1)

    def _write_kubeconfig(
        self,
        path: Path,
        token: str,
        user: str,
        *,
        server: str | None = None,
        namespace: str = "default",
    ) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kaizen-test",
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority": str(self.ca_path),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": user,
                    "context": {"cluster": "kaizen-test", "user": user, "namespace": namespace},
                }
            ],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # ------------------------------------------------------------ clients

    def api_client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
        """A new official client for the admin (or for ``kubeconfig``)."""
        return kubernetes.config.new_client_from_config(
            config_file=str(kubeconfig or self.kubeconfig_path)
        )

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (as the admin, or with ``kubeconfig``)."""
        exe = shutil.which("kubectl")
        if exe is None:
            raise FileNotFoundError("kubectl is not on PATH")
        cmd = [
            exe,
            "--kubeconfig",
            str(kubeconfig or self.kubeconfig_path),
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

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str = ADMIN_TOKEN,
        content_type: str = "application/json",
        accept: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request to a REST path (as the admin, or with ``token``): the decoded JSON
        answer; an error answer raises :class:`kubernetes.client.ApiException`."""
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": accept,
                "Content-Type": content_type,
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=30, context=self._ssl_context()
            ) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            raise kubernetes.client.ApiException(
                status=error.code, reason=error.reason, body=text
            ) from None

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The live objects of a resource (e.g. ``"batch/v1/jobs"``), as the emulator's handle gives."""
        listed = self.raw("GET", _resource_path(resource, namespace))
        kind = listed["kind"].removesuffix("List")
        api_version = listed["apiVersion"]
        return [{"apiVersion": api_version, "kind": kind, **item} for item in listed["items"]]

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.raw("GET", _resource_path(resource, namespace, name)))
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    # ------------------------------------------------------------ namespaces and accounts

    def create_namespace(self, name: str, timeout: float = START_TIMEOUT) -> str:
        """Create a namespace and wait until pods can be created in it: the service-account
        controllers have made its ``default`` ServiceAccount and that account's token Secret."""
        core = kubernetes.client.CoreV1Api(self.api_client())
        core.create_namespace({"metadata": {"name": name}})
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(kubernetes.client.ApiException):
                account = core.read_namespaced_service_account("default", name)
                if account.secrets:
                    return name
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"namespace {name}: no 'default' ServiceAccount with a token after {timeout}s:\n"
                    + self.controller_manager.tail()
                )
            time.sleep(0.05)

    def delete_cycles(self, namespace: str) -> None:
        """Remove every ImprovementCycle of a namespace, finalizers and all (test clean-up: an
        operator watching all namespaces must not pick up another test's cycles)."""
        co = kubernetes.client.CustomObjectsApi(self.api_client())
        group, version, plural = "kaizen.dev", "v1alpha1", "improvementcycles"
        for item in co.list_namespaced_custom_object(group, version, namespace, plural)["items"]:
            name = item["metadata"]["name"]
            with contextlib.suppress(kubernetes.client.ApiException):
                if item["metadata"].get("finalizers"):
                    co.patch_namespaced_custom_object(
                        group, version, namespace, plural, name, {"metadata": {"finalizers": None}}
                    )
                co.delete_namespaced_custom_object(group, version, namespace, plural, name)

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path | None = None, expiration: int = 3600
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` with a token
        from the TokenRequest API, as a pod's projected token would."""
        core = kubernetes.client.CoreV1Api(self.api_client())
        request = core.create_namespaced_service_account_token(
            name,
            namespace,
            {
                "spec": {
                    "audiences": ["https://kubernetes.default.svc"],
                    "expirationSeconds": expiration,
                }
            },
        )
        target = path or self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        return self._write_kubeconfig(
            target,
            request.status.token,
            f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )


@contextlib.contextmanager
def running_apiserver(workdir: Path, binaries: Binaries, **kwargs: Any) -> Iterator[ApiServer]:
    server = ApiServer(workdir, binaries)
    server.start(**kwargs)
    try:
        yield server
    finally:
        server.stop()


def main() -> int:  # pragma: no cover - manual use
    found = find_binaries()
    if isinstance(found, str):
        print(found, file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="kaizen-apiserver-"))
    with running_apiserver(workdir, found) as server:
        print(
            f"kube-apiserver {server.url}\nexport KUBECONFIG={server.kubeconfig_path}\nCtrl-C stops it"
        )
        with contextlib.suppress(KeyboardInterrupt):
            while all(p.alive() for p in server.processes()):
                time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
