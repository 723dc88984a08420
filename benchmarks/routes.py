"""Where suites' evaluation items route, by keys and by similar routes, and what strays.

For each suite, every domain that has knowledge is routed as the merge step would route it
(`kaizen.runtime.routing.route_keys`, `kaizen.trainer.merge.similar_of`: keys and similar
routes from the suite's knowledge, on the model's reading), and every evaluation item (dev
and test) is matched as evaluation matches it. It prints, by domain, the items through their
own route by keys and by similarity alone, and the items through another domain's route;
then how many items of every *other* suite a similar route of this suite takes (no key
named; the core and demo suites, whose questions are the background, left out): questions the
thresholds were never set against, the stray rate a server would see on traffic about other
things. A measurement only: routes never come from evaluation items.

This is the measurement behind docs/routing.md ("Similar routes, measured").

    python benchmarks/routes.py [--suites demo core benchmarks/suites/keyhole ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kaizen.api.artifacts import Route, RouteTable
from kaizen.runtime.models import load_model, load_tokenizer
from kaizen.runtime.routing import Router, invented_words, route_keys
from kaizen.runtime.similar import embed, layer_of
from kaizen.runtime.suites import load_suite
from kaizen.trainer.merge import BACKGROUND_SUITES, similar_of

MODEL = "bundled:smollm2-135m-instruct"
REPO = Path(__file__).resolve().parents[1]
SUITES = ["demo", "core"] + [
    str(REPO / "benchmarks" / "suites" / name)
    for name in (
        "korrin", "pell", "velorine", "harbor", "ashby", "tova", "quarry", "keyhole", "driftwood",
    )
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--suites", nargs="+", default=SUITES)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model)
    layer = layer_of(model)
    suites = {ref: load_suite(ref) for ref in args.suites}
    questions = {ref: [item.question for item in s.items] for ref, s in suites.items()}
    vectors = {ref: embed(model, tokenizer, q, layer) for ref, q in questions.items()}
    figures: dict[str, Any] = {}
    for ref, suite in suites.items():
        name = Path(ref).name
        known = [
            d
            for d in suite.domains
            if suite.knowledge.for_domain(d).facts or suite.knowledge.for_domain(d).passages
        ]
        keys = {
            d: k
            for d, k in route_keys(suite.knowledge, known, invented_words(tokenizer)).items()
            if k
        }
        if not keys:
            print(f"== {name}: no domain has a key: no route")
            continue
        built = similar_of(ref, args.model, None, [], keys)
        routes = [Route(name=d, adapter=d, keys=k) for d, k in keys.items()]
        router = Router(
            RouteTable(rule="benchmark", routes=routes), built.similar if built else None
        )
        row: dict[str, Any] = {
            "thresholds": built.record.thresholds if built else {},
            "reach": built.record.reach if built else {},
            "domains": {},
        }
        print(f"== {name}: similar routes' reach of their own questions {row['reach']}")
        for domain in suite.domains:
            counts = {"items": 0, "keys": 0, "similar": 0, "other_keys": 0, "other_similar": 0}
            for index, item in enumerate(suite.items):
                if item.domain != domain:
                    continue
                counts["items"] += 1
                named = router.match(item.question)
                taken = named or router.match(item.question, vectors[ref][index])
                how = "keys" if named else "similar"
                counts[how] += domain in taken
                counts[f"other_{how}"] += bool(set(taken) - {domain})
            row["domains"][domain] = counts
            print(
                f"  {domain:16s} {counts['items']:3d} items | own route: keys {counts['keys']:3d},"
                f" similar {counts['similar']:3d} | another's: keys {counts['other_keys']:3d},"
                f" similar {counts['other_similar']:3d}"
                + ("" if domain in keys else "  (no route)")
            )
        strays: dict[str, list[int]] = {}
        for other, other_suite in suites.items():
            # The background's own suites were what the thresholds were set against.
            if other == ref or Path(other).name in BACKGROUND_SUITES:
                continue
            strayed = sum(
                1
                for index, text in enumerate(questions[other])
                if not router.match(text) and router.match(text, vectors[other][index])
            )
            strays[Path(other).name] = [strayed, len(other_suite.items)]
        row["other_suites"] = strays
        total = sum(t for t, _ in strays.values())
        every = sum(n for _, n in strays.values())
        shown = {k: t for k, (t, _) in strays.items() if t}
        print(f"  other suites' items through a similar route: {total} of {every} {shown}")
        figures[name] = row
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
