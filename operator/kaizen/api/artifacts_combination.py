"""`combination.json`, `joint.json` and `routes.json`: how the domain adapters' learning was combined.

`combination.json` (the combine step) keeps the table of every candidate scored on the dev
items (per-domain scores, each trained domain's retention, the untrained domains' change,
time), the rule that chose, and the choice. `joint.json` (the joint step) records the
adapter trained on the union of the domains' training sets. `routes.json` (the merge step's
`routed` candidate) is the route table of a folder of routed adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from kaizen.api.artifacts_base import (
    VERSION_KEY,
    Artifact,
    ModelRef,
    Record,
    SuiteRef,
    optional_key,
)
from kaizen.api.artifacts_training import LoraConfig

# -- combination.json ------------------------------------------------------------------------


class DomainRetention(Record):
    """One trained domain on its dev items: base, its adapter alone, and the combination."""

    base: float
    """The base model's score."""
    alone: float
    """The domain's own adapter's score, alone."""
    combined: float
    """The combination's score."""
    retention: float | None
    """(combined − base) / (alone − base); null when `alone` ≤ `base` (the adapter gained
    nothing there, so there is nothing to retain)."""
    items: int
    """Dev items of the domain."""


class RoutingCoverage(Record):
    """Where routed adapters sent the dev items (`kaizen.runtime.routing`)."""

    own: dict[str, float]
    """Each trained domain's share of dev items that went through its own route."""
    stray: dict[str, float]
    """Each untrained domain's share of dev items that went through some route."""


class CandidateScore(Record):
    """One candidate combination, scored on the dev items."""

    name: str
    """The candidate (`ties`, `ties-d1-wn`, `joint`, …: `kaizen.api.merge_grid`)."""
    method: str | None = None
    """Its peft method, or `joint` (null: not known, e.g. no merge.json given)."""
    density: float | None = None
    """The share of each adapter's entries its merge kept (null: no pruning, or not a merge)."""
    weight: float | None = None
    """Each adapter's weight in its merge (null: not a merge)."""
    weight_rule: str | None = None
    """How that weight was set from the number n of adapters: `one`, `n` or `1/n`."""
    adapter: str
    """Its adapter folder."""
    results: str
    """Its results.json on the dev items."""
    domains: dict[str, float]
    """Score per domain (trained and untrained) on the dev items."""
    trained: dict[str, DomainRetention]
    """Each trained domain's base, alone, combined and retention."""
    untrained_change: dict[str, float]
    """Each untrained domain's change from the base."""
    untrained_p: dict[str, float] = Field(default_factory=dict)
    """Each untrained domain's one-sided exact p that the candidate is worse (a sign test on
    its dev items: items whose score fell against items whose score rose)."""
    min_retention: float | None
    """The worst defined retention (null: none defined)."""
    mean_gain: float
    """Mean over the trained domains of combined − base."""
    worst_untrained_change: float | None
    """The most negative untrained change (null: no untrained domain)."""
    target_met: bool | None
    """Every defined retention reaches the target (null: none defined)."""
    tokens_per_second: float
    """Generation throughput of the dev evaluation."""
    peak_memory_mib: float
    """Peak memory of the evaluation process so far."""
    seconds: float
    """Wall time of the candidate's evaluation (model load included)."""
    rank: int
    """Its place in the choice (1: chosen)."""
    routing: RoutingCoverage | None = optional_key()
    """Where its routes sent the dev items; absent unless it is routed adapters."""


def _combination_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A combination.json of version 1 as version 2: its candidates' settings unknown (null)."""
    return {**raw, VERSION_KEY: 2}


def _combination_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """A combination.json of version 2 as version 3: no tolerance for the untrained domains
    (their drops untested)."""
    return {**raw, VERSION_KEY: 3}


class CombinationReport(Artifact):
    """`combination.json`: every candidate combination, scored on dev items, and the choice."""

    FILE_NAME: ClassVar[str] = "combination.json"
    KIND: ClassVar[str] = "combination report"

    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: lambda raw: _combination_v2(_combination_v1(raw)),
        2: _combination_v2,
    }

    schema_version: Literal[3] = Field(default=3, alias="schema")
    """Layout version of this file (2: each candidate's `method`, `density`, `weight`,
    `weight_rule`, and `merge_seconds`; 3: each candidate's `untrained_p` and
    `max_untrained_drop`)."""
    step: str
    """Step name."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    suite: SuiteRef
    """The suite; `digest` covers the dev items scored."""
    split: Literal["dev"] = "dev"
    """The items every figure here comes from (never the gate's test items)."""
    baseline: str
    """The baseline results.json the base scores come from."""
    alone: dict[str, str]
    """Each trained domain's results.json of its adapter alone."""
    target: float
    """`merge.minRetention`."""
    rule: str
    """How the candidates were ranked."""
    chosen: str
    """The chosen combination."""
    adapter: str
    """The chosen adapter, copied here."""
    target_met: bool | None
    """Whether the chosen one reaches the target (null: no retention defined)."""
    candidates: list[CandidateScore]
    """Every candidate, best first."""
    seconds: float
    """Wall time of the whole step."""
    merge_seconds: float | None = None
    """Wall time of the merges the merge step made (its merge.json's, without the model
    load; null when no merge.json was given)."""
    max_untrained_drop: float | None = None
    """The most a candidate could cost an untrained domain and still rank by retention, unless
    the drop was not significant (`--max-untrained-drop`; null: the untrained domains only
    broke ties)."""


# -- joint.json ------------------------------------------------------------------------------


class JointSource(Record):
    """One domain's training set that went into the joint adapter."""

    domain: str
    """The domain."""
    path: str
    """Its data.jsonl."""
    lines: int
    """Lines read."""
    kept: int
    """Lines kept (not already given by an earlier domain's set)."""


def _joint_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A joint.json of version 1 as version 2: it did not record its settings (null)."""
    return {**raw, VERSION_KEY: 2}


class JointRecord(Artifact):
    """`joint.json`: the adapter trained on the union of the priority domains' training sets."""

    FILE_NAME: ClassVar[str] = "joint.json"
    KIND: ClassVar[str] = "joint training record"
    UPGRADES: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _joint_v1}

    schema_version: Literal[2] = Field(default=2, alias="schema")
    """Layout version of this file (2: `config`, `resumed_from`, `device`, `autocast`,
    `tokens_per_second`, `versions`)."""
    step: str
    """Step name."""
    cycle: str | None
    """Cycle name, when run in a cycle."""
    model: ModelRef
    """The base model."""
    sources: list[JointSource]
    """The domains' training sets, in order."""
    examples: int
    """Examples trained on (after tokenisation)."""
    truncated: int
    """Examples cut at `max_seq_length`."""
    steps: int
    """Optimiser steps run (including those before a resume)."""
    learning_rate: float
    """Constant AdamW learning rate."""
    rank: int
    """LoRA rank."""
    final_loss: float
    """Loss of the last steps."""
    loss_curve: list[float]
    """Loss per step (or per logging window)."""
    train_seconds: float
    """Wall time of the training loop."""
    peak_memory_mb: float
    """Peak memory of training."""
    adapter: str
    """The adapter folder (peft format)."""
    config: LoraConfig | None = None
    """The LoRA and training settings, the train steps' (precision, gradient checkpointing,
    packing, quantization, parallelism, processes; null in a version-1 file, which trained
    with the defaults in one process)."""
    resumed_from: int = 0
    """Step of the checkpoint this run resumed from (0: a fresh run)."""
    tokens_per_second: float | None = None
    """Training tokens per second (null when no time was measured)."""
    device: str | None = None
    """Torch device (null in a version-1 file)."""
    autocast: str | None = None
    """Autocast dtype, when mixed precision was used."""
    versions: dict[str, str] = Field(default_factory=dict)
    """Versions of torch, transformers and peft (empty in a version-1 file)."""


# -- routes.json -----------------------------------------------------------------------------


class Route(Record):
    """One domain's adapter and the names that send a prompt through it."""

    name: str = Field(min_length=1)
    """The route: the domain whose adapter it applies."""
    adapter: str = Field(min_length=1)
    """The adapter folder, relative to the folder of routes.json."""
    keys: list[str] = Field(min_length=1)
    """Names (whole words, any case) whose mention in a prompt applies the adapter."""


class SimilarRoutes(Record):
    """Routes a prompt may take without naming a key: by its likeness to each routed domain's
    synthesised questions (`kaizen.runtime.similar`)."""

    file: str = Field(min_length=1)
    """The vectors (safetensors), relative to the folder of routes.json."""
    model: str = Field(min_length=1)
    """The model whose hidden states make the vectors (with its routed adapters off)."""
    layer: int = Field(ge=1)
    """The hidden layer read (0 would be the embeddings)."""
    rule: str
    """How a prompt is matched and each threshold set."""
    thresholds: dict[str, float]
    """Each route's threshold: a prompt naming no key takes the route when its score is
    higher (and higher than any other route's)."""
    reach: dict[str, float] = Field(default_factory=dict)
    """Each route's share of its own synthesised questions over its threshold (leave one
    out): how much of the domain its similar route can reach."""
    background: int = Field(ge=0)
    """How many everyday background questions the thresholds were set against."""


class RouteTable(Artifact):
    """`routes.json`: domain adapters kept apart, each applied only to the prompts that name
    one of its keys (`kaizen.runtime.routing`). A prompt naming the keys of several routes
    gets the sum of their adapters; a prompt naming none gets the fallback adapter, or without
    one the model without them."""

    FILE_NAME: ClassVar[str] = "routes.json"
    KIND: ClassVar[str] = "route table"

    schema_version: Literal[1] = Field(default=1, alias="schema")
    """Layout version of this file."""
    step: str | None = None
    """The step that wrote it."""
    rule: str
    """How the keys were chosen."""
    routes: list[Route] = Field(min_length=1)
    """Every route, in the order the adapters were given."""
    left_out: dict[str, str] = Field(default_factory=dict)
    """Domains given that have no route, and why (no name of their own to route by)."""
    fallback: str | None = None
    """The adapter folder (relative to the folder of routes.json) applied to a prompt that
    names no route's key; null: such a prompt gets the model without the routed adapters."""
    fallback_from: str | None = None
    """What the fallback adapter is (e.g. `ties`: the merge step's merge of the same
    adapters)."""
    similar: SimilarRoutes | None = optional_key()
    """Routes a prompt that names no key may take by its likeness to a domain's questions;
    absent: keys only."""
