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
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, get_args

from kaizen.api.artifacts import FailureKind, ImprovementPlan, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import PlanDigest, StepSummary, file_digest
from kaizen.evaluator.evaluate import read_results
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


def build_plan(results: dict[str, Any], *, threshold: float, max_domains: int) -> dict[str, Any]:
    """The improvement plan for `results` (a results.json dict), in the layout of plan.json."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigurationError(f"threshold must be between 0 and 1, got {threshold}")
    if max_domains < 1:
        raise ConfigurationError(f"max domains must be at least 1, got {max_domains}")
    items = results["items"]
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
        domains.append(
            {
                "name": name,
                "score": round(summary["score"], 4),
                "n": summary["n"],
                "below_threshold": summary["score"] < threshold,
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
            }
        )
    # Weakest first; ties by name, so the same results always give the same plan.
    domains.sort(key=lambda d: (d["score"], d["name"]))
    priority = [d for d in domains if d["below_threshold"]][:max_domains]
    capability_scores = {
        name: round(c["score"], 4) for name, c in results.get("capabilities", {}).items()
    }
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
        "weakest_domains": _weakest(results.get("domains", {})),
        "weakest_capabilities": _weakest(results.get("capabilities", {})),
        "knowledge_vs_reasoning": _knowledge_vs_reasoning(items, failures, domains),
        "failures": failures,
        "excluded": excluded,
    }


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
) -> StepSummary:
    """The whole analyze step for `run_step`: read results, plan, write plan.json, track, summarise."""
    results = read_results(baseline).to_dict()
    plan = ImprovementPlan.model_validate(
        build_plan(results, threshold=threshold, max_domains=max_domains)
        | {"baseline": str(baseline)}
    )
    plan_path = out / PLAN_FILE
    write_artifact(plan_path, plan)
    with tracking.run(
        job_type="analyze",
        name=step,
        config={"baseline": str(baseline), "threshold": threshold, "max_domains": max_domains},
        directory=out,
    ) as tracker:
        metrics = {f"failures/{kind}": count for kind, count in plan.failure_kinds.items()}
        metrics["priority_domains"] = len(plan.priority_domains)
        tracker.log(metrics)
        tracker.summary({"priority_domains": ",".join(plan.priority_domains) or "-"})
        columns = ["domain", "score", "hint", "below_threshold", "failed"]
        rows = [
            [d.name, d.score, d.hint, d.below_threshold, len(d.failed_items)] for d in plan.domains
        ]
        tracker.table("domains", columns, rows)
        tracker.artifact(artifact_name(tracking.cycle, step, "plan"), "plan", [plan_path])
    priority = plan.priority_domains
    message = (
        f"train {', '.join(priority)} (below {threshold})"
        if priority
        else f"no domain below {threshold}: nothing to train"
    )
    return StepSummary(
        step=step,
        ok=True,
        message=message,
        plan=PlanDigest(
            priority_domains=priority,
            targeted_capabilities=plan.targeted_capabilities,
            failure_kinds=plan.failure_kinds,
            plan_path=str(plan_path),
        ),
        digest=file_digest(plan_path),
    )
