"""Retention and the choice rule of the combine step (pure: scores in, ranking out)."""

from __future__ import annotations

import pytest

from kaizen.evaluator.retention import drop_p, mean_scores, measure, rank, retention
from kaizen.evaluator.stats import sign_test_worse


@pytest.mark.parametrize(
    ("base", "alone", "combined", "expected"),
    [
        (0.0, 0.8, 0.8, 1.0),  # kept everything
        (0.0, 0.8, 0.4, 0.5),
        (0.2, 0.6, 0.2, 0.0),  # kept nothing
        (0.2, 0.6, 0.1, -0.25),  # worse than the base
        (0.0, 0.5, 0.75, 1.5),  # more than the adapter alone: other domains' data helped
        (0.5, 0.5, 0.9, None),  # the adapter alone gained nothing: nothing to retain
        (0.6, 0.4, 0.6, None),  # ... or lost: still undefined, not negative
    ],
)
def test_retention_is_the_share_of_the_adapters_own_gain(
    base: float, alone: float, combined: float, expected: float | None
) -> None:
    assert retention(base, alone, combined) == (
        None if expected is None else pytest.approx(expected)
    )


BASE = {"zep": (0.0, 5), "mer": (0.2, 5), "geo": (0.6, 5)}
ALONE = {"zep": 0.8, "mer": 0.6}


def _candidate(name: str, order: int, zep: float, mer: float, geo: float = 0.6):  # type: ignore[no-untyped-def]
    scores = {"zep": (zep, 5), "mer": (mer, 5), "geo": (geo, 5)}
    return measure(name, order, scores, BASE, ALONE)


def test_a_candidate_reports_retention_per_trained_domain_and_change_elsewhere() -> None:
    c = _candidate("ties", 0, zep=0.4, mer=0.6, geo=0.4)
    assert c.retentions == {"mer": pytest.approx(1.0), "zep": pytest.approx(0.5)}
    assert c.min_retention == pytest.approx(0.5)
    assert c.untrained_change == {"geo": pytest.approx(-0.2)}
    assert c.mean_gain == pytest.approx((0.4 + 0.4) / 2)
    assert c.target_met(0.9) is False and c.target_met(0.5) is True


def test_the_worst_domain_decides_before_the_mean_gain() -> None:
    # `lopsided` gains more on average but keeps only half of zephyria's gain.
    lopsided = _candidate("lopsided", 0, zep=0.4, mer=1.0)
    even = _candidate("even", 1, zep=0.72, mer=0.56)
    assert lopsided.mean_gain > even.mean_gain
    assert [c.name for c in rank([lopsided, even])] == ["even", "lopsided"]


def test_ties_fall_to_mean_gain_then_untrained_change_then_listed_order() -> None:
    # Both keep 100% of zephyria (the worst domain), one gains more on meridian.
    a = _candidate("a", 0, zep=0.8, mer=0.7)
    b = _candidate("b", 1, zep=0.8, mer=0.9)
    assert [c.name for c in rank([a, b])] == ["b", "a"]
    # Same retention and gain: the one that hurts the untrained domain less wins.
    hurt = _candidate("hurt", 0, zep=0.8, mer=0.6, geo=0.4)
    kind = _candidate("kind", 1, zep=0.8, mer=0.6, geo=0.6)
    assert [c.name for c in rank([hurt, kind])] == ["kind", "hurt"]
    # A full tie: the first listed in merge.candidates.
    first = _candidate("first", 0, zep=0.8, mer=0.6)
    second = _candidate("second", 1, zep=0.8, mer=0.6)
    assert [c.name for c in rank([second, first])] == ["first", "second"]


def test_undefined_retention_never_beats_a_measured_one() -> None:
    alone = {"zep": 0.0}  # the adapter alone did not beat the base (0.0)
    undefined = measure("u", 0, {"zep": (0.9, 5), "geo": (0.6, 5)}, BASE, alone)
    assert undefined.min_retention is None and undefined.target_met(0.9) is None
    measured = _candidate("m", 1, zep=0.1, mer=0.2)
    assert measured.min_retention is not None and measured.min_retention < 0.5
    assert [c.name for c in rank([undefined, measured])] == ["m", "u"]


def test_grid_points_compete_like_any_candidate() -> None:
    """`merge.search`'s points are candidates like the methods: the one keeping more of the
    worst domain's gain wins; in a full tie the plain merge, listed before its points, wins."""
    plain = _candidate("ties", 0, zep=0.6, mer=0.6)
    weighted = _candidate("ties-wn", 1, zep=0.8, mer=0.6)
    unpruned = _candidate("ties-d1", 2, zep=0.6, mer=0.6)
    assert [c.name for c in rank([unpruned, plain, weighted])] == ["ties-wn", "ties", "ties-d1"]


def test_the_message_names_the_best_runners_up_and_counts_the_rest() -> None:
    from kaizen.evaluator.combine import _message

    ranked = rank([_candidate(f"c{i}", i, zep=0.8 - 0.05 * i, mer=0.6) for i in range(9)])
    message = _message(ranked, 0.9)
    assert message.startswith("chose c0: min retention 1.00 reaches the target 0.90 (others: c1")
    assert "c5 0.69" in message and "c6" not in message
    assert message.endswith(", 3 more in combination.json)")


def test_with_a_tolerance_a_candidate_that_wrecks_an_untrained_domain_ranks_last() -> None:
    # `copy` keeps all of zephyria's gain by answering everything its way: geography falls
    # from 0.6 to 0.0. `routed` keeps less of the gain and leaves geography alone.
    copy = _candidate("copy", 0, zep=0.8, mer=0.6, geo=0.0)
    routed = _candidate("routed", 1, zep=0.4, mer=0.6, geo=0.6)
    assert [c.name for c in rank([copy, routed])] == ["copy", "routed"]  # retention alone
    ranked = rank([copy, routed], max_untrained_drop=0.15)
    assert [c.name for c in ranked] == ["routed", "copy"]
    assert copy.within(None) and not copy.within(0.15) and routed.within(0.15)
    # A drop of exactly the tolerance is within it; when none is within, retention decides.
    edge = _candidate("edge", 0, zep=0.8, mer=0.6, geo=0.45)
    assert edge.within(0.15)
    worse = _candidate("worse", 1, zep=0.5, mer=0.6, geo=0.1)
    assert [c.name for c in rank([worse, copy], max_untrained_drop=0.15)] == ["copy", "worse"]
    from kaizen.evaluator.combine import _message

    message = _message(ranked, 0.9, 0.15)
    assert message.startswith("chose routed: min retention 0.50 is BELOW the target 0.90; copy ")
    assert "costs geo 60.0 points on the dev items, more than 15" in message


def _records(domain: str, scores: list[float]) -> list[dict[str, object]]:
    return [{"id": f"{domain}-{i}", "domain": domain, "score": s} for i, s in enumerate(scores)]


def test_a_drop_beyond_the_tolerance_demotes_only_where_the_sign_test_finds_it() -> None:
    base = _records("zep", [0, 0, 0, 0, 0]) + _records("geo", [1, 1, 1, 1, 1, 1])
    # All six geography items lost: one-sided p = 1/64. Two of six lost: p = 1/4.
    wrecked = _records("zep", [1, 1, 1, 1, 0]) + _records("geo", [0, 0, 0, 0, 0, 0])
    nicked = _records("zep", [1, 1, 1, 1, 0]) + _records("geo", [1, 1, 1, 1, 0, 0])
    kept = _records("zep", [1, 1, 0, 0, 0]) + _records("geo", [1, 1, 1, 1, 1, 1])
    means = {"zep": (0.0, 5), "geo": (1.0, 6)}
    alone = {"zep": 0.8}

    def candidate(name: str, order: int, items: list[dict[str, object]]):  # type: ignore[no-untyped-def]
        return measure(name, order, mean_scores(items), means, alone, (base, items))

    copy, routed = candidate("copy", 0, wrecked), candidate("routed", 1, kept)
    assert copy.untrained_p == {"geo": pytest.approx(1 / 64)}
    assert [c.name for c in rank([copy, routed], 0.15, 0.05)] == ["routed", "copy"]
    # Two flipped items of six are no evidence of a drop: retention decides.
    copy = candidate("copy", 0, nicked)
    assert copy.untrained_p == {"geo": pytest.approx(0.25)}
    assert copy.within(0.15, 0.05) and not copy.within(0.15)
    assert [c.name for c in rank([copy, routed], 0.15, 0.05)] == ["copy", "routed"]
    # Only the items whose score changed count, paired by id.
    assert drop_p(base, _records("geo", [0, 0, 1, 1, 1, 1]), {"zep"}) == {"geo": 0.25}
    assert sign_test_worse(1, 3) == pytest.approx(5 / 16)


def test_the_message_names_the_untrained_domain_whose_drop_demoted_a_candidate() -> None:
    from kaizen.evaluator.combine import _message

    # Two untrained domains: art loses 2 of its 2 items (-100 points, p 1/4: no evidence),
    # geo 6 of its 10 (-60 points, p 1/64): geo's drop demotes copy, not art's larger one.
    base = _records("zep", [0] * 5) + _records("art", [1, 1]) + _records("geo", [1] * 10)
    lost = (
        _records("zep", [1] * 4 + [0])
        + _records("art", [0, 0])
        + _records("geo", [0] * 6 + [1] * 4)
    )
    kept = _records("zep", [1, 1, 0, 0, 0]) + _records("art", [1, 1]) + _records("geo", [1] * 10)
    means = {"zep": (0.0, 5), "art": (1.0, 2), "geo": (1.0, 10)}

    def candidate(name: str, order: int, items: list[dict[str, object]]):  # type: ignore[no-untyped-def]
        return measure(name, order, mean_scores(items), means, {"zep": 0.8}, (base, items))

    copy, routed = candidate("copy", 0, lost), candidate("routed", 1, kept)
    assert copy.worst_untrained_change == pytest.approx(-1.0)
    assert copy.excess(0.15, 0.05) == ["geo"] and copy.excess(0.15) == ["art", "geo"]
    ranked = rank([copy, routed], 0.15, 0.05)
    assert [c.name for c in ranked] == ["routed", "copy"]
    message = _message(ranked, 0.9, 0.15, 0.05)
    assert (
        "; copy retains more but costs geo 60.0 points on the dev items, more than 15 " in message
    )
    assert "(one-sided p 0.016 < 0.05)" in message


def test_on_equal_dev_figures_routed_is_chosen() -> None:
    # A passages-only domain: copy and routed each answer 3 of 6 of its dev items and leave
    # geography's dev items as they were; on the test items copy lost 4 of 22 geography items
    # that routing, which touches no prompt outside the domain's names, cannot have lost.
    copy = _candidate("copy", 0, zep=0.8, mer=0.6, geo=0.6)
    routed = _candidate("routed", 1, zep=0.8, mer=0.6, geo=0.6)
    assert copy.sort_key()[:3] == routed.sort_key()[:3]
    assert [c.name for c in rank([copy, routed])] == ["routed", "copy"]
    # Any difference on the dev items still decides first.
    better = _candidate("copy", 0, zep=0.8, mer=0.6, geo=0.8)
    assert [c.name for c in rank([better, routed])] == ["copy", "routed"]
