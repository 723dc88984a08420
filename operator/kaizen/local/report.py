"""The end-of-cycle report printed by `kaizen run`: scores before and after, verdict, artifacts."""

from __future__ import annotations

from kaizen.api import ImprovementCycleStatus, Phase
from kaizen.api.artifacts import ArtifactError, CombinationReport, read_artifact
from kaizen.api.fields import is_routed_candidate
from kaizen.api.numbers import format_p
from kaizen.api.summary import ScoreDigest


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _retention(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def combination_table(status: ImprovementCycleStatus) -> list[str]:
    """Every candidate combination the combine step scored (dev items), chosen first."""
    combination = status.combination
    if combination is None:
        return []
    lines = [""]
    report = None
    if combination.report_path:
        try:
            report = read_artifact(combination.report_path, CombinationReport)
        except ArtifactError as error:
            lines.append(f"(combination table unavailable: {error})")
    if report is None:
        per = ", ".join(f"{d} {_retention(r)}" for d, r in sorted(combination.retention.items()))
        lines.append(f"combination: {combination.chosen} (retention on dev items: {per})")
    else:
        trained = sorted(report.candidates[0].trained)
        width = max(len(c.name) for c in report.candidates) + 4
        header = "".join(f" {'R ' + d:>{max(8, len(d) + 2)}}" for d in trained)
        lines.append("combination, scored on dev items (R = share of the adapter's own gain kept):")
        lines.append(
            f"{'candidate':<{width}}{header} {'min R':>6} {'gain':>7} {'untrained':>9} {'time':>6}"
        )
        for c in report.candidates:
            name = c.name + (" *" if c.name == report.chosen else "")
            cells = "".join(
                f" {_retention(c.trained[d].retention):>{max(8, len(d) + 2)}}" for d in trained
            )
            worst = c.worst_untrained_change
            untrained = "" if worst is None else f"{100 * worst:+.1f}"
            lines.append(
                f"{name:<{width}}{cells} {_retention(c.min_retention):>6} "
                f"{100 * c.mean_gain:>+7.1f} {untrained:>9} {c.seconds:>5.0f}s"
            )
        alone = ", ".join(
            f"{d} {_pct(report.candidates[0].trained[d].base).strip()} -> "
            f"{_pct(report.candidates[0].trained[d].alone).strip()}"
            for d in trained
        )
        lines.append(f"(* chosen; each adapter alone on its dev items, base -> alone: {alone})")
        for c in report.candidates:
            if c.routing is not None:
                own = ", ".join(f"{d} {_pct(v).strip()}" for d, v in c.routing.own.items())
                stray = ", ".join(f"{d} {_pct(v).strip()}" for d, v in c.routing.stray.items())
                lines.append(
                    f"({c.name}: dev items through their own route: {own or 'none'}; "
                    f"untrained domains' items through a route: {stray or 'none'})"
                )
    if combination.target_met is False:
        lines.append(
            f"TARGET MISSED: no combination kept {combination.target:.2f} of every adapter's "
            f"gain (best {combination.chosen}: {_retention(combination.min_retention)})"
        )
    return lines


def _plan_lines(status: ImprovementCycleStatus) -> list[str]:
    """What the plan chose on: the priority domains' dev scores (the table above covers
    both splits), and the domains that had to be planned on the gate's test items."""
    plan = status.plan
    if plan is None:
        return []
    lines = []
    if plan.priority_scores and len(plan.priority_scores) == len(plan.priority_domains):
        scores = ", ".join(
            f"{d} {100 * s:.1f}%"
            for d, s in zip(plan.priority_domains, plan.priority_scores, strict=True)
        )
        lines.append(f"(planned on the baseline's dev items: {scores})")
    if plan.fallback_domains:
        lines.append(
            f"(no dev items in {', '.join(plan.fallback_domains)}: analysed on the gate's test "
            "items there and not trained; see plan.json's split)"
        )
    return lines


def _capability_lines(
    baseline: ScoreDigest, candidate: ScoreDigest | None, capabilities: list[str]
) -> list[str]:
    """Scores by capability, with each capability's item count where the evaluation gave it:
    one item of three is 33 points, and the reader should see that."""
    counts = baseline.capability_items or (candidate.capability_items if candidate else {})
    width = max(len(c) for c in capabilities) + 2
    items = f" {'items':>5}" if counts else ""
    lines = [f"{'capability':<{width}}{items} {'before':>7} {'after':>7} {'change':>8}"]
    for name in capabilities:
        before = baseline.capabilities.get(name)
        after = candidate.capabilities.get(name) if candidate else None
        change = "" if before is None or after is None else f"{100 * (after - before):+7.1f}"
        n = f" {counts.get(name, ''):>5}" if counts else ""
        lines.append(f"{name:<{width}}{n} {_pct(before):>7} {_pct(after):>7} {change:>8}")
    if counts and min(counts.values()) < 10:
        lines.append("(one item of n moves a capability by 100/n points)")
    return lines


def render_report(status: ImprovementCycleStatus) -> str:
    """A short plain-text table for the terminal."""
    lines: list[str] = []
    baseline, candidate = status.baseline, status.candidate
    if baseline is not None:
        domains = sorted(set(baseline.domains) | set(candidate.domains if candidate else {}))
        priority = set(status.plan.priority_domains) if status.plan else set()
        width = max([len(d) for d in domains] + [len("overall")]) + 2
        lines.append(f"{'domain':<{width}} {'before':>7} {'after':>7} {'change':>8}")
        lines.append("-" * (width + 25))
        rows = [
            (d, baseline.domains.get(d), candidate.domains.get(d) if candidate else None)
            for d in domains
        ]
        rows.append(("overall", baseline.overall, candidate.overall if candidate else None))
        for name, before, after in rows:
            change = "" if before is None or after is None else f"{100 * (after - before):+7.1f}"
            mark = " *" if name in priority else ""
            lines.append(f"{name:<{width}} {_pct(before):>7} {_pct(after):>7} {change:>8}{mark}")
        if priority:
            lines.append("(* trained this cycle)")
        lines.extend(_plan_lines(status))
        capabilities = sorted(
            set(baseline.capabilities) | set(candidate.capabilities if candidate else {})
        )
        if capabilities:
            lines.append("")
            lines.extend(_capability_lines(baseline, candidate, capabilities))
        for adapter in status.adapters:
            rate = f" at lr {adapter.learning_rate:g}" if adapter.learning_rate else ""
            passes = f" ({adapter.passes:g} passes)" if adapter.passes is not None else ""
            lines.append(
                f"adapter {adapter.domain}: {adapter.examples} examples "
                f"({adapter.synthesized} synthesised from knowledge), "
                f"{adapter.steps} steps{passes}{rate}"
            )
        lines.extend(combination_table(status))
        if baseline.tokens_per_second:
            speed = (
                f"generation: baseline {baseline.tokens_per_second:.1f} tokens/s, peak memory "
                f"{baseline.peak_memory_mb or 0:.0f} MiB"
            )
            if candidate is not None and candidate.tokens_per_second:
                routed = status.combination is not None and is_routed_candidate(
                    status.combination.chosen
                )
                how = (
                    "routed adapters, unmerged: each prompt gets its routes' adapters"
                    if routed
                    else "adapters merged into the weights"
                )
                speed += (
                    f"; candidate {candidate.tokens_per_second:.1f} tokens/s, "
                    f"{candidate.peak_memory_mb or 0:.0f} MiB ({how})"
                )
            lines.append(speed)
    validation = status.validation
    lines.append("")
    if status.phase == Phase.FAILED:
        lines.append(f"FAILED ({status.failure_reason}): {status.message}")
    elif validation is not None:
        lines.append(
            f"verdict: {validation.verdict.upper()}  (overall {100 * validation.overall_delta:+.1f} points, "
            f"McNemar p={format_p(validation.p_value)}, {validation.improved_items} items fixed, "
            f"{validation.regressed_items} broken)"
        )
        mde = validation.minimum_detectable_effect
        if mde is not None or validation.verdict == "Inconclusive":
            shown = "none" if mde is None else f"{100 * mde:.1f} points"
            lines.append(f"  minimum detectable improvement of this suite: {shown}")
        for reason in validation.reasons:
            lines.append(f"  - {reason}")
        if validation.regressions:
            lines.append(f"  regressions: {', '.join(validation.regressions)}")
    else:
        lines.append(f"result: {status.message}")
    if status.promoted_adapters:
        lines.append("next cycle starts from adapters: " + ", ".join(status.promoted_adapters))
    if status.artifacts_path:
        lines.append(f"artifacts: {status.artifacts_path}")
    if status.report_path:
        lines.append(f"report: {status.report_path}")
    return "\n".join(lines)
