"""Evaluation suites: the items a model is scored on and the training pool per domain.

A suite is a directory, shipped under `kaizen/runtime/suites/<name>/` or mounted from a
PVC or ConfigMap, holding

- `suite.yaml`: name, version, description, `domains`, `capabilities`,
  `defaults: {scorer}` (a scorer name, or `{name: ..., <option>: ...}`);
- `eval.jsonl`: one item per line: `id`, `domain`, `capability`, `question` (or `messages`,
  a chat), `answer`, optional `aliases`, `scorer` (name or mapping with options), `context`,
  and `choices` for multiple choice scored by log-likelihood (`answer` is the right choice);
- `dev.jsonl` (optional): items in the format of `eval.jsonl` that only a cycle's own
  choices read (`split.py`); without it, `dev_fraction` of `eval.jsonl` is dev by a hash;
- `train.jsonl` (optional): `domain`, `question`, `answer`, optional `capability`;
- `knowledge.jsonl` (optional): relations, facts and passages per domain (`knowledge_file.py`);
- documents (optional, named by suite.yaml's `documents`): Markdown and text files whose
  paragraphs are passages of a domain (`documents.py`).

docs/evaluation.md is the full reference. Loading is strict, because a typo in a suite
silently skews every score after it: each problem raises `SuiteError` ("file:line: field:
problem"), a `ConfigurationError` that the step contract turns into exit code 3. A training
question that repeats an evaluation question is refused too: a pool must never teach the test;
nor may knowledge word one (`kaizen.runtime.contamination`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kaizen.api.runner import ConfigurationError
from kaizen.runtime.contamination import ContaminationGuard
from kaizen.runtime.scoring import SCORERS, answer_problem, normalize, options_problem
from kaizen.runtime.suites.documents import (
    DOCUMENTS_KEY,
    check_disjoint,
    read_documents,
    read_sources,
)
from kaizen.runtime.suites.knowledge import Knowledge
from kaizen.runtime.suites.knowledge_file import KNOWLEDGE_FILE, read_knowledge
from kaizen.runtime.suites.records import Fields, SuiteError, read_jsonl, utf8_lines
from kaizen.runtime.suites.split import DEV_FILE, DEV_FRACTION, Split, split_of

__all__ = [
    "CAPABILITIES",
    "DEV_FILE",
    "EVAL_FILE",
    "KNOWLEDGE_FILE",
    "SHIPPED_SUITES",
    "SUITE_FILE",
    "TRAIN_FILE",
    "EvalItem",
    "Suite",
    "SuiteError",
    "TrainExample",
    "load_suite",
    "shipped_suites",
]

#: The capability taxonomy: what kind of thinking an item needs.
CAPABILITIES = ("factual_recall", "cross_referencing", "counterfactual", "multi_step")
#: Where suites shipped with Kaizen live (package data).
SHIPPED_SUITES = Path(__file__).parent

SUITE_FILE = "suite.yaml"
EVAL_FILE = "eval.jsonl"
TRAIN_FILE = "train.jsonl"

_EVAL_FIELDS = {
    "id",
    "domain",
    "capability",
    "question",
    "messages",
    "answer",
    "aliases",
    "choices",
    "scorer",
    "context",
}
#: Roles a `messages` item may use; the last turn must be the user's.
_ROLES = ("system", "user", "assistant")
#: The scorer of multiple-choice items (log-likelihood ranking, no generation).
CHOICE_SCORER = "choice"
_TRAIN_FIELDS = {"domain", "question", "answer", "capability"}
_SUITE_FIELDS = {
    "name",
    "version",
    "description",
    "domains",
    "capabilities",
    "defaults",
    "dev_fraction",
    DOCUMENTS_KEY,
}


@dataclass(frozen=True)
class EvalItem:
    """One evaluation question; `answers[0]` is the reference, the rest accepted aliases."""

    id: str
    domain: str
    capability: str
    question: str
    """The question, or the last user turn of `messages`."""
    answers: tuple[str, ...]
    scorer: str
    context: str | None = None
    scorer_options: dict[str, Any] = field(default_factory=dict)
    """Options passed to the scorer (e.g. `rel_tol`, `pattern`)."""
    choices: tuple[str, ...] | None = None
    """Multiple choice: the continuations ranked by log-likelihood; `answers[0]` is among them."""
    messages: tuple[tuple[str, str], ...] | None = None
    """A chat as (role, content) turns, ending with the user's, instead of a single question."""
    split: Split = "test"
    """`dev` (a cycle's own choices read it) or `test` (the validation gate's), `split.py`."""

    @property
    def reference(self) -> str:
        return self.answers[0]

    def user_message(self) -> str:
        """What the (last) user turn says: the context (a premise or passage), then the question."""
        return f"{self.context}\n\n{self.question}" if self.context else self.question

    def conversation(self) -> list[dict[str, str]]:
        """The chat turns sent to the model (without the default system prompt)."""
        if self.messages is not None:
            return [{"role": role, "content": content} for role, content in self.messages]
        return [{"role": "user", "content": self.user_message()}]


@dataclass(frozen=True)
class TrainExample:
    """One supervised example of a domain's training pool (a short one-sentence answer)."""

    domain: str
    question: str
    answer: str
    capability: str = "factual_recall"


@dataclass
class Suite:
    """A loaded suite: its items in file order, its training pool and its knowledge."""

    name: str
    version: str
    path: Path
    description: str
    domains: list[str]
    capabilities: list[str]
    items: list[EvalItem]
    training: list[TrainExample] = field(default_factory=list)
    knowledge: Knowledge = field(default_factory=Knowledge)
    """Relations, facts and passages of the suite's domains (empty without knowledge.jsonl
    and documents); its documents' paragraphs come after knowledge.jsonl's passages."""
    left_out: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each domain's parts of its documents not read as prose (code blocks, tables, front
    matter), one `file:line: what` each (`documents.py`); a domain with none is absent."""

    def has_training_source(self, domain: str) -> bool:
        """Whether `domain` has training examples or knowledge to synthesise them from."""
        return any(t.domain == domain for t in self.training) or bool(
            self.knowledge.for_domain(domain)
        )

    def training_pool(self, domain: str, *, required: bool = True) -> list[TrainExample]:
        """The training examples of `domain`, in file order (empty for a knowledge-only domain).

        Raises SuiteError when the domain is not in the suite or, when `required`, has
        neither examples nor knowledge, so a train step asked for it fails as a configuration
        error instead of training on nothing. A step that brings its own data
        (`--extra-data`) passes `required=False`.
        """
        self._check_domain(domain)
        pool = [example for example in self.training if example.domain == domain]
        if required and not self.has_training_source(domain):
            raise SuiteError(
                self.path / TRAIN_FILE,
                None,
                "domain",
                f"no training examples for domain {domain!r} (and no knowledge in {KNOWLEDGE_FILE})",
            )
        return pool

    def _check_domain(self, domain: str) -> None:
        if domain not in self.domains:
            raise SuiteError(
                self.path / SUITE_FILE,
                None,
                "domains",
                f"unknown domain {domain!r}; known: {', '.join(self.domains)}",
            )

    def select(
        self, domains: Sequence[str] = (), limit: int | None = None, split: Split | None = None
    ) -> Suite:
        """The same suite restricted to `domains` (all when empty), to the items of `split` (both
        when None), and to the first `limit` items of each domain in each split.

        Deterministic (file order), so the baseline and the candidate select identical items;
        and the limit counts per split, so the dev items of a selection of both splits are
        exactly the selection of the dev split alone (a cycle's choices pair them by id).
        """
        unknown = [d for d in domains if d not in self.domains]
        if unknown:
            raise SuiteError(
                self.path / SUITE_FILE,
                None,
                "domains",
                f"unknown domain(s) {', '.join(unknown)}; known: {', '.join(self.domains)}",
            )
        if limit is not None and limit < 1:
            raise ConfigurationError(f"limit must be at least 1, got {limit}")
        chosen = [d for d in self.domains if not domains or d in domains]
        taken: dict[tuple[str, str], int] = {}
        items = []
        for item in self.items:
            if item.domain not in chosen or (split is not None and item.split != split):
                continue
            key = (item.domain, item.split)
            if limit is not None and taken.get(key, 0) >= limit:
                continue
            taken[key] = taken.get(key, 0) + 1
            items.append(item)
        return replace(
            self,
            domains=chosen,
            items=items,
            training=[t for t in self.training if t.domain in chosen],
            knowledge=self.knowledge.for_domains(chosen),
        )

    @property
    def digest(self) -> str:
        """`sha256:<hex>` over every item's scored content, in order.

        Two evaluations with the same digest scored the same questions against the same
        answers, so their results can be paired item by item.
        """
        sha = hashlib.sha256()
        for item in self.items:
            record: list[Any] = [
                item.id,
                item.domain,
                item.capability,
                item.question,
                list(item.answers),
                item.scorer,
                item.context,
            ]
            # Newer fields are appended only when used, so older suites keep their digest.
            if item.scorer_options:
                record.append({"scorer_options": item.scorer_options})
            if item.choices is not None:
                record.append({"choices": list(item.choices)})
            if item.messages is not None:
                record.append({"messages": [list(turn) for turn in item.messages]})
            if item.split == "dev":
                record.append({"split": "dev"})
            sha.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
            sha.update(b"\n")
        return f"sha256:{sha.hexdigest()}"


def shipped_suites() -> list[str]:
    """Names of the suites shipped with Kaizen."""
    if not SHIPPED_SUITES.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_SUITES.iterdir() if (p / SUITE_FILE).is_file())


def suite_folder(ref: str) -> Path | None:
    """The folder a suite reference names (a directory, or a shipped suite), None if neither."""
    path = Path(ref)
    if path.is_dir():
        return path
    shipped = SHIPPED_SUITES / ref
    if "/" not in ref and (shipped / SUITE_FILE).is_file():
        return shipped
    return None


def load_suite(ref: str) -> Suite:
    """Load a shipped suite by name, or a suite directory by path."""
    path = Path(ref)
    if not (path / SUITE_FILE).is_file():
        shipped = SHIPPED_SUITES / ref
        if "/" not in ref and (shipped / SUITE_FILE).is_file():
            path = shipped
        elif path.is_dir():
            raise SuiteError(
                path / SUITE_FILE, None, None, "missing: a suite directory needs suite.yaml"
            )
        else:
            raise SuiteError(
                ref,
                None,
                None,
                f"no such suite: neither a directory nor a shipped suite ({', '.join(shipped_suites()) or 'none'})",
            )
    return _load_dir(path.resolve())


def _load_dir(path: Path) -> Suite:
    header = _read_header(path / SUITE_FILE)
    domains, capabilities = header["domains"], header["capabilities"]
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    eval_path = path / EVAL_FILE
    if not eval_path.is_file():
        raise SuiteError(eval_path, None, None, "missing: a suite needs evaluation items")
    for line, record in read_jsonl(eval_path):
        items.append(_read_item(Fields(eval_path, line, record, _EVAL_FIELDS), header, seen))
    if not items:
        raise SuiteError(eval_path, None, None, "no evaluation items")
    dev_path = path / DEV_FILE
    if dev_path.is_file():
        # Ids are unique across both files: results pair items by id.
        dev = [
            replace(
                _read_item(Fields(dev_path, line, record, _EVAL_FIELDS), header, seen), split="dev"
            )
            for line, record in read_jsonl(dev_path)
        ]
        if not dev:
            raise SuiteError(dev_path, None, None, "no items (remove the file to split eval.jsonl)")
        items.extend(dev)
    else:
        fraction = header["dev_fraction"]
        items = [replace(item, split=split_of(item.id, fraction)) for item in items]

    training: list[TrainExample] = []
    train_path = path / TRAIN_FILE
    asked = {normalize(item.question): item.id for item in items}
    if train_path.is_file():
        for line, record in read_jsonl(train_path):
            check = Fields(train_path, line, record, _TRAIN_FIELDS)
            domain = check.choice("domain", domains)
            question = check.text("question")
            if normalize(question) in asked:
                raise SuiteError(
                    train_path,
                    line,
                    "question",
                    f"repeats evaluation item {asked[normalize(question)]!r}: a training pool must not contain the test",
                )
            answer = check.text("answer")
            capability = check.choice("capability", capabilities, default="factual_recall")
            training.append(TrainExample(domain, question, answer, capability))
    knowledge = Knowledge()
    knowledge_path = path / KNOWLEDGE_FILE
    guard = ContaminationGuard.from_items(items)
    if knowledge_path.is_file():
        knowledge = read_knowledge(knowledge_path, domains)
        _check_knowledge_disjoint(knowledge_path, knowledge, guard)
    documents = read_documents(path, path / SUITE_FILE, header["documents"], knowledge.passages)
    if documents.passages:
        check_disjoint(path, documents.passages, guard)
        knowledge = replace(knowledge, passages=knowledge.passages + tuple(documents.passages))
    return Suite(
        name=header["name"],
        version=header["version"],
        path=path,
        description=header["description"],
        domains=domains,
        capabilities=capabilities,
        items=items,
        training=training,
        knowledge=knowledge,
        left_out={domain: tuple(parts) for domain, parts in documents.left_out.items()},
    )


def _check_knowledge_disjoint(path: Path, knowledge: Knowledge, guard: ContaminationGuard) -> None:
    """Refuse knowledge whose wording carries an evaluation item: it would teach the test."""
    for fact in knowledge.facts:
        for text in knowledge.wordings(fact):
            reason = guard.check_text(text)
            if reason:
                raise SuiteError(
                    path,
                    _line(fact.where),
                    "relation",
                    f"{text!r} (worded by relation {fact.relation!r}, {knowledge.relations[fact.relation].where}): {reason}",
                )
    for passage in knowledge.passages:
        for name, value in (("title", passage.title), ("text", passage.text)):
            reason = guard.check_text(value) if value else None
            if reason:
                raise SuiteError(path, _line(passage.where), name, reason)


def _line(where: str) -> int:
    """The line of a `file:line` location."""
    return int(where.rsplit(":", 1)[1])


def _read_item(check: Fields, header: dict[str, Any], seen: dict[str, int]) -> EvalItem:
    """One evaluation item, checked field by field."""
    item_id = check.text("id")
    if item_id in seen:
        check.fail("id", f"duplicate id {item_id!r} (first on line {seen[item_id]})")
    seen[item_id] = check.line
    domain = check.choice("domain", header["domains"])
    capability = check.choice("capability", header["capabilities"])
    messages = _read_messages(check)
    if messages is not None:
        if "question" in check.record:
            check.fail("question", "give either `question` or `messages`, not both")
        if "context" in check.record:
            check.fail("context", "put the context in `messages` when an item is a chat")
        question = messages[-1][1]
    else:
        question = check.text("question")
    answer = check.text("answer")
    aliases = check.text_list("aliases")
    choices = check.text_list("choices") if "choices" in check.record else None
    if choices is not None:
        if len(choices) < 2 or len(set(choices)) != len(choices):
            check.fail("choices", "needs at least two distinct choices")
        if answer not in choices:
            check.fail("answer", f"{answer!r} is not one of the choices")
        if aliases:
            check.fail("aliases", "a multiple-choice item has exactly one right choice")
        scorer, options = _read_scorer(check, "scorer", (CHOICE_SCORER, {}))
        if scorer != CHOICE_SCORER:
            check.fail("scorer", f"items with `choices` are scored by {CHOICE_SCORER!r}")
    else:
        scorer, options = _read_scorer(check, "scorer", header["scorer"])
        if scorer == CHOICE_SCORER:
            check.fail("scorer", f"the {CHOICE_SCORER!r} scorer needs `choices`")
        for name, value in [("answer", answer)] + [("aliases", alias) for alias in aliases]:
            problem = answer_problem(scorer, value)
            if problem:
                check.fail(name, problem)
    context = check.text("context", default=None)
    return EvalItem(
        item_id,
        domain,
        capability,
        question,
        (answer, *aliases),
        scorer,
        context,
        scorer_options=options,
        choices=tuple(choices) if choices is not None else None,
        messages=messages,
    )


def _read_messages(check: Fields) -> tuple[tuple[str, str], ...] | None:
    value = check.record.get("messages")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        check.fail("messages", "must be a non-empty list of {role, content} turns")
    turns = []
    for index, turn in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            check.fail(where, "must be an object with exactly `role` and `content`")
        role, content = turn["role"], turn["content"]
        if role not in _ROLES:
            check.fail(f"{where}.role", f"must be one of {', '.join(_ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content.strip():
            check.fail(f"{where}.content", "must be a non-empty string")
        turns.append((role, content.strip()))
    if turns[-1][0] != "user":
        check.fail("messages", "the last turn must be the user's (the model answers it)")
    return tuple(turns)


def _read_scorer(
    check: Fields, name: str, default: tuple[str, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """(scorer name, options) from `"numeric"` or `{"name": "numeric", "rel_tol": 0.01}`."""
    value = check.record.get(name)
    if value is None:
        return default
    if isinstance(value, str):
        scorer, options = value.strip(), {}
    elif isinstance(value, dict):
        if not isinstance(value.get("name"), str):
            check.fail(f"{name}.name", "missing: a scorer mapping needs `name`")
        scorer = value["name"].strip()
        options = {k: v for k, v in value.items() if k != "name"}
    else:
        check.fail(name, "must be a scorer name or a mapping with `name` and options")
    if scorer not in SCORERS:
        check.fail(name, f"unknown scorer {scorer!r}; known: {', '.join(sorted(SCORERS))}")
    problem = options_problem(scorer, options)
    if problem:
        check.fail(f"{name}.{problem[0]}", problem[1])
    return scorer, options


def _read_header(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SuiteError(path, None, None, "missing")
    text = "".join(utf8_lines(path, path.read_bytes(), keepends=True))
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SuiteError(
            path,
            mark.line + 1 if mark else None,
            None,
            f"bad YAML: {getattr(error, 'problem', error)}",
        ) from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise SuiteError(
            path,
            1,
            None,
            "must be a mapping of name, version, description, domains, capabilities, defaults",
        )
    # Line of each top-level key, so a bad value is reported where it is written.
    lines = {
        key.value: key.start_mark.line + 1
        for key, _ in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    # Line of each entry of `documents`, so a bad entry is reported where it is written.
    entries = [
        entry.start_mark.line + 1
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode)
        and key.value == DOCUMENTS_KEY
        and isinstance(value, yaml.SequenceNode)
        for entry in value.value
    ]
    check = Fields(path, 1, data, _SUITE_FIELDS, lines=lines)
    name = check.text("name")
    version = (
        str(data["version"])
        if isinstance(data.get("version"), int | float)
        else check.text("version")
    )
    description = check.text("description", default="")
    domains = check.text_list("domains", required=True, unique=True)
    capabilities = check.text_list("capabilities", required=True, unique=True)
    for capability in capabilities:
        if capability not in CAPABILITIES:
            raise SuiteError(
                path,
                lines.get("capabilities", 1),
                "capabilities",
                f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}",
            )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - {"scorer"}:
        raise SuiteError(
            path, lines.get("defaults", 1), "defaults", "must be a mapping with only `scorer`"
        )
    defaults_check = Fields(
        path, lines.get("defaults", 1), defaults, {"scorer"}, prefix="defaults."
    )
    scorer = _read_scorer(defaults_check, "scorer", ("contains", {}))
    dev_fraction = data.get("dev_fraction", DEV_FRACTION)
    if (
        isinstance(dev_fraction, bool)
        or not isinstance(dev_fraction, int | float)
        or not 0.0 <= dev_fraction < 1.0
    ):
        raise SuiteError(
            path,
            lines.get("dev_fraction", 1),
            "dev_fraction",
            f"must be a number in [0, 1), got {dev_fraction!r}",
        )
    if scorer[0] == CHOICE_SCORER:
        defaults_check.fail("scorer", "multiple choice is chosen per item by giving `choices`")
    return {
        "name": name,
        "version": version,
        "description": description,
        "domains": domains,
        "capabilities": capabilities,
        "scorer": scorer,
        "dev_fraction": float(dev_fraction),
        "documents": read_sources(path, data, lines, entries, domains),
    }
