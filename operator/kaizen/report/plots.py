"""The report's pictures, drawn with matplotlib's Agg backend (no display) into PNG files.

Each function takes plain numbers (no artifact models), writes one PNG and returns its path,
so the same pictures go into the HTML report, beside it, and to W&B. matplotlib is imported
here only: the operator image (api, cycle, operator) never imports it (import-linter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

#: Colours: baseline grey, candidate blue, gains green, losses red, unconfirmed amber.
BASE, CAND, GAIN, LOSS, MAYBE = "#8c8c8c", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e"
DPI = 110


@dataclass(frozen=True)
class DomainBar:
    """One domain's scores before and after, with 95% intervals, and its paired delta."""

    name: str
    before: float
    before_ci: tuple[float, float]
    after: float | None
    after_ci: tuple[float, float] | None
    delta: float | None = None
    delta_ci: tuple[float, float] | None = None
    significant: bool = False


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def _errors(values: Sequence[float], intervals: Sequence[tuple[float, float]]) -> list[list[float]]:
    return [
        [max(0.0, v - low) for v, (low, _) in zip(values, intervals, strict=True)],
        [max(0.0, high - v) for v, (_, high) in zip(values, intervals, strict=True)],
    ]


def domain_scores(bars: Sequence[DomainBar], path: Path) -> Path:
    """Per-domain score before and after (horizontal bars, 95% intervals as whiskers)."""
    names = [b.name for b in bars]
    height = max(2.4, 0.45 * len(bars) + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    rows = list(range(len(bars)))
    width = 0.38
    before = [b.before for b in bars]
    ax.barh(
        [r - width / 2 for r in rows],
        before,
        height=width,
        color=BASE,
        label="baseline",
        xerr=_errors(before, [b.before_ci for b in bars]),
        capsize=3,
    )
    shown = [
        (b.name, b.after, b.after_ci)
        for b in bars
        if b.after is not None and b.after_ci is not None
    ]
    if shown:
        after = [score for _, score, _ in shown]
        ax.barh(
            [rows[names.index(name)] + width / 2 for name, _, _ in shown],
            after,
            height=width,
            color=CAND,
            label="candidate",
            xerr=_errors(after, [ci for _, _, ci in shown]),
            capsize=3,
        )
    ax.set_yticks(rows, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("score (95% interval)")
    ax.set_title("Per-domain score, before and after")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def domain_deltas(bars: Sequence[DomainBar], path: Path, max_regression: float) -> Path:
    """Per-domain change with its paired 95% interval; significant changes in colour."""
    shown = [
        (b.name, b.delta, b.delta_ci, b.significant)
        for b in bars
        if b.delta is not None and b.delta_ci is not None
    ]
    fig, ax = plt.subplots(figsize=(7.5, max(2.4, 0.45 * len(shown) + 1.2)))
    rows = list(range(len(shown)))
    deltas = [delta for _, delta, _, _ in shown]
    colours = []
    for _, delta, _, significant in shown:
        if significant:
            colours.append(GAIN if delta > 0 else LOSS)
        else:
            colours.append(MAYBE if delta < -max_regression else BASE)
    ax.errorbar(
        deltas,
        rows,
        xerr=_errors(deltas, [ci for _, _, ci, _ in shown]),
        fmt="none",
        ecolor="#444444",
        capsize=3,
    )
    ax.scatter(deltas, rows, c=colours, s=48, zorder=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(-max_regression, color=LOSS, linestyle="--", linewidth=0.8, label="maxRegression")
    ax.set_yticks(rows, [name for name, _, _, _ in shown])
    ax.invert_yaxis()
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("candidate - baseline (paired 95% interval; colour: significant after Holm)")
    ax.set_title("Per-domain change")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def flips(counts: Mapping[str, tuple[int, int]], path: Path) -> Path:
    """Items fixed (wrong -> right) and broken (right -> wrong) per domain."""
    names = list(counts)
    fig, ax = plt.subplots(figsize=(7.5, max(2.4, 0.4 * len(names) + 1.2)))
    rows = list(range(len(names)))
    fixed = [counts[n][0] for n in names]
    broken = [-counts[n][1] for n in names]
    ax.barh(rows, fixed, color=GAIN, label="fixed")
    ax.barh(rows, broken, color=LOSS, label="broken")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(rows, names)
    ax.invert_yaxis()
    ax.set_xlabel("items (broken to the left, fixed to the right)")
    ax.set_title("Items fixed and broken")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, path)


def loss_curves(curves: Mapping[str, Sequence[float]], path: Path) -> Path:
    """The training loss of every adapter, step by step."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=name, linewidth=1.4)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss per adapter")
    if curves:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def lineage(
    cycles: Sequence[int],
    series: Mapping[str, Sequence[float | None]],
    promoted: Sequence[int],
    path: Path,
    *,
    title: str,
    candidates: Sequence[float | None] = (),
) -> Path:
    """Scores of the current model version after each cycle; promotions marked.

    `series` maps a name (a domain, or `overall`) to one value per cycle (None: not measured);
    `candidates`, when given, adds each cycle's candidate overall score (crosses where it was
    not promoted).
    """
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for name, values in series.items():
        points = [(c, v) for c, v in zip(cycles, values, strict=True) if v is not None]
        if not points:
            continue
        style = {"linewidth": 2.6, "color": "black"} if name == "overall" else {"linewidth": 1.3}
        ax.plot(
            [c for c, _ in points],
            [v for _, v in points],
            marker="o",
            markersize=3,
            label=name,
            **style,
        )
    if candidates:
        rejected = [
            (c, v)
            for c, v in zip(cycles, candidates, strict=True)
            if v is not None and c not in promoted
        ]
        if rejected:
            ax.scatter(
                [c for c, _ in rejected],
                [v for _, v in rejected],
                marker="x",
                color=LOSS,
                s=40,
                zorder=4,
                label="candidate not promoted",
            )
    for index, cycle in enumerate(promoted):
        ax.axvline(
            cycle, color=GAIN, alpha=0.35, linewidth=2, label="promoted" if index == 0 else None
        )
    ax.set_xlabel("cycle")
    ax.set_ylabel("score")
    ax.set_ylim(-0.02, 1.02)
    if cycles:
        ax.set_xticks(list(cycles))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)
