"""The `kaizen` command: run a cycle locally, write its HTML report, check a cycle file, print the CRD."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kaizen.api import SpecError


def _run(args: argparse.Namespace) -> int:
    from kaizen.local.chain_cli import run_chain, wants_chain

    if wants_chain(args):
        return run_chain(args)
    from kaizen.api.resource import with_namespace
    from kaizen.local.checks import refuse_unreachable
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
    # What `kaizen check` finds wrong with the suite fails here, not after a baseline evaluation.
    refuse_unreachable(cycle, args.cycle)
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


def _report(args: argparse.Namespace) -> int:
    from kaizen.api.artifacts import ArtifactError
    from kaizen.report import ReportInputError, build_chain_report, build_cycle_report

    source: Path = args.source
    is_chain = source.name == "lineage.json" or (source / "lineage.json").is_file()
    try:
        if is_chain:
            built = build_chain_report(source, args.output)
        else:
            built = build_cycle_report(source, args.output)
    except (ReportInputError, ArtifactError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(built.html)
    for plot in built.plots:
        print(plot)
    if args.tracking_mode != "disabled":
        _track_report(args, built.html, built.plots, "chain" if is_chain else "report", source)
    return 0


def _track_report(
    args: argparse.Namespace, html: Path, plots: list[Path], job_type: str, source: Path
) -> None:
    """Log the report's plots to W&B: a `report` run in the cycle's group, or a `chain` run."""
    from kaizen.runtime.tracking import track

    name = source.resolve().parent.name if source.name == "lineage.json" else source.resolve().name
    with track(
        mode=args.tracking_mode,
        project=args.tracking_project,
        entity=args.tracking_entity,
        cycle=name,
        job_type=job_type,
        name=f"{name}-{job_type}",
        config={"source": str(source)},
        directory=html.parent,
    ) as tracker:
        tracker.images({f"{job_type}/{p.stem}": p for p in plots})


def _check(args: argparse.Namespace) -> int:
    from kaizen.api.chain import CHAIN_KIND
    from kaizen.local.chain_cli import check_chain, manifest_kind

    if manifest_kind(args.cycle) == CHAIN_KIND:
        return check_chain(args)
    from kaizen.local.checks import refuse_unreachable
    from kaizen.local.executor import load_cycle_file

    # The same models as the operator's (and the CRD's): every field it would refuse.
    cycle = load_cycle_file(args.cycle)
    refuse_unreachable(cycle, args.cycle)
    print(f"{args.cycle}: ImprovementCycle {cycle.metadata.name!r} is valid")
    return 0


def _crd(args: argparse.Namespace) -> int:
    from kaizen.api.crd import render_crd
    from kaizen.api.crd_chain import render_chain_crd

    sys.stdout.write(render_chain_crd() if args.chain else render_crd())
    return 0


def _route(args: argparse.Namespace) -> int:
    import json

    from kaizen.api.runner import ConfigurationError
    from kaizen.runtime.routing import adapter_folder, load_router, read_routes

    try:
        table = read_routes(args.folder)
        router = load_router(args.folder, table)
    except ConfigurationError as error:
        raise SpecError([str(error)]) from None
    texts = args.text or [line.rstrip("\n") for line in sys.stdin]
    vectors = _route_vectors(args, router, table, texts)
    for index, text in enumerate(texts):
        named = router.match(text)
        # The keys are read again only where they name nothing and the vector may route.
        routes = named if named or vectors is None else router.match(text, vectors[index])
        adapters = [str(adapter_folder(args.folder, table, r)) for r in routes]
        if not routes and table.fallback is not None:
            adapters = [str(args.folder / table.fallback)]
        by = "keys" if named else "similar" if routes else None
        print(json.dumps({"text": text, "routes": list(routes), "by": by, "adapters": adapters}))
    return 0


def _route_vectors(args: argparse.Namespace, router: Any, table: Any, texts: list[str]) -> Any:
    """The prompts' vectors for the folder's similar routes (None: keys only), read by the
    model the table names (or --model) with the --adapter folders merged."""
    similar = router.similar
    if similar is None or args.keys_only or not texts:
        return None
    from kaizen.runtime.models import ModelNotFound, load_model, load_tokenizer
    from kaizen.runtime.similar import embed

    ref = args.model or table.similar.model
    try:
        tokenizer = load_tokenizer(ref)
        model = load_model(ref, args.adapter)
    except ModelNotFound as error:
        raise SpecError([f"--model {ref}: {error}"]) from None
    return embed(model, tokenizer, texts, similar.layer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kaizen", description="Continuous-improvement cycles for language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run an ImprovementCycle (or an ImprovementChain: cycles one after another) "
        "locally, step by step, as the operator would",
    )
    run.add_argument(
        "cycle", type=Path, help="YAML file holding one ImprovementCycle or ImprovementChain"
    )
    run.add_argument(
        "--cycles",
        type=int,
        default=None,
        metavar="N",
        help="chain up to N cycles, each from the adapters the previous ones promoted (a cycle "
        "file: a domain whose cycle promotes nothing is deferred, and the chain stops when every "
        "weak domain was tried since the last promotion; a chain file: replaces stop.maxCycles); "
        "the lineage goes to <root>/<namespace>/<chain>/lineage.json",
    )
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
    report = sub.add_parser(
        "report",
        help="write the HTML report (PNG plots beside it) of a cycle's artifact directory or of a "
        "chain's lineage.json",
    )
    report.add_argument(
        "source",
        type=Path,
        help="a cycle's artifact directory (<root>/<namespace>/<cycle>), or a chain's "
        "lineage.json or the folder holding it",
    )
    report.add_argument(
        "--output",
        type=Path,
        default=None,
        help="report folder (default: report/ inside the cycle's or the chain's folder)",
    )
    report.add_argument(
        "--tracking-mode",
        choices=("offline", "online", "disabled"),
        default="disabled",
        help="also log the plots to Weights & Biases (default: disabled)",
    )
    report.add_argument("--tracking-project", default="kaizen", help="W&B project")
    report.add_argument("--tracking-entity", default=None, help="W&B entity")
    report.set_defaults(func=_report)
    check = sub.add_parser(
        "check",
        help="validate an ImprovementCycle file without running it: every field as the operator "
        "and the CRD would, and the suite and its domains when the suite can be read here",
    )
    check.add_argument("cycle", type=Path, help="an ImprovementCycle or ImprovementChain file")
    check.set_defaults(func=_check)
    crd = sub.add_parser(
        "crd", help="print the CustomResourceDefinition generated from the API models"
    )
    crd.add_argument(
        "--chain", action="store_true", help="the ImprovementChain CRD instead of the cycle's"
    )
    crd.set_defaults(func=_crd)
    route = sub.add_parser(
        "route",
        help="print which adapters of a folder of routed adapters (routes.json) each prompt "
        "gets (its routes', or the fallback when it names none; 'by': keys or similar), one "
        "JSON line per prompt: "
        "what a multi-LoRA server's gateway applies",
    )
    route.add_argument("folder", type=Path, help="a folder of routed adapters (holds routes.json)")
    route.add_argument(
        "text", nargs="*", help="prompts (the user's turns); default: one per line of stdin"
    )
    route.add_argument(
        "--keys-only",
        action="store_true",
        help="match keys only, without loading the model a folder's similar routes read",
    )
    route.add_argument(
        "--model",
        default=None,
        help="the model similar routes read (default: the one routes.json names)",
    )
    route.add_argument(
        "--adapter",
        action="append",
        default=[],
        help="a plain adapter served under the routed folder (merged; repeat in order)",
    )
    route.set_defaults(func=_route)
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
