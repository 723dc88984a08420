"""Weights & Biases tracking for steps: offline unless a key is set, never fatal.

Every step run is a W&B run with `group` = cycle and `job_type` = step kind, so a
cycle's runs appear together. Without `WANDB_API_KEY` runs are written offline under
the step's artifact directory (or `$WANDB_DIR`) and can be synced later with
`wandb sync`. Tracking problems are printed and never fail a step.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        print("[tracking] no WANDB_API_KEY: logging offline", file=sys.stderr)
        mode = "offline"
    if mode == "disabled":
        yield Tracker()
        return
    try:
        import wandb

        run = wandb.init(
            project=project,
            entity=entity,
            group=cycle,
            job_type=job_type,
            name=name,
            config=config,
            mode=mode,  # type: ignore[arg-type]  # checked above: offline, online or disabled
            dir=os.environ.get("WANDB_DIR") or str(directory),
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )
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
