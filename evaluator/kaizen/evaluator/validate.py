"""The validate step: an A/B comparison of candidate and baseline on identical items, and a verdict.

Both result sets must come from the same items (same suite digest, same item ids), so each
item is a pair: right/wrong before, right/wrong after. The overall change is tested with the
exact two-sided McNemar test on the discordant pairs, which is the right test for paired
binary outcomes and needs no large-sample approximation at demo sizes (~50 items).
The verdict is Promote, Reject or Inconclusive (`gates.decide`): a result that is not
significant on a suite too small to detect the target improvement at the configured power
(the minimum detectable effect, `power.py`) is Inconclusive rather than a Reject. A domain
blocks promotion only when its drop exceeds `max_regression` *and* its paired test is
significant after Holm's correction across the domains, so one flipped item in a ten-item
domain is noise, not a regression. Optional gates: speed, peak memory, lm-eval tasks, and a
reference model (e.g. the previous promoted version) the candidate must not be worse than.
`reasons` says how each gate went.

report.json also holds, per domain and per capability, the delta with a paired bootstrap
95% interval, a paired test (exact McNemar for binary scores, a sign-flip permutation test
otherwise), its Holm-adjusted p-value across the domains, and the items that flipped each
way. The `ValidationDigest` in the summary stays the small fixed contract of `kaizen.api`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import (
    ArtifactError,
    CombinationReport,
    ValidationReport,
    read_artifact,
    write_artifact,
)
from kaizen.api.numbers import format_p, significant
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import (
    StepSummary,
    ValidationDigest,
    file_digest,
    fit_summary,
)
from kaizen.evaluator.evaluate import read_results
from kaizen.evaluator.gates import Gates, decide, lm_eval_gate, performance_gate
from kaizen.evaluator.power import analyse_power
from kaizen.evaluator.retention import UNDEFINED
from kaizen.evaluator.stats import (
    holm,
    is_binary,
    mcnemar_exact,
    paired_bootstrap_interval,
    paired_permutation_test,
)
from kaizen.runtime.tracking import TrackingOptions, artifact_name

__all__ = ["Gates", "compare", "decide", "mcnemar_exact", "validate_step"]

REPORT_FILE = ValidationReport.FILE_NAME


def _check_same_items(
    baseline: dict[str, Any], candidate: dict[str, Any], paths: tuple[Path, Path]
) -> None:
    b_digest, c_digest = baseline["suite"].get("digest"), candidate["suite"].get("digest")
    if b_digest != c_digest:
        raise ConfigurationError(
            f"{paths[1]}: suite.digest: {c_digest} differs from the baseline's {b_digest} ({paths[0]}): "
            "the two evaluations did not use identical items"
        )
    b_ids = [r["id"] for r in baseline["items"]]
    c_ids = [r["id"] for r in candidate["items"]]
    if b_ids != c_ids:
        missing = sorted(set(b_ids) - set(c_ids))
        extra = sorted(set(c_ids) - set(b_ids))
        raise ConfigurationError(
            f"{paths[1]}: items: item ids differ from the baseline's "
            f"(missing {missing[:5]}, extra {extra[:5]}, or a different order)"
        )


def gate_pairs(
    baseline: dict[str, Any], candidate: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The item pairs the gate reads: test items only (`kaizen.runtime.suites.split`).

    Dev items are what the cycle chose on (the combination of adapters): judging the
    chosen candidate on them too would reward the choice's fit to their noise. Results
    written before the split (no `split` on the items) are all test.
    """
    pairs = zip(baseline["items"], candidate["items"], strict=True)
    return [(b, c) for b, c in pairs if b.get("split") != "dev"]


def paired_comparison(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Baseline, candidate, delta, paired 95% interval, a paired test and the flipped items.

    Binary scores use the exact McNemar test on right/wrong flips; any other score uses
    the paired sign-flip permutation test on score differences. The interval is a paired
    bootstrap of the mean difference (seeded, so reports are reproducible).
    """
    before = [float(b["score"]) for b, _ in pairs]
    after = [float(c["score"]) for _, c in pairs]
    improved = [b["id"] for b, c in pairs if not b["correct"] and c["correct"]]
    regressed = [b["id"] for b, c in pairs if b["correct"] and not c["correct"]]
    if is_binary(before) and is_binary(after):
        test, p_value = "mcnemar_exact", mcnemar_exact(len(improved), len(regressed))
    else:
        test, p_value = "paired_permutation", paired_permutation_test(before, after)
    low, high = paired_bootstrap_interval(before, after)
    mean_before, mean_after = sum(before) / len(before), sum(after) / len(after)
    return {
        "baseline": mean_before,
        "candidate": mean_after,
        # Rounded so that float noise (0.1 + 0.2 - 0.3) never decides a gate.
        "delta": round(mean_after - mean_before, 12),
        "delta_ci95": [round(low, 6), round(high, 6)],
        "n": len(pairs),
        "test": test,
        "p_value": p_value,
        "improved_items": improved,
        "regressed_items": regressed,
    }


def _group_deltas(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str
) -> dict[str, dict[str, Any]]:
    """`paired_comparison` per group of `key`, with Holm-adjusted p-values across the groups."""
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for base, cand in pairs:
        groups.setdefault(base[key], []).append((base, cand))
    table = {name: paired_comparison(rows) for name, rows in sorted(groups.items())}
    adjusted = holm({name: row["p_value"] for name, row in table.items()})
    for name, row in table.items():
        row["p_holm"] = adjusted[name]
    return table


def _regressions(table: dict[str, dict[str, Any]], gates: Gates) -> tuple[list[str], list[str]]:
    """(confirmed, unconfirmed): domains that dropped by more than `max_regression`, split by
    whether their Holm-adjusted paired p-value is below `significance`."""
    dropped = [name for name, d in table.items() if d["delta"] < -gates.max_regression]
    confirmed = [name for name in dropped if table[name]["p_holm"] < gates.significance]
    return confirmed, [name for name in dropped if name not in confirmed]


def _mcnemar(overall: dict[str, Any]) -> dict[str, Any]:
    improved, regressed = len(overall["improved_items"]), len(overall["regressed_items"])
    return {
        "improved": improved,
        "regressed": regressed,
        "p_value": mcnemar_exact(improved, regressed),
    }


def compare_reference(
    reference: dict[str, Any],
    candidate: dict[str, Any],
    gates: Gates,
    paths: tuple[Path, Path],
    name: str | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(report.json's `reference`, blocking sentences, passing sentences): candidate vs reference."""
    _check_same_items(reference, candidate, paths)
    pairs = gate_pairs(reference, candidate)
    overall = paired_comparison(pairs)
    mcnemar = _mcnemar(overall)
    domains = _group_deltas(pairs, "domain")
    regressions, _ = _regressions(domains, gates)
    worse = overall["delta"] < 0 and mcnemar["p_value"] < gates.significance
    model = reference.get("model") or {}
    label = name or " + ".join([str(model.get("name", "reference")), *model.get("adapters", [])])
    record = {
        "name": label,
        "side": {"path": str(paths[0]), "model": model, "overall": overall["baseline"]},
        "overall": {k: v for k, v in overall.items() if not k.endswith("_items")},
        "mcnemar": mcnemar,
        "domains": domains,
        "regressions": regressions,
        "worse_overall": worse,
    }
    summary = f"against {label}: overall {overall['delta']:+.4f}, McNemar p={format_p(mcnemar['p_value'])}"
    blockers = []
    if worse:
        blockers.append(f"{summary}: significantly worse than the reference")
    if regressions:
        blockers.append(
            f"against {label}: significant regressions beyond {gates.max_regression:.4f} in: "
            f"{', '.join(regressions)}"
        )
    return record, blockers, [] if blockers else [f"{summary}: not worse than the reference"]


def compare(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    gates: Gates,
    paths: tuple[Path, Path],
    *,
    reference: tuple[dict[str, Any], Path, str | None] | None = None,
    retention: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparison report for two results dicts evaluated on identical items (report.json's layout).

    `reference` is (results, path, name) of a third model on the same items, or None;
    `retention` is report.json's `retention` (`retention_record`), copied as it is: it is
    on dev items and decides nothing here.
    """
    gates.check()
    _check_same_items(baseline, candidate, paths)
    pairs = gate_pairs(baseline, candidate)
    if not pairs:
        raise ConfigurationError(
            f"{paths[0]}: items: every item is a dev item; the gate reads test items only "
            "(lower the suite's dev_fraction or ship test items in eval.jsonl)"
        )
    overall = paired_comparison(pairs)
    improved, regressed = overall["improved_items"], overall["regressed_items"]
    # The gate's test stays McNemar on per-item correctness (what ValidationDigest reports);
    # for non-binary scores `overall.test` adds the permutation test on the scores themselves.
    mcnemar = _mcnemar(overall)
    p_value = mcnemar["p_value"]
    before, after = overall["baseline"], overall["candidate"]
    overall_delta = overall["delta"]
    domains = _group_deltas(pairs, "domain")
    regressions, unconfirmed = _regressions(domains, gates)
    power = analyse_power(
        len(pairs), len(improved) + len(regressed), alpha=gates.significance, power=gates.power
    )
    performance, blockers, notes = performance_gate(
        baseline.get("performance"), candidate.get("performance"), gates
    )
    lm_eval, lm_blockers, lm_notes = lm_eval_gate(
        baseline.get("domains", {}), candidate.get("domains", {}), gates
    )
    blockers, notes = blockers + lm_blockers, notes + lm_notes
    reference_record = None
    if reference is not None:
        ref_results, ref_path, ref_name = reference
        reference_record, ref_blockers, ref_notes = compare_reference(
            ref_results, candidate, gates, (ref_path, paths[1]), ref_name
        )
        blockers, notes = blockers + ref_blockers, notes + ref_notes
    verdict, reasons = decide(
        overall_delta,
        p_value,
        regressions,
        gates,
        power=power,
        blockers=blockers,
        notes=notes,
        unconfirmed=unconfirmed,
    )
    return {
        "schema": ValidationReport.SCHEMA_VERSION,
        "baseline": {"path": str(paths[0]), "model": baseline.get("model"), "overall": before},
        "candidate": {"path": str(paths[1]), "model": candidate.get("model"), "overall": after},
        "suite": baseline["suite"],
        "items": len(pairs),
        "overall_delta": overall_delta,
        "overall": {k: v for k, v in overall.items() if not k.endswith("_items")},
        "domains": domains,
        "capabilities": _group_deltas(pairs, "capability"),
        "mcnemar": mcnemar,
        "gates": gates.settings(),
        "regressions": regressions,
        "unconfirmed_drops": unconfirmed,
        "power": {
            "n": power.n,
            "alpha": power.alpha,
            "power": power.power,
            "discordance": power.discordance,
            "method": power.method,
            "mde": power.mde,
            "floor": power.floor,
            "min_significant_items": power.min_significant_items,
            "target": gates.target,
            "adequate": power.mde is not None and power.mde <= gates.target,
        },
        "performance": performance,
        "lm_eval": lm_eval,
        "reference": reference_record,
        "retention": retention,
        "verdict": verdict,
        "reasons": reasons,
        "improved_items": improved,
        "regressed_items": regressed,
    }


def retention_record(path: Path, candidate: dict[str, Any]) -> dict[str, Any]:
    """report.json's `retention`: the chosen combination's row of the combine step's
    `combination.json` at `path`.

    ConfigurationError naming the file when it cannot be read, is of another suite, or chose
    an adapter the candidate was not evaluated with (its figures would describe another model).
    """
    try:
        report = read_artifact(path, CombinationReport)
    except ArtifactError as error:
        raise ConfigurationError(f"--combination: {error}") from error
    suite = candidate["suite"]
    if (report.suite.name, report.suite.version) != (suite["name"], suite["version"]):
        raise ConfigurationError(
            f"{path}: suite: {report.suite.name} {report.suite.version} is not the candidate's "
            f"suite {suite['name']} {suite['version']}"
        )
    adapters = [Path(a) for a in (candidate.get("model") or {}).get("adapters", [])]
    if Path(report.adapter) not in adapters:
        raise ConfigurationError(
            f"{path}: adapter: the chosen adapter {report.adapter} is not among the candidate's "
            f"adapters {[str(a) for a in adapters]}: this combination is not the candidate's"
        )
    chosen = next(c for c in report.candidates if c.name == report.chosen)
    return {
        "path": str(path),
        "split": report.split,
        "chosen": report.chosen,
        "candidates": [c.name for c in report.candidates],
        "rule": report.rule,
        "trained": {
            domain: row.model_dump() | {"undefined": UNDEFINED if row.retention is None else None}
            for domain, row in chosen.trained.items()
        },
        "untrained_change": chosen.untrained_change,
        "min_retention": chosen.min_retention,
        "mean_gain": chosen.mean_gain,
        "worst_untrained_change": chosen.worst_untrained_change,
        "target": report.target,
        "target_met": report.target_met,
    }


def validate_step(
    baseline: str | Path,
    candidate: str | Path,
    out: Path,
    *,
    step: str,
    gates: Gates,
    tracking: TrackingOptions,
    reference: str | Path | None = None,
    reference_name: str | None = None,
    html_report: str | Path | None = None,
    combination: str | Path | None = None,
) -> StepSummary:
    """The whole validate step for `run_step`: compare, write report.json (and the HTML report
    when asked), track, summarise. `combination` is the combine step's combination.json, whose
    retention figures report.json carries."""
    paths = (Path(baseline), Path(candidate))
    baseline_results, candidate_results = read_results(paths[0]), read_results(paths[1])
    third = None
    if reference is not None:
        third = (read_results(reference).to_dict(), Path(reference), reference_name)
    candidate_dict = candidate_results.to_dict()
    kept = None if combination is None else retention_record(Path(combination), candidate_dict)
    report = ValidationReport.model_validate(
        compare(
            baseline_results.to_dict(),
            candidate_dict,
            gates,
            paths,
            reference=third,
            retention=kept,
        )
    )
    report_path = out / REPORT_FILE
    write_artifact(report_path, report)
    html_path, plots = _html_report(html_report)
    with tracking.run(
        job_type="validate",
        name=step,
        config={
            "baseline": str(baseline),
            "candidate": str(candidate),
            "reference": str(reference) if reference else None,
            **report.gates.model_dump(),
        },
        directory=out,
    ) as tracker:
        metrics: dict[str, Any] = {
            "overall/baseline": report.baseline.overall,
            "overall/candidate": report.candidate.overall,
            "overall/delta": report.overall_delta,
            "mcnemar/p_value": report.mcnemar.p_value,
            "power/mde": report.power.mde,
            "items/improved": len(report.improved_items),
            "items/regressed": len(report.regressed_items),
        }
        metrics.update({f"delta/{name}": d.delta for name, d in report.domains.items()})
        if report.reference is not None:
            metrics["reference/delta"] = report.reference.overall.delta
        if report.retention is not None:
            metrics.update(
                {
                    f"retention/{name}": row.retention
                    for name, row in report.retention.trained.items()
                    if row.retention is not None
                }
            )
            if report.retention.min_retention is not None:
                metrics["retention/min"] = report.retention.min_retention
        tracker.log(metrics)
        tracker.summary({"verdict": report.verdict})
        columns = ["domain", "baseline", "candidate", "delta", "n", "p_holm"]
        rows = [
            [name, d.baseline, d.candidate, d.delta, d.n, d.p_holm]
            for name, d in report.domains.items()
        ]
        tracker.table("domains", columns, rows)
        tracker.images({f"report/{path.stem}": path for path in plots})
        files = [report_path, *([html_path.parent] if html_path else [])]
        tracker.artifact(artifact_name(tracking.cycle, step, "report"), "validation", files)
    mde = report.power.mde
    message = (
        f"{report.verdict}: overall {report.overall_delta:+.4f}, "
        f"p={format_p(report.mcnemar.p_value)}"
    )
    if report.verdict == "Inconclusive":
        message += f", minimum detectable effect {mde if mde is None else f'{mde:.4f}'}"
    return _fit(
        StepSummary(
            step=step,
            ok=True,
            message=message,
            validation=ValidationDigest(
                verdict=report.verdict,
                overall_delta=round(report.overall_delta, 4),
                baseline_score=round(report.overall.baseline, 4),
                candidate_score=round(report.overall.candidate, 4),
                p_value=significant(report.mcnemar.p_value),
                minimum_detectable_effect=mde,
                domain_deltas={name: round(d.delta, 4) for name, d in report.domains.items()},
                regressions=report.regressions,
                improved_items=len(report.improved_items),
                regressed_items=len(report.regressed_items),
                reasons=report.reasons,
                report_path=str(report_path),
                html_report_path=str(html_path) if html_path else None,
            ),
            digest=file_digest(report_path),
        )
    )


def _html_report(directory: str | Path | None) -> tuple[Path | None, list[Path]]:
    """Write the cycle's HTML report into `directory` (its parent is the cycle's folder).

    The verdict does not depend on the pictures: a report that cannot be drawn is said on
    stderr and the step goes on without it.
    """
    if directory is None:
        return None, []
    try:
        from kaizen.report import build_cycle_report

        built = build_cycle_report(Path(directory).parent, Path(directory))
    except Exception as error:  # noqa: BLE001 - see the docstring
        print(f"[report] no HTML report: {type(error).__name__}: {error}", file=sys.stderr)
        return None, []
    return built.html, built.plots


def _fit(summary: StepSummary) -> StepSummary:
    """The summary, its lists shortened (worst domains kept) if it would overflow 4 KiB.

    report.json always holds every domain; the status only needs the ones that matter most.
    """
    return fit_summary(summary)
