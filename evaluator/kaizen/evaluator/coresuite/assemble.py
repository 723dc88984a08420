"""Assemble the `core` suite from the domain modules and write eval.jsonl and train.jsonl."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kaizen.evaluator.coresuite.common import CAPABILITIES, PER_CAPABILITY, Candidate
from kaizen.evaluator.coresuite.numbers import arithmetic, units
from kaizen.evaluator.coresuite.science import astronomy, biology, chemistry, physics
from kaizen.evaluator.coresuite.world import geography, history, languages
from kaizen.runtime import suites
from kaizen.runtime.scoring import normalize, score

#: Where the suite lives (its JSONL files are committed there).
HERE = Path(suites.__file__).resolve().parent / "core"
SEED = 7


# --------------------------------------------------------------------------- assembly

DOMAINS = [geography, chemistry, astronomy, biology, history, languages, arithmetic, units, physics]


def _gives_itself_away(candidate: Candidate) -> bool:
    """True when the question alone would score as a right answer (a parroting model passes)."""
    message = (
        f"{candidate.context}\n\n{candidate.question}" if candidate.context else candidate.question
    )
    scorer = "numeric" if candidate.numeric else "contains"
    return score(scorer, message, (candidate.answer, *candidate.aliases))[0] == 1.0


def _pick(rng: random.Random, candidates: list[Candidate], taken: set[str]) -> list[Candidate]:
    pool = list(candidates)
    rng.shuffle(pool)
    chosen = []
    for candidate in pool:
        key = normalize(f"{candidate.context or ''} {candidate.question}")
        if key in taken or _gives_itself_away(candidate):
            continue
        taken.add(key)
        chosen.append(candidate)
        if len(chosen) == PER_CAPABILITY:
            return chosen
    raise SystemExit(f"only {len(chosen)} usable candidates, need {PER_CAPABILITY}")


def build() -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """(eval items, training examples, domain names), deterministic."""
    items: list[dict[str, Any]] = []
    train: list[dict[str, str]] = []
    names = []
    for make in DOMAINS:
        rng = random.Random(f"{SEED}:{make.__name__}")
        domain = make(rng)
        names.append(domain.name)
        taken: set[str] = set()
        by_capability: dict[str, list[dict[str, Any]]] = {}
        for capability in CAPABILITIES:
            by_capability[capability] = []
            for n, candidate in enumerate(
                _pick(rng, domain.candidates[capability], taken), start=1
            ):
                item: dict[str, Any] = {
                    "id": f"{domain.prefix}-{capability.split('_')[0][:5]}-{n:02d}",
                    "domain": domain.name,
                    "capability": capability,
                }
                if candidate.context:
                    item["context"] = candidate.context
                item["question"] = candidate.question
                item["answer"] = candidate.answer
                if candidate.aliases:
                    item["aliases"] = list(candidate.aliases)
                if candidate.numeric:
                    item["scorer"] = "numeric"
                by_capability[capability].append(item)
        # Capabilities take turns in file order, so `--limit N` (the first N items of each
        # domain) still covers every capability.
        for row in zip(*by_capability.values(), strict=True):
            items.extend(row)
        asked = {normalize(i["question"]) for i in items if i["domain"] == domain.name}
        seen: set[str] = set()
        for example in domain.train:
            key = normalize(example["question"])
            if key in asked or key in seen:
                continue
            seen.add(key)
            train.append(example)
    return items, train, names


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def render() -> dict[str, str]:
    """File name -> content of the generated files."""
    items, train, _ = build()
    return {"eval.jsonl": _jsonl(items), "train.jsonl": _jsonl(train)}


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else HERE
    for name, content in render().items():
        (target / name).write_text(content, encoding="utf-8")
    items, train, names = build()
    print(
        f"{len(items)} evaluation items, {len(train)} training examples, domains: {', '.join(names)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
