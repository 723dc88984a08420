"""The `kaizen` command: run a cycle locally, check a cycle file, print the CRD."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kaizen.api import SpecError


def _run(args: argparse.Namespace) -> int:
    from kaizen.api.resource import with_namespace
    from kaizen.local.executor import LocalExecutor, load_cycle_file
    from kaizen.local.report import render_report

    cycle = load_cycle_file(args.cycle)
    if args.namespace:
        try:
            cycle = with_namespace(cycle, args.namespace)
        except SpecError as error:
            raise SpecError(
                [p.replace("metadata.namespace", "--namespace", 1) for p in error.problems]
            ) from None
    executor = LocalExecutor(args.artifacts, quiet=args.quiet)
    started = time.monotonic()
    print(
        f"Kaizen: running cycle {cycle.metadata.name!r} on {cycle.spec.model.name} "
        f"(suite {cycle.spec.evaluation.suite}); artifacts in {executor.cycle_dir(cycle)}",
        flush=True,
    )
    result = executor.run(cycle, restart=args.restart)
    print("\n" + render_report(result.status))
    print(f"\ncycle {result.status.phase.value.lower()} in {time.monotonic() - started:.0f}s")
    return 0 if result.succeeded else 1


def _check(args: argparse.Namespace) -> int:
    from kaizen.local.checks import check_reachable
    from kaizen.local.executor import load_cycle_file

    # The same models as the operator's (and the CRD's): every field it would refuse.
    cycle = load_cycle_file(args.cycle)
    report = check_reachable(cycle)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.problems:
        raise SpecError([f"{args.cycle}: {problem}" for problem in report.problems])
    print(f"{args.cycle}: ImprovementCycle {cycle.metadata.name!r} is valid")
    return 0


def _crd(args: argparse.Namespace) -> int:
    from kaizen.api.crd import render_crd

    sys.stdout.write(render_crd())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaizen", description="Continuous-improvement cycles for language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="run an ImprovementCycle locally, step by step, as the operator would"
    )
    run.add_argument("cycle", type=Path, help="YAML file holding one ImprovementCycle")
    run.add_argument(
        "--artifacts",
        type=Path,
        default=Path("artifacts"),
        help="artifact root (default ./artifacts); the cycle writes under <root>/<namespace>/<name>/",
    )
    run.add_argument(
        "--namespace",
        default=None,
        help="namespace folder to use (default: metadata.namespace or 'default')",
    )
    run.add_argument(
        "--restart", action="store_true", help="ignore a previous run's status and start over"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars from the steps")
    run.set_defaults(func=_run)
    check = sub.add_parser(
        "check",
        help="validate an ImprovementCycle file without running it: every field as the operator "
        "and the CRD would, and the suite and its domains when the suite can be read here",
    )
    check.add_argument("cycle", type=Path)
    check.set_defaults(func=_check)
    crd = sub.add_parser(
        "crd", help="print the CustomResourceDefinition generated from the API models"
    )
    crd.set_defaults(func=_crd)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
