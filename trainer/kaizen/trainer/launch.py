"""torchrun with the step's exit code: `python -m kaizen.trainer.launch <torchrun options> -m
kaizen.trainer train|joint ...`, the command of a training step with several processes.

torchrun's elastic agent exits 1 whenever a rank fails, whatever code the rank exited with. A
configuration error (exit 3: a bad argument, missing data, a batch smaller than the processes)
would then reach the Job as an ordinary failure, which its `podFailurePolicy` retries instead of
failing at once. This launcher runs torchrun's own `run` (same options, the `PET_*` variables of
a TrainJob included) and, when ranks failed, exits 3 if any of them did, else 1; the reason is
in rank 0's summary (`$KAIZEN_SUMMARY_PATH`), which it prints again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from kaizen.api.summary import (
    DEFAULT_SUMMARY_PATH,
    EXIT_CONFIG_ERROR,
    EXIT_FAILURE,
    EXIT_OK,
    SUMMARY_PATH_ENV,
    parse_summary,
)


def exit_code(rank_codes: Iterable[int]) -> int:
    """The launcher's exit code for the exit codes of the failed ranks (negative: a signal).

    A configuration error on any rank wins: the same inputs fail the same way on every retry,
    and the other ranks may only have been stopped (a signal) or lost their peer (1).
    """
    return EXIT_CONFIG_ERROR if EXIT_CONFIG_ERROR in set(rank_codes) else EXIT_FAILURE


def _summary_line() -> str:
    """Rank 0's summary, as one line (or where to look when it cannot be read)."""
    path = Path(os.environ.get(SUMMARY_PATH_ENV) or DEFAULT_SUMMARY_PATH)
    try:
        summary = parse_summary(path.read_bytes())
    except (OSError, ValueError):
        return f"no readable summary at {path}; see rank 0's log above"
    return f"{summary.step}: {summary.reason}: {summary.message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with `argv` (its options, then the program and its arguments)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(list(sys.argv[1:] if argv is None else argv))  # type: ignore[no-untyped-call]
    try:
        run(args)  # type: ignore[no-untyped-call]
    except ChildFailedError as error:
        print(error.format_msg(), file=sys.stderr)  # type: ignore[no-untyped-call]
        code = exit_code(failure.exitcode for failure in error.failures.values())
        if code == EXIT_CONFIG_ERROR:
            print(f"[launch] configuration error: {_summary_line()}", file=sys.stderr)
        return code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
