"""The grid of merge settings `combination: auto` tries (pure: methods and settings in, points out)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kaizen.api.merge_grid import expand
from kaizen.api.spec import MergeSpec


def _table(points) -> list[tuple[str, str, float | None, str]]:  # type: ignore[no-untyped-def]
    return [(p.name, p.method, p.density, p.weight) for p in points]


def test_every_method_is_tried_at_every_point_that_can_differ() -> None:
    points = expand(
        ("ties", "cat", "dare_ties", "linear"), 0.5, densities=[1.0, 0.3], weights=["n"]
    )
    assert _table(points) == [
        ("ties", "ties", 0.5, "one"),
        ("ties-wn", "ties", 0.5, "n"),
        ("ties-d1", "ties", 1.0, "one"),
        ("ties-d1-wn", "ties", 1.0, "n"),
        ("ties-d0.3", "ties", 0.3, "one"),
        ("ties-d0.3-wn", "ties", 0.3, "n"),
        # cat and linear prune nothing: no density points.
        ("cat", "cat", None, "one"),
        ("cat-wn", "cat", None, "n"),
        # DARE at density 1.0 drops nothing: it would be ties-d1 again.
        ("dare_ties", "dare_ties", 0.5, "one"),
        ("dare_ties-wn", "dare_ties", 0.5, "n"),
        ("dare_ties-d0.3", "dare_ties", 0.3, "one"),
        ("dare_ties-d0.3-wn", "dare_ties", 0.3, "n"),
        ("linear", "linear", None, "one"),
        ("linear-wn", "linear", None, "n"),
    ]


def test_without_a_search_each_method_is_its_plain_point() -> None:
    assert _table(expand(("svd", "ties", "svd"), 0.7)) == [
        ("svd", "svd", None, "one"),
        ("ties", "ties", 0.7, "one"),
    ]
    # Repeats of the plain settings add nothing; a configured density of 1.0 is kept for DARE.
    assert _table(expand(("dare_linear",), 1.0, densities=[1.0], weights=["one"])) == [
        ("dare_linear", "dare_linear", 1.0, "one"),
    ]


@pytest.mark.parametrize(
    ("rule", "adapters", "weight"),
    [("one", 3, 1.0), ("n", 3, 3.0), ("n", 2, 2.0), ("1/n", 4, 0.25), ("1/n", 1, 1.0)],
)
def test_a_weight_rule_follows_the_number_of_adapters(
    rule: str, adapters: int, weight: float
) -> None:
    point = expand(("ties",), 0.5, weights=[rule])[-1]
    assert point.weight == rule and point.weight_value(adapters) == pytest.approx(weight)
    assert point.describe(adapters)["weight"] == pytest.approx(weight)


def test_the_names_mark_what_differs_from_the_plain_merge() -> None:
    names = [p.name for p in expand(("cat",), 0.5, weights=["n", "1/n"])]
    assert names == ["cat", "cat-wn", "cat-winvn"]
    # Names become folder names and NAME=DIR arguments.
    assert all("/" not in n and "=" not in n for n in names)


def test_bad_grids_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown weight rule\(s\) \['double'\]"):
        expand(("ties",), 0.5, weights=["double"])
    with pytest.raises(ValueError, match=r"densities must be in \(0, 1\], got \[1.5\]"):
        expand(("ties",), 0.5, densities=[1.5])


def test_the_spec_search_has_defaults_and_is_validated() -> None:
    merge = MergeSpec()
    assert (merge.search.densities, merge.search.weights) == ([1.0], ["1/n"])
    parsed = MergeSpec.model_validate({"search": {"densities": [], "weights": ["n", "1/n"]}})
    assert (parsed.search.densities, parsed.search.weights) == ([], ["n", "1/n"])
    for search, message in [
        ({"weights": ["n", "n"]}, "n listed more than once"),
        ({"weights": ["half"]}, "'one', 'n' or '1/n'"),
        ({"densities": [0.0]}, "greater than 0"),
        ({"densities": [0.5, 0.5]}, "0.5 listed more than once"),
        ({"density": 0.5}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError, match=message):
            MergeSpec.model_validate({"search": search})
