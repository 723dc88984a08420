"""The end-of-cycle report printed by `kaizen run`: scores before and after, verdict, artifacts."""

from __future__ import annotations

from kaizen.api import ImprovementCycleStatus, Phase
from kaizen.api.numbers import format_p


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


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
        capabilities = sorted(
            set(baseline.capabilities) | set(candidate.capabilities if candidate else {})
        )
        if capabilities:
            lines.append("")
            cwidth = max(len(c) for c in capabilities) + 2
            lines.append(f"{'capability':<{cwidth}} {'before':>7} {'after':>7} {'change':>8}")
            for name in capabilities:
                before = baseline.capabilities.get(name)
                after = candidate.capabilities.get(name) if candidate else None
                change = (
                    "" if before is None or after is None else f"{100 * (after - before):+7.1f}"
                )
                lines.append(f"{name:<{cwidth}} {_pct(before):>7} {_pct(after):>7} {change:>8}")
        for adapter in status.adapters:
            rate = f" at lr {adapter.learning_rate:g}" if adapter.learning_rate else ""
            lines.append(
                f"adapter {adapter.domain}: {adapter.examples} examples "
                f"({adapter.synthesized} synthesised from knowledge), {adapter.steps} steps{rate}"
            )
        if baseline.tokens_per_second:
            lines.append(
                f"generation: {baseline.tokens_per_second:.1f} tokens/s, peak memory "
                f"{baseline.peak_memory_mb or 0:.0f} MiB"
            )
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
