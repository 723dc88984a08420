"""The HTML report of one cycle: verdict, per-domain before/after with intervals, items fixed
and broken, training loss, data cards, the merge, speed and memory, lm-eval tasks, power."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import EvaluationResults, GroupScore, ItemResult, ValidationReport
from kaizen.api.numbers import format_p
from kaizen.report import plots
from kaizen.report.inputs import CycleInputs, read_cycle
from kaizen.report.page import (
    badge,
    esc,
    figure,
    interval,
    page,
    pct,
    points,
    table,
)

#: The page's file name in the report folder (the PNGs lie beside it).
INDEX = "index.html"
#: At most this many fixed or broken items are listed per list (report.json has them all).
ITEMS_SHOWN = 60


@dataclass
class BuiltReport:
    """A written report: the page and the pictures beside it."""

    html: Path
    plots: list[Path] = field(default_factory=list)


def _suite_scores(results: EvaluationResults | None) -> dict[str, GroupScore]:
    if results is None:
        return {}
    return {n: d for n, d in results.domains.items() if isinstance(d, GroupScore)}


def _bars(found: CycleInputs) -> list[plots.DomainBar]:
    before, after = _suite_scores(found.baseline), _suite_scores(found.candidate)
    report = found.validation
    alpha = report.gates.significance if report else 0.05
    bars = []
    for name, b in before.items():
        a = after.get(name)
        d = report.domains.get(name) if report else None
        bars.append(
            plots.DomainBar(
                name=name,
                before=b.score,
                before_ci=b.ci95,
                after=a.score if a else None,
                after_ci=a.ci95 if a else None,
                delta=d.delta if d else None,
                delta_ci=d.delta_ci95 if d else None,
                significant=bool(d and d.p_holm < alpha),
            )
        )
    return bars


def _header(found: CycleInputs) -> list[str]:
    model = found.baseline.model if found.baseline else None
    suite = found.baseline.suite if found.baseline else None
    status = found.status
    lines = [f"<h1>Cycle {esc(found.name)} {badge(found.verdict)}</h1>"]
    meta = []
    if model is not None:
        adapters = f" + {', '.join(model.adapters)}" if model.adapters else ""
        meta.append(f"model <code>{esc(model.name)}</code>{esc(adapters)}")
    if suite is not None:
        meta.append(f"suite <code>{esc(suite.name)}</code> v{esc(suite.version)}")
    if status is not None:
        meta.append(f"phase {esc(status.phase.value)}")
        if status.start_time:
            meta.append(f"{esc(status.start_time)} → {esc(status.completion_time or '…')}")
    lines.append(f'<p class="meta">{" · ".join(meta)}</p>')
    if status is not None and status.message:
        lines.append(f"<p>{esc(status.message)}</p>")
    report = found.validation
    if report is not None:
        lines.append(
            f"<p>Overall {pct(report.baseline.overall)} → {pct(report.candidate.overall)} "
            f"(<b>{points(report.overall_delta)} points</b>, paired 95% interval "
            f"{interval(report.overall.delta_ci95, signed=True)}), exact McNemar "
            f"p={esc(format_p(report.mcnemar.p_value))}: {report.mcnemar.improved} items fixed, "
            f"{report.mcnemar.regressed} broken, on {report.items} paired items.</p>"
        )
        reasons = "".join(f"<li>{esc(r)}</li>" for r in report.reasons)
        lines.append(f"<h2>Verdict: {esc(report.verdict)}</h2><ul>{reasons}</ul>")
    return lines


def _domains(
    found: CycleInputs, bars: list[plots.DomainBar], out: Path, made: list[Path]
) -> list[str]:
    if not bars:
        return []
    report = found.validation
    trained = set(found.plan.priority_domains) if found.plan else set()
    section = ["<h2>Per-domain scores</h2>"]
    made.append(plots.domain_scores(bars, out / "domains.png"))
    section.append(figure(made[-1], "Score per domain before and after, 95% intervals"))
    if report is not None:
        made.append(plots.domain_deltas(bars, out / "deltas.png", report.gates.max_regression))
        section.append(figure(made[-1], "Change per domain, paired bootstrap 95% intervals"))
    rows, classes = [], []
    for bar in bars:
        d = report.domains.get(bar.name) if report else None
        flag = ""
        css = ""
        if report and bar.name in report.regressions:
            flag, css = "regression", "bad"
        elif report and bar.name in report.unconfirmed_drops:
            flag, css = "drop, not significant", "warn"
        elif d is not None and bar.significant and d.delta > 0:
            flag, css = "significant gain", "good"
        rows.append(
            [
                bar.name + (" *" if bar.name in trained else ""),
                f"{pct(bar.before)} {interval(bar.before_ci)}",
                f"{pct(bar.after)} {interval(bar.after_ci)}" if bar.after is not None else "–",
                f"{points(bar.delta)} {interval(bar.delta_ci, signed=True)}" if d else "–",
                format_p(d.p_holm) if d else "–",
                d.n if d else "",
                flag,
            ]
        )
        classes.append(css)
    section.append(
        table(
            ["domain", "before", "after", "change (points)", "p (Holm)", "n", ""],
            rows,
            numeric=(1, 2, 3, 4, 5),
            classes=classes,
        )
    )
    if trained:
        section.append('<p class="muted">* trained this cycle</p>')
    if found.plan is not None and found.plan.excluded:
        rows = [[e.name, pct(e.score), e.reason] for e in found.plan.excluded]
        section.append("<h3>Not trained</h3>" + table(["domain", "score", "why"], rows))
    split = found.plan.split if found.plan is not None else None
    if split is not None and split.fallback_domains:
        # The plan read the gate's items for these domains (and trains none of them).
        section.append(
            f"<p><strong>Analysed on test items, not trained:</strong> {esc(split.note)}</p>"
        )
    return section


def _item_rows(ids: list[str], found: CycleInputs) -> list[list[Any]]:
    before: dict[str, ItemResult] = {
        i.id: i for i in (found.baseline.items if found.baseline else [])
    }
    after: dict[str, ItemResult] = {
        i.id: i for i in (found.candidate.items if found.candidate else [])
    }
    rows = []
    for item_id in ids[:ITEMS_SHOWN]:
        b, a = before.get(item_id), after.get(item_id)
        rows.append(
            [
                item_id,
                b.domain if b else "",
                b.question if b else "",
                b.reference if b else "",
                b.response if b else "",
                a.response if a else "",
            ]
        )
    return rows


def _flips(found: CycleInputs, out: Path, made: list[Path]) -> list[str]:
    report = found.validation
    if report is None:
        return []
    counts = {n: (len(d.improved_items), len(d.regressed_items)) for n, d in report.domains.items()}
    section = ["<h2>Items fixed and broken</h2>"]
    made.append(plots.flips(counts, out / "flips.png"))
    section.append(figure(made[-1], "Items fixed and broken per domain"))
    headers = ["item", "domain", "question", "reference", "baseline answer", "candidate answer"]
    for title, ids in (("fixed", report.improved_items), ("broken", report.regressed_items)):
        more = f" (first {ITEMS_SHOWN})" if len(ids) > ITEMS_SHOWN else ""
        section.append(
            f"<details{' open' if title == 'broken' else ''}><summary>{len(ids)} items {title}{more}"
            f"</summary>{table(headers, _item_rows(ids, found))}</details>"
        )
    return section


def _training(found: CycleInputs, out: Path, made: list[Path]) -> list[str]:
    if not found.adapters:
        return []
    section = ["<h2>Training</h2>"]
    curves = {a.record.domain: a.record.loss_curve for a in found.adapters if a.record.loss_curve}
    if curves:
        made.append(plots.loss_curves(curves, out / "loss.png"))
        section.append(figure(made[-1], "Training loss per adapter"))
    rows = [
        [
            a.record.domain,
            a.record.steps
            if a.record.config.passes is None
            else f"{a.record.steps} ({a.record.config.passes:g} passes)",
            a.record.examples.used,
            a.record.examples.synthesized,
            f"{a.record.config.learning_rate:g}",
            f"{a.record.final_loss:.4f}",
            f"{a.record.seconds_per_step:.2f}",
            f"{a.record.peak_memory_mb:.0f}",
        ]
        for a in found.adapters
    ]
    section.append(
        table(
            [
                "adapter",
                "steps",
                "examples",
                "synthesised",
                "lr",
                "final loss",
                "s/step",
                "peak MiB",
            ],
            rows,
            numeric=(1, 2, 3, 4, 5, 6, 7),
        )
    )
    for adapter in found.adapters:
        card = adapter.card
        if card is None:
            continue
        parts = [
            table(["source", "lines"], sorted(card.by_source.items()), numeric=(1,)),
            table(["capability", "lines"], sorted(card.by_capability.items()), numeric=(1,)),
            table(["domain", "lines"], sorted(card.by_domain.items()), numeric=(1,)),
        ]
        examples = [
            [e.source, e.capability or "", e.question, e.answer] for e in card.examples[:20]
        ]
        dropped = [[d.source, d.question, d.reason] for d in card.dropped[:20]]
        section.append(
            f"<details><summary>Data card of {esc(card.domain)}: {card.total} lines, seed "
            f"{card.seed}</summary>{''.join(parts)}"
            + (table(["source", "capability", "question", "answer"], examples) if examples else "")
            + (
                f"<p>{len(card.dropped)} lines left out:</p>"
                + table(["source", "question", "why"], dropped)
                if dropped
                else ""
            )
            + "</details>"
        )
    merge = found.merge
    if merge is not None:
        section.append(
            f"<h3>Merge: {esc(merge.combination)}</h3><p>density {merge.config.density:g}, "
            f"seed {merge.config.seed}, rank {merge.rank}, {merge.seconds:.1f} s</p>"
        )
        rows = [[s.domain, s.rank, f"{s.alpha:g}", s.path] for s in merge.sources]
        section.append(table(["adapter", "rank", "alpha", "folder"], rows, numeric=(1, 2)))
    section += _combination(found)
    return section


def _retention(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"


def _combination(found: CycleInputs) -> list[str]:
    """Every candidate combination on the dev items: retention per trained domain, the choice."""
    report = found.combination
    if report is None or not report.candidates:
        return []
    trained = sorted(report.candidates[0].trained)
    met = {True: "reaches", False: "misses", None: "cannot be measured against"}[report.target_met]
    section = [
        f"<h3>Combination: {esc(report.chosen)}</h3><p>Scored on the suite's dev items only "
        f"(the gate above reads the test items). Retention R = (combined − base) / (alone − "
        f"base): the share of each adapter's own gain that the combination kept; undefined when "
        f"the adapter alone did not beat the base. The choice {met} the target "
        f"{report.target:.2f}. Rule: {esc(report.rule)}.</p>"
    ]
    first = report.candidates[0].trained
    rows = [[d, pct(first[d].base), pct(first[d].alone), first[d].items] for d in trained]
    section.append(
        table(["trained domain", "base", "adapter alone", "dev items"], rows, numeric=(1, 2, 3))
    )
    rows, classes = [], []
    for c in report.candidates:
        worst = c.worst_untrained_change
        rows.append(
            [c.rank, c.name + (" (chosen)" if c.name == report.chosen else "")]
            + [_retention(c.trained[d].retention) for d in trained]
            + [
                _retention(c.min_retention),
                points(c.mean_gain),
                "–" if worst is None else points(worst),
                f"{c.tokens_per_second:.1f}",
                f"{c.seconds:.0f} s",
            ]
        )
        classes.append("good" if c.target_met else ("bad" if c.target_met is False else ""))
    headers = ["#", "candidate", *(f"R {d}" for d in trained)]
    headers += ["min R", "mean gain", "worst untrained", "tokens/s", "time"]
    section.append(table(headers, rows, numeric=tuple(range(2, len(headers))), classes=classes))
    for c in report.candidates:
        if c.routing is not None:
            own = ", ".join(f"{esc(d)} {pct(v)}" for d, v in c.routing.own.items())
            stray = ", ".join(f"{esc(d)} {pct(v)}" for d, v in c.routing.stray.items())
            section.append(
                f"<p>{esc(c.name)} (routed adapters, docs/routing.md): dev items that went "
                f"through their own domain's route: {own or 'none'}; untrained domains' dev "
                f"items that went through a route: {stray or 'none'}.</p>"
            )
    return section


def _gates(report: ValidationReport) -> list[str]:
    section = ["<h2>Power and gates</h2>"]
    power = report.power
    mde = "none" if power.mde is None else f"{power.mde:.4f}"
    floor = "none" if power.floor is None else f"{power.floor:.4f}"
    section.append(
        table(
            ["", "value"],
            [
                ["paired items", power.n],
                ["items that changed (discordance)", f"{power.discordance:.3f}"],
                [
                    "minimum detectable effect",
                    f"{mde} at {power.power:.0%} power, α={power.alpha:g}",
                ],
                ["best case (nothing broken)", floor],
                [
                    "target improvement",
                    f"{power.target:.4f} ({'detectable' if power.adequate else 'not detectable'})",
                ],
                ["fewest significant flips", power.min_significant_items],
                [
                    "method",
                    "exact McNemar power"
                    if power.method == "exact"
                    else "Connor (1987) normal approximation",
                ],
            ],
        )
    )
    perf = report.performance
    if perf is not None:
        section.append(
            table(
                ["", "baseline", "candidate", "change"],
                [
                    [
                        "tokens/s",
                        f"{perf.baseline_tokens_per_second:.1f}",
                        f"{perf.candidate_tokens_per_second:.1f}",
                        f"{-perf.slowdown:+.1%}",
                    ],
                    [
                        "peak memory MiB",
                        f"{perf.baseline_peak_memory_mib:.0f}",
                        f"{perf.candidate_peak_memory_mib:.0f}",
                        f"{perf.memory_increase:+.1%}",
                    ],
                ],
                numeric=(1, 2, 3),
            )
        )
    if report.lm_eval:
        rows = [
            [
                task,
                f"{t.baseline:.4f}",
                f"{t.candidate:.4f}",
                f"{t.delta:+.4f}",
                "–" if t.p_value is None else format_p(t.p_value),
                "pass" if t.passed else "FAIL",
            ]
            for task, t in report.lm_eval.items()
        ]
        section.append("<h3>lm-eval tasks</h3>")
        section.append(
            table(
                ["task", "baseline", "candidate", "change", "p", "gate"], rows, numeric=(1, 2, 3, 4)
            )
        )
    ref = report.reference
    if ref is not None:
        section.append(
            f"<h3>Against {esc(ref.name)}</h3><p>overall {points(ref.overall.delta)} points "
            f"{interval(ref.overall.delta_ci95, signed=True)}, McNemar p={esc(format_p(ref.mcnemar.p_value))}"
            f"{'; significantly worse' if ref.worse_overall else ''}</p>"
        )
        rows = [
            [n, f"{points(d.delta)} {interval(d.delta_ci95, signed=True)}", format_p(d.p_holm)]
            for n, d in ref.domains.items()
        ]
        section.append(table(["domain", "change vs reference", "p (Holm)"], rows, numeric=(1, 2)))
    return section


def render_cycle(found: CycleInputs, out: Path) -> BuiltReport:
    """Write `index.html` and its PNGs into `out` for the cycle `found`."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    bars = _bars(found)
    body = _header(found)
    body += _domains(found, bars, out, made)
    body += _flips(found, out, made)
    body += _training(found, out, made)
    if found.validation is not None:
        body += _gates(found.validation)
    body.append(
        f'<p class="muted">Artifacts: <code>{esc(found.directory)}</code>. Written by '
        "<code>kaizen report</code>.</p>"
    )
    html = out / INDEX
    html.write_text(page(f"Kaizen cycle {found.name}", body), encoding="utf-8")
    return BuiltReport(html=html, plots=made)


def build_cycle_report(directory: str | Path, out: str | Path | None = None) -> BuiltReport:
    """Read the cycle in `directory` and write its report into `out` (default `<directory>/report`)."""
    found = read_cycle(directory)
    return render_cycle(found, Path(out) if out is not None else Path(directory) / "report")
