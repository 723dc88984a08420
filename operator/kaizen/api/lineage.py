"""`lineage.json`: the whole history of an `ImprovementChain`, one entry per finished cycle.

The chain's status keeps the latest entries; this file keeps them all, so deleting old cycles
(history limits) never loses a version. `kaizen run` writes it in the chain's artifact folder
(`<root>/<namespace>/<chain>/lineage.json`); on a cluster the operator keeps it in the
ConfigMap `<chain>-lineage` (key `lineage.json`). Registered in `kaizen.api.artifacts.ARTIFACTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from kaizen.api.artifacts_base import VERSION_KEY, Artifact, Record, optional_key
from kaizen.api.chain import ChainCycleRecord


class VersionScores(Record):
    """Headline scores of one model version."""

    overall: float
    """Micro-averaged score over all items (0–1)."""
    domains: dict[str, float]
    """Score per domain (0–1)."""
    test: float | None = optional_key()
    """Overall score on the suite's test items, as the validation gate measured it (held out
    from training and from every choice); absent when the cycle was not validated."""


class LineageEntry(Record):
    """One finished cycle and the model version it left (the status's `lineage[]`, snake_case)."""

    cycle: str
    """The cycle's name."""
    index: int
    """Its number in the chain (1 for the first)."""
    from_version: int
    """The model version it started from (0: the template's model and adapters)."""
    version: int
    """The model version after it (`from_version + 1` when it promoted)."""
    phase: str
    """`Succeeded` or `Failed`."""
    verdict: str | None = optional_key()
    """The validation verdict, when the cycle got that far."""
    reason: str
    """Outcome: `Promoted`, `Rejected`, `NothingToImprove`, or the failure reason."""
    promoted: bool
    """Whether the candidate became the new version."""
    adapters: list[str]
    """The adapter stack of the version after the cycle."""
    baseline: VersionScores | None = optional_key()
    """Scores of the version the cycle started from."""
    candidate: VersionScores | None = optional_key()
    """Scores of the candidate, on the same items."""
    overall_delta: float | None = optional_key()
    """Candidate minus baseline overall score."""
    p_value: float | None = optional_key()
    """p-value of the paired test of the overall change."""
    start_time: str | None = optional_key()
    """When the cycle started (RFC 3339)."""
    completion_time: str | None = optional_key()
    """When the cycle ended (RFC 3339)."""
    message: str | None = optional_key()
    """The cycle's last message."""
    chain_generation: int | None = optional_key()
    """The chain's generation when it created the cycle."""
    report_path: str | None = optional_key()
    """The cycle's HTML report (`index.html`), when it has one."""
    trained: list[str] | None = optional_key()
    """The domains the cycle trained an adapter for; absent when none (or not recorded)."""

    @classmethod
    def from_record(cls, record: ChainCycleRecord) -> LineageEntry:
        raw = record.model_dump(exclude_none=True)
        raw.pop("weak", None)  # what the chain decides by, not part of the version's history
        if not raw.get("trained"):
            raw.pop("trained", None)
        return cls.model_validate(raw)

    def to_record(self) -> ChainCycleRecord:
        return ChainCycleRecord.model_validate(self.model_dump(exclude_none=True))


def _lineage_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A lineage.json of version 1 as version 2: its entries have no test-item scores."""
    return {**raw, VERSION_KEY: 2}


class ChainLineage(Artifact):
    """`lineage.json`: every cycle a chain ran, oldest first, and where the model stands."""

    FILE_NAME: ClassVar[str] = "lineage.json"
    KIND: ClassVar[str] = "chain lineage"

    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _lineage_v1}

    schema_version: Literal[2] = Field(default=2, alias="schema")
    """Layout version of this file."""
    chain: str
    """The chain's name."""
    namespace: str
    """The chain's namespace."""
    model: str
    """The base model (`spec.template.spec.model.name`)."""
    base_adapters: list[str]
    """The adapters version 0 already had (`spec.template.spec.model.adapters`)."""
    suite: str
    """The evaluation suite every cycle used."""
    version: int
    """The current model version."""
    adapters: list[str]
    """The current version's adapter stack."""
    entries: list[LineageEntry]
    """One entry per finished cycle, oldest first."""
    updated: str
    """When the file was written (RFC 3339)."""

    def versions(self) -> list[tuple[int, str | None, float | None]]:
        """(version, cycle that made it or None for version 0, its overall score), in order."""
        found: list[tuple[int, str | None, float | None]] = []
        for entry in self.entries:
            if not found and entry.baseline is not None:
                found.append((0, None, entry.baseline.overall))
            if entry.promoted:
                found.append(
                    (
                        entry.version,
                        entry.cycle,
                        entry.candidate.overall if entry.candidate else None,
                    )
                )
        return found
