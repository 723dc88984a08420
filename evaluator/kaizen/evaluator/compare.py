"""The validate step: an A/B comparison of candidate and baseline on identical items, and a verdict.

Both result sets must come from the same items (same suite digest, same item ids), so each
item is a pair: right/wrong before, right/wrong after. The overall change is tested with the
exact two-sided McNemar test on the discordant pairs, which is the right test for paired
binary outcomes and needs no large-sample approximation at demo sizes (~50 items).
The candidate is promoted only if every gate passes; `reasons` says how each gate went.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaizen.api.step import ConfigurationError
from kaizen.api.summary import (
    StepSummary,
    SummaryTooLarge,
    ValidationDigest,
    atomic_write_json,
    encode_summary,
    file_digest,
)
from kaizen.evaluator.evaluate import TrackingOptions, read_results
from kaizen.evaluator.tracking import artifact_name, track

REPORT_FILE = "report.json"
REPORT_SCHEMA = 1


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


def mcnemar_exact(improved: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts (1.0 when there are none).

    Under the null hypothesis each discordant pair is equally likely to go either way, so the
    smaller count is Binomial(n, 1/2); the two-sided p-value doubles its lower tail.
    """
    if improved < 0 or regressed < 0:
        raise ValueError("discordant counts cannot be negative")
    n = improved + regressed
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(improved, regressed) + 1))
    return min(1.0, float(2 * tail / 2**n))


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


def _group_deltas(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], key: str
) -> dict[str, dict[str, float]]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for base, cand in pairs:
        groups.setdefault(base[key], []).append((base["score"], cand["score"]))
    table = {}
    for name, scores in sorted(groups.items()):
        before = sum(b for b, _ in scores) / len(scores)
        after = sum(c for _, c in scores) / len(scores)
        table[name] = {
            "baseline": before,
            "candidate": after,
            "delta": round(after - before, 12),
            "n": len(scores),
        }
    return table


def compare(
    baseline: dict[str, Any], candidate: dict[str, Any], gates: Gates, paths: tuple[Path, Path]
) -> dict[str, Any]:
    """The comparison report for two results dicts evaluated on identical items."""
    gates.check()
    _check_same_items(baseline, candidate, paths)
    pairs = list(zip(baseline["items"], candidate["items"], strict=True))
    improved = [b["id"] for b, c in pairs if not b["correct"] and c["correct"]]
    regressed = [b["id"] for b, c in pairs if b["correct"] and not c["correct"]]
    p_value = mcnemar_exact(len(improved), len(regressed))
    before = sum(b["score"] for b, _ in pairs) / len(pairs)
    after = sum(c["score"] for _, c in pairs) / len(pairs)
    # Rounded so that float noise (0.1 + 0.2 - 0.3) never decides a gate.
    overall_delta = round(after - before, 12)
    domains = _group_deltas(pairs, "domain")
    regressions = [name for name, d in domains.items() if d["delta"] < -gates.max_regression]
    verdict, reasons = decide(overall_delta, p_value, regressions, gates)
    return {
        "schema": REPORT_SCHEMA,
        "baseline": {"path": str(paths[0]), "model": baseline.get("model"), "overall": before},
        "candidate": {"path": str(paths[1]), "model": candidate.get("model"), "overall": after},
        "suite": baseline["suite"],
        "items": len(pairs),
        "overall_delta": overall_delta,
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
    report = compare(read_results(paths[0]), read_results(paths[1]), gates, paths)
    report_path = out / REPORT_FILE
    atomic_write_json(report_path, report)
    with track(
        mode=tracking.mode,
        project=tracking.project,
        entity=tracking.entity,
        cycle=tracking.cycle,
        job_type="validate",
        name=step,
        config={"baseline": str(baseline), "candidate": str(candidate), **report["gates"]},
        directory=out,
    ) as tracker:
        metrics: dict[str, Any] = {
            "overall/baseline": report["baseline"]["overall"],
            "overall/candidate": report["candidate"]["overall"],
            "overall/delta": report["overall_delta"],
            "mcnemar/p_value": report["mcnemar"]["p_value"],
            "items/improved": len(report["improved_items"]),
            "items/regressed": len(report["regressed_items"]),
        }
        metrics.update({f"delta/{name}": d["delta"] for name, d in report["domains"].items()})
        tracker.log(metrics)
        tracker.summary({"verdict": report["verdict"]})
        columns = ["domain", "baseline", "candidate", "delta", "n"]
        rows = [
            [name, d["baseline"], d["candidate"], d["delta"], d["n"]]
            for name, d in report["domains"].items()
        ]
        tracker.table("domains", columns, rows)
        tracker.artifact(artifact_name(tracking.cycle, step, "report"), "validation", [report_path])
    return _fit(
        StepSummary(
            step=step,
            ok=True,
            message=f"{report['verdict']}: overall {report['overall_delta']:+.4f}, p={report['mcnemar']['p_value']:.4g}",
            validation=ValidationDigest(
                verdict=report["verdict"],
                overall_delta=round(report["overall_delta"], 4),
                p_value=round(report["mcnemar"]["p_value"], 6),
                domain_deltas={name: round(d["delta"], 4) for name, d in report["domains"].items()},
                regressions=report["regressions"],
                improved_items=len(report["improved_items"]),
                regressed_items=len(report["regressed_items"]),
                reasons=report["reasons"],
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
