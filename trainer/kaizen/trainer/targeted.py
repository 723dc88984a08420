"""The targeted training set of one adapter: pool, extra data and synthesis, guarded and carded.

`build_training_set` is the data half of a train step. It reads what the analysis found for
the domain (targeted capabilities, the knowledge-vs-reasoning hint, the failed items),
synthesises items from the domain's knowledge in that mix, lets a teacher answer them when
asked (context distillation), drops every line that repeats or overlaps an evaluation item
(the contamination guard) or repeats a question already in the set, and returns the
examples with a `DataCard` that says where each line came from and what was left out and why.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from kaizen.api.artifacts import (
    CardLine,
    DroppedLine,
    ImprovementPlan,
    SynthesisReport,
    TeacherUse,
)
from kaizen.runtime.contamination import ContaminationGuard
from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites import Suite
from kaizen.trainer.data import Example
from kaizen.trainer.lineage import Lineage, earlier_questions
from kaizen.trainer.synthesis import Candidate, Steering, candidates, choose, stable_seed
from kaizen.trainer.teacher import Generate, distill, paraphrase

#: Lines of each source shown in a data card.
CARD_EXAMPLES = 3
#: The training set of a train step, beside its adapter folder.


def steering_for(plan: ImprovementPlan | None, domain: str, suite: Suite) -> Steering:
    """What the plan says about `domain`, in the terms synthesis uses."""
    if plan is None:
        return Steering()
    analysis = next((d for d in plan.domains if d.name == domain), None)
    failures = [f for f in plan.failures if f.domain == domain]
    failed_ids = {f.id for f in failures} | set(analysis.failed_items if analysis else ())
    items = {item.id: item for item in suite.items}
    texts = tuple(
        f"{items[i].question} {' '.join(items[i].answers)}"
        for i in sorted(failed_ids)
        if i in items
    )
    hint = analysis.hint if analysis else None
    return Steering(
        targeted_capabilities=tuple(plan.targeted_capabilities),
        failed_capabilities=dict(Counter(f.capability for f in failures)),
        diagnosis=hint if hint in ("knowledge", "reasoning") else None,
        failed_texts=texts,
    )


@dataclass
class TrainingSet:
    """The domain's own examples (before replay) and what the card reports of them."""

    examples: list[Example]
    synthesis: SynthesisReport | None = None
    teacher: TeacherUse | None = None
    dropped: list[DroppedLine] = field(default_factory=list)
    synthesized: int = 0
    taught: int = 0
    contaminated: int = 0


def synthesis_seed(seed: int, earlier: Collection[str]) -> int:
    """The seed synthesis draws with: `seed`, moved on when earlier adapters saw synthesised lines.

    A chained cycle starts from adapters trained on lines this domain's knowledge already
    gave; with the same seed it would draw the same entity-profile orders and the same
    shuffles again. Deriving the seed from the earlier lines gives it new orders (and, when
    the budget is smaller than the candidates, other picks), still deterministic: the same
    seed and starting adapters give the same data.
    """
    if not earlier:
        return seed
    # One line per earlier question, 8 hex digits: the derivation this seed was introduced
    # with, kept so that a chain's later cycles still draw the lines they drew before.
    return stable_seed(seed, sorted(earlier), separator="\n", width=8)


def _example(item: Candidate) -> Example:
    prefix = "teacher" if item.kind.startswith("teacher:") else "synthesis"
    kind = item.kind.removeprefix("teacher:")
    return Example(item.question, item.answer, item.capability, source=f"{prefix}:{kind}")


def build_training_set(
    suite: Suite,
    domain: str,
    *,
    pool: Sequence[Example],
    extra: Sequence[Example],
    plan: ImprovementPlan | None,
    budget: int,
    seed: int,
    teacher: Generate | None = None,
    teacher_share: float = 1.0,
    teacher_paraphrases: int = 0,
    teacher_mode: str = "none",
    teacher_model: str | None = None,
    adapters: Sequence[str] | Lineage = (),
    guard: ContaminationGuard | None = None,
) -> TrainingSet:
    """Pool + extra + items synthesised from knowledge, each line guarded against the suite.

    `teacher`, when given, answers `teacher_share` of the synthesised items with their facts
    in its prompt (`teacher.distill`); rejected answers drop their item. With
    `teacher_paraphrases`, it also rewords each chosen recall question that many ways
    (`teacher.paraphrase`); a rewording that fails its checks is dropped. `guard` is the
    suite's contamination guard when the caller already built one (default: built here);
    `adapters` the starting adapters, or their lineage already read (`lineage.read_lineage`).
    """
    knowledge = suite.knowledge.for_domain(domain)
    steering = steering_for(plan, domain, suite)
    guard = guard or ContaminationGuard.from_items(suite.items)
    dropped: list[DroppedLine] = []
    synthesized: list[Example] = []
    report = None
    use = None
    contaminated = 0
    if budget > 0 and knowledge:
        earlier = earlier_questions(adapters)
        drawn = synthesis_seed(seed, earlier)
        # Guard the candidates before choosing, so the budget goes to clean items.
        clean = []
        for item in candidates(knowledge, seed=drawn):
            reason = guard.check(item.question, item.answer)
            if reason is None:
                clean.append(item)
            else:
                contaminated += 1
                dropped.append(
                    DroppedLine(
                        source=f"synthesis:{item.kind}",
                        question=item.question,
                        answer=item.answer,
                        reason=reason,
                    )
                )
        selection = choose(
            clean,
            budget=budget,
            steering=steering,
            seed=drawn,
            domain=domain,
            seen=earlier,
        )
        chosen = selection.items
        reworded: list[Candidate] = []  # a teacher's rewordings: lines beyond the budget
        if teacher is not None:
            asked_count = round(len(chosen) * teacher_share)
            asked, kept_as_is = chosen[:asked_count], chosen[asked_count:]
            answered, teaching = distill(asked, knowledge, teacher)
            for rejected in teaching.dropped:
                dropped.append(
                    DroppedLine(
                        source="teacher",
                        question=rejected["question"],
                        answer=rejected["answer"] or None,
                        reason=f"teacher answer {rejected['reason']}",
                    )
                )
            chosen = answered + kept_as_is
            reworded, rewording = paraphrase(chosen, knowledge, teacher, teacher_paraphrases)
            for rejected in rewording.dropped:
                dropped.append(
                    DroppedLine(
                        source="teacher:paraphrase",
                        question=rejected["answer"] or rejected["question"],
                        answer=None,
                        reason=f"rewording of {rejected['question']!r} {rejected['reason']}",
                    )
                )
            use = TeacherUse(
                mode=teacher_mode,
                model=teacher_model,
                share=teacher_share,
                asked=teaching.asked,
                accepted=teaching.accepted,
                paraphrases_asked=rewording.asked,
                paraphrases_kept=rewording.accepted,
            )
        synthesized = [_example(item) for item in chosen + reworded]
        report = SynthesisReport(
            budget=budget,
            facts=len(knowledge.facts),
            passages=len(knowledge.passages),
            available=selection.available,
            chosen=dict(Counter(item.capability for item in chosen)),
            weights=selection.weights,
            diagnosis=steering.diagnosis,
            targeted_capabilities=list(steering.targeted_capabilities),
            failed_items=len(steering.failed_texts),
            behind_failures=selection.behind_failures,
            earlier_lines=len(earlier),
            repeated=selection.repeated,
        )

    kept: list[Example] = []
    seen: set[str] = set()
    for example in [*pool, *extra, *synthesized]:
        reason = guard.check(example.question, example.answer)
        if reason is not None:
            contaminated += 1
            dropped.append(_dropped(example, reason))
            continue
        key = normalize(example.question)
        if key in seen:
            dropped.append(_dropped(example, "repeats a question already in the set"))
            continue
        seen.add(key)
        kept.append(example)
    return TrainingSet(
        examples=kept,
        synthesis=report,
        teacher=use,
        dropped=dropped,
        synthesized=sum(1 for e in kept if e.source.startswith(("synthesis:", "teacher:"))),
        taught=sum(1 for e in kept if e.source.startswith("teacher:")),
        contaminated=contaminated,
    )


def steps_for_passes(
    passes: float, lines: int, batch_size: int, max_steps: int, min_steps: int = 1
) -> int:
    """Optimiser steps that show each of `lines` about `passes` times at `batch_size` lines a
    step: `ceil(passes × lines / batch_size)`, at least `min_steps` and at most `max_steps`.

    The passes rule of per-domain settings (docs/training-data.md): a fixed step count
    over-trains a small set (80 steps are 27 passes over 24 lines) and under-trains a large
    one; counting passes gives each line the same exposure whatever the set's size. Below
    `min_steps` a tiny set is not learned at all (4 passes over 24 lines are 12 steps, and
    their loss is still 0.59), so the bound wins there.
    """
    if passes <= 0 or lines < 0 or batch_size < 1 or not 1 <= min_steps <= max_steps:
        raise ValueError(
            f"passes {passes}, lines {lines}, batch size {batch_size}, "
            f"steps between {min_steps} and {max_steps}"
        )
    # rounded first, so that 4 passes over 16 lines at 8 a step are 8 steps, not 9
    wanted = math.ceil(round(passes * lines / batch_size, 9))
    return max(min_steps, min(max_steps, wanted))


def _dropped(example: Example, reason: str) -> DroppedLine:
    return DroppedLine(
        source=example.source, question=example.question, answer=example.answer, reason=reason
    )


def source_kind(source: str) -> str:
    """The card's source bucket: `pool`, `extra`, `replay`, `rehearsal`, `anchor`,
    `synthesis:<kind>`, `teacher:<kind>`."""
    if source.startswith("replay:"):
        return "replay"
    if source.startswith("rehearsal:"):
        return "rehearsal"
    if source.startswith("anchor:"):
        return "anchor"
    if source.startswith(("synthesis:", "teacher:")) or source == "pool":
        return source
    return "extra"


def card_examples(examples: Sequence[Example]) -> list[CardLine]:
    """The first few lines of each source bucket, in order."""
    shown: Counter[str] = Counter()
    lines = []
    for example in examples:
        kind = source_kind(example.source)
        if shown[kind] >= CARD_EXAMPLES:
            continue
        shown[kind] += 1
        lines.append(
            CardLine(
                source=example.source,
                capability=example.capability,
                question=example.question,
                answer=example.answer,
            )
        )
    return lines
