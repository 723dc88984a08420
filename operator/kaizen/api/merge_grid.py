"""The merge settings `combination: auto` tries: every merge method × density × weight.

Two settings of peft's `add_weighted_adapter` change a lot what a merge keeps of each
adapter (docs/ml-notes.md, "Combining the domain adapters"):

- the **density** of `ties` and `dare_*`: the share of each adapter's entries kept before
  they are combined (`merge.density`; 1.0 prunes nothing);
- each adapter's **weight**. `ties` averages the entries the adapters agree on, so where
  they overlap each adapter's own update is divided by the number that agree; weight n
  undoes that. `cat` and `svd` add the updates (weight 1: the sum; 1/n: their mean).

Under `auto` the merge step applies each method of `merge.candidates` at every point of the
grid `merge.density` + `merge.search.densities` × weight `one` + `merge.search.weights`, and
the combine step scores each point on the dev items like any other candidate. Points that
cannot differ from one already listed are left out: the densities of a method that prunes
nothing (`linear`, `cat`, `svd`), and density 1.0 for `dare_*`, which then drops nothing
and is `linear` / `ties` at density 1.0.

A point's name is its method, then `-d<density>` when the density is not `merge.density`,
then `-wn` (weight n) or `-winvn` (weight 1/n) when the weight is not 1: `ties`, `ties-d1`,
`ties-d1-wn`, `cat-winvn`. The plain method's point keeps the method's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Methods that prune each adapter to `density` before combining.
USES_DENSITY = ("ties", "dare_linear", "dare_ties")
#: Methods whose pruning is random (DARE): at density 1.0 they equal their plain method.
RANDOM_PRUNING = ("dare_linear", "dare_ties")
#: The weight rules (`kaizen.api.fields.WeightRule`) and their mark in a point's name.
WEIGHT_MARKS = {"one": "", "n": "-wn", "1/n": "-winvn"}


@dataclass(frozen=True)
class MergePoint:
    """One merge to make: a peft method, its density (None: it prunes nothing), a weight rule."""

    method: str
    density: float | None
    weight: str
    name: str

    def weight_value(self, adapters: int) -> float:
        """Each adapter's weight when `adapters` adapters are merged."""
        if adapters < 1:
            raise ValueError(f"adapters must be at least 1, got {adapters}")
        return {"one": 1.0, "n": float(adapters), "1/n": 1.0 / adapters}[self.weight]

    def describe(self, adapters: int) -> dict[str, Any]:
        """The point as merge.json and combination.json record it."""
        return {
            "name": self.name,
            "method": self.method,
            "density": self.density,
            "weight_rule": self.weight,
            "weight": round(self.weight_value(adapters), 6),
        }


def _density_mark(density: float) -> str:
    return f"-d{density:g}"


def expand(
    methods: Iterable[str],
    density: float,
    densities: Sequence[float] = (),
    weights: Sequence[str] = (),
) -> list[MergePoint]:
    """Every point of the grid, method by method in the order given; each method's first
    point is its plain one (`density`, weight one), named as the method.

    `densities` and `weights` are what is tried besides `density` and weight `one`; repeats
    and points equal to an earlier one are dropped (module docstring).
    """
    unknown = sorted(set(weights) - set(WEIGHT_MARKS))
    if unknown:
        raise ValueError(f"unknown weight rule(s) {unknown}; choose from {list(WEIGHT_MARKS)}")
    bad = [d for d in (density, *densities) if not 0.0 < d <= 1.0]
    if bad:
        raise ValueError(f"densities must be in (0, 1], got {bad}")
    rules = list(dict.fromkeys(("one", *weights)))
    points: list[MergePoint] = []
    for method in dict.fromkeys(methods):
        if method in USES_DENSITY:
            tried = [density] + [
                d for d in densities if d != density and not (method in RANDOM_PRUNING and d == 1.0)
            ]
            grid: list[float | None] = list(dict.fromkeys(tried))
        else:
            grid = [None]
        for point_density in grid:
            for rule in rules:
                mark = (
                    _density_mark(point_density)
                    if point_density is not None and point_density != density
                    else ""
                )
                name = f"{method}{mark}{WEIGHT_MARKS[rule]}"
                points.append(MergePoint(method, point_density, rule, name))
    return points
