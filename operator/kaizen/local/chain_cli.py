"""`kaizen run` and `kaizen check` for chains: a chain manifest, or `--cycles N` on a cycle."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from kaizen.api import SpecError
from kaizen.api.chain import CHAIN_KIND, ImprovementChain


def manifest_kind(path: Path) -> str | None:
    """The kind of the file's first Kaizen document (None when unreadable: the caller says why)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError):
        return None
    kinds = [d.get("kind") for d in docs if isinstance(d, dict)]
    return CHAIN_KIND if CHAIN_KIND in kinds else (kinds[0] if kinds else None)


def wants_chain(args: argparse.Namespace) -> bool:
    return args.cycles is not None or manifest_kind(args.cycle) == CHAIN_KIND


def _namespaced(chain: ImprovementChain, namespace: str | None) -> ImprovementChain:
    if not namespace:
        return chain
    from kaizen.api.chain import ChainMeta

    try:
        meta = ChainMeta.model_validate({**chain.metadata.model_dump(), "namespace": namespace})
    except ValueError as error:
        raise SpecError([f"--namespace: {error}"]) from None
    return chain.model_copy(update={"metadata": meta})


def run_chain(args: argparse.Namespace) -> int:
    """Run a chain (or `--cycles N` of a cycle) locally; exit 0 unless it stalled."""
    from kaizen.cycle.chain import next_cycle
    from kaizen.local.chain import LocalChainRunner, chain_from_cycle, load_manifest, render_lineage
    from kaizen.local.checks import refuse_unreachable
    from kaizen.local.executor import LocalExecutor
    from kaizen.local.report import render_report

    if args.cycles is not None and args.cycles < 1:
        raise SpecError(["--cycles: at least 1"])
    manifest = load_manifest(args.cycle)
    if isinstance(manifest, ImprovementChain):
        chain = manifest
    else:
        chain = chain_from_cycle(manifest, args.cycles)
        print(
            f"Kaizen: up to {args.cycles} cycles of {manifest.metadata.name!r}, each from the "
            "adapters promoted so far (a domain that promotes nothing is deferred; stopping "
            "when every weak domain was tried since the last promotion)"
        )
    chain = _namespaced(chain, args.namespace)
    # What `kaizen check` finds wrong with the suite fails here, not after a baseline evaluation.
    template = "spec.template." if isinstance(manifest, ImprovementChain) else ""
    refuse_unreachable(
        next_cycle(chain, 1, chain.spec.template.spec.model.adapters), args.cycle, template
    )
    executor = LocalExecutor(args.artifacts, quiet=args.quiet)
    runner = LocalChainRunner(
        executor, on_cycle=lambda result: print("\n" + render_report(result.status), flush=True)
    )
    started = time.monotonic()
    print(
        f"Kaizen: running chain {chain.metadata.name!r} on {chain.spec.template.spec.model.name} "
        f"(suite {chain.spec.template.spec.evaluation.suite}); lineage in "
        f"{runner.chain_dir(chain)}",
        flush=True,
    )
    result = runner.run(chain, max_cycles=args.cycles, restart=args.restart)
    print("\n" + render_lineage(result.lineage))
    print(f"lineage: {result.directory / 'lineage.json'}")
    html = _chain_report(result.directory / "lineage.json")
    if html:
        print(f"report: {html}")
    print(
        f"\nchain {result.status.phase.value.lower()} ({result.status.message}) "
        f"in {time.monotonic() - started:.0f}s"
    )
    return 1 if result.status.phase == "Stalled" else 0


def _chain_report(lineage: Path) -> Path | None:
    """The chain's HTML report beside its lineage (`kaizen report`), when it can be drawn here."""
    try:
        from kaizen.report import ReportInputError, build_chain_report
    except ImportError as error:  # matplotlib (the report extra) is not installed
        print(f"note: no HTML report ({error}); `pip install kaizen[report]`", file=sys.stderr)
        return None
    try:
        return build_chain_report(lineage).html
    except ReportInputError as error:
        print(f"note: no HTML report: {error}", file=sys.stderr)
        return None


def check_chain(args: argparse.Namespace) -> int:
    """Validate a chain file: the chain's fields, and its template as `kaizen check` a cycle."""
    from kaizen.cycle.chain import next_cycle
    from kaizen.local.chain import load_manifest
    from kaizen.local.checks import refuse_unreachable

    chain = load_manifest(args.cycle)
    assert isinstance(chain, ImprovementChain)
    first = next_cycle(chain, 1, chain.spec.template.spec.model.adapters)
    refuse_unreachable(first, args.cycle, "spec.template.")
    print(f"{args.cycle}: ImprovementChain {chain.metadata.name!r} is valid")
    return 0
