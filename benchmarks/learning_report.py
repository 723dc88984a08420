"""What `benchmarks/learning.py` reports over its runs: the churn of the other domains' items,
the items missed, and several runs' figures tallied, spread over seeds and compared paired by
seed (`--tally`, `--against`). Pure functions of the evaluation results and learning.json
reports, kept apart from the script that trains and evaluates."""

from __future__ import annotations

from typing import Any

from kaizen.api.artifacts import ItemResult
from kaizen.evaluator.stats import mcnemar_exact, paired_permutation_test


def churn(base: list[ItemResult], after: list[ItemResult]) -> dict[str, dict[str, Any]]:
    """Per domain other than Korrin, the items the base model answered and the adapter does
    not (`lost`), the reverse (`gained`), the net change and the exact McNemar p-value of the
    two counts: a domain's net change is the difference of two such counts, and at 48 items a
    domain it says whether a loss is more than the churn every update brings."""
    before = {item.id: item.correct for item in base}
    table: dict[str, dict[str, Any]] = {}
    for item in after:
        if item.domain == "korrin":
            continue
        if item.id not in before:
            raise ValueError(f"item {item.id} is not in the base model's evaluation")
        row = table.setdefault(item.domain, {"lost": 0, "gained": 0})
        row["lost"] += before[item.id] and not item.correct
        row["gained"] += item.correct and not before[item.id]
    for row in table.values():
        row["net"] = row["gained"] - row["lost"]
        row["p"] = mcnemar_exact(row["gained"], row["lost"])
    return table


def churn_lines(label: str, table: dict[str, dict[str, Any]]) -> list[str]:
    """The churn table as markdown: lost/gained per domain, the worst net and its p-value."""
    worst = min(table, key=lambda domain: table[domain]["net"])
    cells = [f"−{row['lost']} +{row['gained']}" for row in table.values()]
    return [
        "| items lost / gained | " + " | ".join(table) + " | worst net (p) |",
        "|---|" + "---|" * (len(table) + 1),
        f"| {label} | " + " | ".join(cells) + f" | {worst} {table[worst]['net']:+d} "
        f"(p = {table[worst]['p']:.2g}) |",
    ]


def missed(items: list[ItemResult], domain: str) -> list[dict[str, str]]:
    """`domain`'s items answered wrong: id, capability, question and the answer given."""
    return [
        {
            "id": item.id,
            "capability": item.capability,
            "question": item.question,
            "response": item.response,
        }
        for item in items
        if item.domain == domain and not item.correct
    ]


def tally(reports: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """Over several runs' learning.json reports: (item id, question, runs that missed it, runs
    that scored it) for every item missed at least once, the most missed first. A run scores
    an item once per adapter it evaluated (each variant, and routed)."""
    counts: dict[str, list[Any]] = {}
    runs = 0
    for report in reports:
        for misses in report.get("missed", {}).values():
            runs += 1
            for miss in misses:
                entry = counts.setdefault(miss["id"], [miss["question"], 0])
                entry[1] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return [(item, question, count, runs) for item, (question, count) in ranked]


#: The learning targets (docs/training-data.md), as fractions: (row of the table, least value).
TARGETS = (("paraphrases", 0.9), ("two facts", 0.6))


def spread(reports: list[dict[str, Any]]) -> list[str]:
    """Over several runs' learning.json reports: for each adapter and each target of
    `TARGETS`, its value in every run (in the order given), their mean and least value, and in
    how many runs it met the target. One paraphrase is 4.2 points of 24, and seeds move a few of
    them, so whether a setting meets a target is a question over its seeds."""
    values: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[str]] = {}
    for report in reports:
        seed = str(report.get("settings", {}).get("seed", "?"))
        for model, row in report.get("rows", {}).items():
            if model == "base model":
                continue
            seeds.setdefault(model, []).append(seed)
            for name, _ in TARGETS:
                values.setdefault(model, {}).setdefault(name, []).append(row[name])
    lines = []
    for model, by_name in values.items():
        parts = []
        for name, least in TARGETS:
            got = by_name[name]
            met = sum(1 for value in got if value >= least - 1e-9)
            parts.append(
                f"{name} {' '.join(f'{100 * v:.1f}' for v in got)}"
                f" (mean {100 * sum(got) / len(got):.1f}, least {100 * min(got):.1f},"
                f" ≥ {100 * least:.0f}% in {met} of {len(got)})"
            )
        lines.append(f"{model} over seeds {' '.join(seeds[model])}: {'; '.join(parts)}")
    return lines


#: The rows `compare` reads: Korrin's three kinds of items and the other domains pooled.
COMPARED = ("paraphrases", "two facts", "three facts", "others (pooled)")


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """Two settings paired by seed (each a list of learning.json reports, one a seed): for each
    adapter both evaluated and each row of `COMPARED`, the two means over the seeds both ran,
    each seed's difference, and the two-sided sign-flip p of the mean difference
    (`paired_permutation_test`, exact at these sizes). A seed moves a row by several items, so
    two settings differ only where the paired differences say so, not where two means do."""

    def by_seed(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {str(r.get("settings", {}).get("seed", "?")): r["rows"] for r in reports}

    first, second = by_seed(before), by_seed(after)
    seeds = [seed for seed in first if seed in second]
    if not seeds:
        raise ValueError("the two settings ran no seed in common")
    models = [
        model
        for model in first[seeds[0]]
        if model != "base model" and all(model in first[s] and model in second[s] for s in seeds)
    ]
    lines = []
    for model in models:
        for row in COMPARED:
            if not all(row in first[s][model] and row in second[s][model] for s in seeds):
                continue
            a = [100 * first[s][model][row] for s in seeds]
            b = [100 * second[s][model][row] for s in seeds]
            each = " ".join(f"{y - x:+.1f}" for x, y in zip(a, b, strict=True))
            lines.append(
                f"{model} {row} over seeds {' '.join(seeds)}: {sum(a) / len(a):.1f} -> "
                f"{sum(b) / len(b):.1f} ({(sum(b) - sum(a)) / len(a):+.1f}; by seed {each}; "
                f"sign-flip p {paired_permutation_test(a, b):.2f})"
            )
    return lines
