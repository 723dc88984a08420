"""The analyze step: turn baseline results into an improvement plan.

The plan names the weakest domains below a threshold (weakest first, at most K; one
adapter is trained per domain), the weakest domains and capabilities with their confidence
intervals, why each wrong answer failed (empty, refusal, repetition, truncated at
`max_new_tokens`, wrong format, wrong answer), whether each failure and each domain is a
matter of knowledge (a single fact is missing) or reasoning (facts known, combining them
fails), and a training recommendation per priority domain. Only trainable domains
are planned: lm-eval tasks (`lmeval:<task>`) are listed under `excluded` with the reason, so
a weak task never becomes a priority domain the trainer cannot train. It is pure:
`build_plan` takes the results dict and returns the plan dict, so it is tested on hand-made
results.

Every figure of the plan is made from the baseline's **dev** items (`kaizen.runtime.suites.split`):
the priority domains and their order, the failed items that steer synthesis, the targeted
capabilities, and the scores the planner derives each adapter's steps from. The test items
are the validation gate's; were they read here, the cycle would train toward the very items
that then judge it. A domain without dev items (a suite with `dev_fraction: 0`, results
written before the split) is analysed on its test items instead, and the plan says so
(`split.fallback_domains`, each domain's `split`, the step's message); it is never a priority
domain, since its adapter would be scored and chosen on dev items it does not have.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from kaizen.api.artifacts import FailureKind, ImprovementPlan, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import PlanDigest, StepSummary, file_digest
from kaizen.evaluator.evaluate import aggregate, read_results
from kaizen.runtime.tracking import TrackingOptions, artifact_name

PLAN_FILE = ImprovementPlan.FILE_NAME

#: Failure kinds, in the order they are tested: the first that applies names the failure.
FAILURE_KINDS: tuple[str, ...] = get_args(FailureKind)
#: Capabilities that need more than recalling one fact.
REASONING_CAPABILITIES = ("cross_referencing", "counterfactual", "multi_step")
#: Scorers that read an answer of a particular form (a number, a pattern): a response they
#: cannot extract anything from is in the wrong format rather than simply wrong.
FORMAT_SCORERS = ("numeric", "regex")
#: How many weakest domains and capabilities the plan lists.
WEAKEST = 3

_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) sorry|i (?:cannot|can't|can not|could not|couldn't)|i do(?:n't| not) (?:know|have)"
    r"|i(?:'m| am) (?:not sure|unable|not able)|as an ai|no (?:information|data) (?:about|on)"
    r"|(?:is|are|remains?) unknown|not (?:aware|familiar))\b",
    re.IGNORECASE,
)


def is_repetitive(text: str) -> bool:
    """True when the response loops: a word three times in a row, or a phrase three times.

    A phrase is a word pair with at least one word of four letters or more, so ordinary
    glue ("of the", "in a") repeated in a long sentence is not mistaken for a loop.
    """
    words = re.findall(r"\w+", text.lower())
    if any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2)):
        return True
    pairs = Counter(
        (a, b) for a, b in zip(words, words[1:], strict=False) if max(len(a), len(b)) >= 4
    )
    return bool(pairs) and max(pairs.values()) >= 3


def classify_failure(record: dict[str, Any]) -> str | None:
    """The failure kind of one result record, or None when it was answered correctly."""
    if record.get("correct"):
        return None
    response = str(record.get("response") or "")
    if not response.strip():
        return "empty"
    if _REFUSAL.search(response):
        return "refusal"
    if is_repetitive(response):
        return "repetition"
    if record.get("truncated"):
        return "truncated"
    if record.get("scorer") in FORMAT_SCORERS and not str(record.get("extracted") or "").strip():
        return "wrong_format"
    return "wrong_answer"


def failure_type(record: dict[str, Any]) -> str:
    """`knowledge` for a failed single-fact item, `reasoning` for a failed item that combines facts."""
    return "knowledge" if record["capability"] not in REASONING_CAPABILITIES else "reasoning"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def knowledge_or_reasoning(records: list[dict[str, Any]], threshold: float) -> str:
    """`knowledge` when single facts are missing, `reasoning` when facts are known but combining them fails.

    `none` when neither is below the threshold. A domain with no factual items and weak
    reasoning items is called `reasoning`.
    """
    factual = _mean([r["score"] for r in records if r["capability"] == "factual_recall"])
    reasoning = _mean([r["score"] for r in records if r["capability"] in REASONING_CAPABILITIES])
    if factual is not None and factual < threshold:
        return "knowledge"
    if reasoning is not None and reasoning < threshold:
        return "reasoning"
    return "none"


def _recommendation(domain: dict[str, Any], threshold: float) -> dict[str, Any]:
    hint = domain["hint"]
    weak_capabilities = [
        c
        for c, s in sorted(domain["capabilities"].items(), key=lambda kv: (kv[1], kv[0]))
        if s < threshold
    ]
    if hint == "reasoning":
        focus = weak_capabilities or list(REASONING_CAPABILITIES)
        advice = "The facts are known but combining them fails: favour examples that chain two facts or apply a premise."
    else:
        focus = ["factual_recall", *[c for c in weak_capabilities if c != "factual_recall"]]
        advice = "The facts themselves are missing: train on the domain's pool with several phrasings per fact."
    kinds = domain["failure_kinds"]
    if kinds.get("truncated", 0) + kinds.get("repetition", 0) > kinds.get("wrong_answer", 0):
        advice += " Many answers ramble past the token limit: train on short one-sentence answers."
    if kinds.get("wrong_format", 0) > kinds.get("wrong_answer", 0):
        advice += " Many answers are not in the expected form: train on answers that state the value plainly."
    return {
        "domain": domain["name"],
        "score": domain["score"],
        "gap": round(threshold - domain["score"], 4),
        "hint": hint,
        "focus_capabilities": focus,
        "failed_items": len(domain["failed_items"]),
        "advice": advice,
    }


def build_plan(
    results: dict[str, Any],
    *,
    threshold: float,
    max_domains: int,
    need_dev: bool = True,
    defer: Sequence[str] = (),
) -> dict[str, Any]:
    """The improvement plan for `results` (a results.json dict), in the layout of plan.json.

    With `need_dev` (a cycle's analyze step) a domain without dev items is never a priority
    domain: the cycle scores and chooses each adapter on its domain's dev items. Without it
    (the Python API's `FeedbackCollector`, which trains nothing itself) such a domain is
    planned on its test items like any other. The domains of `defer` (a chain's domains
    tried since its last promotion) come after every other domain below the threshold, so
    a cycle trains one of them only when nothing else is weak."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigurationError(f"threshold must be between 0 and 1, got {threshold}")
    if max_domains < 1:
        raise ConfigurationError(f"max domains must be at least 1, got {max_domains}")
    items, split = analysed_items(results["items"])
    failures = [
        {
            "id": r["id"],
            "domain": r["domain"],
            "capability": r["capability"],
            "kind": classify_failure(r),
            "type": failure_type(r),
        }
        for r in items
    ]
    failures = [f for f in failures if f["kind"] is not None]
    domains = []
    excluded = []
    for name, summary in results["domains"].items():
        records = [r for r in items if r["domain"] == name]
        if not trainable(summary, records):
            excluded.append(
                {
                    "name": name,
                    "score": round(summary["score"], 4),
                    "reason": UNTRAINABLE_REASON,
                }
            )
            continue
        capabilities: dict[str, list[float]] = {}
        for record in records:
            capabilities.setdefault(record["capability"], []).append(record["score"])
        score = sum(r["score"] for r in records) / len(records)
        domains.append(
            {
                "name": name,
                "score": round(score, 4),
                "n": len(records),
                "below_threshold": score < threshold,
                "hint": knowledge_or_reasoning(records, threshold),
                "capabilities": {
                    c: round(sum(s) / len(s), 4) for c, s in sorted(capabilities.items())
                },
                "failure_kinds": dict(
                    sorted(Counter(f["kind"] for f in failures if f["domain"] == name).items())
                ),
                "failed_items": [f["id"] for f in failures if f["domain"] == name],
                "factual_score": _rounded(
                    _mean([r["score"] for r in records if r["capability"] == "factual_recall"])
                ),
                "reasoning_score": _rounded(
                    _mean(
                        [r["score"] for r in records if r["capability"] in REASONING_CAPABILITIES]
                    )
                ),
                "failure_types": dict(
                    sorted(Counter(f["type"] for f in failures if f["domain"] == name).items())
                ),
                "split": "test" if name in split["fallback_domains"] else "dev",
            }
        )
    # Weakest first; ties by name, so the same results always give the same plan.
    domains.sort(key=lambda d: (d["score"], d["name"]))
    # In a cycle a domain analysed on its test items is never planned: its adapter would be
    # scored alone and chosen on the domain's dev items (score-<domain>, combine).
    plannable = [d for d in domains if d["split"] == "dev" or not need_dev]
    weak = [d for d in plannable if d["below_threshold"]]
    deferred = [d for d in weak if d["name"] in defer]
    priority = ([d for d in weak if d["name"] not in defer] + deferred)[:max_domains]
    by_capability = aggregate(items, "capability")
    capability_scores = {name: round(c["score"], 4) for name, c in by_capability.items()}
    targeted = [
        c
        for c, s in sorted(capability_scores.items(), key=lambda kv: (kv[1], kv[0]))
        if s < threshold
    ]
    return {
        "schema": ImprovementPlan.SCHEMA_VERSION,
        "suite": results["suite"],
        "model": results.get("model"),
        "threshold": threshold,
        "max_domains": max_domains,
        "priority_domains": [d["name"] for d in priority],
        "targeted_capabilities": targeted,
        "failure_kinds": dict(sorted(Counter(f["kind"] for f in failures).items())),
        "capabilities": capability_scores,
        "domains": domains,
        "recommendations": [_recommendation(d, threshold) for d in priority],
        "weakest_domains": _weakest(aggregate(items, "domain") | _untrainable(results)),
        "weakest_capabilities": _weakest(by_capability),
        "knowledge_vs_reasoning": _knowledge_vs_reasoning(items, failures, domains),
        "failures": failures,
        "excluded": excluded,
        "split": split,
        **({"deferred": sorted(set(defer))} if defer else {}),
    }


def analysed_items(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the records the plan reads, plan.json's `split`): each domain's dev items, or its
    test items when it has no dev items (an item without `split` is a test item)."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_domain.setdefault(record["domain"], []).append(record)
    read: list[dict[str, Any]] = []
    fallback: list[str] = []
    for domain, rows in by_domain.items():
        dev = [r for r in rows if r.get("split") == "dev"]
        if not dev:
            fallback.append(domain)
        read += dev or rows
    dev_items = sum(1 for r in read if r.get("split") == "dev")
    test_read = len(read) - dev_items
    unread = len(records) - len(read)
    if fallback:
        note = (
            f"{', '.join(sorted(fallback))} had no dev items and were analysed on their "
            f"{test_read} test items, which the validation gate also reads, and are not "
            "trained (an adapter is scored and chosen on its domain's dev items); give the "
            "suite dev items (dev.jsonl, or dev_fraction above 0 in suite.yaml)"
        )
    else:
        note = f"analysed on {dev_items} dev items; the gate's {unread} test items were not read"
    split = {
        "dev_items": dev_items,
        "test_items_read": test_read,
        "test_items_unread": unread,
        "fallback_domains": sorted(fallback),
        "note": note,
    }
    return read, split


def _untrainable(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The results' domains with no item records (lm-eval tasks), as they were summarised."""
    with_items = {r["domain"] for r in results["items"]}
    return {n: d for n, d in results.get("domains", {}).items() if n not in with_items}


#: Why a domain of the results is never a priority domain.
UNTRAINABLE_REASON = (
    "an lm-evaluation-harness task: measured for the report and the validation gates "
    "(spec.validation.lmEval), but no adapter can be trained for it (it has no training pool "
    "and no per-item records)"
)


def trainable(summary: dict[str, Any], records: list[dict[str, Any]]) -> bool:
    """True for a suite domain; false for an lm-eval task (`source: lm-eval`) or a domain with
    no item records, which the trainer has nothing to train on."""
    return summary.get("source") is None and bool(records)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _weakest(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The `WEAKEST` lowest-scoring groups (ties by name) with n and the 95% interval if known."""
    ranked = sorted(table.items(), key=lambda kv: (kv[1]["score"], kv[0]))[:WEAKEST]
    return [
        {"name": name, "score": round(row["score"], 4), "n": row.get("n"), "ci95": row.get("ci95")}
        for name, row in ranked
    ]


def _knowledge_vs_reasoning(
    items: list[dict[str, Any]], failures: list[dict[str, Any]], domains: list[dict[str, Any]]
) -> dict[str, Any]:
    """Suite-wide: single-fact vs fact-combining scores and failures, and the domains of each hint.

    `reasoning_failures_with_facts_known` counts failed reasoning items in domains whose own
    fact items were mostly right: the "facts known, combining them fails" pattern.
    """
    factual = [r["score"] for r in items if r["capability"] == "factual_recall"]
    reasoning = [r["score"] for r in items if r["capability"] in REASONING_CAPABILITIES]
    facts_known = {
        d["name"] for d in domains if d["factual_score"] is not None and d["factual_score"] >= 0.5
    }
    return {
        "factual_score": _rounded(_mean(factual)),
        "reasoning_score": _rounded(_mean(reasoning)),
        "knowledge_failures": sum(1 for f in failures if f["type"] == "knowledge"),
        "reasoning_failures": sum(1 for f in failures if f["type"] == "reasoning"),
        "reasoning_failures_with_facts_known": sum(
            1 for f in failures if f["type"] == "reasoning" and f["domain"] in facts_known
        ),
        "domains": {
            hint: sorted(d["name"] for d in domains if d["hint"] == hint)
            for hint in ("knowledge", "reasoning", "none")
        },
    }


def analyze_step(
    baseline: str | Path,
    out: Path,
    *,
    step: str,
    threshold: float,
    max_domains: int,
    tracking: TrackingOptions,
    defer: Sequence[str] = (),
) -> StepSummary:
    """The whole analyze step for `run_step`: read results, plan, write plan.json, track, summarise."""
    results = read_results(baseline).to_dict()
    plan = ImprovementPlan.model_validate(
        build_plan(results, threshold=threshold, max_domains=max_domains, defer=defer)
        | {"baseline": str(baseline)}
    )
    plan_path = out / PLAN_FILE
    write_artifact(plan_path, plan)
    with tracking.run(
        job_type="analyze",
        name=step,
        config={
            "baseline": str(baseline),
            "threshold": threshold,
            "max_domains": max_domains,
            "defer": list(defer),
        },
        directory=out,
    ) as tracker:
        metrics = {f"failures/{kind}": count for kind, count in plan.failure_kinds.items()}
        metrics["priority_domains"] = len(plan.priority_domains)
        metrics["items/dev"] = plan.split.dev_items if plan.split else 0
        metrics["items/test_read"] = plan.split.test_items_read if plan.split else 0
        tracker.log(metrics)
        tracker.summary({"priority_domains": ",".join(plan.priority_domains) or "-"})
        columns = ["domain", "score", "hint", "below_threshold", "failed", "split"]
        rows = [
            [d.name, d.score, d.hint, d.below_threshold, len(d.failed_items), d.split]
            for d in plan.domains
        ]
        tracker.table("domains", columns, rows)
        tracker.artifact(artifact_name(tracking.cycle, step, "plan"), "plan", [plan_path])
    priority = plan.priority_domains
    untrained = [d.name for d in plan.domains if d.below_threshold and d.split != "dev"]
    if priority:
        message = f"train {', '.join(priority)} (below {threshold} on their dev items)"
        passed = [
            d.name
            for d in plan.domains
            if d.name in defer and d.below_threshold and d.name not in priority
        ]
        again = [name for name in priority if name in defer]
        if passed:
            message += f"; {', '.join(passed)} deferred (tried since the last promotion)"
        if again:
            message += (
                f"; {', '.join(again)} again: no domain below the threshold is left untried "
                "since the last promotion"
            )
    elif untrained:
        message = f"nothing to train ({_scores(plan)})"
    else:
        message = f"no domain below {threshold} ({_scores(plan)}): nothing to train"
    assert plan.split is not None
    if plan.split.fallback_domains:
        fallback = plan.split.fallback_domains
        message += (
            f"; {', '.join(fallback)} had no dev items and were analysed on the gate's test items"
        )
        print(f"[analyze] {plan.split.note}", file=sys.stderr)
    if untrained:
        message += (
            f"; {', '.join(untrained)} below {threshold} but not trained: an adapter is scored "
            "and chosen on its domain's dev items (add them to dev.jsonl, or set dev_fraction "
            "above 0 in suite.yaml)"
        )
    scores = {d.name: d.score for d in plan.domains if d.name in priority}
    return StepSummary(
        step=step,
        ok=True,
        message=message,
        plan=PlanDigest(
            priority_domains=priority,
            targeted_capabilities=plan.targeted_capabilities,
            failure_kinds=plan.failure_kinds,
            priority_scores=[scores[name] for name in priority],
            fallback_domains=plan.split.fallback_domains,
            weak_domains=[d.name for d in plan.domains if d.below_threshold and d.split == "dev"],
            plan_path=str(plan_path),
        ),
        digest=file_digest(plan_path),
    )


def _scores(plan: ImprovementPlan) -> str:
    """Each domain's score and how many items it rests on ("pell 0.67 on 6 dev items"), so
    that a user sees when a score above the threshold is a handful of items."""
    return ", ".join(f"{d.name} {d.score:.2f} on {d.n} {d.split} items" for d in plan.domains)
