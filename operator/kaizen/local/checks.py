"""`kaizen check` beyond the spec's own rules: what the cycle's files say, where they can be read.

`parse_cycle` already refuses everything the operator (and the CRD) refuses. The suite is only
read by the steps, on the artifact volume; when it can be read here (a suite shipped with
Kaizen, or a folder on this machine), `check_reachable` loads it as the evaluate step would
and checks the spec's domain names against it, so a misspelt domain fails the check instead
of the first step.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.api import ImprovementCycle, SpecError
from kaizen.api.fields import AUTO, ROUTED

#: lm-evaluation-harness tasks become domains of this name in the results.
LMEVAL_PREFIX = "lmeval:"
#: Names a routing note lists before it counts the rest.
ROUTING_NOTE_NAMES = 4
#: Parts of documents left out that a note lists before it counts the rest.
LEFT_OUT_NOTE_PARTS = 3


@dataclass
class CheckReport:
    """Problems (the cycle would fail) and notes (what could not be checked here)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_reachable(cycle: ImprovementCycle) -> CheckReport:
    """Load the cycle's suite when it is reachable and check the spec's domains against it."""
    from kaizen.runtime.suites.loader import load_suite, suite_folder
    from kaizen.runtime.suites.records import SuiteError

    report = CheckReport()
    spec = cycle.spec
    ref = spec.evaluation.suite
    if suite_folder(ref) is None:
        report.notes.append(
            f"spec.evaluation.suite: {ref!r} is neither a shipped suite nor a folder on this "
            "machine; the evaluate step reads it from the artifact volume"
        )
        return report
    try:
        suite = load_suite(ref)
    except SuiteError as error:
        report.problems.append(f"spec.evaluation.suite: {error}")
        return report
    known = set(suite.domains) | {LMEVAL_PREFIX + t for t in spec.evaluation.lm_eval_tasks}
    listing = ", ".join(suite.domains)
    for index, domain in enumerate(spec.evaluation.domains):
        if domain not in suite.domains:
            report.problems.append(
                f"spec.evaluation.domains[{index}]: {domain!r} is not a domain of suite "
                f"{suite.name!r} ({listing})"
            )
    for domain in spec.training.domains:
        if domain not in known:
            report.problems.append(
                f"spec.training.domains.{domain}: {domain!r} is not a domain of suite "
                f"{suite.name!r} ({listing}); its settings would never apply"
            )
    for index, domain in enumerate(spec.analysis.defer_domains):
        if domain not in known:
            report.problems.append(
                f"spec.analysis.deferDomains[{index}]: {domain!r} is not a domain of suite "
                f"{suite.name!r} ({listing}); deferring it would change nothing"
            )
    evaluated = set(spec.evaluation.domains) or set(suite.domains)
    checked = sorted(evaluated & set(suite.domains))
    _check_dev_items(suite, checked, report)
    for domain in spec.training.domains:
        if domain in suite.domains and domain not in evaluated:
            report.problems.append(
                f"spec.training.domains.{domain}: {domain!r} is not evaluated "
                "(spec.evaluation.domains), so it can never be a priority domain"
            )
    if suite.left_out:
        report.notes.append(_left_out_note(suite))
    if spec.merge.combination == AUTO and ROUTED in spec.merge.candidates:
        report.notes.extend(_routing_notes(cycle, suite, checked))
    if spec.training.replay_fraction > 0:
        report.notes.extend(_rehearsal_notes(suite, checked))
    return report


def refuse_unreachable(cycle: ImprovementCycle, source: Path, prefix: str = "") -> None:
    """`check_reachable` as `kaizen check` and `kaizen run` report it: its notes on stderr,
    and its problems as a `SpecError` naming the file (`source`) and each field (`prefix`:
    where the cycle sits in the file, "spec.template." for a chain's)."""
    report = check_reachable(cycle)
    for note in report.notes:
        print(f"note: {prefix}{note}", file=sys.stderr)
    if report.problems:
        raise SpecError([f"{source}: {prefix}{problem}" for problem in report.problems])


def _check_dev_items(suite: Any, domains: list[str], report: CheckReport) -> None:
    """A problem when no evaluated domain has dev items (a cycle could train nothing), a note
    naming the evaluated domains without any (they are never trained)."""
    with_dev = {item.domain for item in suite.items if item.split == "dev"}
    without = [d for d in domains if d not in with_dev]
    if not without:
        return
    why = (
        "an adapter is scored and chosen on its domain's dev items: add them to dev.jsonl, or "
        "set dev_fraction above 0 in suite.yaml (docs/evaluation.md, 'Dev and test items')"
    )
    if len(without) == len(domains):
        report.problems.append(
            f"spec.evaluation.suite: suite {suite.name!r} has no dev items in the evaluated "
            f"domains ({', '.join(domains)}), so a cycle could train nothing; {why}"
        )
    else:
        report.notes.append(
            f"spec.evaluation.suite: domain(s) {', '.join(without)} of suite {suite.name!r} "
            f"have no dev items: they are analysed on the gate's test items and never "
            f"trained; {why}"
        )


def _left_out_note(suite: Any) -> str:
    """What of the suite's documents is not read as prose (code blocks, tables, front
    matter), so a user sees what their runbooks teach and what they do not."""
    parts = [part for domain in suite.domains for part in suite.left_out.get(domain, ())]
    shown = "; ".join(parts[:LEFT_OUT_NOTE_PARTS])
    more = len(parts) - LEFT_OUT_NOTE_PARTS
    return (
        f"spec.evaluation.suite: {len(parts)} part(s) of the documents of suite "
        f"{suite.name!r} are not read as prose, so nothing is learnt from them: {shown}"
        + (f"; and {more} more" if more > 0 else "")
        + " (docs/evaluation.md, 'Documents')"
    )


def _rehearsal_notes(suite: Any, domains: list[str]) -> list[str]:
    """Which evaluated domains nothing of the suite can rehearse (no pool line, no knowledge)."""
    known = {e.domain for e in suite.training} | set(suite.knowledge.domains)
    bare = [d for d in domains if d not in known]
    if not bare:
        return []
    return [
        f"spec.training.replayFraction: domain(s) {', '.join(bare)} of suite {suite.name!r} have "
        "no training line and no knowledge to rehearse; while another domain trains, their "
        "share of the rehearsal lines is general anchors (the model's own answers to everyday "
        "questions), which protect less than lines of their own: add a train.jsonl pool or "
        "knowledge for them to keep more (docs/training-data.md, 'When nothing else "
        "rehearses')"
    ]


def _invented(cycle: ImprovementCycle) -> Callable[[str], bool] | None:
    """Which lower-case names the cycle's model finds invented (`routing.invented_words`),
    where its tokenizer is on this machine (bundled, or a folder); None elsewhere."""
    from pathlib import Path

    name, revision = cycle.spec.model.name, cycle.spec.model.revision
    if not isinstance(name, str) or not (name.startswith("bundled:") or Path(name).is_dir()):
        return None
    try:
        from kaizen.runtime.models import ModelNotFound, load_tokenizer
        from kaizen.runtime.routing import invented_words

        return invented_words(
            load_tokenizer(name, revision=revision if isinstance(revision, str) else None)
        )
    except (ImportError, ModelNotFound, OSError):
        return None


def _routing_notes(cycle: ImprovementCycle, suite: Any, domains: list[str]) -> list[str]:
    """Which evaluated domains the `routed` candidate could not route (no key of their own)."""
    from kaizen.runtime.routing import INVENTED_PIECES, route_keys, unkeyed_names

    # The tokenizer is read only where a lower-case name waits for its verdict.
    waiting = any(unkeyed_names(suite.knowledge, domain) for domain in domains)
    invented = _invented(cycle) if waiting else None
    keys = route_keys(suite.knowledge, domains, invented)
    unroutable = [d for d in domains if not keys[d]]
    notes = []
    if unroutable:
        notes.append(
            f"spec.merge.candidates: routed: domain(s) {', '.join(unroutable)} of suite "
            f"{suite.name!r} have no name of their own in its knowledge to route by; trained, "
            "they get no route (routed-<merge> sends their prompts through the merge instead)"
        )
    for domain in domains:
        lower = unkeyed_names(suite.knowledge, domain, invented) if keys[domain] else []
        if lower:
            shown = ", ".join(lower[:ROUTING_NOTE_NAMES])
            more = len(lower) - ROUTING_NOTE_NAMES
            rule = (
                "and by the lower-case ones its model's tokenizer writes in "
                f"{INVENTED_PIECES} pieces or more (invented words)"
                if invented
                else f"and by a lower-case one only where the model's tokenizer (not read "
                f"here) writes a word of it in {INVENTED_PIECES} pieces or more"
            )
            notes.append(
                f"spec.merge.candidates: routed: domain {domain!r} routes by its capitalised "
                f"names {rule}; a prompt that names only {shown}"
                + (f" (or {more} more)" if more > 0 else "")
                + (" gets" if invented else " may get")
                + " no route by keys"
                + (
                    " (only its similar route, where the model reads it as the domain's)"
                    if cycle.spec.merge.similar_routes
                    else ""
                )
                + ": name a key in such questions, or write the entity with its capital where "
                "it is one"
            )
    return notes
