"""Suite loading: the shipped demo suite, selection, digests, and every kind of malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.runner import ConfigurationError
from kaizen.runtime.scoring import normalize, score
from kaizen.runtime.suites import CAPABILITIES, SuiteError, load_suite, shipped_suites

HEADER = """\
name: mini
version: "2"
description: a two-domain suite for tests
domains: [alpha, beta]
capabilities: [factual_recall, cross_referencing]
defaults:
  scorer: contains
"""
GOOD_ITEMS = [
    {
        "id": "a1",
        "domain": "alpha",
        "capability": "factual_recall",
        "question": "Q a1?",
        "answer": "x",
    },
    {
        "id": "a2",
        "domain": "alpha",
        "capability": "cross_referencing",
        "question": "Q a2?",
        "answer": "y",
        "aliases": ["why"],
    },
    {
        "id": "a3",
        "domain": "alpha",
        "capability": "factual_recall",
        "question": "Q a3?",
        "answer": "3",
        "scorer": "numeric",
    },
    {
        "id": "b1",
        "domain": "beta",
        "capability": "factual_recall",
        "question": "Q b1?",
        "answer": "z",
        "context": "Suppose so.",
    },
]
GOOD_TRAIN = [
    {"domain": "alpha", "question": "T a?", "answer": "The answer is x."},
    {"domain": "beta", "question": "T b?", "answer": "It is z.", "capability": "cross_referencing"},
]


def write_suite(
    root: Path,
    header: str = HEADER,
    items: list | None = None,
    train: list | None = None,
    raw_eval: str | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(header)
    lines = (
        raw_eval
        if raw_eval is not None
        else "".join(json.dumps(r) + "\n" for r in (GOOD_ITEMS if items is None else items))
    )
    (root / "eval.jsonl").write_text(lines)
    if train is not False:
        (root / "train.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in (GOOD_TRAIN if train is None else train))
        )
    return root


def test_a_suite_directory_loads_with_defaults_and_aliases(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "mini")))
    assert (suite.name, suite.version, suite.domains) == ("mini", "2", ["alpha", "beta"])
    assert [i.id for i in suite.items] == ["a1", "a2", "a3", "b1"]
    assert suite.items[0].scorer == "contains"
    assert suite.items[1].answers == ("y", "why")
    assert suite.items[2].scorer == "numeric"
    assert suite.items[3].user_message() == "Suppose so.\n\nQ b1?"
    assert [t.capability for t in suite.training_pool("beta")] == ["cross_referencing"]
    assert suite.training_pool("alpha")[0].capability == "factual_recall"


def test_scorer_options_choices_messages_and_default_scorer_options(tmp_path: Path) -> None:
    header = HEADER.replace("scorer: contains", "scorer: {name: numeric, rel_tol: 0.01}")
    items = [
        dict(GOOD_ITEMS[0], answer="100", id="n1"),
        dict(GOOD_ITEMS[0], id="r1", scorer={"name": "regex", "pattern": "is (\\w+)"}),
        dict(GOOD_ITEMS[0], id="m1", choices=["x", "y", "z"]),
        {
            "id": "c1",
            "domain": "beta",
            "capability": "factual_recall",
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "Say x."},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "Again?"},
            ],
            "answer": "x",
            "scorer": "exact",
        },
        dict(GOOD_ITEMS[0], id="b1", aliases=["y"], scorer={"name": "contains", "all": True}),
    ]
    suite = load_suite(str(write_suite(tmp_path / "mini", header=header, items=items)))
    numeric, regex, choice, chat, both = suite.items
    assert (both.scorer, both.scorer_options) == ("contains", {"all": True})
    assert score(both.scorer, "x and y", both.answers, both.scorer_options)[0] == 1.0
    assert score(both.scorer, "only y", both.answers, both.scorer_options)[0] == 0.0
    assert (numeric.scorer, numeric.scorer_options) == ("numeric", {"rel_tol": 0.01})
    assert (regex.scorer, regex.scorer_options) == ("regex", {"pattern": "is (\\w+)"})
    assert (choice.scorer, choice.choices, choice.reference) == ("choice", ("x", "y", "z"), "x")
    assert chat.question == "Again?" and chat.user_message() == "Again?"
    assert [t["role"] for t in chat.conversation()] == ["system", "user", "assistant", "user"]
    assert numeric.conversation() == [{"role": "user", "content": "Q a1?"}]
    # Options, choices and messages are part of what the digest pairs on.
    other = [dict(items[0], scorer={"name": "numeric", "rel_tol": 0.5}), *items[1:]]
    assert load_suite(str(write_suite(tmp_path / "o", header=header, items=other))).digest != (
        suite.digest
    )


def _configmap_mount(source: Path, target: Path) -> Path:
    """Lay `source`'s files out as the kubelet mounts a ConfigMap: symlinks into `..data`."""
    target.mkdir(parents=True)
    version = target / "..2026_01_01_00_00_00.000000001"
    version.mkdir()
    for file in source.iterdir():
        (version / file.name).write_bytes(file.read_bytes())
    (target / "..data").symlink_to(version.name)
    for file in source.iterdir():
        (target / file.name).symlink_to(Path("..data") / file.name)
    return target


def test_a_configmap_mounted_suite_loads(tmp_path: Path) -> None:
    source = write_suite(tmp_path / "source")
    mount = _configmap_mount(source, tmp_path / "mnt" / "suite")
    assert (mount / "eval.jsonl").is_symlink()
    suite = load_suite(str(mount))
    assert [i.id for i in suite.items] == ["a1", "a2", "a3", "b1"]
    assert suite.digest == load_suite(str(source)).digest
    assert len(suite.training) == 2


def test_a_configmap_mounted_suite_reports_errors_at_the_mounted_path(tmp_path: Path) -> None:
    source = write_suite(tmp_path / "source", items=[GOOD_ITEMS[0], _item(domain="gamma")])
    mount = _configmap_mount(source, tmp_path / "mnt" / "suite")
    with pytest.raises(SuiteError, match="eval.jsonl:2: domain"):
        load_suite(str(mount))


def test_select_is_per_domain_and_deterministic(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "mini")))
    # The limit counts per domain and split (a1 and a2 are dev items by the hash split).
    assert [i.id for i in suite.select(limit=1).items] == ["a1", "a3", "b1"]
    assert [i.id for i in suite.select(limit=1, split="test").items] == ["a3", "b1"]
    beta = suite.select(["beta"])
    assert ([i.id for i in beta.items], beta.domains) == (["b1"], ["beta"])
    assert suite.select(["beta"]).digest == beta.digest
    assert suite.select().digest == suite.digest
    with pytest.raises(SuiteError, match="unknown domain"):
        suite.select(["gamma"])


def test_digest_changes_when_an_answer_changes(tmp_path: Path) -> None:
    first = load_suite(str(write_suite(tmp_path / "one"))).digest
    changed = [dict(GOOD_ITEMS[0], answer="other"), *GOOD_ITEMS[1:]]
    second = load_suite(str(write_suite(tmp_path / "two", items=changed))).digest
    assert first.startswith("sha256:") and first != second


def test_training_pool_refuses_unknown_or_empty_domains(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path / "mini", train=GOOD_TRAIN[:1])))
    with pytest.raises(SuiteError, match="no training examples for domain 'beta'"):
        suite.training_pool("beta")
    with pytest.raises(SuiteError, match="unknown domain 'gamma'"):
        suite.training_pool("gamma")


def test_train_file_is_optional(tmp_path: Path) -> None:
    assert load_suite(str(write_suite(tmp_path / "mini", train=False))).training == []


def _item(**changes: object) -> dict:
    """A second item, valid unless `changes` break it (None removes a field)."""
    item = dict(GOOD_ITEMS[0], id="zz") | changes
    return {k: v for k, v in item.items() if v is not None}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (_item(domain="gamma"), "eval.jsonl:2: domain: unknown domain 'gamma'"),
        (
            _item(capability="counterfactual"),
            "eval.jsonl:2: capability: unknown capability 'counterfactual'",
        ),
        (_item(id="a1"), "eval.jsonl:2: id: duplicate id 'a1' (first on line 1)"),
        (_item(question=None), "eval.jsonl:2: question: missing"),
        (_item(question="   "), "eval.jsonl:2: question: empty"),
        (_item(answer=12), "eval.jsonl:2: answer: must be a string, got int"),
        (_item(aliases="x"), "eval.jsonl:2: aliases: must be a list of non-empty strings"),
        (_item(scorer="fuzzy"), "eval.jsonl:2: scorer: unknown scorer 'fuzzy'"),
        (
            _item(scorer="numeric", answer="twelve"),
            "eval.jsonl:2: answer: the numeric scorer needs a number",
        ),
        (_item(colour="red"), "eval.jsonl:2: colour: unknown field"),
        (
            _item(scorer={"name": "numeric", "tolerance": 1}, answer="3"),
            "eval.jsonl:2: scorer.tolerance: unknown option of the numeric scorer",
        ),
        (_item(scorer={"rel_tol": 1}), "eval.jsonl:2: scorer.name: missing"),
        (_item(scorer={"name": "regex"}), "eval.jsonl:2: scorer.pattern: required"),
        (
            _item(scorer={"name": "regex", "pattern": "no group"}),
            "eval.jsonl:2: scorer.pattern: needs a capture group",
        ),
        (_item(scorer=3), "eval.jsonl:2: scorer: must be a scorer name or a mapping"),
        (_item(choices=["x"]), "eval.jsonl:2: choices: needs at least two distinct choices"),
        (_item(choices=["x", "x"]), "eval.jsonl:2: choices: needs at least two distinct"),
        (_item(choices=["p", "q"]), "eval.jsonl:2: answer: 'x' is not one of the choices"),
        (
            _item(choices=["x", "q"], aliases=["y"]),
            "eval.jsonl:2: aliases: a multiple-choice item has exactly one right choice",
        ),
        (
            _item(choices=["x", "q"], scorer="exact"),
            "eval.jsonl:2: scorer: items with `choices` are scored by 'choice'",
        ),
        (_item(scorer="choice"), "eval.jsonl:2: scorer: the 'choice' scorer needs `choices`"),
        (
            _item(question=None, messages=[{"role": "user"}]),
            "eval.jsonl:2: messages[0]: must be an object with exactly `role` and `content`",
        ),
        (
            _item(question=None, messages=[{"role": "robot", "content": "hi"}]),
            "eval.jsonl:2: messages[0].role: must be one of system, user, assistant",
        ),
        (
            _item(question=None, messages=[{"role": "user", "content": " "}]),
            "eval.jsonl:2: messages[0].content: must be a non-empty string",
        ),
        (
            _item(question=None, messages=[{"role": "assistant", "content": "Hi"}]),
            "eval.jsonl:2: messages: the last turn must be the user's",
        ),
        (
            _item(messages=[{"role": "user", "content": "Hi"}]),
            "eval.jsonl:2: question: give either `question` or `messages`",
        ),
        (_item(question=None, messages=[]), "eval.jsonl:2: messages: must be a non-empty list"),
    ],
)
def test_malformed_items_name_file_line_and_field(tmp_path: Path, bad: dict, expected: str) -> None:
    root = write_suite(tmp_path / "bad", items=[GOOD_ITEMS[0], bad])
    with pytest.raises(SuiteError) as caught:
        load_suite(str(root))
    assert str(caught.value).startswith(str(root / expected.split(":")[0]))
    assert expected in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    raw = json.dumps(GOOD_ITEMS[0]) + "\n\n" + '{"id": "a2", "domain": \n'
    root = write_suite(tmp_path / "bad", raw_eval=raw)
    with pytest.raises(SuiteError, match=r"eval\.jsonl:3: bad JSON"):
        load_suite(str(root))


def test_files_saved_with_a_byte_order_mark_load_and_other_encodings_name_their_line(
    tmp_path: Path,
) -> None:
    root = write_suite(tmp_path / "bom")
    for name in ("suite.yaml", "eval.jsonl", "train.jsonl"):
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes())
    assert [i.id for i in load_suite(str(root)).items] == ["a1", "a2", "a3", "b1"]
    # A file saved as Latin-1: "Sæther" is one byte 0xe6, no UTF-8.
    latin = json.dumps({**GOOD_ITEMS[1], "answer": "Sæther"}, ensure_ascii=False) + "\n"
    root = write_suite(tmp_path / "latin")
    (root / "eval.jsonl").write_bytes(
        (json.dumps(GOOD_ITEMS[0]) + "\n").encode() + latin.encode("latin-1")
    )
    with pytest.raises(SuiteError, match=r"eval\.jsonl:2: not UTF-8 text \(byte \d+ of the line"):
        load_suite(str(root))
    (root / "eval.jsonl").write_text(json.dumps(GOOD_ITEMS[0]) + "\n")
    (root / "suite.yaml").write_bytes(HEADER.replace("mini", "Sæther").encode("latin-1"))
    with pytest.raises(SuiteError, match=r"suite\.yaml:1: not UTF-8 text"):
        load_suite(str(root))


def test_a_json_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    root = write_suite(tmp_path / "bad", raw_eval='["a", "b"]\n')
    with pytest.raises(SuiteError, match=r"eval\.jsonl:1: must be a JSON object"):
        load_suite(str(root))


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            [{"domain": "gamma", "question": "T?", "answer": "a"}],
            "train.jsonl:1: domain: unknown domain 'gamma'",
        ),
        ([GOOD_TRAIN[0], {"domain": "alpha", "answer": "a"}], "train.jsonl:2: question: missing"),
        ([{"domain": "alpha", "question": "T?", "answer": ""}], "train.jsonl:1: answer: empty"),
        (
            [{"domain": "alpha", "question": "q A1", "answer": "x"}],
            "train.jsonl:1: question: repeats evaluation item 'a1'",
        ),
        (
            [{"domain": "alpha", "question": "T?", "answer": "x", "capability": "magic"}],
            "train.jsonl:1: capability: unknown capability 'magic'",
        ),
    ],
)
def test_malformed_training_examples_name_file_line_and_field(
    tmp_path: Path, train: list, expected: str
) -> None:
    root = write_suite(tmp_path / "bad", train=train)
    with pytest.raises(SuiteError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        load_suite(str(root))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (HEADER.replace("name: mini\n", ""), "suite.yaml:1: name: missing"),
        (
            HEADER.replace("domains: [alpha, beta]", "domains: [alpha, alpha]"),
            "suite.yaml:4: domains: duplicate entries",
        ),
        (
            HEADER.replace("domains: [alpha, beta]", "domains: alpha"),
            "suite.yaml:4: domains: must be a list",
        ),
        (
            HEADER.replace("cross_referencing]", "telepathy]"),
            "suite.yaml:5: capabilities: unknown capability 'telepathy'",
        ),
        (
            HEADER.replace("scorer: contains", "scorer: fuzzy"),
            "suite.yaml:6: defaults.scorer: unknown scorer 'fuzzy'",
        ),
        (HEADER + "owner: me\n", "suite.yaml:8: owner: unknown field"),
        (
            HEADER.replace("scorer: contains", "scorer: {name: numeric, rel: 1}"),
            "suite.yaml:6: defaults.scorer.rel: unknown option of the numeric scorer",
        ),
        (
            HEADER.replace("scorer: contains", "scorer: choice"),
            "suite.yaml:6: defaults.scorer: multiple choice is chosen per item",
        ),
        (
            HEADER.replace("domains: [alpha, beta]", "domains: [alpha, beta"),
            "suite.yaml:5: bad YAML",
        ),
        ("- just\n- a list\n", "suite.yaml:1: must be a mapping"),
    ],
)
def test_malformed_headers_name_file_line_and_field(
    tmp_path: Path, header: str, expected: str
) -> None:
    root = write_suite(tmp_path / "bad", header=header)
    with pytest.raises(SuiteError) as caught:
        load_suite(str(root))
    assert expected in str(caught.value)


def test_unknown_suites_and_missing_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no such suite"):
        load_suite("no-such-suite")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="suite.yaml: missing"):
        load_suite(str(tmp_path / "empty"))
    root = write_suite(tmp_path / "noeval")
    (root / "eval.jsonl").unlink()
    with pytest.raises(SuiteError, match="eval.jsonl: missing"):
        load_suite(str(root))


# The shipped demo suite: its data is what the demo's improvement rests on.


def test_demo_is_shipped_and_found_by_name() -> None:
    assert "demo" in shipped_suites()
    suite = load_suite("demo")
    assert suite.domains == ["geography", "science", "arithmetic", "zephyria", "meridian_lark"]
    assert set(suite.capabilities) == set(CAPABILITIES)
    assert 40 <= len(suite.select(split="test").items) <= 50
    assert 20 <= len(suite.select(split="dev").items) <= 30


def test_demo_training_pools_never_contain_an_evaluation_question() -> None:
    suite = load_suite("demo")
    asked = {normalize(item.user_message()) for item in suite.items} | {
        normalize(item.question) for item in suite.items
    }
    trained = {normalize(example.question) for example in suite.training}
    assert not asked & trained


def test_every_demo_domain_has_items_and_a_training_pool() -> None:
    suite = load_suite("demo")
    for domain in suite.domains:
        for split, low, high in (("test", 8, 12), ("dev", 4, 8)):
            items = suite.select([domain], split=split).items  # type: ignore[arg-type]
            assert low <= len(items) <= high, (domain, split)
        assert len(suite.training_pool(domain)) >= 15


def test_demo_answers_are_not_given_away_by_their_questions() -> None:
    # An item whose question contains its answer would score on a parroting model.
    for item in load_suite("demo").items:
        assert score(item.scorer, item.user_message(), item.answers)[0] == 0.0, item.id


def test_demo_reference_answers_are_taught_by_the_training_pool() -> None:
    # Fictional facts must be learnable: every reference appears in some trained answer.
    suite = load_suite("demo")
    for item in suite.items:
        if item.domain in ("zephyria", "meridian_lark"):
            taught = [ex.answer for ex in suite.training_pool(item.domain)]
            assert any(score("contains", answer, item.answers)[0] == 1.0 for answer in taught), (
                item.id
            )
