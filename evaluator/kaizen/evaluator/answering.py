"""Answering a suite's items: generated answers and ranked choices, route by route.

A model loaded with routed adapters (`kaizen.runtime.routing`) applies different adapters to
different prompts: the items are grouped by the adapters their user turns call for, and each
group is answered with exactly those applied (a group that names no route, with none; where
the folder has similar routes, a prompt naming no key is read by the model with its adapters
off and may take the route of the domain it asks about, `kaizen.runtime.similar`). A
model without routed adapters answers every item as one group. Each generation and each
ranking is batched within its group, so a routed model's answers are those of the model each
prompt was routed to.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from kaizen.evaluator.generation import Generation, GenerationReport, Sampling, generate
from kaizen.evaluator.loglik import rank_choices
from kaizen.runtime.routing import prompt_text, routing_of


@dataclass
class Answers:
    """Every item's answer, keyed by its index in the suite's items."""

    generated: dict[int, Generation] = field(default_factory=dict)
    ranked: dict[int, dict[str, Any]] = field(default_factory=dict)
    routes: dict[int, list[str]] | None = None
    """Each item's routes (None: the model has no routed adapters)."""
    generation_seconds: float = 0.0
    loglik_seconds: float = 0.0
    batch_size: int = 0
    """The smallest generation batch size used (memory may have made it smaller)."""

    @property
    def report(self) -> GenerationReport:
        """The generations, in item order, with their total time."""
        outputs = [self.generated[i] for i in sorted(self.generated)]
        return GenerationReport(outputs, self.generation_seconds, self.batch_size)


def answer(
    model: Any,
    tokenizer: Any,
    items: Sequence[Any],
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_strings: tuple[str, ...],
    sampling: Sampling,
    progress: bool,
) -> Answers:
    """Generate an answer to every open item and rank every multiple-choice item's choices."""
    routing = routing_of(model)
    groups: dict[tuple[str, ...], list[int]] = {}
    answers = Answers(batch_size=batch_size)
    if routing is None:
        groups[()] = list(range(len(items)))
    else:
        answers.routes = {}
        texts = [prompt_text(item.conversation()) for item in items]
        vectors = routing.embed(model, tokenizer, texts)
        for index, text in enumerate(texts):
            routes, adapters = routing.select(text, vectors[index] if vectors else None)
            answers.routes[index] = list(routes)
            groups.setdefault(adapters, []).append(index)
    for adapters, indices in sorted(groups.items()):
        open_items = [i for i in indices if items[i].choices is None]
        closed = [i for i in indices if items[i].choices is not None]
        with routing.active(model, adapters) if routing else nullcontext():
            if open_items:
                report = generate(
                    model,
                    tokenizer,
                    [prompts[i] for i in open_items],
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                    stop_strings=stop_strings,
                    sampling=sampling,
                    progress=progress,
                )
                answers.generated.update(zip(open_items, report.outputs, strict=True))
                answers.generation_seconds += report.wall_seconds
                answers.batch_size = min(answers.batch_size, report.batch_size)
            if closed:
                choices, loglik = rank_choices(
                    model,
                    tokenizer,
                    [(prompts[i], items[i].choices or ()) for i in closed],
                    batch_size=batch_size,
                )
                answers.ranked.update(zip(closed, choices, strict=True))
                answers.loglik_seconds += loglik.wall_seconds
    return answers


def without_routes(model: Any) -> AbstractContextManager[None]:
    """A context in which a routed model applies what a prompt naming no route gets (for
    lm-eval's requests, which are not routed); a no-op context for any other model."""
    routing = routing_of(model)
    return routing.active(model, routing.select("")[1]) if routing else nullcontext()
