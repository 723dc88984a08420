"""The combine step: score each candidate combination on the dev items, measure retention, choose.

Inputs: the baseline's results (its dev items give the base scores), each trained domain's
adapter alone on its own dev items (the `score-<domain>` steps), and the candidate adapters
(the merge step's methods, the joint adapter). Each candidate is evaluated on the dev items
of every selected domain, trained or not, by the evaluate step's own code, with the model
loaded as the evaluations load it (`--attention`, `--precision`, `--device-map`,
`--max-gpu-memory`: a cycle passes its `spec.evaluation` to both, so a model sharded for
its evaluations is sharded here too and the scores compared are computed alike).
`retention.py` turns the scores into each trained domain's retention and the untrained
domains' change, and ranks the candidates.
The chosen adapter is copied to `adapter/`, which the candidate evaluation and the
promotion use; `combination.json` keeps every candidate's row. Test items are never read
here: they are the gate's (`validate.py`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from kaizen.api.args_combination import CombineArgs
from kaizen.api.artifacts import CombinationReport, MergeRecord, read_artifact, write_artifact
from kaizen.api.fields import JOINT, ROUTED, is_routed_candidate
from kaizen.api.runner import ConfigurationError, run_step
from kaizen.api.summary import CombinationDigest, StepSummary, file_digest
from kaizen.evaluator.evaluate import (
    EvaluateOptions,
    inference_options,
    read_results,
    run_evaluation,
)
from kaizen.evaluator.retention import (
    RULE,
    TOLERANT_RULE,
    Candidate,
    mean_scores,
    measure,
    rank,
)
from kaizen.runtime.routing import is_adapter
from kaizen.runtime.tracking import TrackingOptions, artifact_name

COMBINATION_FILE = CombinationReport.FILE_NAME
ADAPTER_DIR = "adapter"
CANDIDATES_DIR = "candidates"
#: Runners-up named in the step's message (a grid makes many; the file has them all).
MESSAGE_OTHERS = 5


def dev_items(results: dict[str, Any], path: str | Path, what: str) -> list[dict[str, Any]]:
    """The dev items of a results file; ConfigurationError naming it when there are none."""
    items = [r for r in results["items"] if r.get("split") == "dev"]
    if not items:
        raise ConfigurationError(
            f"{path}: items: no dev items in the {what}: the suite needs dev items (dev.jsonl, "
            "or a dev_fraction above 0 in suite.yaml) and the evaluation all of them"
        )
    return items


def _same_items(
    expected: list[dict[str, Any]], got: list[dict[str, Any]], path: Path, what: str
) -> None:
    want, have = {r["id"] for r in expected}, {r["id"] for r in got}
    if want != have:
        raise ConfigurationError(
            f"{path}: items: the {what} scored other dev items than the baseline "
            f"(missing {sorted(want - have)[:5]}, extra {sorted(have - want)[:5]}); "
            "evaluate both with the same suite, domains and limit"
        )


def _copy_adapter(source: str | Path, target: Path) -> None:
    """`source` into `target`, atomically (a temporary folder renamed into place)."""
    source = Path(source)
    if not is_adapter(source):
        raise ConfigurationError(
            f"--candidate {source}: not an adapter (no adapter_config.json, no routes.json)"
        )
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def _alone_scores(args: CombineArgs, base_items: list[dict[str, Any]]) -> dict[str, float]:
    """Each trained domain's adapter alone, on exactly the baseline's dev items of the domain."""
    alone: dict[str, float] = {}
    for domain, path in args.alone_pairs():
        results = read_results(path).to_dict()
        items = [
            r
            for r in dev_items(results, path, f"{domain} adapter's results")
            if r["domain"] == domain
        ]
        expected = [r for r in base_items if r["domain"] == domain]
        if not expected:
            raise ConfigurationError(
                f"--alone {domain}={path}: the baseline has no dev items of domain {domain!r}"
            )
        _same_items(expected, items, Path(path), f"{domain} adapter alone")
        alone[domain] = mean_scores(items)[domain][0]
    return alone


def _evaluate_candidate(
    args: CombineArgs, name: str, adapter: str, out: Path
) -> tuple[dict[str, Any], float]:
    options = EvaluateOptions(
        model=args.model,
        suite=args.suite,
        step=f"{args.step}-{name}",
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        adapters=(*args.adapters, adapter),
        revision=args.revision,
        domains=tuple(args.domains),
        limit=args.limit,
        split="dev",
        quiet=args.quiet,
        **inference_options(args),
    )
    started = time.perf_counter()
    folder = out / CANDIDATES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    results = run_evaluation(options, folder)
    return results, time.perf_counter() - started


def _method_of(name: str) -> dict[str, Any]:
    """A candidate the merge record does not list: `joint`, or routed adapters."""
    if name == JOINT:
        return {"method": JOINT}
    if is_routed_candidate(name):
        return {"method": ROUTED}
    return {}


def routing_coverage(
    items: list[dict[str, Any]], trained: dict[str, float]
) -> dict[str, dict[str, float]] | None:
    """Where routed adapters sent the dev items: each trained domain's share that took its own
    route, each untrained domain's share that took any; None when no item was routed."""
    if not items or "route" not in items[0]:
        return None
    own: dict[str, list[bool]] = {}
    stray: dict[str, list[bool]] = {}
    for item in items:
        domain, routes = item["domain"], item.get("route") or []
        if domain in trained:
            own.setdefault(domain, []).append(domain in routes)
        else:
            stray.setdefault(domain, []).append(bool(routes))
    return {
        key: {d: round(sum(v) / len(v), 4) for d, v in sorted(table.items())}
        for key, table in (("own", own), ("stray", stray))
    }


def _merge_settings(args: CombineArgs) -> tuple[dict[str, dict[str, Any]], float | None]:
    """Each merged candidate's method, density and weight by name, from `--merge-record`,
    and the merges' total time; nothing without one."""
    if args.merge_record is None:
        return {}, None
    record = read_artifact(args.merge_record, MergeRecord)
    settings = {
        point.name: {
            "method": point.method,
            "density": point.density,
            "weight": point.weight,
            "weight_rule": point.weight_rule,
        }
        for point in record.merges
    }
    return settings, round(sum(point.seconds for point in record.merges), 3)


def _row(candidate: Candidate, place: int, target: float, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": candidate.name,
        "domains": candidate.domains,
        "trained": candidate.trained,
        "untrained_change": candidate.untrained_change,
        "untrained_p": candidate.untrained_p,
        "min_retention": candidate.min_retention,
        "mean_gain": candidate.mean_gain,
        "worst_untrained_change": candidate.worst_untrained_change,
        "target_met": candidate.target_met(target),
        "rank": place,
        **extra,
    }


def combine(args: CombineArgs, out: Path) -> StepSummary:
    """Score every candidate on the dev items, choose, copy the choice to `out/adapter`."""
    started = time.perf_counter()
    baseline = read_results(args.baseline).to_dict()
    base_items = dev_items(baseline, args.baseline, "baseline")
    base = mean_scores(base_items)
    alone = _alone_scores(args, base_items)
    for _, adapter in args.candidate_pairs():
        if not is_adapter(adapter):
            raise ConfigurationError(
                f"--candidate {adapter}: not an adapter directory (no adapter_config.json, "
                "no routes.json)"
            )
    measured: list[Candidate] = []
    extra: dict[str, dict[str, Any]] = {}
    suite: dict[str, Any] = {}
    for order, (name, adapter) in enumerate(args.candidate_pairs()):
        results, seconds = _evaluate_candidate(args, name, adapter, out)
        suite = results["suite"]
        _same_items(base_items, results["items"], Path(args.baseline), f"candidate {name}")
        measured.append(
            measure(
                name, order, mean_scores(results["items"]), base, alone,
                (base_items, results["items"]),
            )
        )  # fmt: skip
        performance = results["performance"]
        coverage = routing_coverage(results["items"], alone)
        extra[name] = {
            **({"routing": coverage} if coverage else {}),
            "adapter": adapter,
            "results": str(out / CANDIDATES_DIR / name / "results.json"),
            "tokens_per_second": performance["tokens_per_second"],
            "peak_memory_mib": performance["peak_memory_mib"],
            "seconds": round(seconds, 3),
        }
    settings, merge_seconds = _merge_settings(args)
    for name, row in extra.items():
        row.update(settings.get(name, _method_of(name)))
    ranked = rank(measured, args.max_untrained_drop, args.significance)
    best = ranked[0]
    chosen = out / ADAPTER_DIR
    _copy_adapter(extra[best.name]["adapter"], chosen)
    target = args.min_retention
    report = CombinationReport.model_validate(
        {
            "step": args.step,
            "cycle": args.cycle,
            "suite": suite,
            "baseline": args.baseline,
            "alone": dict(args.alone_pairs()),
            "target": target,
            "rule": RULE
            if args.max_untrained_drop is None
            else TOLERANT_RULE.format(drop=args.max_untrained_drop, alpha=args.significance),
            "max_untrained_drop": args.max_untrained_drop,
            "chosen": best.name,
            "adapter": str(chosen),
            "target_met": best.target_met(target),
            "candidates": [
                _row(c, place, target, extra[c.name]) for place, c in enumerate(ranked, start=1)
            ],
            "seconds": round(time.perf_counter() - started, 3),
            "merge_seconds": merge_seconds,
        }
    )
    report_path = out / COMBINATION_FILE
    write_artifact(report_path, report)
    _track(args, out, report)
    digest = CombinationDigest(
        path=str(chosen),
        chosen=best.name,
        candidates=len(ranked),
        retention={d: None if r is None else round(r, 3) for d, r in best.retentions.items()},
        min_retention=None if best.min_retention is None else round(best.min_retention, 3),
        untrained_change=best.worst_untrained_change,
        target=target,
        target_met=best.target_met(target),
        report_path=str(report_path),
    )
    return StepSummary(
        step=args.step,
        ok=True,
        message=_message(ranked, target, args.max_untrained_drop, args.significance),
        digest=file_digest(report_path),
        combination=digest,
    )


def _message(
    ranked: list[Candidate], target: float, drop: float | None = None, alpha: float | None = None
) -> str:
    best = ranked[0]
    worst = best.min_retention
    if worst is None:
        state = "retention undefined (no adapter beat the base alone on its dev items)"
    elif best.target_met(target):
        state = f"min retention {worst:.2f} reaches the target {target:.2f}"
    else:
        state = f"min retention {worst:.2f} is BELOW the target {target:.2f}"
    others = ", ".join(
        f"{c.name} {'n/a' if c.min_retention is None else f'{c.min_retention:.2f}'}"
        for c in ranked[1 : 1 + MESSAGE_OTHERS]
    )
    if len(ranked) > 1 + MESSAGE_OTHERS:
        others += f", {len(ranked) - 1 - MESSAGE_OTHERS} more in {COMBINATION_FILE}"
    passed = [
        (c, excess)
        for c in ranked
        if (excess := c.excess(drop, alpha)) and c.sort_key() < best.sort_key()
    ]
    if passed and drop is not None:
        candidate, (domain, *_) = passed[0]
        change = candidate.untrained_change[domain]
        p = candidate.untrained_p.get(domain)
        state += (
            f"; {candidate.name} retains more but costs {domain} "
            f"{-change * 100:.1f} points on the dev items, more than {drop * 100:g}"
            + (f" (one-sided p {p:.2g} < {alpha:g})" if alpha is not None and p is not None else "")
        )
    return f"chose {best.name}: {state}" + (f" (others: {others})" if others else "")


def _track(args: CombineArgs, out: Path, report: CombinationReport) -> None:
    """Retention per domain and the candidates' table in W&B."""
    tracking = TrackingOptions.from_args(args)
    config = {
        "candidates": [name for name, _ in args.candidate_pairs()],
        "min_retention": args.min_retention,
        "suite": args.suite,
        "model": args.model,
    }
    with tracking.run(job_type="combine", name=args.step, config=config, directory=out) as tracker:
        chosen = next(c for c in report.candidates if c.name == report.chosen)
        metrics: dict[str, Any] = {
            f"retention/{domain}": row.retention
            for domain, row in chosen.trained.items()
            if row.retention is not None
        }
        if chosen.min_retention is not None:
            metrics["retention/min"] = chosen.min_retention
        if chosen.routing is not None:
            metrics |= {f"routing/own/{d}": v for d, v in chosen.routing.own.items()}
            metrics |= {f"routing/stray/{d}": v for d, v in chosen.routing.stray.items()}
        metrics["combination/mean_gain"] = chosen.mean_gain
        tracker.log(metrics)
        tracker.summary(metrics | {"combination/chosen": report.chosen})
        columns = [
            "candidate",
            "method",
            "density",
            "weight",
            "rank",
            "min_retention",
            "mean_gain",
            "worst_untrained",
            "seconds",
        ]
        tracker.table(
            "candidates",
            columns,
            [
                [
                    c.name,
                    c.method,
                    c.density,
                    c.weight,
                    c.rank,
                    c.min_retention,
                    c.mean_gain,
                    c.worst_untrained_change,
                    c.seconds,
                ]
                for c in report.candidates
            ],
        )
        tracker.artifact(
            artifact_name(tracking.cycle, args.step, "combination"),
            "combination",
            [out / COMBINATION_FILE],
        )


def run_combine(args: CombineArgs) -> int:
    from kaizen.runtime.suites.loader import suite_folder

    folder = suite_folder(args.suite)
    # What the candidates and the adapters alone are is part of what decides the output.
    inputs = [path for _, path in args.alone_pairs()] + [p for _, p in args.candidate_pairs()]
    inputs += [args.merge_record] if args.merge_record is not None else []
    inputs += [str(folder)] if folder is not None else []
    return run_step(
        args.step, args.output, lambda out: combine(args, out), args=args, inputs=inputs
    )
