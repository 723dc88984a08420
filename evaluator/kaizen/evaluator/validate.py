"""The validate step: an A/B comparison of candidate and baseline on identical items, and a verdict.

Both result sets must come from the same items (same suite digest, same item ids), so each
item is a pair: right/wrong before, right/wrong after. The overall change is tested with the
exact two-sided McNemar test on the discordant pairs, which is the right test for paired
binary outcomes and needs no large-sample approximation at demo sizes (~50 items).
The candidate is promoted only if every gate passes; `reasons` says how each gate went.

report.json also holds, per domain and per capability, the delta with a paired bootstrap
95% interval, a paired test (exact McNemar for binary scores, a sign-flip permutation test
otherwise), its Holm-adjusted p-value across the domains, and the items that flipped each
way. The `ValidationDigest` in the summary stays the small fixed contract of `kaizen.api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import ValidationReport, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import (
    StepSummary,
    SummaryTooLarge,
    ValidationDigest,
    encode_summary,
    file_digest,
)
from kaizen.evaluator.evaluate import read_results
from kaizen.evaluator.stats import (
    holm,
    is_binary,
    mcnemar_exact,
    paired_bootstrap_interval,
    paired_permutation_test,
)
from kaizen.runtime.tracking import TrackingOptions, artifact_name

REPORT_FILE = ValidationReport.FILE_NAME


@dataclass(frozen=True)
class Gates:
    """What a candidate must achieve to be promoted (see `ValidationSpec`)."""

    min_improvement: float = 0.0
    max_regression: float = 0.1
    significance: float = 0.05
    require_significance: bool = True

    def check(self) -> None:
        if not -1.0 <= self.min_improvement <= 1.0:
            raise ConfigurationError(
                f"min improvement must be between -1 and 1, got {self.min_improvement}"
            )
        if not 0.0 <= self.max_regression <= 1.0:
            raise ConfigurationError(
                f"max regression must be between 0 and 1, got {self.max_regression}"
            )
        if not 0.0 < self.significance < 1.0:
            raise ConfigurationError(
                f"significance must be strictly between 0 and 1, got {self.significance}"
            )


def decide(
    overall_delta: float, p_value: float, regressions: list[str], gates: Gates
) -> tuple[str, list[str]]:
    """(`Promote` or `Reject`, one sentence per gate)."""
    reasons = []
    improved_enough = overall_delta > gates.min_improvement
    reasons.append(
        f"overall change {overall_delta:+.4f} {'exceeds' if improved_enough else 'does not exceed'} "
        f"the minimum improvement {gates.min_improvement:+.4f}"
    )
    if regressions:
        reasons.append(
            f"regressions beyond {gates.max_regression:.4f} in: {', '.join(regressions)}"
        )
    else:
        reasons.append(f"no domain dropped by more than {gates.max_regression:.4f}")
    significant = p_value < gates.significance
    verdict_on_p = "significant" if significant else "not significant"
    if gates.require_significance:
        reasons.append(
            f"McNemar p={p_value:.4g} is {verdict_on_p} at {gates.significance:g} (required)"
        )
    else:
        reasons.append(
            f"McNemar p={p_value:.4g} is {verdict_on_p} at {gates.significance:g} (not required)"
        )
    promote = (
        improved_enough and not regressions and (significant or not gates.require_significance)
    )
    return ("Promote" if promote else "Reject"), reasons


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


def compare(
    baseline: dict[str, Any], candidate: dict[str, Any], gates: Gates, paths: tuple[Path, Path]
) -> dict[str, Any]:
    """The comparison report for two results dicts evaluated on identical items (report.json's layout)."""
    gates.check()
    _check_same_items(baseline, candidate, paths)
    pairs = list(zip(baseline["items"], candidate["items"], strict=True))
    overall = paired_comparison(pairs)
    improved, regressed = overall["improved_items"], overall["regressed_items"]
    # The gate's test stays McNemar on per-item correctness (what ValidationDigest reports);
    # for non-binary scores `overall.test` adds the permutation test on the scores themselves.
    p_value = mcnemar_exact(len(improved), len(regressed))
    before, after = overall["baseline"], overall["candidate"]
    overall_delta = overall["delta"]
    domains = _group_deltas(pairs, "domain")
    regressions = [name for name, d in domains.items() if d["delta"] < -gates.max_regression]
    verdict, reasons = decide(overall_delta, p_value, regressions, gates)
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
        "mcnemar": {"improved": len(improved), "regressed": len(regressed), "p_value": p_value},
        "gates": {
            "min_improvement": gates.min_improvement,
            "max_regression": gates.max_regression,
            "significance": gates.significance,
            "require_significance": gates.require_significance,
        },
        "regressions": regressions,
        "verdict": verdict,
        "reasons": reasons,
        "improved_items": improved,
        "regressed_items": regressed,
    }


def validate_step(
    baseline: str | Path,
    candidate: str | Path,
    out: Path,
    *,
    step: str,
    gates: Gates,
    tracking: TrackingOptions,
) -> StepSummary:
    """The whole validate step for `run_step`: compare, write report.json, track, summarise."""
    paths = (Path(baseline), Path(candidate))
    baseline_results, candidate_results = read_results(paths[0]), read_results(paths[1])
    report = ValidationReport.model_validate(
        compare(baseline_results.to_dict(), candidate_results.to_dict(), gates, paths)
    )
    report_path = out / REPORT_FILE
    write_artifact(report_path, report)
    with tracking.run(
        job_type="validate",
        name=step,
        config={
            "baseline": str(baseline),
            "candidate": str(candidate),
            **report.gates.model_dump(),
        },
        directory=out,
    ) as tracker:
        metrics: dict[str, Any] = {
            "overall/baseline": report.baseline.overall,
            "overall/candidate": report.candidate.overall,
            "overall/delta": report.overall_delta,
            "mcnemar/p_value": report.mcnemar.p_value,
            "items/improved": len(report.improved_items),
            "items/regressed": len(report.regressed_items),
        }
        metrics.update({f"delta/{name}": d.delta for name, d in report.domains.items()})
        tracker.log(metrics)
        tracker.summary({"verdict": report.verdict})
        columns = ["domain", "baseline", "candidate", "delta", "n"]
        rows = [[name, d.baseline, d.candidate, d.delta, d.n] for name, d in report.domains.items()]
        tracker.table("domains", columns, rows)
        tracker.artifact(artifact_name(tracking.cycle, step, "report"), "validation", [report_path])
    return _fit(
        StepSummary(
            step=step,
            ok=True,
            message=f"{report.verdict}: overall {report.overall_delta:+.4f}, p={report.mcnemar.p_value:.4g}",
            validation=ValidationDigest(
                verdict=report.verdict,
                overall_delta=round(report.overall_delta, 4),
                p_value=round(report.mcnemar.p_value, 6),
                domain_deltas={name: round(d.delta, 4) for name, d in report.domains.items()},
                regressions=report.regressions,
                improved_items=len(report.improved_items),
                regressed_items=len(report.regressed_items),
                reasons=report.reasons,
                report_path=str(report_path),
            ),
            digest=file_digest(report_path),
        )
    )


def _fit(summary: StepSummary) -> StepSummary:
    """The summary, with domain deltas trimmed to the worst ones if it would overflow 4 KiB.

    report.json always holds every domain; the status only needs the ones that matter most.
    """
    validation = summary.validation
    assert validation is not None
    deltas = validation.domain_deltas
    worst_first = sorted(deltas, key=lambda name: (deltas[name], name))
    while True:
        try:
            encode_summary(summary)
            return summary
        except SummaryTooLarge:
            if not worst_first:
                raise
            worst_first = worst_first[: len(worst_first) * 3 // 4]
            kept = {name: deltas[name] for name in sorted(worst_first)}
            summary = summary.model_copy(
                update={"validation": validation.model_copy(update={"domain_deltas": kept})}
            )
