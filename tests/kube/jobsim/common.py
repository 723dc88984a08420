"""Shared pieces of the job simulator: constants, the run records, condition helpers."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube.emulator import now_iso

REPO_ROOT = Path(__file__).resolve().parents[3]
SUMMARY_ENV = "KAIZEN_SUMMARY_PATH"
MESSAGE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


class _Gone(Exception):
    """The Job (or its Pod) no longer exists: stop quietly."""


class _ConfigError(Exception):
    """A referenced Secret/ConfigMap/key is missing (CreateContainerConfigError)."""


@dataclass
class Run:
    """One Pod attempt of a Job, for assertions."""

    job: str
    pod: str
    argv: list[str]
    exit_code: int | None = None
    message: str = ""
    log: str = ""


@dataclass
class _JobRun:
    job: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    pod: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None


def _condition(ctype: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    now = now_iso()
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def _tail(text: str) -> str:
    lines = text.splitlines(keepends=True)[-FALLBACK_LINES:]
    data = "".join(lines).encode()[-FALLBACK_BYTES:]
    return data.decode(errors="replace")
