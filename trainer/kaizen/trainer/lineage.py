"""What the adapters a cycle starts from were trained on: their lineage's training lines.

A chained cycle starts from the adapters an earlier cycle promoted. Each was made by a step
that left its records beside it: a train step (`training.json`, `data.jsonl`), a joint
training (`joint.json`, naming each domain's `data.jsonl`), a merge (`merge.json`, naming its
source adapters) or the combine step (`combination.json`, naming the chosen candidate's
adapter). Following those records back, through the adapters each step itself started from
(`model.adapters`), gives every training set behind a promoted version, with its domain.

Two uses: synthesis puts lines no earlier adapter saw first (`earlier_questions`), and
rehearsal replays what earlier versions learned about the *other* domains
(`earlier_lines`), so training one domain in a later cycle does not erase what an earlier
cycle taught about another. Adapters made elsewhere (no records beside them) add nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kaizen.api.artifacts import (
    ArtifactError,
    CombinationReport,
    DataCard,
    JointRecord,
    MergeRecord,
    TrainingRecord,
    read_artifact,
)
from kaizen.runtime.scoring import normalize
from kaizen.trainer.data import Example

#: Folders above an adapter searched for the step records that made it
#: (`<step>/adapter`, `<step>/candidates/<name>/adapter`).
_LEVELS = 3
#: Sources of lines that were another domain's, replayed: not what that step taught.
_BORROWED = ("replay:", "rehearsal:")
_MARKERS = (
    TrainingRecord.FILE_NAME,
    JointRecord.FILE_NAME,
    MergeRecord.FILE_NAME,
    CombinationReport.FILE_NAME,
    DataCard.DATA_FILE,
)


@dataclass(frozen=True)
class TrainingSet:
    """One training set behind the starting adapters: its file and domain (None: unknown)."""

    path: Path
    domain: str | None


def _step_folder(adapter: Path) -> Path | None:
    """The folder of the step that wrote `adapter` (the nearest one holding its records)."""
    for folder in list(adapter.parents)[:_LEVELS]:
        if any((folder / name).is_file() for name in _MARKERS):
            return folder
    return None


def _read(path: Path, kind: type) -> object | None:
    try:
        return read_artifact(path, kind)
    except (ArtifactError, OSError, ValueError):
        return None  # a record this version cannot read: that branch adds nothing


def training_sets(adapters: Sequence[str]) -> list[TrainingSet]:
    """Every training set behind `adapters`, each once, nearest first."""
    found: list[TrainingSet] = []
    visited: set[Path] = set()
    queue = [Path(a) for a in adapters]
    while queue:
        folder = _step_folder(queue.pop(0))
        if folder is None or folder in visited:
            continue
        visited.add(folder)
        training = _read(folder / TrainingRecord.FILE_NAME, TrainingRecord)
        if isinstance(training, TrainingRecord):
            found.append(TrainingSet(folder / DataCard.DATA_FILE, training.domain))
            queue += [Path(a) for a in training.model.adapters]
            continue
        joint = _read(folder / JointRecord.FILE_NAME, JointRecord)
        if isinstance(joint, JointRecord):
            found += [TrainingSet(Path(s.path), s.domain) for s in joint.sources]
            queue += [Path(a) for a in joint.model.adapters]
            continue
        merge = _read(folder / MergeRecord.FILE_NAME, MergeRecord)
        if isinstance(merge, MergeRecord):
            queue += [Path(s.path) for s in merge.sources]
            queue += [Path(a) for a in merge.model.adapters]
            continue
        combination = _read(folder / CombinationReport.FILE_NAME, CombinationReport)
        if isinstance(combination, CombinationReport):
            queue += [
                Path(c.adapter) for c in combination.candidates if c.name == combination.chosen
            ]
            continue
        if (folder / DataCard.DATA_FILE).is_file():
            found.append(TrainingSet(folder / DataCard.DATA_FILE, None))
    unique: dict[Path, TrainingSet] = {}
    for item in found:
        unique.setdefault(item.path, item)
    return list(unique.values())


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("question"), str):
            records.append(record)
    return records


@dataclass(frozen=True)
class Lineage:
    """The training sets behind some adapters, each with its lines, read once."""

    sets: tuple[tuple[TrainingSet, tuple[dict[str, object], ...]], ...]


def read_lineage(adapters: Sequence[str]) -> Lineage:
    """Find every training set behind `adapters` and read its lines."""
    return Lineage(tuple((item, tuple(_lines(item.path))) for item in training_sets(adapters)))


def _as_lineage(source: Sequence[str] | Lineage) -> Lineage:
    return source if isinstance(source, Lineage) else read_lineage(source)


def earlier_questions(source: Sequence[str] | Lineage) -> set[str]:
    """Normalised synthesised (or teacher-answered) questions the adapters were trained on."""
    questions: set[str] = set()
    for _, records in _as_lineage(source).sets:
        for record in records:
            if str(record.get("source", "")).startswith(("synthesis:", "teacher:")):
                questions.add(normalize(str(record["question"])))
    return questions


def earlier_lines(source: Sequence[str] | Lineage) -> dict[str, list[Example]]:
    """Per domain, the lines the adapters' lineage was trained on for that domain itself.

    Lines a step borrowed from another domain (its replay) are left out: they are that
    domain's, and already in its own set or its pool. Each question once per domain. The
    examples' source is `rehearsal:<domain>`.
    """
    by_domain: dict[str, list[Example]] = {}
    seen: set[tuple[str, str]] = set()
    for item, records in _as_lineage(source).sets:
        if item.domain is None:
            continue
        for record in records:
            source = str(record.get("source", ""))
            answer = record.get("answer")
            if source.startswith(_BORROWED) or not isinstance(answer, str):
                continue
            question = str(record["question"])
            key = (item.domain, normalize(question))
            if key in seen:
                continue
            seen.add(key)
            capability = record.get("capability")
            by_domain.setdefault(item.domain, []).append(
                Example(
                    question,
                    answer,
                    capability if isinstance(capability, str) else None,
                    source=f"rehearsal:{item.domain}",
                )
            )
    return by_domain
