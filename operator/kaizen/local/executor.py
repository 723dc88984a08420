"""Run a cycle locally: each step as a subprocess with the exact argv its Job would get.

The executor is a loop around the pure engine: decide, persist the status, run the
steps the decision starts, turn each exit code and summary file into an observation,
and decide again. The status is persisted in the cycle's artifact directory after every
decision, so an interrupted `kaizen run` resumes where it stopped (finished steps are
never run again; a step that completed its output returns it at once).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kaizen.api import (
    ImprovementCycle,
    ImprovementCycleStatus,
    Phase,
    SpecError,
    StepState,
    StepSummary,
    atomic_write_json,
    parse_cycle,
    parse_summary,
)
from kaizen.api.fields import DNS_LABEL_MAX, DNS_LABEL_PATTERN
from kaizen.api.summary import SUMMARY_PATH_ENV
from kaizen.cycle import Decision, StepInvocation, StepObservation, reconcile

STATUS_FILE = "status.json"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_cycle_file(path: str | Path) -> ImprovementCycle:
    """Read and validate one `ImprovementCycle` from a YAML file (errors name file and field)."""
    path = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from None
    cycles = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ImprovementCycle"]
    if len(cycles) != 1:
        raise SpecError(
            [f"{path}: expected exactly one ImprovementCycle document, found {len(cycles)}"]
        )
    try:
        return parse_cycle(cycles[0])
    except SpecError as error:
        raise SpecError([f"{path}: {p}" for p in error.problems]) from None


@dataclass
class CycleResult:
    """The outcome of a local run."""

    cycle: ImprovementCycle
    status: ImprovementCycleStatus
    directory: Path

    @property
    def succeeded(self) -> bool:
        return self.status.phase == Phase.SUCCEEDED


def _spec_digest(cycle: ImprovementCycle) -> str:
    return hashlib.sha256(json.dumps(cycle.spec.to_wire(), sort_keys=True).encode()).hexdigest()[
        :16
    ]


@dataclass(frozen=True)
class StepOutcome:
    """How a step process ended: its exit code, and its summary or why there is none."""

    exit_code: int
    summary: StepSummary | None
    message: str | None


def run_step_process(
    argv: Sequence[str],
    summary_path: Path,
    *,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> StepOutcome:
    """Run one step program as a subprocess, as its Job container would, and read its summary.

    `argv` starts with `python` (replaced by `python`, this interpreter by default); the
    summary goes to `summary_path` through `$KAIZEN_SUMMARY_PATH`, in the child's environment
    only. Output goes straight to the terminal so progress bars show as they move.
    """
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)
    command = list(argv)
    if command and command[0] == "python":
        command[0] = python
    child_env = dict(env if env is not None else os.environ)
    child_env[SUMMARY_PATH_ENV] = str(summary_path)
    code = subprocess.run(command, env=child_env, check=False).returncode
    summary, message = None, None
    if summary_path.exists():
        try:
            summary = parse_summary(summary_path.read_bytes())
        except ValueError as error:
            message = f"unreadable summary: {error}"
    else:
        message = f"no summary written (exit code {code})"
    return StepOutcome(code, summary, message)


class LocalExecutor:
    """Runs one cycle to completion on this machine."""

    def __init__(
        self,
        artifact_root: str | Path = "artifacts",
        *,
        python: str = sys.executable,
        quiet: bool = False,
        echo: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(artifact_root).resolve()
        self.python = python
        self.quiet = quiet
        self.echo = echo or (lambda line: print(line, flush=True))
        self.env = env

    def cycle_dir(self, cycle: ImprovementCycle) -> Path:
        """`<root>/<namespace>/<name>`; refused (naming the field) when it would not be inside
        the root. Validated metadata cannot lead out (DNS labels hold no `/` or `..`); this also
        holds for a cycle built in code without validation."""
        meta = cycle.metadata
        problems = [
            f"metadata.{field}: {value!r} is not a DNS-1123 label; it would be a folder under "
            f"{self.root}"
            for field, value in (("namespace", meta.namespace), ("name", meta.name))
            if not isinstance(value, str)
            or len(value) > DNS_LABEL_MAX
            or not re.fullmatch(DNS_LABEL_PATTERN, value)
        ]
        directory = Path(os.path.normpath(self.root / meta.namespace / meta.name))
        if not problems and not directory.is_relative_to(self.root):  # pragma: no cover
            problems.append(f"metadata: {directory} is outside the artifact root {self.root}")
        if problems:
            raise SpecError(problems)
        return directory

    def run(self, cycle: ImprovementCycle, *, restart: bool = False) -> CycleResult:
        """Run (or resume) `cycle` until it succeeds or fails."""
        directory = self.cycle_dir(cycle)
        cycle = cycle.model_copy(
            update={"status": None if restart else self._load_status(cycle, directory)}
        )
        observations: dict[str, StepObservation] = {}
        phase = None
        while True:
            decision = reconcile(
                cycle, observations, artifact_root=str(self.root), now=now_rfc3339()
            )
            self._save_status(cycle, decision.status, directory)
            cycle = cycle.model_copy(update={"status": decision.status})
            self._report_events(decision)
            if decision.status.phase != phase:
                phase = decision.status.phase
                self.echo(f"\n=== {phase.value}: {decision.status.message or ''}")
            if decision.finished:
                status = self._write_report(cycle, decision.status, directory)
                return CycleResult(cycle, status, directory)
            if not decision.start:
                raise RuntimeError(
                    "the engine started nothing and the cycle is unfinished"
                )  # pragma: no cover
            for invocation in decision.start:
                observations[invocation.name] = self._run_step(invocation, directory)

    def _write_report(
        self, cycle: ImprovementCycle, status: ImprovementCycleStatus, directory: Path
    ) -> ImprovementCycleStatus:
        """The cycle's HTML report (`kaizen report`), and the status pointing to it.

        Drawn from the status just saved and the artifacts; a report that cannot be drawn
        (matplotlib missing, say) is a warning: the cycle's outcome stands without it.
        """
        try:
            from kaizen.report import build_cycle_report

            built = build_cycle_report(directory)
        except Exception as error:  # noqa: BLE001 - see the docstring
            self.echo(f"!! no HTML report: {type(error).__name__}: {error}")
            return status
        status = status.model_copy(update={"report_path": str(built.html)})
        self._save_status(cycle, status, directory)
        self.echo(f"-- report: {built.html}")
        return status

    def _report_events(self, decision: Decision) -> None:
        for event in decision.events:
            if event.reason == "StepStarted":
                continue
            mark = "!!" if event.type == "Warning" else "--"
            self.echo(f"{mark} {event.reason}: {event.message}")

    def _argv(self, invocation: StepInvocation) -> list[str]:
        argv = list(invocation.argv)
        if self.quiet:
            argv.append("--quiet")
        return argv

    def _run_step(self, invocation: StepInvocation, directory: Path) -> StepObservation:
        summary_path = directory / ".summaries" / f"{invocation.job_name}.json"
        argv = self._argv(invocation)
        self.echo(f"\n>>> {invocation.name} (attempt {invocation.attempt})")
        self.echo("    " + " ".join(argv[1:]))
        started = time.monotonic()
        outcome = run_step_process(argv, summary_path, python=self.python, env=self.env)
        elapsed = time.monotonic() - started
        code = outcome.exit_code
        self.echo(
            f"<<< {invocation.name}: {'done' if code == 0 else f'failed (exit {code})'} in {elapsed:.0f}s"
        )
        return StepObservation(
            invocation.name,
            StepState.SUCCEEDED if code == 0 else StepState.FAILED,
            exit_code=code,
            summary=outcome.summary,
            message=outcome.message,
        )

    def _load_status(
        self, cycle: ImprovementCycle, directory: Path
    ) -> ImprovementCycleStatus | None:
        path = directory / STATUS_FILE
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        if saved.get("specDigest") != _spec_digest(cycle):
            raise SpecError(
                [
                    f"{path}: the cycle's spec changed since this directory was used; "
                    "rerun with --restart or use another --artifacts folder"
                ]
            )
        self.echo(f"resuming from {path}")
        return ImprovementCycleStatus.model_validate(saved["status"])

    def _save_status(
        self, cycle: ImprovementCycle, status: ImprovementCycleStatus, directory: Path
    ) -> None:
        document: dict[str, Any] = {
            "specDigest": _spec_digest(cycle),
            "cycle": {"name": cycle.metadata.name, "namespace": cycle.metadata.namespace},
            "spec": cycle.spec.to_wire(),
            "status": status.to_wire(),
        }
        atomic_write_json(directory / STATUS_FILE, document)
