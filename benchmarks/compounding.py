"""Does learning compound? Whole improvement cycles, chained, on a domain known only by facts.

`learning.py` trains one adapter three ways; this script runs the product itself: the cycle
(evaluate → analyze → train → merge → validate) of `kaizen.workflow`, on the Korrin benchmark
suite (Korrin and the demo's real domains, `learning.build_suite`), then the next cycle from
the first one's promoted adapters, and so on. Each cycle's training data is synthesised from
its own analysis: the data card of the second cycle says how many of its lines an earlier
adapter was already trained on (`repeated`), and its table says whether it improved further.

    python benchmarks/compounding.py --out artifacts/compounding --cycles 2

With `--worlds velorine tova quarry` the suite is instead several benchmark suites' invented
worlds (each suite's first domain, with its knowledge, evaluation and dev items) beside the
first suite's real domains: a chain of one-domain cycles then learns one world a cycle, as a
team adding knowledge over time would see it, and each cycle's table says what the earlier
worlds kept.

The cycle's settings are the demo sample's (steps, rank, learning rate, the validation gate),
with the Korrin suite, at most `--max-priority-domains` priority domains (1), `--score-threshold`
(0.9: with the demo's 0.5 the second cycle has nothing to train once Korrin passes 50%) and
`--synthesis-examples`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kaizen.api.artifacts import DataCard, EvaluationResults, read_artifact
from kaizen.runtime.suites import load_suite

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from learning import build_suite, scores  # noqa: E402  (a sibling script, not a package)

DEMO = HERE.parent / "manifests" / "samples" / "kaizen.dev_v1alpha1_improvementcycle.yaml"


def cycle_manifest(suite: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The demo sample's cycle, pointed at the Korrin suite (or the worlds')."""
    cycle = yaml.safe_load(DEMO.read_text())
    name = "worlds-1" if getattr(options, "worlds", None) else "korrin-1"
    cycle["metadata"] = {"name": name, "namespace": "bench"}
    spec = cycle["spec"]
    spec["model"]["name"] = options.model
    spec["evaluation"].update({"suite": str(suite), "maxNewTokens": options.max_new_tokens})
    spec["analysis"]["maxPriorityDomains"] = options.max_priority_domains
    spec["analysis"]["scoreThreshold"] = options.score_threshold
    spec["training"]["steps"] = options.steps
    if getattr(options, "passes", None) is not None:
        spec["training"]["passes"] = options.passes  # the passes rule: steps follow each set
    spec["training"]["synthesis"] = {"examples": options.synthesis_examples}
    spec["tracking"] = {"mode": "disabled"}
    return dict(cycle)


def build_worlds(target: Path, names: list[str], root: Path = HERE / "suites") -> Path:
    """One suite of the invented worlds of the benchmark suites `names` (each suite's first
    domain: its knowledge, evaluation and dev items) and the first suite's other, real domains.
    Each suite's relations keep their names unless an earlier suite took the name, when they
    are prefixed with their world's."""
    knowledge: list[dict[str, Any]] = []
    items: dict[str, list[str]] = {"eval.jsonl": [], "dev.jsonl": []}
    domains: list[str] = []
    for index, name in enumerate(names):
        suite = load_suite(str(root / name))
        world, *real = suite.domains
        kept = {world, *(real if index == 0 else ())}
        domains[index:index] = [world]
        domains += real if index == 0 else []
        records = [json.loads(x) for x in _lines(suite.path / "knowledge.jsonl")]
        taken = {r["name"] for r in knowledge if r["kind"] == "relation"}
        renamed = {
            r["name"]: f"{world}_{r['name']}" if r["name"] in taken else r["name"]
            for r in records
            if r["kind"] == "relation"
        }
        for record in records:
            if record["kind"] == "relation":
                record["name"] = renamed[record["name"]]
            elif record.get("domain") in kept:
                if "relation" in record:
                    record["relation"] = renamed[record["relation"]]
            else:
                continue
            knowledge.append(record)
        for file, lines in items.items():
            lines += [x for x in _lines(suite.path / file) if json.loads(x)["domain"] in kept]
    target.mkdir(parents=True, exist_ok=True)
    (target / "suite.yaml").write_text(
        f'name: worlds\nversion: "1"\ndescription: the invented worlds of {", ".join(names)}\n'
        f"domains: [{', '.join(domains)}]\n"
        "capabilities: [factual_recall, cross_referencing, counterfactual, multi_step]\n"
        "defaults: {scorer: contains}\n"
    )
    (target / "knowledge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in knowledge))
    for file, lines in items.items():
        if lines:  # no dev items: the loader splits eval.jsonl
            (target / file).write_text("".join(line + "\n" for line in lines))
    load_suite(str(target))  # the loader's checks (ids, disjointness, knowledge) on the whole
    return target


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def domain_scores(results: EvaluationResults) -> dict[str, float]:
    """Each domain's share of items answered right (test and dev)."""
    table: dict[str, list[float]] = {}
    for item in results.items:
        table.setdefault(item.domain, []).append(item.score)
    return {domain: sum(values) / len(values) for domain, values in table.items()}


def cycle_rows(
    directory: Path, score: Callable[[EvaluationResults], dict[str, float]] = scores
) -> dict[str, Any]:
    """Before and after, by Korrin capability and other domain, and what the trainer read."""
    row: dict[str, Any] = {}
    for label, step in (("before", "evaluate-baseline"), ("after", "evaluate-candidate")):
        path = directory / step / "results.json"
        if path.exists():
            row[label] = score(read_artifact(path, EvaluationResults))
    cards = {}
    for card_path in sorted(directory.glob("train-*/data_card.json")):
        card = read_artifact(card_path, DataCard)
        cards[card.domain] = {
            "lines": card.total,
            "by_source": card.by_source,
            "repeated": card.synthesis.repeated if card.synthesis else 0,
            "synthesised": card.synthesis.chosen if card.synthesis else {},
        }
    row["training"] = cards
    return row


def main(argv: list[str] | None = None) -> int:
    from kaizen.workflow import ContinuousImprovementWorkflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=Path("artifacts/compounding"))
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument(
        "--passes",
        type=float,
        default=None,
        help="spec.training.passes: each adapter's steps follow its own set's size",
    )
    parser.add_argument("--synthesis-examples", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.9,
        help="domains below it are trained (the demo's 0.5 stops a chain once Korrin passes it)",
    )
    parser.add_argument("--max-priority-domains", type=int, default=1)
    parser.add_argument(
        "--worlds",
        nargs="+",
        metavar="SUITE",
        help="benchmark suites whose invented worlds make the suite (instead of Korrin's)",
    )
    options = parser.parse_args(argv)
    out = options.out.resolve()
    if options.worlds:
        suite, score = build_worlds(out / "suite", options.worlds), domain_scores
    else:
        suite, score = build_suite(out / "suite"), scores
    workflow = ContinuousImprovementWorkflow(
        cycle_manifest(suite, options), artifacts=out, quiet=True
    )
    started = time.monotonic()
    summaries = workflow.run(cycles=options.cycles)
    seconds = time.monotonic() - started

    report: dict[str, Any] = {"cycles": [], "seconds": round(seconds), "settings": vars(options)}
    columns: list[str] = []
    lines: list[str] = []
    notes: list[str] = []
    starts_from: list[str] = []
    for summary in summaries:
        row = cycle_rows(Path(summary.artifacts), score)
        entry = {
            "cycle": summary.cycle,
            "phase": summary.phase,
            "verdict": summary.verdict,
            "p_value": summary.p_value,
            "starts_from": starts_from,
            "promoted": summary.promoted_adapters,
            **row,
        }
        starts_from = list(summary.promoted_adapters)
        report["cycles"].append(entry)
        columns = columns or list(row.get("before", {}))
        for label in ("before", "after"):
            if label in row:
                cells = " | ".join(f"{row[label][c]:.0%}" for c in columns)
                lines.append(f"| {summary.cycle} {label} | {cells} |")
        verdict = summary.verdict or summary.phase
        p_value = f", p = {summary.p_value:.2g}" if summary.p_value is not None else ""
        trained = "; ".join(
            f"{domain}: {card['lines']} lines {card['by_source']}, synthesised "
            f"{card['synthesised']}, {card['repeated']} already seen by an earlier adapter"
            for domain, card in row["training"].items()
        )
        notes.append(f"{summary.cycle}: {verdict}{p_value}; {trained or 'nothing trained'}")
    print("| cycle | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    print("\n".join(lines))
    print()
    print("\n".join(notes))
    print(f"seconds: {seconds:.0f}")
    (out / "compounding.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
