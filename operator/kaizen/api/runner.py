"""Running a step program under the step contract (shared by the evaluator and the trainer).

`run_program` parses a step program's command line with the typed arguments of
`kaizen.api.args` (a usage error is a configuration error: exit 3 and a summary naming the
step) and hands the parsed model to the program. `run_step` wraps a step's work: it turns the outcome into a `StepSummary`, writes the
summary where the operator reads it, and returns the exit code. A step that finds its own
complete output already in its artifact directory (a `summary.json` written last) returns
that instead of redoing the work, so a re-run Job after a node loss costs nothing.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from kaizen.api.args import StepArgs, StepUsageError, parse_step_argv
from kaizen.api.summary import (
    EXIT_CONFIG_ERROR,
    EXIT_FAILURE,
    EXIT_OK,
    StepSummary,
    SummaryTooLarge,
    atomic_write_bytes,
    encode_summary,
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
) -> int:
    """Run `work(output_dir)` and report under the step contract; returns the exit code."""
    out = Path(output_dir)
    marker = out / COMPLETION_MARKER
    if reuse and marker.exists():
        try:
            previous = parse_summary(marker.read_bytes())
        except ValueError:
            previous = None
        if previous is not None and previous.ok:
            print(f"[{step}] complete output found in {out}; reusing it", file=sys.stderr)
            write_summary(previous, summary_path)
            return EXIT_OK
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
        data = encode_summary(summary)
    except ConfigurationError as error:
        return _fail(step, "ConfigurationError", str(error), EXIT_CONFIG_ERROR, summary_path, out)
    except SummaryTooLarge as error:
        return _fail(step, "SummaryTooLarge", str(error), EXIT_FAILURE, summary_path, out)
    except Exception as error:  # noqa: BLE001 - every failure must reach the operator
        traceback.print_exc()
        text = f"{type(error).__name__}: {error}"
        return _fail(step, "StepError", text, EXIT_FAILURE, summary_path, out)
    # The marker is written last: its presence means every artifact is complete.
    atomic_write_bytes(marker, data)
    write_summary(summary, summary_path)
    return EXIT_OK


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
