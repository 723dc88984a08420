"""Running a step program under the step contract (shared by the evaluator and the trainer).

`run_program` parses a step program's command line with the typed arguments of
`kaizen.api.args` (a usage error is a configuration error: exit 3 and a summary naming the
step) and hands the parsed model to the program. `run_step` wraps a step's work: it turns the outcome into a `StepSummary`, writes the
summary where the operator reads it, and returns the exit code. A step that finds its own
complete output already in its artifact directory (a `summary.json` written last) returns
that instead of redoing the work, so a re-run Job after a node loss costs nothing, but only
when `provenance.json` beside it shows the output was made from the same inputs (arguments,
Kaizen version, the files it read: `kaizen.api.provenance`); otherwise the step says what
changed and does the work again.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kaizen.api.args import StepArgs, StepUsageError, parse_step_argv
from kaizen.api.artifacts import ArtifactError, StepProvenance, read_artifact, write_artifact
from kaizen.api.provenance import changes, describe, step_provenance
from kaizen.api.summary import (
    EXIT_CONFIG_ERROR,
    EXIT_FAILURE,
    EXIT_OK,
    StepSummary,
    SummaryTooLarge,
    atomic_write_bytes,
    encode_summary,
    fit_summary,
    parse_summary,
    write_summary,
)

COMPLETION_MARKER = "summary.json"


class ConfigurationError(Exception):
    """Bad arguments or missing data: the step cannot succeed by being retried."""


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_program(
    argv: Sequence[str],
    kinds: Sequence[type[StepArgs]],
    dispatch: Callable[[StepArgs], int],
    *,
    prog: str,
) -> int:
    """Parse `argv` into one of `kinds` and return `dispatch(args)`; a usage error exits 3.

    Both step programs go through here, so a bad argument behaves the same in each: the
    message on stderr, a `ConfigurationError` summary naming the step (`--step` when it can
    be read, else the subcommand), and exit code 3, which the operator never retries.
    """
    try:
        args = parse_step_argv(argv, kinds, prog=prog)
    except StepUsageError as error:
        print(f"error: {error}", file=sys.stderr)
        summary = StepSummary(
            step=error.step,
            ok=False,
            reason="ConfigurationError",
            message=_one_line(f"usage: {error}"),
        )
        try:
            write_summary(summary)
        except OSError as write_error:  # outside a pod there may be no termination log
            print(f"could not write summary: {write_error}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return dispatch(args)


def run_step(
    step: str,
    output_dir: str | Path,
    work: Callable[[Path], StepSummary],
    *,
    summary_path: str | None = None,
    reuse: bool = True,
    args: StepArgs | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> int:
    """Run `work(output_dir)` and report under the step contract; returns the exit code.

    `args` are the step's parsed arguments and `inputs` any file or folder it reads that they
    do not name (a shipped suite): together they decide whether an earlier output is reused.
    """
    out = Path(output_dir)
    marker = out / COMPLETION_MARKER
    provenance = step_provenance(step, args, inputs)
    if reuse:
        previous = _reusable(step, out, provenance)
        if previous is not None:
            write_summary(previous.model_copy(update={"reused": True}), summary_path)
            return EXIT_OK
    # Whatever is there is not an output of these inputs: the marker goes first, so a run
    # stopped half way never leaves a marker over half-replaced artifacts.
    marker.unlink(missing_ok=True)
    (out / StepProvenance.FILE_NAME).unlink(missing_ok=True)
    started = time.monotonic()
    try:
        out.mkdir(parents=True, exist_ok=True)
        summary = work(out)
        summary = summary.model_copy(
            update={
                "duration_seconds": round(time.monotonic() - started, 1),
                "artifacts_dir": summary.artifacts_dir or str(out),
            }
        )
        # Lists too long for 4 KiB are shortened (and say so); the artifacts keep everything.
        summary = fit_summary(summary)
        data = encode_summary(summary)
    except ConfigurationError as error:
        return _fail(step, "ConfigurationError", str(error), EXIT_CONFIG_ERROR, summary_path, out)
    except SummaryTooLarge as error:
        # The same inputs give the same summary: retrying cannot make it fit.
        return _fail(step, "SummaryTooLarge", str(error), EXIT_CONFIG_ERROR, summary_path, out)
    except Exception as error:  # noqa: BLE001 - every failure must reach the operator
        traceback.print_exc()
        text = f"{type(error).__name__}: {error}"
        return _fail(step, "StepError", text, EXIT_FAILURE, summary_path, out)
    # The provenance, then the marker, last: the marker's presence means every artifact is
    # complete and the provenance beside it says what they were made from.
    write_artifact(out / StepProvenance.FILE_NAME, provenance)
    atomic_write_bytes(marker, data)
    write_summary(summary, summary_path)
    return EXIT_OK


def _reusable(step: str, out: Path, provenance: StepProvenance) -> StepSummary | None:
    """The summary of a complete earlier output made from the same inputs, else None (and why)."""
    marker = out / COMPLETION_MARKER
    if not marker.exists():
        return None
    try:
        previous = parse_summary(marker.read_bytes())
    except ValueError:
        print(f"[{step}] unreadable {marker}; redoing the step", file=sys.stderr)
        return None
    if not previous.ok:
        return None
    try:
        recorded = read_artifact(out / StepProvenance.FILE_NAME, StepProvenance)
    except ArtifactError as error:
        print(
            f"[{step}] earlier output in {out} has no usable record of its inputs ({error}); "
            "redoing the step",
            file=sys.stderr,
        )
        return None
    if recorded.digest != provenance.digest:
        print(
            f"[{step}] earlier output in {out} was made from other inputs "
            f"({describe(changes(recorded, provenance))}); redoing the step",
            file=sys.stderr,
        )
        return None
    print(
        f"[{step}] complete output found in {out}, made from the same inputs; reusing it",
        file=sys.stderr,
    )
    return previous


def _fail(
    step: str, reason: str, message: str, code: int, summary_path: str | None, out: Path
) -> int:
    print(f"[{step}] {reason}: {message}", file=sys.stderr)
    summary = StepSummary(
        step=step, ok=False, reason=reason, message=_one_line(message), artifacts_dir=str(out)
    )
    try:
        write_summary(summary, summary_path)
    except OSError as error:  # the summary is best effort when the step already failed
        print(f"[{step}] could not write summary: {error}", file=sys.stderr)
    return code
