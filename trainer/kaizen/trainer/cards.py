"""The training set as a train step writes it: `data.jsonl` (every line, in order) and
`data_card.json` (where each came from, what was dropped and why), and the step's note on it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.api.args_training import TrainArgs
from kaizen.api.artifacts import DataCard, RehearsalReport, SuiteRef, write_artifact
from kaizen.api.summary import atomic_write_bytes

if TYPE_CHECKING:
    from kaizen.trainer.data import Example
    from kaizen.trainer.targeted import TrainingSet

#: Sources of the lines that keep what the model knew (rehearsal and anchors): with
#: --preserve-weight their targets are the model's own before the step trains.
PRESERVED_SOURCES = ("replay:", "rehearsal:", "anchor:")


def write_data(
    out: Path,
    args: TrainArgs,
    suite: Any,
    built: Any,
    examples: list[Any],
    steps: int,
    rehearsal: RehearsalReport,
) -> Path:
    """`data.jsonl` (the training set, in order) and `data_card.json` beside it."""
    from kaizen.trainer.targeted import card_examples, source_kind

    data_path = out / DataCard.DATA_FILE
    lines = [
        json.dumps(
            {
                "question": e.question,
                "answer": e.answer,
                "capability": e.capability,
                "source": e.source,
            },
            ensure_ascii=False,
        )
        for e in examples
    ]
    atomic_write_bytes(data_path, ("\n".join(lines) + "\n").encode())
    card = DataCard(
        step=args.step,
        domain=args.domain,
        suite=SuiteRef(
            name=suite.name, version=suite.version, path=str(suite.path), digest=suite.digest
        ),
        seed=args.seed,
        steps=steps,
        passes=args.passes,
        learning_rate=args.learning_rate,
        total=len(examples),
        by_source=dict(sorted(Counter(source_kind(e.source) for e in examples).items())),
        by_capability=dict(
            sorted(Counter(e.capability or "unspecified" for e in examples).items())
        ),
        by_domain=dict(
            sorted(
                Counter(
                    e.source.split(":", 1)[1]
                    if e.source.startswith(PRESERVED_SOURCES)
                    else args.domain
                    for e in examples
                ).items()
            )
        ),
        synthesis=built.synthesis,
        teacher=built.teacher,
        rehearsal=rehearsal,
        dropped=built.dropped,
        unread=list(suite.left_out[args.domain]) if args.domain in suite.left_out else None,
        examples=card_examples(examples),
        data=str(data_path),
    )
    card_path = out / DataCard.FILE_NAME
    write_artifact(card_path, card)
    return card_path


def data_note(built: TrainingSet, examples: Sequence[Example]) -> str:
    """What the set held beyond the pool: synthesised lines, how many an earlier version
    already saw (a domain whose knowledge is used up says so here), rehearsed lines."""
    parts = [f"{built.synthesized} synthesised"]
    repeated = built.synthesis.repeated if built.synthesis is not None else 0
    if repeated:
        parts[0] += f", {repeated} of them seen by an earlier version"
    rehearsed = sum(1 for e in examples if e.source.startswith("rehearsal:"))
    if rehearsed:
        parts.append(f"{rehearsed} rehearsed from earlier versions")
    return "; ".join(parts)
