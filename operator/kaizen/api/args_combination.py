"""Typed arguments of the steps that combine what the domain adapters learned.

`MergeArgs` (trainer `merge`): the domain adapters merged with peft, by one method or as
several candidates. `JointArgs` (trainer `joint`): one adapter trained on the union of the
priority domains' training sets, a candidate beside the merges, with the train step's LoRA and
training options (`LoraTrainingArgs`). `CombineArgs` (evaluator
`combine`): score every candidate on the suite's dev items, with the model loaded as the
evaluate steps load it (`InferenceArgs`), measure each trained domain's retention against
its adapter alone, and choose. They share the rendering and parsing of `kaizen.api.args`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from kaizen.api import fields as f
from kaizen.api.args import (
    EVALUATOR,
    TRAINER,
    InferenceArgs,
    ModelArgs,
    Program,
    cli,
)
from kaizen.api.args_training import LoraTrainingArgs
from kaizen.api.merge_grid import MergePoint, expand


def _pairs(value: list[str], what: str) -> list[str]:
    for entry in value:
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"{entry!r}: expected {what}")
    names = [entry.partition("=")[0].strip() for entry in value]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given more than once")
    return value


def split_pairs(value: list[str]) -> list[tuple[str, str]]:
    """`(name, path)` of each `NAME=PATH`, in order."""
    return [(n.strip(), p.strip()) for n, _, p in (e.partition("=") for e in value)]


class MergeArgs(ModelArgs):
    """Combine domain adapters with peft add_weighted_adapter: writes adapter/ and merge.json.
    A single source is copied unchanged."""

    PROGRAM: ClassVar[Program] = TRAINER
    COMMAND: ClassVar[str] = "merge"
    SUMMARY: ClassVar[str] = "merge domain adapters into one candidate adapter"

    sources: list[str] = Field(
        min_length=1, json_schema_extra=cli(flag="--source", metavar="DOMAIN=DIR")
    )
    """A domain adapter to merge (repeat for each domain)."""

    combination: f.MergeMethod = f.DEFAULT_MERGE_METHOD
    """peft combination type, written to adapter/; linear, ties and dare_* need equal ranks."""

    candidates: list[f.MergeMethod] = Field(
        default_factory=list, json_schema_extra=cli(flag="--candidate", metavar="METHOD")
    )
    """Also combine with METHOD into candidates/METHOD/adapter, for the combine step to
    choose among (repeat for several)."""

    density: f.Density = f.DEFAULT_DENSITY
    """Fraction of weights kept by ties and dare_*."""

    search_densities: list[f.Density] = Field(
        default_factory=list, json_schema_extra=cli(flag="--search-density", metavar="D")
    )
    """Also merge every method at density D (ties, dare_*) into candidates/<point>/adapter
    (repeat for several; `kaizen.api.merge_grid` names the points)."""

    search_weights: list[f.WeightRule] = Field(
        default_factory=list, json_schema_extra=cli(flag="--search-weight", metavar="RULE")
    )
    """Also merge every method with each adapter weighted by RULE: n, 1/n (n: the number of
    adapters) or one (repeat for several)."""

    seed: f.Seed = 0
    """Seed of the random pruning of dare_*."""

    routed: bool = False
    """Also write candidates/routed/adapter: the sources kept apart as routed adapters, each
    applied only to prompts naming its domain's knowledge (`kaizen.runtime.routing`; needs
    --suite). Made for a single source too."""

    suite: str | None = None
    """The suite whose knowledge gives the routes' keys (with --routed)."""
    similar: bool = False
    """With --routed: also route a prompt that names no key by its likeness to each domain's
    synthesised questions (`similar.safetensors`, docs/routing.md); without: keys only."""

    @model_validator(mode="after")
    def _routed_needs_suite(self) -> MergeArgs:
        if self.routed and not self.suite:
            raise ValueError("--routed needs --suite: the routes' keys come from its knowledge")
        return self

    def points(self) -> list[MergePoint]:
        """Every merge to make, the first into adapter/ (`kaizen.api.merge_grid.expand`)."""
        return expand(
            (self.combination, *self.candidates),
            self.density,
            self.search_densities,
            self.search_weights,
        )

    @field_validator("sources")
    @classmethod
    def _domain_equals_dir(cls, value: list[str]) -> list[str]:
        for source in value:
            domain, sep, path = source.partition("=")
            if not sep or not domain.strip() or not path.strip():
                raise ValueError(f"{source!r}: expected DOMAIN=DIR")
        return value

    def source_pairs(self) -> list[tuple[str, str]]:
        """`(domain, adapter directory)` per `--source`, in order."""
        return split_pairs(self.sources)


class JointArgs(LoraTrainingArgs):
    """Train one LoRA adapter on the union of the domains' training sets: writes adapter/ and
    joint.json. The LoRA and training options are the train step's (`LoraTrainingArgs`): a
    cycle passes its spec.training's values to both, and the operator places both alike (GPUs,
    torchrun, TrainJob); --steps is the sum of the domain adapters' steps."""

    PROGRAM: ClassVar[Program] = TRAINER
    COMMAND: ClassVar[str] = "joint"
    SUMMARY: ClassVar[str] = "train one adapter on the union of the domains' training sets"

    data: list[str] = Field(
        min_length=1, json_schema_extra=cli(flag="--data", metavar="DOMAIN=JSONL")
    )
    """A domain's training set as its train step trained on it (data.jsonl, with its replay
    and synthesised lines); repeat for each domain. Lines repeated across domains are kept
    once."""

    @field_validator("data")
    @classmethod
    def _domain_equals_file(cls, value: list[str]) -> list[str]:
        return _pairs(value, "DOMAIN=JSONL")

    def data_pairs(self) -> list[tuple[str, str]]:
        """`(domain, data.jsonl)` per `--data`, in order."""
        return split_pairs(self.data)


class CombineArgs(InferenceArgs):
    """Score each candidate combination on the suite's dev items and choose one: writes
    combination.json, candidates/<name>/results.json and adapter/ (the chosen one). The model
    is loaded as the evaluate steps load it (--attention, --precision, --device-map,
    --max-gpu-memory): a cycle passes the same values to both."""

    PROGRAM: ClassVar[Program] = EVALUATOR
    COMMAND: ClassVar[str] = "combine"
    SUMMARY: ClassVar[str] = "score candidate combinations on dev items and choose one"

    suite: str = Field(min_length=1)
    """The suite of the baseline evaluation (its dev items are scored)."""

    baseline: str = Field(min_length=1, json_schema_extra=cli(metavar="PATH"))
    """results.json of the baseline evaluation (it holds the dev items' base scores)."""

    alone: list[str] = Field(
        min_length=1, json_schema_extra=cli(flag="--alone", metavar="DOMAIN=PATH")
    )
    """results.json of a trained domain's adapter alone on its dev items (repeat per domain)."""

    candidates: list[str] = Field(
        min_length=1, json_schema_extra=cli(flag="--candidate", metavar="NAME=DIR")
    )
    """A candidate adapter (peft format) and the name of its combination (repeat; the first
    wins a full tie)."""

    min_retention: f.MinRetention = f.DEFAULT_MIN_RETENTION
    """Target: every trained domain keeps at least this share of its adapter's gain."""

    max_untrained_drop: f.MaxRegression | None = None
    """A candidate that costs some untrained domain more than this (a share, on the dev items),
    by a drop significant at `significance` (one-sided exact sign test), ranks after every
    candidate that does not (a cycle passes `validation.maxRegression`); unset: the untrained
    domains only break ties."""

    significance: f.Significance = f.DEFAULT_SIGNIFICANCE
    """The level of that test (a cycle passes `validation.significance`)."""

    merge_record: str | None = Field(default=None, json_schema_extra=cli(metavar="PATH"))
    """merge.json of the merge step: each merged candidate's method, density and weight go
    into its row of combination.json."""

    domains: list[str] = Field(default_factory=list, json_schema_extra=cli(separator=","))
    """Domains evaluated (default: all; the baseline's selection)."""

    limit: f.ItemLimit | None = None
    """The baseline's per-domain item limit."""

    max_new_tokens: f.MaxNewTokens = f.DEFAULT_MAX_NEW_TOKENS
    """Most tokens generated per item."""

    batch_size: f.EvalBatchSize = f.DEFAULT_EVAL_BATCH_SIZE
    """Prompts generated together."""

    @field_validator("alone")
    @classmethod
    def _domain_equals_results(cls, value: list[str]) -> list[str]:
        return _pairs(value, "DOMAIN=PATH")

    @field_validator("candidates")
    @classmethod
    def _name_equals_dir(cls, value: list[str]) -> list[str]:
        return _pairs(value, "NAME=DIR")

    def alone_pairs(self) -> list[tuple[str, str]]:
        """`(domain, results.json)` per `--alone`, in order."""
        return split_pairs(self.alone)

    def candidate_pairs(self) -> list[tuple[str, str]]:
        """`(name, adapter directory)` per `--candidate`, in order."""
        return split_pairs(self.candidates)
