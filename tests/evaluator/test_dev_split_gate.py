"""The gate reads test items only; the choice of a combination reads dev items only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaizen.evaluator.gates import Gates
from kaizen.evaluator.validate import compare
from tests.evaluator.results_factory import record, results

PATHS = (Path("baseline.json"), Path("candidate.json"))


def _pair(dev_after: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """20 test items (5 fixed by the candidate) and 10 dev items scored `dev_after` after."""
    before, after = [], []
    for n in range(20):
        before.append(record(f"t{n}", "zep", 0.0) | {"split": "test"})
        after.append(record(f"t{n}", "zep", 1.0 if n < 5 else 0.0) | {"split": "test"})
    for n in range(10):
        before.append(record(f"d{n}", "zep", 0.0) | {"split": "dev"})
        after.append(record(f"d{n}", "zep", dev_after) | {"split": "dev"})
    return results(before), results(after)


def test_the_gate_never_reads_dev_items() -> None:
    gates = Gates(require_significance=False)
    reports = [compare(*_pair(dev_after), gates, PATHS) for dev_after in (0.0, 1.0)]
    # Whatever the candidate did on the dev items, the gate's figures are the same.
    assert reports[0]["items"] == reports[1]["items"] == 20
    for key in ("overall_delta", "verdict", "mcnemar", "domains", "improved_items"):
        assert reports[0][key] == reports[1][key], key
    assert reports[0]["overall_delta"] == 5 / 20
    assert all(i.startswith("t") for i in reports[0]["improved_items"])
