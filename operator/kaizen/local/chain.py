"""Run an `ImprovementChain` locally: the chain engine of the operator, with cycles run one after
another by the local executor.

Locally the cycles run back to back (`afterPrevious`); a `schedule` applies on a cluster only.
The chain writes what the operator keeps in its status and ConfigMap into its own folder,
`<root>/<namespace>/<chain>/`: `chain-status.json` (the status, to resume) and `lineage.json`
(the `ChainLineage` artifact). Its cycles write beside it, in `<root>/<namespace>/<chain>-<n>/`,
as on a cluster. An interrupted run resumes: the running cycle resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kaizen.api import SpecError, atomic_write_json
from kaizen.api.artifacts import read_artifact, write_artifact
from kaizen.api.chain import (
    CHAIN_KIND,
    CHAIN_NAME_MAX,
    ChainStop,
    CycleTemplate,
    CycleTemplateMeta,
    ImprovementChain,
    ImprovementChainSpec,
    ImprovementChainStatus,
    parse_chain,
    rfc3339,
)
from kaizen.api.lineage import ChainLineage, LineageEntry
from kaizen.api.resource import ImprovementCycle, parse_cycle
from kaizen.cycle.chain import ObservedCycle, next_cycle, reconcile_chain
from kaizen.cycle.deferral import tried_since_promotion
from kaizen.local.executor import CycleResult, LocalExecutor

STATUS_FILE = "chain-status.json"


def load_manifest(path: str | Path) -> ImprovementChain | ImprovementCycle:
    """The one ImprovementChain or ImprovementCycle of a YAML file (errors name file and field)."""
    path = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except yaml.YAMLError as error:
        raise SpecError([f"{path}: not valid YAML: {error}"]) from None
    kinds = ("ImprovementCycle", CHAIN_KIND)
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") in kinds]
    if len(found) != 1:
        raise SpecError(
            [
                f"{path}: expected exactly one ImprovementCycle or ImprovementChain, found {len(found)}"
            ]
        )
    try:
        if found[0]["kind"] == CHAIN_KIND:
            return parse_chain(found[0])
        return parse_cycle(found[0])
    except SpecError as error:
        raise SpecError([f"{path}: {p}" for p in error.problems]) from None


def chain_from_cycle(
    cycle: ImprovementCycle, cycles: int, *, plateau: int | None = None
) -> ImprovementChain:
    """A chain of up to `cycles` cycles of `cycle`'s spec, each from the promoted adapters.

    The chain takes the cycle's name, less a trailing `-<n>` (`weekly-1` makes `weekly-1`,
    `weekly-2`, …; `demo` makes `demo-1`, …). Without `plateau` a cycle that promotes
    nothing is followed by one that defers the domains it trained (`analysis.deferDomains`),
    and the chain stops once every domain below the threshold was tried since the last
    promotion (`Exhausted`: the next one would start from the same adapters with the same
    spec and seed); `plateau=k` stops after k cycles in a row without a promotion instead.
    """
    name = re.sub(r"-\d+$", "", cycle.metadata.name)
    if len(name) > CHAIN_NAME_MAX:
        raise SpecError(
            [f"metadata.name: at most {CHAIN_NAME_MAX} characters to chain cycles ({name!r})"]
        )
    extra = cycle.metadata.model_extra or {}
    spec = ImprovementChainSpec(
        template=CycleTemplate(
            metadata=CycleTemplateMeta(
                labels=dict(extra.get("labels") or {}),
                annotations=dict(extra.get("annotations") or {}),
            ),
            spec=cycle.spec,
        ),
        after_previous=True,
        stop=ChainStop(max_cycles=cycles, plateau_cycles=plateau),
    )
    return ImprovementChain.model_validate(
        {
            "metadata": {"name": name, "namespace": cycle.metadata.namespace},
            "spec": spec,
        }
    )


def _spec_digest(chain: ImprovementChain) -> str:
    """What a chain's history depends on: its version 0 (the base model and its adapters).

    Anything else may change between runs, as on a cluster: stop conditions (run more cycles
    with a larger `--cycles`), or the template (the next cycle uses it).
    """
    model = chain.spec.template.spec.model
    text = json.dumps({"model": model.name, "adapters": model.adapters}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ChainResult:
    """The outcome of a local chain run."""

    chain: ImprovementChain
    status: ImprovementChainStatus
    lineage: ChainLineage
    directory: Path
    results: list[CycleResult] = field(default_factory=list)
    """The cycles run (or resumed) by this call, in order."""


def _observed(result: CycleResult, index: int) -> ObservedCycle:
    return ObservedCycle(result.cycle.metadata.name, index, result.status, spec=result.cycle.spec)


class LocalChainRunner:
    """Runs a chain's cycles one after another on this machine, with the chain engine deciding."""

    def __init__(
        self,
        executor: LocalExecutor,
        *,
        echo: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> None:
        self.executor = executor
        self.echo = echo or executor.echo
        self.clock = clock
        self.on_cycle = on_cycle

    def chain_dir(self, chain: ImprovementChain) -> Path:
        return self.executor.root / chain.metadata.namespace / chain.metadata.name

    def run(
        self, chain: ImprovementChain, *, max_cycles: int | None = None, restart: bool = False
    ) -> ChainResult:
        """Run (or resume) the chain until a stop condition holds or it stalls."""
        spec = chain.spec
        stop = spec.stop
        if max_cycles is not None:
            stop = stop.model_copy(update={"max_cycles": max_cycles})
        if stop.max_cycles is None:
            raise SpecError(
                ["spec.stop.maxCycles: a local chain needs a bound (set it, or pass --cycles N)"]
            )
        if spec.schedule is not None:
            self.echo(
                f"note: the schedule ({spec.schedule.cron}) applies on a cluster; "
                "locally the cycles run back to back"
            )
        # Locally: back to back, never suspended, bounded.
        local_spec = spec.model_copy(
            update={"schedule": None, "after_previous": True, "suspend": False, "stop": stop}
        )
        chain = chain.model_copy(update={"spec": local_spec})
        directory = self.chain_dir(chain)
        status = None if restart else self._load_status(chain, directory)
        chain = chain.model_copy(update={"status": status})
        lineage_path = directory / ChainLineage.FILE_NAME
        lineage = None
        if status is not None and lineage_path.exists():
            lineage = read_artifact(lineage_path, ChainLineage)
        results: list[CycleResult] = []
        pending: list[ObservedCycle] = []
        if status is not None and status.current_cycle:
            # Interrupted while a cycle ran: resume it (the executor picks up its status.json).
            index = status.cycles_started
            cycle = next_cycle(
                chain,
                index,
                status.adapters,
                status.reference,
                tried_since_promotion(status.lineage),
            )
            self.echo(f"resuming cycle {cycle.metadata.name}")
            pending.append(_observed(self._run_cycle(cycle, results, restart=False), index))
        while True:
            decision = reconcile_chain(chain, pending, self.clock())
            pending = []
            lineage = self._lineage(chain, decision.status, lineage, decision.recorded)
            chain = chain.model_copy(update={"status": decision.status})
            self._save(chain, directory, lineage)
            for event in decision.events:
                mark = "!!" if event.type == "Warning" else "=="
                self.echo(f"{mark} {event.reason}: {event.message}")
            if decision.create is None:
                return ChainResult(chain, decision.status, lineage, directory, results)
            index = decision.status.cycles_started
            # A restarted chain starts its cycles afresh too (their folders are reused).
            run = self._run_cycle(decision.create, results, restart=restart)
            pending.append(_observed(run, index))

    def _run_cycle(
        self, cycle: ImprovementCycle, results: list[CycleResult], *, restart: bool
    ) -> CycleResult:
        result = self.executor.run(cycle, restart=restart)
        results.append(result)
        if self.on_cycle is not None:
            self.on_cycle(result)
        return result

    def _lineage(
        self,
        chain: ImprovementChain,
        status: ImprovementChainStatus,
        existing: ChainLineage | None,
        recorded: list[Any],
    ) -> ChainLineage:
        entries = list(existing.entries) if existing else []
        known = {entry.index for entry in entries}
        entries += [LineageEntry.from_record(r) for r in recorded if r.index not in known]
        model = chain.spec.template.spec.model
        return ChainLineage(
            chain=chain.metadata.name,
            namespace=chain.metadata.namespace,
            model=model.name,
            base_adapters=list(model.adapters),
            suite=chain.spec.template.spec.evaluation.suite,
            version=status.version,
            adapters=list(status.adapters),
            entries=sorted(entries, key=lambda entry: entry.index),
            updated=rfc3339(self.clock()),
        )

    def _load_status(
        self, chain: ImprovementChain, directory: Path
    ) -> ImprovementChainStatus | None:
        path = directory / STATUS_FILE
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        if saved.get("specDigest") != _spec_digest(chain):
            raise SpecError(
                [
                    f"{path}: the chain's base model (spec.template.spec.model) changed since "
                    "this folder was used; rerun with --restart or use another --artifacts folder"
                ]
            )
        self.echo(f"resuming chain from {path}")
        return ImprovementChainStatus.model_validate(saved["status"])

    def _save(self, chain: ImprovementChain, directory: Path, lineage: ChainLineage) -> None:
        assert chain.status is not None
        write_artifact(directory / ChainLineage.FILE_NAME, lineage)
        atomic_write_json(
            directory / STATUS_FILE,
            {
                "specDigest": _spec_digest(chain),
                "chain": {"name": chain.metadata.name, "namespace": chain.metadata.namespace},
                "spec": chain.spec.to_wire(),
                "status": chain.status.to_wire(),
            },
        )


def render_lineage(lineage: ChainLineage) -> str:
    """The chain's lineage as a plain-text table: one row per cycle (overall scores before and
    after, and on the test items the validation gate measured, which `stop.targetScore`
    reads), then scores per version."""

    def pct(value: float | None) -> str:
        return "   -  " if value is None else f"{100 * value:5.1f}%"

    lines = [f"chain {lineage.chain}: version {lineage.version} of {lineage.model}"]
    width = max([len(e.cycle) for e in lineage.entries] + [len("cycle")]) + 2
    lines.append(
        f"{'cycle':<{width}} {'from':>4} {'to':>4}  {'outcome':<18} {'before':>7} {'after':>7} "
        f"{'test b.':>7} {'test a.':>7} {'p':>9}    trained"
    )
    lines.append("-" * (width + 86))
    for e in lineage.entries:
        p = "" if e.p_value is None else f"{e.p_value:.3g}"
        mark = " *" if e.promoted else ""
        lines.append(
            f"{e.cycle:<{width}} {'v' + str(e.from_version):>4} {'v' + str(e.version):>4}  "
            f"{e.reason:<18} {pct(e.baseline.overall if e.baseline else None):>7} "
            f"{pct(e.candidate.overall if e.candidate else None):>7} "
            f"{pct(e.baseline.test if e.baseline else None):>7} "
            f"{pct(e.candidate.test if e.candidate else None):>7} {p:>9}{mark:<2}  "
            f"{', '.join(e.trained or ()) or '-'}"
        )
    lines.append("(* promoted: a new version)")
    # Per-domain scores of each version: version 0 from the first baseline, then each promotion.
    versions: list[tuple[str, dict[str, float]]] = []
    for e in lineage.entries:
        if not versions and e.baseline is not None:
            versions.append(("v0", e.baseline.domains))
        if e.promoted and e.candidate is not None:
            versions.append((f"v{e.version}", e.candidate.domains))
    if versions:
        domains = sorted({d for _, scores in versions for d in scores})
        dwidth = max(len(d) for d in domains + ["domain"]) + 2
        lines.append("")
        lines.append(f"{'domain':<{dwidth}}" + "".join(f"{name:>8}" for name, _ in versions))
        for domain in domains:
            cells = "".join(f"{pct(scores.get(domain)):>8}" for _, scores in versions)
            lines.append(f"{domain:<{dwidth}}{cells}")
    if lineage.adapters:
        lines.append("current adapters: " + ", ".join(lineage.adapters))
    return "\n".join(lines)
