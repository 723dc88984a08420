"""Moving a chain on from a domain that did not pay (a pure part of the chain engine).

A cycle that promotes nothing leaves the version as it was; the next cycle plans the domains
tried since the last promotion after every other weak domain (`tried_since_promotion`, which
`next_cycle` adds to `analysis.deferDomains`), and a back-to-back chain stops (`Exhausted`)
once the next cycle could only repeat one (`exhausted`).
"""

from __future__ import annotations

from collections.abc import Sequence

from kaizen.api.chain import ChainCycleRecord, ImprovementChainStatus


def tried_since_promotion(lineage: Sequence[ChainCycleRecord]) -> list[str]:
    """The domains the cycles since the last promotion trained without being promoted, in
    the order they were tried: the next cycle plans them after every other weak domain."""
    tried: list[str] = []
    for record in reversed(lineage):
        if record.promoted:
            break
        tried[:0] = [d for d in record.trained if d not in tried]
    return tried


def exhausted(status: ImprovementChainStatus) -> bool:
    """Whether the next cycle could only repeat one since the last promotion: the last cycle,
    not promoted, left no domain below the threshold untried (the next one starts from the
    same version, so its analysis finds the same weak domains). For a record that does not
    list its weak domains: whether it trained nothing, or only domains tried before it."""
    if not status.lineage:
        return False
    last = status.lineage[-1]
    if last.promoted or last.phase != "Succeeded":
        return False
    if last.weak is not None:
        tried = tried_since_promotion(status.lineage)
        return all(domain in tried for domain in last.weak)
    if not last.trained:  # a record that does not say what it trained proves nothing
        return last.reason == "NothingToImprove"
    before = tried_since_promotion(status.lineage[:-1])
    return all(domain in before for domain in last.trained)


def exhausted_message(status: ImprovementChainStatus) -> str:
    last = status.lineage[-1] if status.lineage else None
    if last is None or not (last.trained or last.weak):
        return f"the last cycle had nothing to train from version {status.version}"
    return (
        f"every domain below the threshold was tried since version {status.version} "
        f"without a promotion ({', '.join(tried_since_promotion(status.lineage))})"
    )
