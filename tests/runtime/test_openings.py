"""A capitalised word that only ever opens a sentence: a name, or a common word read as one."""

from __future__ import annotations

import re

import pytest

from kaizen.runtime.suites.knowledge import Knowledge, Passage
from kaizen.runtime.suites.names import (
    IMPERATIVE,
    MODIFIER,
    PLURAL_NOUN,
    common_opening,
)
from kaizen.runtime.suites.prose import proper_names, sentences


@pytest.mark.parametrize(
    ("sentence", "reading"),
    [
        # A verb that agrees only with more than one.
        ("Alerts are sent by Heron.", PLURAL_NOUN),
        ("Pagers were handed out in 2020.", PLURAL_NOUN),
        ("Invoices have a due date.", PLURAL_NOUN),
        # A plural before a verb without "-s".
        ("Deploys happen on Tuesdays and Thursdays.", PLURAL_NOUN),
        ("Tickets cost £3 for foot passengers.", PLURAL_NOUN),
        ("Invoices go out on the fifth working day.", PLURAL_NOUN),
        # A noun, then a verb: the word is the noun's adjective or another noun.
        ("Small models are served from the Pumice pool.", MODIFIER),
        ("Nightly backups can be restored by the on-call engineer.", MODIFIER),
        # A verb before a determiner: a step written as an instruction.
        ("Open a ticket in the LOOM queue.", IMPERATIVE),
        ("Attach the table name and the date range.", IMPERATIVE),
        ("Check your quota before a backfill.", IMPERATIVE),
        # … or before a preposition, as a verb is and a name opening a sentence is not.
        ("Wait for approval from a Data Platform engineer.", IMPERATIVE),
        ("Log in to the console first.", IMPERATIVE),
        ("Founded in 1884, the school has 600 pupils.", IMPERATIVE),
        # A name's verb agrees with one.
        ("Cinder rolls the change out to every region.", None),
        ("Mars has two small natural moons.", None),
        ("Mars lies between Earth and Jupiter.", None),
        ("Brooks leads the platform team.", None),
        ("Ledgerline reads usage records from Quarry.", None),
        # A past form or an adverb says nothing of the number.
        ("Hermes built the first bridge.", None),
        ("Athens hosted the games.", None),
        ("Pallas also runs the rota.", None),
        ("Pallas often is the first to answer.", None),
        # An owner, and a word that is not the first.
        ("Zephyria's capital is Velmora.", None),
        ("Velmora is the capital of Zephyria.", None),
    ],
)
def test_what_follows_an_opening_word_says_whether_it_reads_as_a_common_word(
    sentence: str, reading: str | None
) -> None:
    word = re.match(r"[^\W\d_]+", sentence)
    assert word is not None
    assert common_opening(sentence, word.group()) == reading


def test_a_word_that_only_opens_sentences_as_a_common_word_is_no_name() -> None:
    runbook = Passage(
        "gateway",
        "Driftwood is the gateway of the Serving team. Alerts are sent by Heron. Small models"
        " are served from the Pumice pool. Deploys happen on Tuesdays. Cinder rolls the change"
        " out.",
        "Driftwood",
    )
    found = sentences(Knowledge(passages=(runbook,)))
    assert [s.names for s in found] == [
        ("Driftwood", "Serving"),
        ("Heron",),
        ("Pumice",),
        (),
        ("Cinder",),
    ]
    # A plural common noun is what its sentence is about, in lower case; an adjective is not.
    assert [s.subject for s in found] == [None, "alerts", None, "deploys", None]
    # Nor a route key.
    keys = {name for _, name in proper_names(Knowledge(passages=(runbook,)))}
    assert keys.isdisjoint({"Alerts", "Small", "Deploys", "alerts", "deploys"})


def test_an_opening_word_is_a_name_where_it_stands_inside_a_sentence_or_comes_of_a_name() -> None:
    # "Alerts" is the tool's name: written inside a sentence too.
    tool = Passage("tools", "Alerts are the team's paging tool. The team bought Alerts in 2020.")
    assert sentences(Knowledge(passages=(tool,)))[0].names == ("Alerts",)
    # "Zephyrians" is made from "Zephyria", though both only ever open a sentence.
    land = Passage(
        "zephyria",
        "Zephyria is a small country. Zephyrians speak Oramish and sell skyglass abroad.",
        "Zephyria",
    )
    assert [s.names for s in sentences(Knowledge(passages=(land,)))] == [
        ("Zephyria",),
        ("Zephyrians", "Oramish"),
    ]


def test_the_verb_of_a_step_written_as_an_instruction_is_no_name() -> None:
    steps = Passage(
        "backfill",
        "Loom loads Tarn every night. Open a ticket in the LOOM queue. Attach the table name."
        " Wait for approval from Priya Natarajan.",
        "Backfills",
    )
    found = sentences(Knowledge(passages=(steps,)))
    assert [s.names for s in found] == [("Loom", "Tarn"), ("LOOM",), (), ("Priya Natarajan",)]
    assert [s.subject for s in found] == [None, None, None, None]
