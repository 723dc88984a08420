"""Shared pieces of the emulator: the ``Status`` error type, timestamps, generated names."""

from __future__ import annotations

import base64
import datetime
import random
from typing import Any

import kmock

ALL_VERBS = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as in apiserver's generateName


class ApiError(kmock.KubernetesError):
    """A Kubernetes ``Status`` failure with a proper reason (NotFound, Conflict, Invalid...)."""


def _error(code: int, reason: str, message: str, **details: Any) -> ApiError:
    return ApiError(status=code, reason=reason, message=message, details=details or None)


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_custom(res: kmock.resource) -> bool:
    """Custom resources (CRDs) have a dotted group outside ``*.k8s.io``."""
    group = res.group or ""
    return "." in group and not group.endswith(".k8s.io")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(n))


def b64(text: str) -> str:
    """Base64 for Secret ``data`` values."""
    return base64.b64encode(text.encode()).decode()
