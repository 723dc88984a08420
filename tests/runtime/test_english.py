"""The irregular verbs the prose readers share, and what each reader now reads by them."""

import pytest

from kaizen.runtime.suites.clauses import kind_of
from kaizen.runtime.suites.english import IRREGULAR_VERBS, PARTICIPLES, PAST_FORMS, participle
from kaizen.runtime.suites.names import common_opening
from kaizen.runtime.suites.prose import asked_about


def test_the_table_has_each_verb_once_and_no_regular_forms() -> None:
    bases = [base for base, _, _ in IRREGULAR_VERBS]
    assert len(bases) == len(set(bases))
    for base, _, done in IRREGULAR_VERBS:
        assert done not in (f"{base}ed", f"{base}d"), base


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("founded", True),  # regular
        ("written", True),  # -en
        ("drawn", True),  # -wn
        ("born", True),  # irregular, and none of those endings
        ("kept", True),
        ("set", True),
        ("river", False),
        ("famous", False),
    ],
)
def test_participle(word: str, expected: bool) -> None:
    assert participle(word) is expected


def test_the_views_come_from_the_table() -> None:
    assert {"born", "kept", "spoken"} <= PARTICIPLES
    assert {"bore", "kept", "spoke"} <= PAST_FORMS
    assert "spoke" not in PARTICIPLES and "spoken" not in PAST_FORMS


@pytest.mark.parametrize(
    ("complement", "kind"),
    [
        ("a film set in Paris", "film"),  # "set": a participle ends the kind
        ("a bridge begun in 1901", "bridge"),
        ("a starship built by Hermes", "starship"),
        ("an island nation in the Glass Sea", "island nation"),
    ],
)
def test_a_kind_ends_at_any_participle_of_the_table(complement: str, kind: str) -> None:
    assert kind_of(complement) == kind


@pytest.mark.parametrize(
    ("question", "subject"),
    [
        ("Where was the founder born?", "the founder"),  # not "the founder born"
        ("Where are the backups kept?", "the backups"),
        ("When is the report read?", "the report"),
    ],
)
def test_an_faq_question_ending_in_an_irregular_participle(question: str, subject: str) -> None:
    assert asked_about(question) == subject


def test_a_past_form_after_an_opening_word_says_nothing_of_its_number() -> None:
    assert common_opening("Hermes wrote the code.", "Hermes") is None
    assert common_opening("Orla thought it over.", "Orla") is None
