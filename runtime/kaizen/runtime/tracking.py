"""Weights & Biases tracking for steps: offline unless a key is set, never fatal.

Every step run is a W&B run with `group` = cycle and `job_type` = step kind, so a
cycle's runs appear together. Without `WANDB_API_KEY` runs are written offline under
the step's artifact directory (or `$WANDB_DIR`) and can be synced later with
`wandb sync`. An online run whose server cannot be reached (no egress from the cluster,
a proxy, an outage) is written offline too, after a short check instead of W&B's 90 s
init timeout, so the step neither waits nor loses its metrics. Tracking problems are
printed and never fail a step.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kaizen.api import fields
from kaizen.api.args import StepArgs


class Tracker:
    """A thin handle over a W&B run (or nothing when tracking is disabled)."""

    def __init__(self, run: Any = None) -> None:
        self.run = run

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(values)

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=list[str | int](columns), data=rows)})

    def images(self, images: dict[str, Path]) -> None:
        """Log PNG files (e.g. a report's plots) as W&B images, one key each."""
        if self.run is None or not images:
            return
        import wandb

        self.run.log({key: wandb.Image(str(path)) for key, path in images.items()})

    def artifact(self, name: str, kind: str, paths: list[Path]) -> None:
        if self.run is None:
            return
        import wandb

        artifact = wandb.Artifact(name=name, type=kind)
        for path in paths:
            if path.is_dir():
                artifact.add_dir(str(path), name=path.name)
            elif path.exists():
                artifact.add_file(str(path))
        self.run.log_artifact(artifact)


def artifact_name(*parts: str | None) -> str:
    """A W&B artifact name from parts (e.g. cycle, step, kind): only letters, digits, `-`, `_`, `.`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(p for p in parts if p))


DEFAULT_BASE_URL = "https://api.wandb.ai"
#: Seconds to open a connection to the W&B server before an online run goes offline.
PROBE_TIMEOUT_S = 5.0
#: W&B's own wait for an online run to start (its default is 90 s); offline after that.
ONLINE_INIT_TIMEOUT_S = 30.0


def server_unreachable(base_url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the W&B server (`$WANDB_BASE_URL`, else W&B's cloud) cannot be reached, or None.

    A TCP connection to its host and port must open within `timeout` seconds (name lookup
    included, which fails at once where there is no DNS for outside names).
    """
    url = base_url or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"{url!r} is not a URL"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except (OSError, ValueError) as error:
        return f"{url} unreachable ({error or type(error).__name__})"


def _init(mode: str, **kwargs: Any) -> Any:
    import wandb

    settings = wandb.Settings(silent=True, console="off", init_timeout=ONLINE_INIT_TIMEOUT_S)
    return wandb.init(mode=mode, reinit="finish_previous", settings=settings, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def track(
    *,
    mode: str,
    project: str,
    cycle: str | None,
    job_type: str,
    name: str,
    config: dict[str, Any],
    directory: Path,
    entity: str | None = None,
) -> Iterator[Tracker]:
    """A W&B run for one step; yields a no-op tracker when disabled or unavailable."""
    where = os.environ.get("WANDB_DIR") or str(directory)
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        print("[tracking] no WANDB_API_KEY: logging offline", file=sys.stderr)
        mode = "offline"
    if mode == "online" and (problem := server_unreachable()):
        print(
            f"[tracking] W&B server {problem}: logging offline under {where}; "
            "upload later with `wandb sync`",
            file=sys.stderr,
        )
        mode = "offline"
    if mode == "disabled":
        yield Tracker()
        return
    options: dict[str, Any] = {
        "project": project,
        "entity": entity,
        "group": cycle,
        "job_type": job_type,
        "name": name,
        "config": config,
        "dir": where,
    }
    try:
        try:
            run = _init(mode, **options)
        except Exception as error:
            if mode != "online":
                raise
            # Reachable but not working (a proxy, a bad key, an outage): keep the metrics.
            print(
                f"[tracking] W&B online run failed to start ({error}); logging offline",
                file=sys.stderr,
            )
            run = _init("offline", **options)
    except Exception as error:  # noqa: BLE001 - tracking must never fail a step
        print(f"[tracking] W&B unavailable ({error}); continuing without it", file=sys.stderr)
        yield Tracker()
        return
    tracker = Tracker(run)
    try:
        yield tracker
    finally:
        with contextlib.suppress(Exception):
            run.finish()


@dataclass(frozen=True)
class TrackingOptions:
    """Where a step's W&B run goes (the `--tracking-*` and `--cycle` options)."""

    mode: fields.TrackingMode = fields.DEFAULT_TRACKING_MODE
    project: str = fields.DEFAULT_TRACKING_PROJECT
    entity: str | None = None
    cycle: str | None = None

    @classmethod
    def from_args(cls, args: StepArgs) -> TrackingOptions:
        """The destination a step's command line names (`--tracking-*`, `--cycle`)."""
        return cls(
            mode=args.tracking_mode,
            project=args.tracking_project,
            entity=args.tracking_entity,
            cycle=args.cycle,
        )

    def run(
        self, *, job_type: str, name: str, config: dict[str, Any], directory: Path
    ) -> contextlib.AbstractContextManager[Tracker]:
        """The W&B run of one step: `group` = cycle, `job_type` = the step's kind."""
        return track(
            mode=self.mode,
            project=self.project,
            entity=self.entity,
            cycle=self.cycle,
            job_type=job_type,
            name=name,
            config=config,
            directory=directory,
        )
