"""The step contract: the summary a step writes for the operator, its exit codes and artifact layout.

A step (evaluator or trainer program) writes one `StepSummary` as JSON to
`$KAIZEN_SUMMARY_PATH` (default `/dev/termination-log`). Kubernetes truncates a
termination message at 4096 bytes, so `write_summary` refuses anything larger:
headline numbers only, everything else stays in the artifact directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic.alias_generators import to_camel

from kaizen.api._base import ApiModel

#: Hard bound on a serialised summary, in bytes (the termination-message limit).
SUMMARY_MAX_BYTES = 4096
#: Environment variable that tells a step where to write its summary.
SUMMARY_PATH_ENV = "KAIZEN_SUMMARY_PATH"
DEFAULT_SUMMARY_PATH = "/dev/termination-log"

#: Exit code of a successful step.
EXIT_OK = 0
#: Exit code of a step that failed and may succeed when retried.
EXIT_FAILURE = 1
#: Exit code of a failure that retrying cannot fix: a configuration error (bad argument,
#: missing data) or a summary that cannot fit; never retried.
EXIT_CONFIG_ERROR = 3


class ScoreDigest(ApiModel):
    """Headline scores of one evaluation, rounded to keep status small."""

    overall: float
    """Micro-averaged score over all items (0–1)."""

    domains: dict[str, float] = Field(default_factory=dict)
    """Score per domain (0–1)."""

    capabilities: dict[str, float] = Field(default_factory=dict)
    """Score per capability (0–1)."""

    capability_items: dict[str, int] = Field(default_factory=dict)
    """Items per capability: a capability's score moves by 1/n for one item, and a suite has
    few items of some (3 counterfactual items: one item is 33 points)."""

    items: int = 0
    """Number of items evaluated."""

    tokens_per_second: float | None = None
    """Generated tokens per second over the whole evaluation."""

    peak_memory_mb: float | None = None
    """Peak memory (CUDA when on GPU, process RSS otherwise), MiB."""

    results_path: str | None = None
    """The full results file in the artifact directory."""


class PlanDigest(ApiModel):
    """The improvement plan chosen by the analyze step."""

    priority_domains: list[str] = Field(default_factory=list)
    """Domains that get one adapter each, weakest first."""

    targeted_capabilities: list[str] = Field(default_factory=list)
    """Capabilities weakest across the suite."""

    failure_kinds: dict[str, int] = Field(default_factory=dict)
    """Counts of failures by kind (wrong answer, empty, truncated, …)."""

    priority_scores: list[float] = Field(default_factory=list)
    """Each priority domain's baseline score on its dev items, in the order of
    `priority_domains` (what its adapter's steps are derived from; the gate's test items are
    never read for it). Empty in a digest from before these scores."""

    fallback_domains: list[str] = Field(default_factory=list)
    """Domains without dev items, analysed on their test items instead."""

    weak_domains: list[str] | None = None
    """Every domain the cycle could train (below the threshold on its dev items), weakest
    first; `priority_domains` are the first of them. Null in a digest from before it."""

    plan_path: str | None = None
    """The full plan file in the artifact directory."""


class AdapterDigest(ApiModel):
    """One trained LoRA adapter."""

    domain: str
    """Domain the adapter was trained on."""

    path: str
    """Adapter directory (peft format)."""

    examples: int = 0
    """Training examples used."""

    steps: int = 0
    """Optimiser steps taken."""

    passes: float | None = None
    """Passes over the training set the steps were derived from (null: a fixed count)."""

    final_loss: float | None = None
    """Mean training loss over the last steps."""

    learning_rate: float | None = None
    """Learning rate used (the domain's, when derived or overridden)."""

    synthesized: int = 0
    """Training examples synthesised from the domain's knowledge."""


class MergeDigest(ApiModel):
    """The merged candidate adapter."""

    path: str
    """Merged adapter directory (peft format)."""

    combination: str
    """peft combination type used."""

    sources: list[str] = Field(default_factory=list)
    """Domains of the merged adapters."""


class CombinationDigest(ApiModel):
    """How the domain adapters' learning was combined, and how much of it survived (dev items)."""

    path: str
    """The chosen adapter (peft format): what the candidate is evaluated and promoted with."""

    chosen: str
    """The combination chosen (`ties`, `joint`, …; `copy` for a single domain's adapter)."""

    candidates: int = 1
    """Combinations scored (more than one under `combination: auto`)."""

    retention: dict[str, float | None] = Field(default_factory=dict)
    """Per trained domain, (combined − base) / (alone − base) on its dev items; null when the
    adapter alone did not beat the base there (nothing to retain)."""

    min_retention: float | None = None
    """The worst domain's retention (null: undefined in every domain)."""

    untrained_change: float | None = None
    """Worst score change on the domains no adapter was trained for (null: none)."""

    target: float = 0.9
    """`merge.minRetention`."""

    target_met: bool | None = None
    """Whether every defined retention reaches the target (null: none defined)."""

    report_path: str | None = None
    """`combination.json`: every candidate's table."""


class ValidationDigest(ApiModel):
    """The A/B comparison of candidate and baseline on identical items."""

    verdict: Literal["Promote", "Reject", "Inconclusive"]
    """`Promote`: every gate passed; `Reject`: a gate failed; `Inconclusive`: not significant
    on a suite too small to detect the target improvement."""

    overall_delta: float
    """Candidate overall score minus baseline overall score."""

    baseline_score: float | None = None
    """The baseline's overall score on the validated items (the suite's test items, held out
    from training and from every choice): the figure `stop.targetScore` of a chain reads."""

    candidate_score: float | None = None
    """The candidate's overall score on the same items."""

    p_value: float
    """Two-sided exact McNemar p-value on per-item correctness (3 significant digits)."""

    minimum_detectable_effect: float | None = None
    """Smallest overall improvement the suite detects at the configured power (null: none)."""

    domain_deltas: dict[str, float] = Field(default_factory=dict)
    """Score change per domain."""

    regressions: list[str] = Field(default_factory=list)
    """Domains that dropped by more than `maxRegression`."""

    improved_items: int = 0
    """Items wrong in the baseline and right in the candidate."""

    regressed_items: int = 0
    """Items right in the baseline and wrong in the candidate."""

    reasons: list[str] = Field(default_factory=list)
    """Why the verdict is what it is, one short sentence per gate."""

    report_path: str | None = None
    """The full comparison in the artifact directory."""

    html_report_path: str | None = None
    """The cycle's HTML report with its plots, when the step wrote one."""


class StepSummary(ApiModel):
    """What a step reports back: success or a reason, and a digest of its results."""

    step: str
    """Step name, e.g. `evaluate-baseline` or `train-geography`."""

    ok: bool
    """True when the step finished its work."""

    reason: str = "Completed"
    """CamelCase reason: `Completed`, `ConfigurationError`, `StepError`, …"""

    message: str = ""
    """One line for humans."""

    artifacts_dir: str | None = None
    """The step's artifact directory."""

    digest: str | None = None
    """sha256 of the step's main result file."""

    duration_seconds: float | None = None
    """Wall time of the step."""

    trimmed: dict[str, int] = Field(default_factory=dict)
    """Entries left out to fit the 4 KiB bound, by field (`validation.domainDeltas`: 28): the
    full data is in the step's artifact files."""

    reused: bool = False
    """True when the step returned the complete output of an earlier run made from the same
    inputs (same arguments, Kaizen version and input files) instead of doing the work."""

    evaluation: ScoreDigest | None = None
    """Set by evaluate steps."""

    plan: PlanDigest | None = None
    """Set by the analyze step."""

    adapter: AdapterDigest | None = None
    """Set by train steps."""

    merge: MergeDigest | None = None
    """Set by the merge step."""

    combination: CombinationDigest | None = None
    """Set by the combine step."""

    validation: ValidationDigest | None = None
    """Set by the validate step."""


class SummaryTooLarge(ValueError):
    """A summary would not fit in a termination message."""


def encode_summary(summary: StepSummary) -> bytes:
    """Serialise a summary compactly, refusing anything over `SUMMARY_MAX_BYTES`."""
    data = json.dumps(summary.to_wire(), separators=(",", ":"), sort_keys=True).encode()
    if len(data) > SUMMARY_MAX_BYTES:
        raise SummaryTooLarge(
            f"summary of step {summary.step!r} is {len(data)} bytes; the limit is {SUMMARY_MAX_BYTES}"
        )
    return data


#: Lists and maps a summary may shorten to fit, and which entries they keep: `first` (in
#: order), `lowest` / `highest` (by value), or none (`drop`: the whole list goes, and reads as
#: not known, never as a shorter list). What the engine needs to go on (the plan's priority
#: domains, the verdict, paths and digests) is never cut.
TRIMMABLE: dict[tuple[str, str], Literal["first", "lowest", "highest", "drop"]] = {
    ("evaluation", "capabilities"): "lowest",
    ("evaluation", "domains"): "lowest",
    ("plan", "targeted_capabilities"): "first",
    ("plan", "failure_kinds"): "highest",
    ("plan", "fallback_domains"): "first",
    # a chain stops when every weak domain was tried: a shortened list could stop it early
    ("plan", "weak_domains"): "drop",
    ("validation", "domain_deltas"): "lowest",
    ("validation", "regressions"): "first",
    ("validation", "reasons"): "first",
    ("merge", "sources"): "first",
}
#: Longest message, and longest string in a trimmable list, once a summary has to be trimmed.
TRIMMED_TEXT = 300


def _cut(text: str, limit: int = TRIMMED_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wire_name(digest: str, name: str) -> str:
    return f"{to_camel(digest)}.{to_camel(name)}"


def _kept(value: list[object] | dict[str, float | int], keep: int, order: str) -> object:
    if isinstance(value, list):
        return value[:keep]
    names = sorted(value, key=lambda n: (value[n], n), reverse=order == "highest")
    kept = set(names[:keep])
    return {name: v for name, v in value.items() if name in kept}


def _size(summary: StepSummary) -> int:
    return len(json.dumps(summary.to_wire(), separators=(",", ":"), sort_keys=True).encode())


def fit_summary(summary: StepSummary, limit: int = SUMMARY_MAX_BYTES) -> StepSummary:
    """`summary` shortened to fit `limit` bytes, each cut recorded in `trimmed`.

    The message and the strings of trimmable lists are cut to `TRIMMED_TEXT` characters, then
    the largest trimmable list or map loses a quarter of its entries (keeping the first, the
    weakest or the most frequent; a `drop` list goes whole) until the summary fits. A summary
    that still does not fit, because what cannot be cut is too large, raises `SummaryTooLarge`
    naming its largest parts: the same inputs would give the same summary, so it is a
    permanent failure.
    """
    if _size(summary) <= limit:
        return summary
    summary = summary.model_copy(update={"message": _cut(summary.message)})
    for (digest_name, name), order in TRIMMABLE.items():
        digest = getattr(summary, digest_name)
        value = getattr(digest, name, None) if digest is not None else None
        if order == "drop":
            continue  # whole or nothing: a cut name would be another name
        if isinstance(value, list) and any(isinstance(v, str) for v in value):
            cut = [_cut(v) if isinstance(v, str) else v for v in value]
            summary = summary.model_copy(
                update={digest_name: digest.model_copy(update={name: cut})}
            )
    trimmed = dict(summary.trimmed)
    while _size(summary) > limit:
        parts = []
        for digest_name, name in TRIMMABLE:
            digest = getattr(summary, digest_name)
            value = getattr(digest, name, None) if digest is not None else None
            if value:
                parts.append((len(json.dumps(value)), digest_name, name, digest, value))
        if not parts:
            raise SummaryTooLarge(_too_large(summary, limit))
        _, digest_name, name, digest, value = max(parts, key=lambda p: p[0])
        order = TRIMMABLE[(digest_name, name)]
        keep = 0 if order == "drop" else len(value) * 3 // 4
        shortened = None if order == "drop" else _kept(value, keep, order)
        key = _wire_name(digest_name, name)
        trimmed[key] = trimmed.get(key, 0) + len(value) - keep
        summary = summary.model_copy(
            update={
                digest_name: digest.model_copy(update={name: shortened}),
                "trimmed": dict(trimmed),
            }
        )
    return summary


def _too_large(summary: StepSummary, limit: int) -> str:
    wire = summary.to_wire()
    sizes = []
    for key, value in wire.items():
        if isinstance(value, dict):
            sizes += [(len(json.dumps(v)), f"{key}.{k}") for k, v in value.items()]
        else:
            sizes.append((len(json.dumps(value)), key))
    largest = ", ".join(f"{name} ({size} bytes)" for size, name in sorted(sizes, reverse=True)[:3])
    where = f"; the full result is in {summary.artifacts_dir}" if summary.artifacts_dir else ""
    return (
        f"summary of step {summary.step!r} is {_size(summary)} bytes even with every list it may "
        f"shorten emptied; the limit is {limit} (Kubernetes' termination message). Largest "
        f"parts: {largest}{where}"
    )


def write_summary(summary: StepSummary, path: str | os.PathLike[str] | None = None) -> Path:
    """Write a summary to `path`, `$KAIZEN_SUMMARY_PATH` or the termination log."""
    target = Path(path or os.environ.get(SUMMARY_PATH_ENV) or DEFAULT_SUMMARY_PATH)
    data = encode_summary(summary)
    if target.parent.is_dir() and str(target).startswith("/dev/"):
        # Device files cannot be replaced by rename: write in place.
        target.write_bytes(data)
    else:
        atomic_write_bytes(target, data)
    return target


def parse_summary(text: str | bytes) -> StepSummary:
    """Parse a summary read from a termination message or a file (raises ValueError)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return StepSummary.model_validate_json(text.strip())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_json(path: str | os.PathLike[str], obj: object) -> Path:
    """Write `obj` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def file_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"
