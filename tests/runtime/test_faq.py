"""An FAQ read as prose: its questions, their answers, and what each question asks about."""

from __future__ import annotations

import pytest

from kaizen.runtime.suites import Passage
from kaizen.runtime.suites.names import names_in
from kaizen.runtime.suites.prose import asked_about, faq
from tests.runtime.test_prose import _texts


def test_an_faq_asks_its_questions_and_states_only_its_answers() -> None:
    access = Passage(
        "x",
        "How do I reset my password? Use the Keyhole portal. Where are the audit logs kept? "
        "They are kept in the Ledger bucket for 400 days. They are never deleted early. "
        "Where is the rota? It is on the wiki.",
        title="Access FAQ",
    )
    # An answer's opening "They" or "It" is what its question asked about.
    assert faq(access) == [
        ("How do I reset my password?", "Use the Keyhole portal."),
        (
            "Where are the audit logs kept?",
            "The audit logs are kept in the Ledger bucket for 400 days. They are never deleted "
            "early.",
        ),
        ("Where is the rota?", "The rota is on the wiki."),
    ]
    # A question is no statement: no sentence of its own. In an FAQ "They" or "It" is what
    # a question asks about, never the topic; a later sentence's is left as it is, and "The
    # rota" is no "Access FAQ's rota".
    assert _texts(access) == [
        "Use the Keyhole portal.",
        "The audit logs are kept in the Ledger bucket for 400 days.",
        "They are never deleted early.",
        "The rota is on the wiki.",
    ]
    assert faq(Passage("x", "No question here. Is it? ", title=None)) == []


@pytest.mark.parametrize(
    ("asked", "about"),
    [
        ("Where are the audit logs kept?", "the audit logs"),  # an irregular participle
        ("Where is the rota published?", "the rota"),
        ("When was the Keyhole portal launched?", "the Keyhole portal"),
        ("How often does the cluster restart?", "the cluster"),
        ("Why do the nightly builds fail?", "the nightly builds"),
        # After "is" a last word that is no participle is the subject's.
        ("Where is the audit event?", "the audit event"),
        ("How long is the retention period?", "the retention period"),
        # A person, an indefinite thing or no subject: nothing to read a pronoun as.
        ("Who approves access to production?", None),
        ("How long is an on-call shift?", None),
        ("What if I miss a page?", None),
        ("Which tool pages the on-call engineer?", None),
    ],
)
def test_what_an_faqs_question_asks_about(asked: str, about: str | None) -> None:
    assert asked_about(asked) == about


@pytest.mark.parametrize(
    ("sentence", "names"),
    [
        ("Use the Keyhole portal.", ["Keyhole"]),
        ("Ask Tomasz Reyes, the archivist.", ["Tomasz Reyes"]),
        ("Contact Helen Obi about refunds.", ["Helen Obi"]),
        ("Ivan the Terrible ruled Muscovy.", ["Ivan the Terrible", "Muscovy"]),
    ],
)
def test_an_instructions_verb_is_no_part_of_the_name_after_it(
    sentence: str, names: list[str]
) -> None:
    assert names_in(sentence) == names
