"""Hand-made results.json dicts for analysis and comparison tests (the same layout evaluate writes)."""

from __future__ import annotations

from typing import Any

from kaizen.evaluator.evaluate import CORRECT_AT, RESULTS_SCHEMA, aggregate, overall_scores


def record(
    item_id: str,
    domain: str,
    score: float,
    *,
    capability: str = "factual_recall",
    response: str | None = None,
    truncated: bool = False,
) -> dict[str, Any]:
    """One per-item record as `evaluate` writes it."""
    return {
        "id": item_id,
        "domain": domain,
        "capability": capability,
        "question": f"question {item_id}?",
        "reference": "ref",
        "scorer": "contains",
        "response": response
        if response is not None
        else ("ref" if score >= CORRECT_AT else "something else"),
        "extracted": "",
        "score": score,
        "correct": score >= CORRECT_AT,
        "new_tokens": 5,
        "truncated": truncated,
        "seconds": 0.1,
    }


def results(records: list[dict[str, Any]], digest: str = "sha256:abc") -> dict[str, Any]:
    """A results dict around `records`, with the aggregates `evaluate` computes."""
    domains = aggregate(records, "domain")
    return {
        "schema": RESULTS_SCHEMA,
        "suite": {"name": "hand", "version": "1", "digest": digest},
        "model": {"name": "m", "adapters": []},
        "overall": overall_scores(records),
        "domains": domains,
        "capabilities": aggregate(records, "capability"),
        "items": records,
    }


def domain_records(
    domain: str, scores: list[float], capabilities: list[str] | None = None
) -> list[dict[str, Any]]:
    """Records `<domain>-<i>` with the given scores (and capabilities)."""
    capabilities = capabilities or ["factual_recall"] * len(scores)
    return [
        record(f"{domain}-{i}", domain, s, capability=c)
        for i, (s, c) in enumerate(zip(scores, capabilities, strict=True))
    ]
