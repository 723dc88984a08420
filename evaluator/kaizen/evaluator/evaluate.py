"""The evaluate step: generate an answer to every suite item, score it, and write the results.

Writes `results.json` (suite identity and digest, model, per-item records, per-domain and
per-capability scores, throughput, peak memory) and `responses.jsonl` (the exact prompt sent
and the raw response per item), and returns a `StepSummary` whose `ScoreDigest` is small
enough for a termination message. The baseline and the candidate run this same code on the
same selection of items, so `validate.py` can pair them item by item.
"""

from __future__ import annotations

import json
import resource
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.api import fields
from kaizen.api.args import EvaluateArgs, InferenceArgs, ModelArgs
from kaizen.api.artifacts import ArtifactError, EvaluationResults, read_artifact, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.api.summary import (
    ScoreDigest,
    StepSummary,
    SummaryTooLarge,
    atomic_write_bytes,
    encode_summary,
    file_digest,
)
from kaizen.evaluator import stats
from kaizen.evaluator.answering import answer, without_routes
from kaizen.evaluator.generation import DEFAULT_STOP_STRINGS, Sampling
from kaizen.runtime import models
from kaizen.runtime.scoring import score
from kaizen.runtime.suites import load_suite
from kaizen.runtime.tracking import TrackingOptions, artifact_name

RESULTS_FILE = EvaluationResults.FILE_NAME
RESPONSES_FILE = "responses.jsonl"
#: An item counts as correct (for pass counts and the paired test) at this score or above.
CORRECT_AT = 0.5


def inference_options(args: InferenceArgs) -> dict[str, Any]:
    """How a step that generates with the model loads it (`InferenceArgs`: attention kernel,
    precision, device map, GPU memory cap), as `EvaluateOptions` fields. The evaluate and the
    combine steps both take these, so that the scores a cycle compares are computed alike."""
    names = InferenceArgs.model_fields.keys() - ModelArgs.model_fields.keys()
    return {name: getattr(args, name) for name in sorted(names)}


@dataclass(frozen=True)
class EvaluateOptions:
    """Everything the evaluate step needs, as parsed from its command line."""

    model: str
    suite: str
    step: str
    max_new_tokens: int = fields.DEFAULT_MAX_NEW_TOKENS
    batch_size: int = fields.DEFAULT_EVAL_BATCH_SIZE
    adapters: Sequence[str] = ()
    revision: str | None = None
    domains: Sequence[str] = ()
    limit: int | None = None
    split: str = "all"
    """`all`, `dev` or `test` items (`kaizen.runtime.suites.split`)."""
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    quiet: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    stop_strings: Sequence[str] = DEFAULT_STOP_STRINGS
    lm_eval_tasks: Sequence[str] = ()
    """lm-evaluation-harness task names or local task YAML, folded in as `lmeval:<task>` domains."""
    attention: str = fields.DEFAULT_ATTENTION
    """`sdpa` or `eager`."""
    precision: str = fields.DEFAULT_PRECISION
    """`auto` (bf16 on GPUs, float32 on CPUs), `bf16` or `fp32`."""
    device_map: str = fields.DEFAULT_DEVICE_MAP
    """`single` (one device) or `auto` (blocks spread over the GPUs, `models.placement_options`)."""
    max_gpu_memory: str | None = None
    """With `auto`, the most weight memory per GPU (a Kubernetes quantity)."""

    @classmethod
    def from_args(cls, args: EvaluateArgs, *, tracking: TrackingOptions) -> EvaluateOptions:
        """The options of an evaluate step's parsed command line."""
        return cls(
            model=args.model,
            suite=args.suite,
            step=args.step,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            adapters=tuple(args.adapters),
            revision=args.revision,
            domains=tuple(args.domains),
            limit=args.limit,
            split=args.split,
            tracking=tracking,
            quiet=args.quiet,
            temperature=args.temperature,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            seed=args.seed,
            stop_strings=DEFAULT_STOP_STRINGS if args.stop is None else tuple(args.stop),
            lm_eval_tasks=tuple(args.lm_eval_tasks),
            **inference_options(args),
        )

    def sampling(self) -> Sampling:
        try:
            return Sampling(
                temperature=self.temperature,
                top_p=self.top_p,
                repetition_penalty=self.repetition_penalty,
                seed=self.seed,
            )
        except ValueError as error:
            raise ConfigurationError(str(error)) from error


def aggregate(records: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Per group of `key` (e.g. domain), sorted by name: mean score, n, correct count and a 95% CI.

    `ci95` is `[low, high]`, Wilson for binary scores and a seeded bootstrap otherwise
    (`ci_method` says which), so a user sees how far a score on 40 items can be trusted.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record[key]].append(record)
    table: dict[str, dict[str, Any]] = {}
    for name, rows in sorted(groups.items()):
        scores = [float(r["score"]) for r in rows]
        interval, method = stats.mean_interval(scores)
        table[name] = {
            "score": sum(scores) / len(scores),
            "n": len(rows),
            "correct": sum(1 for r in rows if r["correct"]),
            "ci95": [round(interval[0], 6), round(interval[1], 6)],
            "ci_method": method,
        }
    return table


def overall_scores(records: Sequence[dict[str, Any]], by: str = "domain") -> dict[str, Any]:
    """Micro (every item weighs the same) and macro (every `by` group weighs the same) scores.

    Both come with a 95% interval: micro as in `aggregate`, macro by a bootstrap that
    resamples within each group.
    """
    scores = [float(r["score"]) for r in records]
    groups: dict[str, list[float]] = defaultdict(list)
    for record in records:
        groups[record[by]].append(float(record["score"]))
    micro_ci, method = stats.mean_interval(scores)
    macro_ci = stats.macro_interval(groups)
    return {
        "micro": sum(scores) / len(scores),
        "macro": sum(sum(v) / len(v) for v in groups.values()) / len(groups),
        "n": len(records),
        "correct": sum(1 for r in records if r["correct"]),
        "micro_ci95": [round(micro_ci[0], 6), round(micro_ci[1], 6)],
        "macro_ci95": [round(macro_ci[0], 6), round(macro_ci[1], 6)],
        "ci_method": method,
    }


def peak_memory_mib() -> float:
    """CUDA peak allocated memory when GPUs are in use (summed over them: a model spread over
    several holds memory on each), else this process's peak RSS, in MiB."""
    import torch

    if torch.cuda.is_available():
        peak = sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
        if peak > 0:
            return peak / 2**20
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load(options: EvaluateOptions) -> tuple[Any, Any]:
    if options.quiet:
        # --quiet means no progress bars at all, including transformers' weight loading bar.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        tokenizer = models.load_tokenizer(options.model, revision=options.revision)
        placement = models.placement_options(options.device_map, options.max_gpu_memory)
        model = models.load_model(
            options.model,
            options.adapters,
            revision=options.revision,
            dtype=models.precision_dtype(options.precision),
            load_options={"attn_implementation": options.attention, **placement},
        )
    except models.ModelNotFound as error:
        raise ConfigurationError(str(error)) from error
    spread = models.placement_summary(model)
    if spread is not None:
        print(f"[evaluate] the model's blocks are spread over {spread}", file=sys.stderr)
    return model, tokenizer


def run_evaluation(options: EvaluateOptions, out: Path) -> dict[str, Any]:
    """Evaluate and write results.json and responses.jsonl into `out`; returns results.json's content."""
    if options.max_new_tokens < 1 or options.batch_size < 1:
        raise ConfigurationError("--max-new-tokens and --batch-size must be at least 1")
    sampling = options.sampling()
    split = None if options.split == "all" else options.split
    suite = load_suite(options.suite).select(options.domains, options.limit, split)  # type: ignore[arg-type]
    if not suite.items:
        raise ConfigurationError(
            f"--split {options.split}: suite {suite.name} has no {options.split} items"
            + (f" in domain(s) {', '.join(options.domains)}" if options.domains else "")
        )
    if options.lm_eval_tasks:
        from kaizen.evaluator import lmeval

        # A missing extra or task file fails now, not after the whole suite has run.
        lmeval.check_available()
        lmeval.resolve_task_refs(options.lm_eval_tasks)
    model, tokenizer = _load(options)
    prompts = [models.format_chat(tokenizer, item.conversation()) for item in suite.items]
    # Multiple-choice items are ranked by log-likelihood; every other item is generated.
    answers = answer(
        model,
        tokenizer,
        suite.items,
        prompts,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.batch_size,
        stop_strings=tuple(options.stop_strings),
        sampling=sampling,
        progress=not options.quiet,
    )
    report, ranking = answers.report, answers.ranked
    ranked = len(ranking)
    loglik_share = answers.loglik_seconds / ranked if ranked else 0.0
    records: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []
    for index, (item, prompt) in enumerate(zip(suite.items, prompts, strict=True)):
        if index in ranking:
            text, new_tokens, prompt_tokens, truncated, seconds = (
                ranking[index]["chosen"],
                0,
                None,
                False,
                loglik_share,
            )
        else:
            output = answers.generated[index]
            text, new_tokens, prompt_tokens, truncated, seconds = (
                output.text,
                output.new_tokens,
                output.prompt_tokens,
                output.truncated,
                output.seconds,
            )
        value, extracted = score(item.scorer, text, item.answers, item.scorer_options)
        record = {
            "id": item.id,
            "domain": item.domain,
            "capability": item.capability,
            "split": item.split,
            "question": item.question,
            "reference": item.reference,
            "scorer": item.scorer,
            "response": text,
            "extracted": extracted,
            "score": value,
            "correct": value >= CORRECT_AT,
            "new_tokens": new_tokens,
            "truncated": truncated,
            "seconds": round(seconds, 4),
        }
        response = {
            "id": item.id,
            "prompt": prompt,
            "response": text,
            "extracted": extracted,
            "score": value,
            "new_tokens": new_tokens,
            "prompt_tokens": prompt_tokens,
            "seconds": round(seconds, 4),
        }
        if index in ranking:
            extra = {"choices": list(item.choices or ()), "logprobs": ranking[index]["logprobs"]}
            record.update(extra)
            response.update(extra)
        if answers.routes is not None:
            record["route"] = response["route"] = answers.routes[index]
        records.append(record)
        responses.append(response)
    domains = aggregate(records, "domain")
    results = {
        "suite": {
            "name": suite.name,
            "version": suite.version,
            "digest": suite.digest,
            "path": str(suite.path),
        },
        "selection": {
            "domains": list(options.domains),
            "limit": options.limit,
            **({"split": options.split} if options.split != "all" else {}),
        },
        "model": {
            "name": options.model,
            "revision": options.revision,
            "adapters": list(options.adapters),
        },
        "generation": {
            "max_new_tokens": options.max_new_tokens,
            "batch_size": options.batch_size,
            "batch_size_used": report.batch_size,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "repetition_penalty": sampling.repetition_penalty,
            "seed": sampling.seed,
            "stop_strings": list(options.stop_strings),
            "device": str(model.device),
            "dtype": str(model.dtype).removeprefix("torch."),
        },
        "overall": overall_scores(records),
        "domains": domains,
        "capabilities": aggregate(records, "capability"),
        "performance": {
            "tokens_per_second": report.tokens_per_second,
            "new_tokens": report.new_tokens,
            "wall_seconds": report.wall_seconds + answers.loglik_seconds,
            "generation_seconds": report.wall_seconds,
            "loglik_seconds": answers.loglik_seconds,
            "latency_per_item_seconds": (report.wall_seconds + answers.loglik_seconds)
            / len(records),
            "peak_memory_mib": peak_memory_mib(),
        },
        "items": records,
    }
    if options.lm_eval_tasks:
        with without_routes(model):
            tasks, _ = lmeval.run_lm_eval(
                model,
                tokenizer,
                options.lm_eval_tasks,
                batch_size=report.batch_size,
                limit=options.limit,
                seed=options.seed,
                quiet=options.quiet,
            )
        lmeval.fold_results(results, tasks)
    artifact = EvaluationResults.model_validate(results)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in responses)
    atomic_write_bytes(out / RESPONSES_FILE, lines.encode())
    write_artifact(out / RESULTS_FILE, artifact)
    return artifact.to_dict()


def score_digest(results: dict[str, Any], results_path: Path, step: str) -> ScoreDigest:
    """The headline numbers, rounded; domains are trimmed (weakest kept) if they would not fit 4 KiB."""
    performance = results["performance"]
    domains = {name: round(d["score"], 4) for name, d in results["domains"].items()}
    digest = ScoreDigest(
        overall=round(results["overall"]["micro"], 4),
        domains=domains,
        capabilities={name: round(c["score"], 4) for name, c in results["capabilities"].items()},
        capability_items={name: c["n"] for name, c in results["capabilities"].items()},
        items=results["overall"]["n"],
        tokens_per_second=round(performance["tokens_per_second"], 2),
        peak_memory_mb=round(performance["peak_memory_mib"], 1),
        results_path=str(results_path),
    )
    # A suite with hundreds of domains would overflow the termination message: keep the
    # weakest domains (the ones the cycle acts on); results.json always has all of them.
    weakest_first = sorted(domains, key=lambda name: (domains[name], name))
    while weakest_first:
        try:
            encode_summary(
                StepSummary(step=step, ok=True, evaluation=digest, digest="sha256:" + "0" * 64)
            )
            break
        except SummaryTooLarge:
            weakest_first = weakest_first[: len(weakest_first) * 3 // 4]
            digest = digest.model_copy(
                update={"domains": {name: domains[name] for name in sorted(weakest_first)}}
            )
    return digest


def evaluate_step(options: EvaluateOptions, out: Path) -> StepSummary:
    """The whole evaluate step for `run_step`: evaluate, track, summarise."""
    tracking = options.tracking
    config = {
        "model": options.model,
        "adapters": list(options.adapters),
        "revision": options.revision,
        "suite": options.suite,
        "domains": list(options.domains),
        "limit": options.limit,
        "split": options.split,
        "max_new_tokens": options.max_new_tokens,
        "batch_size": options.batch_size,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "repetition_penalty": options.repetition_penalty,
        "seed": options.seed,
        "stop_strings": list(options.stop_strings),
        "lm_eval_tasks": list(options.lm_eval_tasks),
    }
    results = run_evaluation(options, out)
    results_path = out / RESULTS_FILE
    with tracking.run(
        job_type="evaluate",
        name=options.step,
        config=config,
        directory=out,
    ) as tracker:
        metrics: dict[str, Any] = {
            "overall/micro": results["overall"]["micro"],
            "overall/macro": results["overall"]["macro"],
            "performance/tokens_per_second": results["performance"]["tokens_per_second"],
            "performance/peak_memory_mib": results["performance"]["peak_memory_mib"],
            "performance/latency_per_item_seconds": results["performance"][
                "latency_per_item_seconds"
            ],
        }
        metrics.update({f"domain/{name}": d["score"] for name, d in results["domains"].items()})
        metrics.update(
            {f"capability/{name}": c["score"] for name, c in results["capabilities"].items()}
        )
        tracker.log(metrics)
        tracker.summary(metrics | {"suite/digest": results["suite"]["digest"]})
        columns = [
            "id",
            "domain",
            "capability",
            "question",
            "reference",
            "response",
            "extracted",
            "score",
        ]
        tracker.table("responses", columns, [[r[c] for c in columns] for r in results["items"]])
        tracker.artifact(
            artifact_name(tracking.cycle, options.step, "results"),
            "evaluation",
            [results_path, out / RESPONSES_FILE],
        )
    overall = results["overall"]
    return StepSummary(
        step=options.step,
        ok=True,
        message=(
            f"{overall['correct']}/{overall['n']} correct on suite {results['suite']['name']} "
            f"(micro {overall['micro']:.3f} {_ci(overall.get('micro_ci95'))}, "
            f"macro {overall['macro']:.3f} {_ci(overall.get('macro_ci95'))}; 95% CI)"
        ),
        evaluation=score_digest(results, results_path, options.step),
        digest=file_digest(results_path),
    )


def _ci(interval: Sequence[float] | None) -> str:
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "[?]"


def read_results(path: str | Path) -> EvaluationResults:
    """Load a results.json through its model; ConfigurationError (exit 3) when unusable."""
    try:
        return read_artifact(path, EvaluationResults)
    except ArtifactError as error:
        raise ConfigurationError(str(error)) from error
