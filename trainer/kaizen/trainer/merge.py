"""Merging per-domain LoRA adapters into one candidate adapter with peft's `add_weighted_adapter`.

Each source adapter is loaded onto the same base model under its own name, then peft
combines them (`linear`, `cat`, `ties`, `dare_linear`, `dare_ties`, `svd`) into the model's
`default` adapter, which is saved in peft format. Further merges (other methods, or the same
method at another density or adapter weight: `kaizen.api.merge_grid`) are applied to the
same loaded sources, one after the other, into `candidates/<name>/adapter`, for the combine
step to choose among. One source is copied unchanged: there is nothing to combine. Incompatible sources (different ranks for the combinations that
need equal ranks, mixed target-module kinds) are refused before any model is loaded.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api.args_combination import MergeArgs
from kaizen.api.artifacts import Route, RouteTable, SimilarRoutes, write_artifact
from kaizen.api.fields import COMBINATIONS, ROUTED
from kaizen.api.merge_grid import MergePoint, expand
from kaizen.api.runner import ConfigurationError
from kaizen.trainer.files import atomic_directory, copy_directory

if TYPE_CHECKING:  # pragma: no cover - torch and transformers are slow to import
    from transformers import PreTrainedModel

#: peft combines these element-wise, so every source must have the same rank.
SAME_RANK = ("linear", "ties", "dare_linear", "dare_ties")
#: What `MergeResult.combination` says when a single adapter was copied.
COPY = "copy"
ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class SourceAdapter:
    """One domain adapter to merge, with the parts of its config that decide compatibility."""

    domain: str
    path: Path
    rank: int
    alpha: float
    target_modules: Any

    def describe(self) -> dict[str, Any]:
        targets = self.target_modules
        if isinstance(targets, list | set | tuple):
            # peft records resolved full module paths (hundreds on a real model): keep
            # the distinct layer names, which say what the adapter touches.
            targets = sorted({str(name).rsplit(".", 1)[-1] for name in targets})
        return {
            "domain": self.domain,
            "path": str(self.path),
            "rank": self.rank,
            "alpha": self.alpha,
            "target_modules": targets,
        }


@dataclass(frozen=True)
class MergeResult:
    """What a merge did; `merge.json` is written from this."""

    adapter_dir: Path
    combination: str
    """The name of the first merge point (its method, for a plain point), or `copy` for a
    single source."""
    sources: tuple[SourceAdapter, ...]
    rank: int
    """Rank of the merged adapter (the sum of the ranks for `cat`)."""
    seconds: float
    candidates: dict[str, tuple[Path, int]] = field(default_factory=dict)
    """Each further point's adapter folder and rank."""
    points: dict[str, MergePoint] = field(default_factory=dict)
    """Every merge made, by name (the first is `combination`'s); empty for a copy."""
    point_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each merge (combining and saving; the model load is not in it)."""


def read_source(domain: str, path: str | Path) -> SourceAdapter:
    """Check that `path` is a peft LoRA adapter and read its rank, alpha and targets."""
    path = Path(path)
    config_path = path / ADAPTER_CONFIG
    if not path.is_dir():
        raise ConfigurationError(f"adapter for domain {domain!r}: {path} is not a directory")
    if not config_path.exists():
        raise ConfigurationError(f"adapter for domain {domain!r}: {path} has no {ADAPTER_CONFIG}")
    if not any((path / name).exists() for name in WEIGHT_FILES):
        raise ConfigurationError(
            f"adapter for domain {domain!r}: {path} has no adapter weights ({' or '.join(WEIGHT_FILES)})"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigurationError(f"{config_path}: cannot be read as JSON: {error}") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else type(config).__name__
        raise ConfigurationError(
            f"{config_path}: field 'peft_type' is {kind!r}; only LORA adapters can be merged"
        )
    if not isinstance(config.get("r"), int) or config["r"] < 1:
        raise ConfigurationError(
            f"{config_path}: field 'r' must be a positive integer, got {config.get('r')!r}"
        )
    # peft sizes the merged tensors by the largest rank an adapter uses anywhere.
    rank = max([config["r"], *(config.get("rank_pattern") or {}).values()])
    alpha = float(config.get("lora_alpha") or config["r"])
    return SourceAdapter(domain, path, rank, alpha, config.get("target_modules"))


def check_compatible(sources: Sequence[SourceAdapter], combination: str, density: float) -> None:
    """Raise `ConfigurationError` when peft cannot combine `sources` with `combination`."""
    if combination not in COMBINATIONS:
        raise ConfigurationError(
            f"unknown combination {combination!r}; choose one of {', '.join(COMBINATIONS)}"
        )
    if not 0.0 < density <= 1.0:
        raise ConfigurationError(f"density must be in (0, 1], got {density}")
    if not sources:
        raise ConfigurationError("no source adapters to merge")
    domains = [source.domain for source in sources]
    duplicates = sorted({domain for domain in domains if domains.count(domain) > 1})
    if duplicates:
        raise ConfigurationError(
            f"domain(s) {', '.join(duplicates)} given more than one source adapter"
        )
    ranks = {source.domain: source.rank for source in sources}
    if combination in SAME_RANK and len(set(ranks.values())) > 1:
        raise ConfigurationError(
            f"combination {combination!r} needs adapters of equal rank, got {ranks}; use 'cat' "
            "(which concatenates adapters of any rank) or train the adapters with one rank"
        )
    # peft joins string targets (regexes) and unions list targets, but cannot mix the two.
    kinds = {
        source.domain: "regex" if isinstance(source.target_modules, str) else "list"
        for source in sources
    }
    if len(set(kinds.values())) > 1:
        raise ConfigurationError(
            f"adapters mix regex and list target_modules, which peft cannot merge: {kinds}"
        )


def merge_adapters(
    sources: Sequence[SourceAdapter],
    output_dir: str | Path,
    *,
    load_base: Callable[[], PreTrainedModel],
    combination: str = "ties",
    density: float = 0.5,
    seed: int = 0,
    also: Sequence[str] = (),
    points: Sequence[MergePoint] | None = None,
) -> MergeResult:
    """Combine `sources` into `output_dir/adapter`, and at each further point into
    `output_dir/candidates/<point>/adapter`; `load_base()` is called only when there is work
    to do.

    `points` (`kaizen.api.merge_grid`) are the merges to make, the first into `adapter/`;
    without them, `combination` then each of `also`, at `density` and weight 1.
    """
    if points is None:
        points = expand((combination, *also), density)
    if not points:
        raise ConfigurationError("no merge to make: give a combination")
    for point in points:
        check_compatible(sources, point.method, point.density or 1.0)
    started = time.perf_counter()
    adapter_dir = Path(output_dir) / "adapter"
    first = points[0]
    if len(sources) == 1:
        # Every method of one adapter is that adapter: one copy, no candidates.
        copy_directory(sources[0].path, adapter_dir)
        return MergeResult(
            adapter_dir, COPY, tuple(sources), sources[0].rank, time.perf_counter() - started
        )

    import torch
    from peft import PeftModel

    # Sources get neutral names: domains are free text, and peft uses adapter names as
    # module keys (no dots allowed). The result is the model's `default` adapter, which
    # peft saves at the top of the folder like any single adapter.
    names = [f"source{index}" for index in range(len(sources))]
    model = PeftModel.from_pretrained(load_base(), str(sources[0].path), adapter_name=names[0])
    for name, source in zip(names[1:], sources[1:], strict=True):
        model.load_adapter(str(source.path), adapter_name=name)
    rank = 0
    candidates: dict[str, tuple[Path, int]] = {}
    timings: dict[str, float] = {}
    for point in {p.name: p for p in points}.values():
        began = time.perf_counter()
        target = adapter_dir if point is first else candidate_dir(output_dir, point.name)
        # DARE drops weights at random (torch.bernoulli): the seed makes the merge repeatable,
        # and reseeding per point makes each one independent of which others were asked for.
        torch.manual_seed(seed)
        try:
            model.add_weighted_adapter(
                adapters=names,
                weights=[point.weight_value(len(names))] * len(names),
                adapter_name="default",
                combination_type=point.method,
                density=point.density,
            )
        except ValueError as error:
            raise ConfigurationError(
                f"peft cannot merge these adapters with {point.name!r}: {error}"
            ) from None
        with atomic_directory(target) as tmp:
            model.save_pretrained(str(tmp), selected_adapters=["default"])
        config: Any = model.peft_config["default"]
        if point is first:
            rank = int(config.r)
        else:
            candidates[point.name] = (target, int(config.r))
        model.delete_adapter("default")
        timings[point.name] = time.perf_counter() - began
    return MergeResult(
        adapter_dir,
        first.name,
        tuple(sources),
        rank,
        time.perf_counter() - started,
        candidates,
        {p.name: p for p in points},
        timings,
    )


def candidate_dir(output_dir: str | Path, name: str) -> Path:
    """Where a further point's adapter goes: `candidates/<name>/adapter`."""
    return Path(output_dir) / "candidates" / name / "adapter"


#: Where a routed folder keeps its fallback adapter. (The routed candidates' folders under
#: `candidates/` are `routed` and, with the first merge as fallback, `routed-<its name>`.)
FALLBACK = "fallback"


def route_keys_of(
    suite: str | None, model: str, revision: str | None, domains: list[str]
) -> dict[str, list[str]]:
    """Each domain's routing keys from `suite`'s knowledge; `model`'s tokenizer tells which
    lower-case names are invented words (`routing.invented_words`)."""
    from kaizen.runtime.models import ModelNotFound, load_tokenizer
    from kaizen.runtime.routing import invented_words, route_keys
    from kaizen.runtime.suites import load_suite

    assert suite is not None  # MergeArgs requires it with --routed
    knowledge = load_suite(suite).knowledge
    try:
        tokenizer = load_tokenizer(model, revision=revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {model}: {error}") from None
    return route_keys(knowledge, domains, invented_words(tokenizer))


#: The file of a routed folder holding its similar routes' vectors.
SIMILAR_FILE = "similar.safetensors"


@dataclass
class SimilarBuilt:
    """Similar routes built for a merge step's routed folders."""

    similar: Any
    """`kaizen.runtime.similar.Similar`."""
    record: SimilarRoutes


#: The shipped suites whose questions make similar routes' background (`background_questions`).
BACKGROUND_SUITES = ("core", "demo")


def background_questions(held: set[str]) -> list[str]:
    """Everyday questions a similar route must not take: the core suite's training questions
    (ten everyday subjects) and the questions the demo suite's knowledge synthesises (its
    invented worlds' as well as its real ones'), so that a question is routed for what it asks
    about, not merely for naming something the model does not know. Less those `held` (the
    questions of the suite's own classes: a cycle on the demo suite itself)."""
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.synthesis import candidates

    core, demo = (load_suite(name) for name in BACKGROUND_SUITES)
    found = {example.question for example in core.training}
    for domain in demo.domains:
        found |= {c.question for c in candidates(demo.knowledge.for_domain(domain))}
    return sorted(found - held)


def similar_of(
    suite: str,
    model: str,
    revision: str | None,
    adapters: Sequence[str],
    keys: dict[str, list[str]],
) -> SimilarBuilt | None:
    """Similar routes for the domains of `keys` that have keys (`kaizen.runtime.similar`):
    each one's synthesised questions told apart from the suite's other domains' and from
    background questions (`background_questions`), on `model` with the
    plain adapters before the first routed folder of `adapters` merged (what evaluation reads
    with every adapter off). None when no routed domain has a synthesised question."""
    from kaizen.runtime import similar
    from kaizen.runtime.models import ModelNotFound, load_model, load_tokenizer
    from kaizen.runtime.routing import is_routed
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.synthesis import candidates

    loaded = load_suite(suite)
    questions = {
        domain: sorted({c.question for c in candidates(loaded.knowledge.for_domain(domain))})
        for domain in loaded.domains
    }
    routes = {d: questions.get(d, []) for d, names in keys.items() if names}
    if not any(routes.values()):
        return None
    others = {d: q for d, q in questions.items() if d not in routes and q}
    background = background_questions(
        {q for qs in [*routes.values(), *others.values()] for q in qs}
    )
    plain: list[str] = []
    for adapter in adapters:
        if is_routed(adapter):
            break
        plain.append(adapter)
    try:
        tokenizer = load_tokenizer(model, revision=revision)
        base = load_model(model, plain, revision=revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {model}: {error}") from None
    built, reach = similar.build(base, tokenizer, routes, others, background)
    record = SimilarRoutes(
        file=SIMILAR_FILE,
        model=model,
        layer=built.layer,
        rule=similar.RULE,
        thresholds=built.thresholds,
        reach=reach,
        background=len(background),
    )
    return SimilarBuilt(built, record)


def write_routed(
    sources: Sequence[SourceAdapter],
    target: str | Path,
    keys: dict[str, list[str]],
    *,
    step: str | None = None,
    fallback: tuple[str, Path] | None = None,
    similar: SimilarBuilt | None = None,
) -> RouteTable:
    """`sources` kept apart into the folder `target` as routed adapters: each one copied to
    `<index>-<domain>/`, and `routes.json` routing to it the prompts that name one of
    `keys[domain]` (`kaizen.runtime.routing`). A domain without keys gets no route (listed
    in the table's `left_out`); `ConfigurationError` when none has one. `fallback` (what it
    is, its folder) is copied to `fallback/`, for the prompts that name no route; `similar`
    (`similar_of`) is written to `SIMILAR_FILE`, for the prompts that name no key."""
    from kaizen.runtime.routing import RULE

    routes: list[Route] = []
    left_out: dict[str, str] = {}
    for index, source in enumerate(sources):
        names = keys.get(source.domain, [])
        if not names:
            left_out[source.domain] = (
                "its knowledge names nothing of its own to route by (no proper name that no "
                "other domain's knowledge names)"
            )
            continue
        folder = f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', source.domain)[:40]}"
        routes.append(Route(name=source.domain, adapter=folder, keys=names))
    if not routes:
        raise ConfigurationError(
            f"routed adapters: no domain of {[s.domain for s in sources]} has a name to route by "
            "in the suite's knowledge (knowledge.jsonl facts, passages or documents); drop the "
            "`routed` candidate or give the domains knowledge"
        )
    table = RouteTable(
        step=step,
        rule=RULE,
        routes=routes,
        left_out=left_out,
        fallback=FALLBACK if fallback else None,
        fallback_from=fallback[0] if fallback else None,
        similar=similar.record if similar else None,
    )
    by_domain = {source.domain: source for source in sources}
    with atomic_directory(target) as tmp:
        for route in routes:
            copy_directory(by_domain[route.name].path, tmp / route.adapter)
        if fallback is not None:
            copy_directory(fallback[1], tmp / FALLBACK)
        if similar is not None:
            similar.similar.save(tmp / SIMILAR_FILE)
        write_artifact(tmp / RouteTable.FILE_NAME, table)
    return table


def write_routed_candidates(
    args: MergeArgs,
    sources: list[SourceAdapter],
    keys: dict[str, list[str]],
    result: MergeResult,
    out: Path,
) -> dict[str, str]:
    """The routed candidates when `--routed` asks for them: `candidates/routed/adapter` and,
    with more than one source, `candidates/routed-<first merge>/adapter`, whose prompts that
    name no route get the first merge. Their folders by name."""
    if not args.routed:
        return {}
    assert args.suite is not None  # MergeArgs requires it with --routed
    similar = (
        similar_of(args.suite, args.model, args.revision, args.adapters, keys)
        if args.similar
        else None
    )
    made = {ROUTED: candidate_dir(out, ROUTED)}
    table = write_routed(sources, made[ROUTED], keys, step=args.step, similar=similar)
    for domain, why in table.left_out.items():
        print(f"[merge] routed adapters: {domain} has no route: {why}", file=sys.stderr)
    for domain, share in (similar.record.reach if similar else {}).items():
        print(
            f"[merge] similar route {domain}: {share:.0%} of its synthesised questions pass its "
            "threshold",
            file=sys.stderr,
        )
    if len(sources) > 1:
        name = f"{ROUTED}-{result.combination}"
        made[name] = candidate_dir(out, name)
        fallback = (result.combination, result.adapter_dir)
        write_routed(sources, made[name], keys, step=args.step, fallback=fallback, similar=similar)
    return {name: str(folder) for name, folder in made.items()}
