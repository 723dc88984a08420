"""The real kube-apiserver of the `apiserver` test tier, metered for benchmarks/scale.py.

`tests.apiserver.server.ApiServer` (etcd, kube-apiserver v1.20 built from Debian's sources, the
garbage collector; no Job controller, no kubelet: the job simulator plays those) with what the
benchmark reads from the emulator's handle:

* a token of its own for the operator (user `kaizen-operator`, group `system:masters`), and
  `write_kubeconfig(path, token)` to write a kubeconfig with it;
* requests counted per user from the server's audit log (level Metadata, one line per
  finished request): `requests_by_token()` (by user name; the operator's user name is its
  token's name), `requests_of(token)` (that user's, by verb and resource) and
  `requests_served()`;
* `server_cpu_seconds()`: the CPU time of etcd, kube-apiserver and the controller manager
  (the emulator's is part of the benchmark's own process);
* `prepare_namespace(name)`: create it and wait for its `default` ServiceAccount (the
  emulator needs nothing).

The audit log costs the server a little CPU per request; nothing else is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.apiserver.server import ApiServer, find_binaries

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
"""


class MeteredApiServer(ApiServer):
    """See the module docstring."""

    def __init__(self, workdir: Path, operator_token: str) -> None:
        found = find_binaries()
        if isinstance(found, str):
            raise SystemExit(f"--server apiserver: no kube-apiserver to run: {found}")
        self.operator_token = operator_token
        self.audit_log = workdir / "audit.log"
        self._counts: Counter[str] = Counter()
        self._kinds: Counter[tuple[str, str]] = Counter()  # by (user, "<verb> <resource>")
        self._offset = 0
        super().__init__(workdir, found)

    def _apiserver_argv(self) -> list[str]:
        policy = self.workdir / "audit-policy.yaml"
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(AUDIT_POLICY)
        return [
            *super()._apiserver_argv(),
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
        ]

    def _write_credentials(self) -> None:
        super()._write_credentials()
        tokens = self.workdir / "tokens.csv"
        token = self.operator_token
        tokens.write_text(tokens.read_text() + f'{token},{token},{token},"system:masters"\n')

    def write_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that authenticates with `token` (the operator's)."""
        return self._write_kubeconfig(path, token, token)

    def prepare_namespace(self, name: str) -> None:
        self.create_namespace(name)

    def _read_audit(self) -> Counter[str]:
        """Requests finished so far, by user name (reads what the log added since last time)."""
        try:
            with open(self.audit_log, "rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return self._counts
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("stage") == "ResponseComplete":
                    user = (entry.get("user") or {}).get("username", "?")
                    self._counts[user] += 1
                    self._kinds[user, _request_kind(entry)] += 1
        return self._counts

    def requests_by_token(self) -> dict[str, int]:
        return dict(self._read_audit())

    def requests_of(self, token: str) -> dict[str, int]:
        """Requests finished so far by the user of `token`, by ``"<verb> <resource>"``."""
        self._read_audit()
        return {kind: n for (user, kind), n in self._kinds.items() if user == token}

    def requests_served(self) -> int:
        return sum(self._read_audit().values())

    def server_cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes():
            if process.proc is not None and process.proc.poll() is None:
                fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1]
                ticks = fields.split()
                total += (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
        return total


def _request_kind(entry: dict[str, Any]) -> str:
    """``"<verb> <group>/<version>/<resource>[/<subresource>]"`` of an audit entry (its URI
    for a request that names no resource)."""
    ref = entry.get("objectRef") or {}
    if not ref.get("resource"):
        return f"{entry.get('verb', '?')} {str(entry.get('requestURI', '?')).split('?')[0]}"
    group = f"{ref['apiGroup']}/{ref.get('apiVersion', '')}" if ref.get("apiGroup") else "v1"
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{entry.get('verb', '?')} {group}/{ref['resource']}{sub}"


@contextlib.contextmanager
def running_metered_apiserver(workdir: Path, operator_token: str) -> Iterator[MeteredApiServer]:
    """A started server (with the ImprovementCycle CRD), stopped on exit."""
    server = MeteredApiServer(workdir, operator_token)
    server.start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover - manual check
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_metered_apiserver(Path(tmp), "kaizen-operator") as server,
    ):
        print(server.url, server.requests_by_token(), round(server.server_cpu_seconds(), 1))
