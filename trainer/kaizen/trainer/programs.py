"""The train and merge steps: arguments in, artifacts and a `StepSummary` out, under `run_step`.

Each step checks every input it can before loading a model (suite, domain, plan, extra
data, adapter folders, `--source` syntax), so a configuration error costs seconds and
exits with code 3. The full record goes to `training.json` / `merge.json` in the
artifact directory; the summary carries only the digest the operator puts in status.
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from kaizen.api.args_combination import MergeArgs
from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import (
    DataCard,
    MergeRecord,
    RehearsalReport,
    TrainingRecord,
    write_artifact,
)
from kaizen.api.runner import ConfigurationError, run_step
from kaizen.api.summary import (
    AdapterDigest,
    MergeDigest,
    StepSummary,
    file_digest,
)
from kaizen.trainer.cards import PRESERVED_SOURCES, data_note, write_data
from kaizen.trainer.distributed import SINGLE, Parallel
from kaizen.trainer.steps import (
    adapter_run,
    check_adapters,
    load_base,
    load_sharded_base,
    lora_settings,
    run_training_step,
    tracking,
    versions,
)

TRAINING_FILE = TrainingRecord.FILE_NAME
MERGE_FILE = MergeRecord.FILE_NAME
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def _artifact_name(text: str) -> str:
    # W&B artifact names allow letters, digits, '-', '_' and '.' only.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def _teacher_tokenizer(args: TrainArgs, tokenizer: Any) -> Any:
    """--teacher-model's tokenizer, checked against the student's when distilling token-level."""
    from kaizen.runtime.models import ModelNotFound, load_tokenizer
    from kaizen.trainer.distillation import same_vocabulary

    assert args.teacher_model is not None
    try:
        teacher_tokenizer = load_tokenizer(args.teacher_model)
    except ModelNotFound as error:
        raise ConfigurationError(f"--teacher-model {args.teacher_model}: {error}") from None
    if args.distill_weight > 0 and not same_vocabulary(teacher_tokenizer, tokenizer):
        raise ConfigurationError(
            f"--teacher-model {args.teacher_model}: its tokenizer's vocabulary differs from "
            f"the student's ({len(teacher_tokenizer)} vs {len(tokenizer)} tokens); token-level "
            "distillation (--distill-weight) compares token ids and needs the same vocabulary"
        )
    return teacher_tokenizer


def _load_teacher(args: TrainArgs) -> Any:
    """--teacher-model itself (no adapters)."""
    from kaizen.runtime.models import ModelNotFound, load_model

    assert args.teacher_model is not None
    try:
        return load_model(args.teacher_model, [])
    except ModelNotFound as error:
        raise ConfigurationError(f"--teacher-model {args.teacher_model}: {error}") from None


def train(args: TrainArgs, out: Path, parallel: Parallel = SINGLE) -> StepSummary:
    """Train one domain's adapter into `out/adapter`; write `out/training.json`.

    Under torchrun every rank runs this; only rank 0 (`parallel.is_main`) writes anything.
    """
    from kaizen.runtime.contamination import ContaminationGuard
    from kaizen.runtime.models import ModelNotFound, load_tokenizer
    from kaizen.runtime.suites import load_suite
    from kaizen.trainer.anchors import AnchorReport, anchor_count, anchor_examples, anchor_questions
    from kaizen.trainer.data import (
        Example,
        assemble_examples,
        examples_from_pool,
        read_extra_examples,
        read_plan,
        tokenize_examples,
    )
    from kaizen.trainer.distillation import attach_targets
    from kaizen.trainer.general import general_questions
    from kaizen.trainer.lineage import earlier_lines, read_lineage
    from kaizen.trainer.memory import check_quantization, quantized_load_options
    from kaizen.trainer.rehearsal import (
        general_count,
        knowledge_lines,
        replay_count,
        replay_examples,
        replay_shares,
        resemblance,
    )
    from kaizen.trainer.targeted import build_training_set, steps_for_passes
    from kaizen.trainer.teacher import generator

    settings = lora_settings(
        args,
        distill_weight=args.distill_weight,
        distill_top_k=args.distill_top_k,
        distill_temperature=args.distill_temperature,
        preserve_weight=args.preserve_weight if args.replay_fraction > 0 else 0.0,
    )
    check_quantization(args.quantization)  # before any weight is loaded
    parallel.check_batch(args.batch_size)
    load_options = quantized_load_options(args.quantization)
    suite = load_suite(args.suite)
    extra = read_extra_examples(args.extra_data, args.domain) if args.extra_data else []
    synthesis_possible = args.synthesis_examples > 0 and bool(
        suite.knowledge.for_domain(args.domain)
    )
    # A domain without a training pool can still train on its knowledge or its extra data.
    pool = examples_from_pool(
        suite.training_pool(args.domain, required=not (extra or synthesis_possible))
    )
    plan = None
    targeted: tuple[str, ...] = ()
    if args.plan:
        plan = read_plan(args.plan)
        if args.domain not in plan.priority_domains:
            raise ConfigurationError(
                f"{args.plan}: domain {args.domain!r} is not among priority_domains {plan.priority_domains}"
            )
        targeted = tuple(plan.targeted_capabilities)
    check_adapters(args.adapters)
    try:
        tokenizer = load_tokenizer(args.model, revision=args.revision)
    except ModelNotFound as error:
        raise ConfigurationError(f"--model {args.model}: {error}") from None
    if args.teacher_paraphrases and args.teacher != "context":
        raise ConfigurationError("--teacher-paraphrases needs --teacher context")
    context_teacher = args.teacher == "context" and synthesis_possible
    sharded = args.parallelism == "fsdp" and parallel.distributed
    anchoring = args.anchor_ratio > 0 and args.replay_fraction > 0
    if sharded and (
        context_teacher or anchoring or settings.distilling or args.quantization != "none"
    ):
        raise ConfigurationError(
            "--parallelism fsdp cannot be combined with a teacher, --anchor-ratio, "
            "--preserve-weight or --quantization "
            "(no process holds the whole model to generate or quantize with); use ddp"
        )
    teacher_tokenizer = None
    if args.teacher_model is not None and (context_teacher or settings.distilling):
        teacher_tokenizer = _teacher_tokenizer(args, tokenizer)
    model = None
    teacher_model = None
    teacher = None
    if context_teacher:
        # The teacher answers before any LoRA weight exists: the model as it is now, with
        # the facts in its prompt (or another model named by --teacher-model).
        model = load_base(args, load_options)
        teacher_model = model if args.teacher_model is None else _load_teacher(args)
        teacher = generator(teacher_model, teacher_tokenizer or tokenizer)
    # One guard over the evaluation items for every line this step reads (its n-gram index is
    # built once): pool, extra, synthesised and teacher lines, and the rehearsed ones below.
    guard = ContaminationGuard.from_items(suite.items)
    # What the starting adapters were trained on, read once: synthesis puts unseen lines
    # first, and the replay rehearses the other domains' (below).
    lineage = read_lineage(args.adapters)
    built = build_training_set(
        suite,
        args.domain,
        pool=pool,
        extra=extra,
        plan=plan,
        budget=args.synthesis_examples,
        seed=args.seed,
        teacher=teacher,
        teacher_share=args.teacher_share,
        teacher_paraphrases=args.teacher_paraphrases,
        teacher_mode=args.teacher,
        teacher_model=args.teacher_model,
        adapters=lineage,
        guard=guard,
    )
    own = [e for e in built.examples if e.source == "pool"]
    added = [e for e in built.examples if e.source != "pool"]
    examples = assemble_examples(
        own,
        domain=args.domain,
        suite=suite.name,
        extra=added,
        targeted_capabilities=targeted,
        capability_weight=args.capability_weight,
        seed=args.seed,
    )
    # Rehearsal: other domains' pools make up --replay-fraction of the final set, with the
    # lines the starting adapters' lineage learned for those domains (a chained cycle keeps
    # rehearsing what earlier cycles taught, not only the suite's pools).
    learned = earlier_lines(lineage)
    pools = {}
    for d in suite.domains:
        if d == args.domain:
            continue
        # the pool as written, its facts in every wording (--replay-knowledge), what earlier
        # versions learned
        written = examples_from_pool([t for t in suite.training if t.domain == d])
        worded = (
            knowledge_lines(suite.knowledge.for_domain(d), guard, known=written)
            if args.replay_knowledge
            else []
        )
        pools[d] = (
            written
            + worded
            + [e for e in learned.get(d, []) if guard.check(e.question, e.answer) is None]
        )
    # Each domain's resemblance to this set goes to the card; with --replay-focus it also
    # steers the rehearsal lines towards the domains this set resembles.
    resembles = resemblance(built.examples, {d: p for d, p in pools.items() if p})
    shares = replay_shares(resembles, args.replay_focus)
    rehearsed = replay_count(len(examples), args.replay_fraction)
    anchors, anchored = [], AnchorReport()
    if anchoring and rehearsed:
        # The model answers before any LoRA weight exists (as the context teacher does).
        model = model if model is not None else load_base(args, load_options)
        anchors = anchor_examples(
            anchor_questions(
                suite.knowledge,
                args.domain,
                resembles=resembles,
                guard=guard,
                seed=args.seed,
                report=anchored,
            ),
            anchor_count(rehearsed, args.anchor_ratio),
            generator(model, tokenizer),
            guard,
            anchored,
        )
    # The domains with nothing to rehearse (no pool line, no fact, nothing learned earlier)
    # get their even share as the model's own answers to everyday questions, before training;
    # all of the rehearsal when no other domain has anything.
    generals = 0 if sharded else general_count(pools, rehearsed)
    replay = replay_examples(
        pools, domain=args.domain, count=rehearsed - generals, seed=args.seed, shares=shares
    )
    replay += anchors  # on top of the rehearsal lines
    general: list[Example] = []
    if generals:
        model = model if model is not None else load_base(args, load_options)
        general = anchor_examples(
            general_questions(guard, args.seed, anchored),
            generals,
            generator(model, tokenizer),
            guard,
            anchored,
        )
        replay += general
    built.dropped.extend(anchored.dropped)
    rehearsal = RehearsalReport(
        fraction=args.replay_fraction,
        focus=args.replay_focus,
        knowledge=args.replay_knowledge,
        resemblance={d: round(r, 4) for d, r in resembles.items()},
        shares={d: round(x, 4) for d, x in shares.items()},
        anchor_ratio=args.anchor_ratio,
        anchors=len(anchors),
        anchors_asked=anchored.asked,
        general=len(general),
    )
    if replay:
        examples = assemble_examples(
            own,
            domain=args.domain,
            suite=suite.name,
            extra=added,
            replay=replay,
            targeted_capabilities=targeted,
            capability_weight=args.capability_weight,
            seed=args.seed,
        )
    if args.passes is not None:
        # The passes rule: the steps follow the size of the set just built.
        settings = replace(
            settings,
            steps=steps_for_passes(
                args.passes, len(examples), args.batch_size, args.max_steps, args.min_steps
            ),
        )
    card_path = (
        write_data(out, args, suite, built, examples, settings.steps, rehearsal)
        if parallel.is_main
        else None
    )
    tokenized = tokenize_examples(tokenizer, examples, args.max_seq_length)
    if model is None and sharded:
        model = load_sharded_base(args, parallel)
    if model is None:
        model = load_base(args, load_options)
    if settings.distill_weight > 0 and teacher_model is None:
        # The teacher reads every other example once, before any LoRA weight exists: the
        # model itself (with its adapters) or --teacher-model, which is let go afterwards.
        teacher_model = model if args.teacher_model is None else _load_teacher(args)
    # The rehearsal and anchor lines keep what the model knew (--preserve-weight): the model
    # as it is gives their targets, not a teacher.
    trained_examples, distilled, preserved = attach_targets(
        tokenized.examples,
        teacher=teacher_model if settings.distill_weight > 0 else None,
        model=model,
        kept=[
            i
            for i, source in enumerate(tokenized.sources)
            if settings.preserve_weight > 0 and source.startswith(PRESERVED_SOURCES)
        ],
        top_k=args.distill_top_k,
        temperature=args.distill_temperature,
        vocabulary=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        batch_size=args.batch_size,
    )
    if preserved is None:  # nothing rehearsed (no other domain has lines): no term to add
        settings = replace(settings, preserve_weight=0.0)
    teacher_model = None
    teacher = None

    config = {
        **asdict(settings),
        "max_seq_length": args.max_seq_length,
        "capability_weight": args.capability_weight,
        "replay_fraction": args.replay_fraction,
        "replay_examples": len(replay),
        "anchor_ratio": args.anchor_ratio,
        "synthesis_examples": args.synthesis_examples,
        "passes": args.passes,
        "max_steps": args.max_steps if args.passes is not None else None,
        "min_steps": args.min_steps if args.passes is not None else None,
        "teacher": args.teacher,
        "teacher_model": args.teacher_model,
        "teacher_share": args.teacher_share,
        "processes": parallel.world_size,
        "ema_decay": settings.ema_decay or None,  # absent from training.json when off
    }
    tracking_config = {
        **config,
        "domain": args.domain,
        "suite": suite.name,
        "model": args.model,
        "adapters": args.adapters,
    }
    with adapter_run(args, out, parallel, job_type="train", config=tracking_config) as run:
        result = run.train(
            model,
            trained_examples,
            settings,
            pad_token_id=tokenizer.pad_token_id,
            # The teacher's targets are part of what a checkpoint learned from.
            base=[{"teacher": args.teacher_model}] if settings.distilling else [],
        )
        record = TrainingRecord.model_validate(
            {
                "step": args.step,
                "cycle": args.cycle,
                "domain": args.domain,
                "suite": {
                    "name": suite.name,
                    "version": suite.version,
                    "path": str(suite.path),
                    "digest": suite.digest,
                },
                "model": {"ref": args.model, "revision": args.revision, "adapters": args.adapters},
                "config": config,
                "plan": {"path": args.plan, "targeted_capabilities": list(targeted)},
                "examples": {
                    "pool": len(pool),
                    "extra": len(extra),
                    "synthesized": built.synthesized,
                    "teacher": built.taught,
                    "contaminated": built.contaminated,
                    "training_set": len(examples),
                    "used": len(tokenized.examples),
                    "truncated": tokenized.truncated,
                    "dropped_no_answer_tokens": tokenized.dropped,
                    "answer_tokens": sum(example.answer_tokens for example in tokenized.examples),
                },
                "steps": result.steps,
                "resumed_from": result.resumed_from,
                "loss_curve": result.loss_curve,
                "final_loss": result.final_loss,
                "train_seconds": round(result.train_seconds, 3),
                "seconds_per_step": round(result.train_seconds / result.steps, 4),
                "tokens_per_second": round(result.tokens_per_second, 1)
                if result.tokens_per_second
                else None,
                "peak_memory_mb": round(result.peak_memory_mb, 1),
                "trainable_parameters": result.trainable_parameters,
                "total_parameters": result.total_parameters,
                "device": result.device,
                "autocast": result.autocast,
                "versions": versions(),
                "adapter": str(result.adapter_dir),
                "data_card": str(card_path or out / DataCard.FILE_NAME),
                "distillation": {
                    "teacher": args.teacher_model,
                    "positions": distilled.positions,
                    "top_k_mass": round(distilled.top_k_mass, 4),
                    "teacher_seconds": round(distilled.seconds, 3),
                    "kl_curve": result.kl_curve,
                    "final_kl": result.final_kl,
                }
                if distilled is not None
                else None,
                "preservation": {
                    "weight": settings.preserve_weight,
                    "examples": preserved.examples,
                    "positions": preserved.positions,
                    "top_k_mass": round(preserved.top_k_mass, 4),
                    "seconds": round(preserved.seconds, 3),
                    "kl_curve": result.kl_curve,
                    "final_kl": result.final_kl,
                }
                if preserved is not None
                else None,
            }
        )
        if parallel.is_main:
            write_artifact(out / TRAINING_FILE, record)
        summary = {"final_loss": result.final_loss, "tokens_per_second": record.tokens_per_second}
        if result.final_kl is not None:
            summary["final_kl"] = result.final_kl
        run.finish(summary, _artifact_name(f"adapter-{args.domain}"), result.adapter_dir)

    final_loss = round(result.final_loss, 4)
    return StepSummary(
        step=args.step,
        ok=True,
        message=(
            f"trained {args.domain} adapter: {result.steps} steps"
            + (f" ({args.passes:g} passes)" if args.passes is not None else "")
            + f" at lr {args.learning_rate:g}, "
            f"{len(tokenized.examples)} examples ({data_note(built, examples)}), "
            f"final loss {final_loss}"
        ),
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS) if parallel.is_main else None,
        adapter=AdapterDigest(
            domain=args.domain,
            path=str(result.adapter_dir),
            examples=len(tokenized.examples),
            steps=result.steps,
            passes=args.passes,
            final_loss=final_loss,
            learning_rate=args.learning_rate,
            synthesized=built.synthesized,
        ),
    )


def merge(args: MergeArgs, out: Path) -> StepSummary:
    """Merge the `--source` adapters into `out/adapter`; write `out/merge.json`."""
    from kaizen.trainer.merge import (
        check_compatible,
        merge_adapters,
        read_source,
        route_keys_of,
        write_routed_candidates,
    )

    sources = [read_source(domain, path) for domain, path in args.source_pairs()]
    keys = (
        route_keys_of(args.suite, args.model, args.revision, [s.domain for s in sources])
        if args.routed
        else {}
    )
    points = args.points()
    for point in points:
        check_compatible(sources, point.method, point.density or 1.0)
    check_adapters(args.adapters)
    config = {
        "combination": args.combination,
        "density": args.density,
        "seed": args.seed,
        "candidates": list(args.candidates),
        "search_densities": list(args.search_densities),
        "search_weights": list(args.search_weights),
        **({"routed": True} if args.routed else {}),
    }
    tracking_config = {
        **config,
        "sources": {s.domain: str(s.path) for s in sources},
        "model": args.model,
    }
    with tracking(args).run(
        job_type="merge", name=args.step, config=tracking_config, directory=out
    ) as tracker:
        result = merge_adapters(
            sources,
            out,
            load_base=lambda: load_base(args),
            seed=args.seed,
            points=points,
        )
        made = {result.combination: (result.adapter_dir, result.rank), **result.candidates}
        routed = write_routed_candidates(args, sources, keys, result, out)
        record = MergeRecord.model_validate(
            {
                "step": args.step,
                "cycle": args.cycle,
                "model": {"ref": args.model, "revision": args.revision, "adapters": args.adapters},
                "config": config,
                "combination": result.combination,
                "rank": result.rank,
                "sources": [source.describe() for source in result.sources],
                "seconds": round(result.seconds, 3),
                "versions": versions(),
                "adapter": str(result.adapter_dir),
                "merges": [
                    {
                        **point.describe(len(sources)),
                        "rank": made[name][1],
                        "adapter": str(made[name][0]),
                        "seconds": round(result.point_seconds[name], 3),
                    }
                    for name, point in result.points.items()
                ],
                **({"routed": routed} if routed else {}),
            }
        )
        write_artifact(out / MERGE_FILE, record)
        tracker.artifact("merged-adapter", "lora-adapter", [result.adapter_dir])
    domains = [source.domain for source in result.sources]
    return StepSummary(
        step=args.step,
        ok=True,
        message=f"merged {', '.join(domains)} with {result.combination} into a rank-{result.rank} adapter"
        + (f" (also {', '.join(result.candidates)})" if result.candidates else "")
        + (f"; routed adapters {', '.join(routed)}" if routed else ""),
        digest=file_digest(result.adapter_dir / ADAPTER_WEIGHTS),
        merge=MergeDigest(
            path=str(result.adapter_dir), combination=result.combination, sources=domains
        ),
    )


def run_train(args: TrainArgs) -> int:
    from kaizen.runtime.suites.loader import suite_folder

    # A shipped suite's folder is read too (a suite directory is among the arguments).
    suite = suite_folder(args.suite)
    inputs = [str(suite)] if suite is not None else []
    return run_training_step(args, lambda out, parallel: train(args, out, parallel), inputs)


def run_merge(args: MergeArgs) -> int:
    from kaizen.runtime.suites.loader import suite_folder

    # With --routed, the suite's knowledge decides the routes' keys.
    suite = suite_folder(args.suite) if args.routed and args.suite else None
    inputs = [str(suite)] if suite is not None else []
    return run_step(args.step, args.output, lambda out: merge(args, out), args=args, inputs=inputs)
