"""Hand-made results.json dicts for analysis and comparison tests (the same layout evaluate writes).

`results` returns a complete file: `EvaluationResults` reads it back unchanged.
"""

from __future__ import annotations

from typing import Any

from kaizen.api.artifacts import EvaluationResults
from kaizen.evaluator.evaluate import CORRECT_AT, aggregate, overall_scores


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
        "schema": EvaluationResults.SCHEMA_VERSION,
        "suite": {"name": "hand", "version": "1", "digest": digest, "path": "suites/hand"},
        "selection": {"domains": [], "limit": None},
        "model": {"name": "m", "revision": None, "adapters": []},
        "generation": {
            "max_new_tokens": 32,
            "batch_size": 8,
            "batch_size_used": 8,
            "temperature": 0.0,
            "top_p": 1.0,
            "repetition_penalty": 1.0,
            "seed": 0,
            "stop_strings": [],
            "device": "cpu",
            "dtype": "float32",
        },
        "overall": overall_scores(records),
        "domains": domains,
        "capabilities": aggregate(records, "capability"),
        "performance": {
            "tokens_per_second": 50.0,
            "new_tokens": 5 * len(records),
            "wall_seconds": 0.1 * len(records),
            "generation_seconds": 0.1 * len(records),
            "loglik_seconds": 0.0,
            "latency_per_item_seconds": 0.1,
            "peak_memory_mib": 100.0,
        },
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
