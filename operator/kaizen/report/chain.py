"""The HTML report of a chain: each domain's score across model versions, promotions marked.

Drawn from the chain's `lineage.json` (`kaizen.api.lineage.ChainLineage`): after each cycle the
chain's current version is the candidate if it was promoted, else the version the cycle
started from (its baseline, as that cycle measured it).
"""

from __future__ import annotations

from pathlib import Path

from kaizen.api.artifacts import ArtifactError, read_artifact
from kaizen.api.lineage import ChainLineage, LineageEntry, VersionScores
from kaizen.api.numbers import format_p
from kaizen.report import plots
from kaizen.report.cycle import INDEX, BuiltReport
from kaizen.report.inputs import ReportInputError
from kaizen.report.page import badge, esc, figure, page, pct, points, table


def current_scores(entry: LineageEntry) -> VersionScores | None:
    """The scores of the version the chain stood at after `entry`."""
    return entry.candidate if entry.promoted and entry.candidate else entry.baseline


def read_lineage(path: str | Path) -> ChainLineage:
    """`lineage.json` (or a chain folder holding one)."""
    target = Path(path)
    if target.is_dir():
        target = target / ChainLineage.FILE_NAME
    try:
        return read_artifact(target, ChainLineage)
    except ArtifactError as error:
        raise ReportInputError(str(error)) from None


def render_chain(lineage: ChainLineage, out: Path) -> BuiltReport:
    """Write the chain's `index.html` and its PNGs into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    entries = lineage.entries
    cycles = [e.index for e in entries]
    promoted = [e.index for e in entries if e.promoted]
    now = [current_scores(e) for e in entries]
    domains = sorted({d for s in now if s for d in s.domains})
    made: list[Path] = []
    body = [
        f"<h1>Chain {esc(lineage.chain)}</h1>",
        f'<p class="meta">namespace {esc(lineage.namespace)} · model <code>{esc(lineage.model)}</code>'
        f" · suite <code>{esc(lineage.suite)}</code> · version {lineage.version} after "
        f"{len(entries)} cycle(s), {len(promoted)} promoted · updated {esc(lineage.updated)}</p>",
    ]
    if entries:
        series: dict[str, list[float | None]] = {
            d: [s.domains.get(d) if s else None for s in now] for d in domains
        }
        series["overall"] = [s.overall if s else None for s in now]
        made.append(
            plots.lineage(
                cycles,
                series,
                promoted,
                out / "lineage.png",
                title="Score of the current version after each cycle",
                candidates=[e.candidate.overall if e.candidate else None for e in entries],
            )
        )
        body.append("<h2>Scores across versions</h2>")
        body.append(
            figure(made[-1], "Per-domain and overall score after each cycle; promotions in green")
        )
    rows = []
    for entry in entries:
        scores = current_scores(entry)
        rows.append(
            [
                entry.index,
                entry.cycle,
                _raw_badge(entry.verdict or entry.reason),
                f"v{entry.from_version} → v{entry.version}",
                pct(entry.baseline.overall if entry.baseline else None),
                pct(entry.candidate.overall if entry.candidate else None),
                points(entry.overall_delta),
                "–" if entry.p_value is None else format_p(entry.p_value),
                pct(scores.overall if scores else None),
                entry.completion_time or "",
            ]
        )
    body.append("<h2>Cycles</h2>")
    body.append(
        table(
            [
                "#",
                "cycle",
                "verdict",
                "version",
                "baseline",
                "candidate",
                "change",
                "p",
                "now",
                "finished",
            ],
            rows,
            numeric=(0, 4, 5, 6, 7, 8),
            classes=["good" if e.promoted else "" for e in entries],
        )
    )
    if domains:
        rows = [[d, *[pct(s.domains.get(d)) if s else "–" for s in now]] for d in domains]
        body.append("<h2>Per domain</h2>")
        body.append(
            table(
                ["domain", *[f"#{c}" for c in cycles]],
                rows,
                numeric=tuple(range(1, len(cycles) + 1)),
            )
        )
    body.append(
        f"<p>Current adapters: <code>{esc(', '.join(lineage.adapters) or 'none')}</code></p>"
    )
    html = out / INDEX
    html.write_text(page(f"Kaizen chain {lineage.chain}", body), encoding="utf-8")
    return BuiltReport(html=html, plots=made)


def _raw_badge(text: str | None) -> object:
    from kaizen.report.page import Raw

    return Raw(badge(text))


def build_chain_report(path: str | Path, out: str | Path | None = None) -> BuiltReport:
    """Read `lineage.json` (or the chain folder holding it) and write the chain's report into
    `out` (default: `report/` beside the lineage file)."""
    lineage = read_lineage(path)
    source = Path(path)
    folder = source if source.is_dir() else source.parent
    return render_chain(lineage, Path(out) if out is not None else folder / "report")
