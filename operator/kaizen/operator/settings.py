"""Operator settings: one dataclass, every field read from a `KAIZEN_*` environment variable.

Defaults live here and nowhere else; `tests/operator/test_settings.py` pins each of them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

from kaizen.api import fields

_ENV_PREFIX = "KAIZEN_"
#: Fields an empty (but set) variable empties; for the others an empty variable keeps the default.
_EMPTY_ALLOWED = ("artifact_pvc", "job_service_account")


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """How the operator builds step Jobs and how it runs. Field `x` comes from `$KAIZEN_X`."""

    evaluator_image: str = "ghcr.io/kaizen-dev/kaizen-evaluator:0.1.0"
    """Image of evaluate, analyze and validate Jobs unless `spec.resources.evaluator.image` is set."""

    trainer_image: str = "ghcr.io/kaizen-dev/kaizen-trainer:0.1.0"
    """Image of train and merge Jobs unless `spec.resources.trainer.image` is set."""

    artifact_root: str = "/artifacts"
    """Where the artifact volume is mounted in every Job; steps write below `<root>/<ns>/<cycle>/<step>`."""

    artifact_pvc: str = "kaizen-artifacts"
    """PersistentVolumeClaim (in the cycle's namespace) mounted at `artifact_root`; set empty: no volume."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (`KAIZEN_NAMESPACES`, comma-separated); empty means all namespaces."""

    image_pull_policy: str = "IfNotPresent"
    """`imagePullPolicy` of step containers."""

    job_service_account: str = ""
    """ServiceAccount of step pods; empty: the namespace's default. Steps never call the API."""

    job_ttl_seconds: int = 86400
    """`ttlSecondsAfterFinished` of step Jobs; outcomes are recorded in status before that."""

    default_cpu: str = "1"
    """CPU request of a step container when `spec.resources.<kind>.cpu` is empty."""

    default_memory: str = "4Gi"
    """Memory request and limit of a step container when `spec.resources.<kind>.memory` is empty."""

    python: str = "python"
    """Python executable that replaces a leading `python` in each step's argv."""

    reconcile_interval: float = 60.0
    """Seconds between safety-net reconciliations of an unfinished, otherwise quiet cycle."""

    max_reconciliations: int = 32
    """Reconciliations in flight at once; more wait, before they read their cycle, Jobs and
    pods (`kaizen.operator.pacing.Slots`). The default matches the operator's 32 API-call
    threads: beyond them a reconciliation only waits for a thread, holding what it read."""

    list_chunk_size: int = 100
    """Objects per response when kopf first lists a resource (at start-up and after a watch
    expires), in `limit`/`continue` chunks; 0: the whole list in one response. A chunk is
    parsed whole before its objects are slimmed, and kopf lists each watched namespace at once:
    a restart over 10 namespaces of 500 Jobs peaked at 259 MiB in chunks of 500, 175 in chunks
    of 100, 159 in chunks of 50 (docs/reliability.md, memory)."""

    metrics_port: int | None = None
    """Port of the Prometheus metrics server; none is started when unset."""

    scanning: bool = True
    """Let kopf watch CRDs and namespaces for changes (off for emulators that do not serve them)."""

    default_queue_name: str = ""
    """Kueue LocalQueue for cycles that set no `spec.queueName`; none when empty."""

    wandb_api_key_secret: str = ""
    """`<secret>/<key>` holding `WANDB_API_KEY` for cycles that set no `tracking.apiKeySecret`."""

    hub_token_secret: str = ""
    """`<secret>/<key>` holding `HF_TOKEN` for cycles that set no `hubTokenSecret`."""

    trainjob: bool = False
    """Run the train steps of cycles with `training.backend: trainjob` as Kubeflow Trainer
    TrainJobs, and watch them (needs Kubeflow Trainer installed and RBAC for trainjobs)."""

    memory_reports_dir: str = ""
    """Folder for memory reports (`kaizen.operator.diagnostics`), one on each SIGUSR2 and at
    exit; empty: none."""

    tracemalloc_frames: int = 0
    """With `memory_reports_dir`: trace allocations with this many frames each and write a
    tracemalloc snapshot beside each report; 0: no tracing (it costs CPU and memory)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from `environ` (default `os.environ`); unset variables keep defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            variable = _ENV_PREFIX + field.name.upper()
            raw = env.get(variable, "").strip()
            if not raw:
                if variable in env and field.name in _EMPTY_ALLOWED:
                    values[field.name] = ""
                continue
            try:
                values[field.name] = _convert(field.name, raw)
            except ValueError as error:
                raise ValueError(f"{_ENV_PREFIX}{field.name.upper()}={raw!r}: {error}") from None
        return cls(**values)


#: Integer settings with a lower bound: (the least value, what a smaller one is told).
_INT_MINIMUM = {
    "tracemalloc_frames": (0, "must be 0 (no tracing) or more"),
    "max_reconciliations": (1, "must be 1 or more"),
    "list_chunk_size": (0, "must be 0 (one response) or more"),
}


def _convert(name: str, raw: str) -> Any:
    if name == "namespaces":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if name in ("job_ttl_seconds", "metrics_port"):
        return int(raw)
    if name in _INT_MINIMUM:
        number, (minimum, refusal) = int(raw), _INT_MINIMUM[name]
        if number < minimum:
            raise ValueError(refusal)
        return number
    if name == "reconcile_interval":
        value = float(raw)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    if name in ("wandb_api_key_secret", "hub_token_secret"):
        secret, _, key = raw.partition("/")
        if not secret or not key or "/" in key:
            raise ValueError("expected <secret name>/<key>")
        if not re.fullmatch(fields.DNS_SUBDOMAIN_PATTERN, secret):
            raise ValueError(
                f"secret name {secret!r}: expected {fields.PATTERN_MEANINGS[fields.DNS_SUBDOMAIN_PATTERN]}"
            )
        if not re.fullmatch(fields.SECRET_KEY_PATTERN, key):
            raise ValueError(
                f"key {key!r}: expected {fields.PATTERN_MEANINGS[fields.SECRET_KEY_PATTERN]}"
            )
        return raw
    if name in ("default_cpu", "default_memory"):
        # The same rule as spec.resources.*.cpu/memory: refused at start-up, not per Job.
        if fields.parse_quantity(raw) <= 0:
            raise ValueError("must be more than zero")
        return raw
    if name == "default_queue_name" and (
        len(raw) > fields.LABEL_VALUE_MAX or not re.fullmatch(fields.LABEL_VALUE_PATTERN, raw)
    ):
        raise ValueError(
            f"expected {fields.PATTERN_MEANINGS[fields.LABEL_VALUE_PATTERN]}, at most 63"
        )
    if name in ("scanning", "trainjob"):
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    return raw
