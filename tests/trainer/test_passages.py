"""What a domain known only by passages of prose is taught: sentences, names, profiles, cloze."""

from __future__ import annotations

import random

from kaizen.runtime.suites.knowledge import Knowledge, Passage
from kaizen.runtime.suites.prose import sentences
from kaizen.trainer.passages import (
    chain_items,
    cloze_items,
    descriptions,
    premise_items,
    profile_items,
)
from kaizen.trainer.profiles import balanced
from kaizen.trainer.synthesis import COUNTERFACTUAL, CROSS, RECALL, candidates
from kaizen.trainer.teacher import reference, teacher_question
from tests.runtime.test_prose import ISLAND, TOWN, knowledge


def test_a_profile_says_what_every_passage_says_of_a_name_in_several_orders() -> None:
    items = profile_items(sentences(knowledge()), random.Random(0))
    ostrivel = [i for i in items if i.name == "Ostrivel"]
    assert len(ostrivel) == 4  # one a prompt
    said = {s for i in ostrivel for s in i.context}
    # From both passages, and from both ends: the island's sentence names it too.
    assert said == {
        "Quarnel's capital is Ostrivel.",
        "Ostrivel is the oldest town of Quarnel.",
        "The Hall of Seven Doors stands in Ostrivel.",
        "Farmers near Ostrivel grow rye, and farmers sell it at the market.",
    }
    assert len({i.answer for i in ostrivel}) > 1  # seeded orders differ
    # A name the prose writes with "the" is asked about with it; one that only ever opens a
    # sentence with "The" before the same noun, with the noun ("the Varn team", not "the
    # Varn"), not where that word is a verb ("The Danth rises …"). Used as a word of another
    # name it is asked alone ("the Tessaly outpost": "Tessaly").
    assert "What do you know about the Caldrin Sea?" in {i.question for i in items}
    outpost = Passage(
        "x",
        "The ship flew to the Tessaly outpost. The Danth rises in Orm. The Varn team runs"
        " it. Jobs go to the Varn team.",
    )
    asked = {
        i.question
        for i in profile_items(sentences(Knowledge(passages=(outpost,))), random.Random(0))
    }
    assert {
        "What do you know about Tessaly?",
        "What do you know about the Danth?",
        "Tell me about the Varn team.",
    } <= asked
    # Nor one that opens a longer name written with "the" ("The Ashby Ferry …").
    ferry = Passage("x", "The Ashby Ferry leaves Ashby at noon.")
    asked = {
        i.question for i in profile_items(sentences(Knowledge(passages=(ferry,))), random.Random(0))
    }
    assert {"What do you know about Ashby?", "What do you know about the Ashby Ferry?"} <= asked
    assert profile_items(sentences(knowledge()), random.Random(0)) == items
    # A name that ends with its own stop is asked with one stop.
    team = Passage("x", "The U.S. team uses Quarry for billing.")
    asked = {
        i.question for i in profile_items(sentences(Knowledge(passages=(team,))), random.Random(0))
    }
    assert "What do you know about U.S.?" in asked


def test_a_profile_takes_a_name_where_it_stands_whole_or_in_a_persons_name() -> None:
    town = Passage("x", "Pell is a town on the Sallow. Pell Rowing Club has won the cup 31 times.")
    tesk = Passage(
        "x", "Halvard Tesk was born in Pell. He made lenses. Tesk sold them.", title="Halvard Tesk"
    )
    items = profile_items(sentences(Knowledge(passages=(town, tesk))), random.Random(0))
    said = {
        name: {s for i in items if i.name == name for s in i.context} for name in ("Pell", "Tesk")
    }
    # The club is another name, not a sentence about the town.
    assert said["Pell"] == {"Pell is a town on the Sallow.", "Halvard Tesk was born in Pell."}
    # "Tesk" is part of a person's name: the person's sentences are Tesk's.
    assert said["Tesk"] == {
        "Halvard Tesk was born in Pell.",
        "Halvard Tesk made lenses.",
        "Tesk sold them.",
    }


def test_a_sentence_that_names_nothing_is_in_its_passages_topics_profile() -> None:
    quarry = Passage(
        "x",
        "Quarry is the batch scheduler of the data team. Each job gets 512 MiB of memory. Jobs "
        "that fail three times are paused.",
        title="Quarry",
    )
    cluster = Passage(
        "x", "The Halcyon cluster has 48 nodes. Every node is patched on Sundays.", title=None
    )
    items = profile_items(sentences(Knowledge(passages=(quarry, cluster))), random.Random(0))
    said = {
        name: {s for i in items if i.name == name for s in i.context}
        for name in {i.name for i in items}
    }
    assert said["Quarry"] == {
        "Quarry is the batch scheduler of the data team.",
        "Each job gets 512 MiB of memory.",
        "Jobs that fail three times are paused.",
    }
    # The topic of a passage with no title, as its first sentence names it.
    assert "Every node is patched on Sundays." in said["Halcyon"]
    assert "Tell me about the Halcyon." in {i.question for i in items}
    # Nowhere else: no name of its own ("MiB", "Jobs", "Sundays").
    assert set(said) == {"Quarry", "Halcyon"}
    # Not one opening with a pronoun left standing: it means someone else.
    quill = Passage("x", "Marta Quill leads the team. She is kind. They run the rota.")
    items = profile_items(sentences(Knowledge(passages=(quill,))), random.Random(0))
    assert "They run the rota." not in {s for i in items for s in i.context}


def test_a_profile_holds_at_most_four_sentences_in_even_slices() -> None:
    many = Passage("x", " ".join(f"Orm met person number {n}." for n in range(6)), title=None)
    items = profile_items(sentences(Knowledge(passages=(many,))), random.Random(0))
    assert [len(i.context) for i in items] == [3, 3, 3, 3]
    assert len({s for i in items for s in i.context}) == 6


def test_cloze_items_ask_for_each_name_and_a_short_complement() -> None:
    asked = {i.question: (i.expected, i.answer) for i in cloze_items(sentences(knowledge()))}
    # "S is C." is asked the other way round, for a name and for a short complement.
    assert asked["What is Quarnel's capital?"] == ("Ostrivel", "Quarnel's capital is Ostrivel.")
    assert asked["What is the currency of Quarnel?"][0] == "brill"
    assert asked["What is the oldest town of Quarnel?"][0] == "Ostrivel"
    # A passive is no "S is C.": the name at its end is an echo question (a person's, "whom").
    assert asked["Quarnel was founded by whom?"][0] == "King Arvo"
    assert "What was Quarnel?" not in asked
    # The subject is asked without inversion; a name inside the sentence, as a blank.
    assert asked["What rises in the Grey Hills?"][0] == "Danth"
    assert asked["The Danth rises in what?"][0] == "Grey Hills"
    assert asked["Fill in the blank: The currency of ___ is the brill."][0] == "Quarnel"
    for question, (expected, answer) in asked.items():
        assert expected in answer
        assert expected not in question.replace("Fill in the blank: ", "")


def test_a_passages_only_domain_gets_synthesised_items() -> None:
    items = candidates(knowledge(), seed=3)
    kinds = {i.kind for i in items}
    assert {"passage", "passage-profile", "passage-cloze", "passage-premise"} <= kinds
    assert {i.capability for i in items} == {RECALL, CROSS, COUNTERFACTUAL}
    assert len({i.question for i in items}) == len(items)
    assert candidates(knowledge(), seed=3) == items
    assert candidates(knowledge(), seed=4) != items  # profile orders follow the seed
    cloze = next(i for i in items if i.question == "What is Quarnel's capital?")
    assert cloze.facts == ("Ostrivel|passage|",)
    # A teacher is shown the sentence the item comes from.
    assert reference(knowledge(), cloze) == ["Quarnel's capital is Ostrivel."]
    assert "Quarnel's capital is Ostrivel." in teacher_question(knowledge(), cloze)


def test_a_whole_passage_is_asked_about_by_its_title_as_the_passage_writes_it() -> None:
    ferry = Passage("x", "The Ashby Ferry crosses the Velm.", title="Ashby Ferry")
    glass = Passage("x", "Tolbeck glass is green.", title="Tolbeck glass")
    # A heading that opens with a function word is asked in lower case.
    rota = Passage("x", "One engineer is on call for Driftwood.", title="On call for Driftwood")
    asked = {
        i.question
        for passage in (ferry, glass, rota)
        for i in candidates(Knowledge(passages=(passage,)), seed=0)
        if i.kind == "passage"
    }
    assert asked == {
        "What do you know about the Ashby Ferry?",
        "Tell me about the Ashby Ferry.",
        "What do you know about Tolbeck glass?",
        "Tell me about Tolbeck glass.",
        "What do you know about on call for Driftwood?",
        "Tell me about on call for Driftwood.",
    }


def test_two_sentences_compose_through_a_name_a_definite_description_stands_for() -> None:
    river = Passage(
        "quarnel",
        "The Danth runs through Ostrivel. Ostrivel is a town by the sea. "
        "The Hall of Seven Doors was built by Queen Mira.",
    )
    found = sentences(Knowledge(passages=(ISLAND, TOWN, river)))
    chains = {i.question: i for i in chain_items(found)}
    # "Quarnel's capital is Ostrivel." and "Ostrivel is the oldest town of Quarnel." describe
    # Ostrivel; "a town by the sea" names no one thing, but gives Ostrivel's kind; once
    # "Quarnel is an island …" gives Quarnel's kind, a sentence opening with Quarnel
    # describes it by a relative clause. Each question takes every description.
    assert set(chains) == {
        "What stands in Quarnel's capital?",
        "What stands in the oldest town of Quarnel?",
        "What runs through Quarnel's capital?",
        "What runs through the oldest town of Quarnel?",
        "The island whose capital is Ostrivel was founded by whom?",
        "What is the currency of the island whose capital is Ostrivel?",
        "What is the currency of the island that was founded by King Arvo?",
        "What is the oldest town of the island that was founded by King Arvo?",
    }
    item = chains["What runs through the oldest town of Quarnel?"]
    assert item.answer == (
        "Ostrivel is the oldest town of Quarnel. The Danth runs through Ostrivel."
    )
    assert item.expected == "Danth"
    assert item.context == (
        "Ostrivel is the oldest town of Quarnel.",
        "The Danth runs through Ostrivel.",
    )
    for question, chained in chains.items():
        assert chained.expected not in question
        assert "a town by the sea" not in question


def test_a_chain_goes_through_a_name_with_a_title_or_an_ampersand_inside() -> None:
    maker = Passage(
        "x",
        "The largest maker is Brackwater & Sons. Brackwater & Sons exports to Norway. "
        "The head is Mr. Ilan Voss. Mr. Ilan Voss taught at Calder College.",
    )
    chains = {i.question for i in chain_items(sentences(Knowledge(passages=(maker,))))}
    assert {
        "The largest maker exports to what?",
        "The head taught at what?",
    } <= chains


def test_a_name_is_described_by_definite_phrases_and_by_clauses_on_its_kind() -> None:
    described = descriptions(sentences(knowledge()))
    assert [d for d, _ in described["ostrivel"]] == [
        "Quarnel's capital",
        "the oldest town of Quarnel",
    ]
    assert [d for d, _ in described["quarnel"]] == [
        "the island that was founded by King Arvo",
        "the island whose capital is Ostrivel",
    ]


def test_a_person_is_asked_about_with_who_and_a_lower_case_topic_like_a_name() -> None:
    tesk = Passage(
        "x",
        "Halvard Tesk was a glassmaker from Ombril. He invented the cold-drawn lens.",
        title="Halvard Tesk",
    )
    lens = Passage(
        "x", "The cold-drawn lens is a lens shaped cold. It halved the price of telescopes."
    )
    asked = {
        i.question: i.expected for i in cloze_items(sentences(Knowledge(passages=(tesk, lens))))
    }
    assert asked["Who was a glassmaker from Ombril?"] == "Halvard Tesk"
    assert asked["Who invented the cold-drawn lens?"] == "Halvard Tesk"
    assert asked["What is a lens shaped cold?"] == "cold-drawn lens"
    assert asked["What halved the price of telescopes?"] == "cold-drawn lens"


def test_a_chain_never_replaces_a_part_of_a_longer_name() -> None:
    town = Passage(
        "x",
        "Ombril is the capital of Sallowmere. Astronomers at the Ombril Observatory chart "
        "Vessa. The Glass Market stands in Ombril.",
    )
    questions = {i.question for i in chain_items(sentences(Knowledge(passages=(town,))))}
    assert "What stands in the capital of Sallowmere?" in questions
    assert not any("Observatory" in q for q in questions)


def test_a_cloze_item_leaves_out_a_name_where_it_stands_whole() -> None:
    roke = Passage(
        "x",
        "Dr Anwen Roke developed the Roke method for marsh fever. She lives in Pell.",
        title="Dr Anwen Roke",
    )
    asked = {i.question: i.expected for i in cloze_items(sentences(Knowledge(passages=(roke,))))}
    # "Roke" is left out of "the Roke method", never out of "Dr Anwen Roke".
    assert asked["Fill in the blank: Dr Anwen Roke developed the ___ method for marsh fever."] == (
        "Roke"
    )
    assert not [q for q in asked if "Dr Anwen ___" in q]
    assert asked["Who developed the Roke method for marsh fever?"] == "Dr Anwen Roke"


def test_a_premise_puts_a_name_of_the_same_sort_in_a_sentence_and_is_answered_from_it() -> None:
    found = sentences(knowledge())
    rng = random.Random(0)
    premises = {i.question: i for i in premise_items(found, cloze_items(found), rng)}
    # The Danth rises "in the Grey Hills"; Quarnel is an island "in the Caldrin Sea": a name
    # written with "the" after the same word is of the same sort.
    item = premises[
        "Suppose that the Danth rises in the Caldrin Sea, not the Grey Hills. "
        "The Danth rises in what?"
    ]
    assert item.answer == "Under that supposition, the Danth rises in the Caldrin Sea."
    assert item.expected == "Caldrin Sea"
    for question, premise in premises.items():
        assert premise.expected in question and premise.expected in premise.answer
        assert premise.answer.startswith("Under that supposition, ")
    # Ostrivel shares "in" only with names written with "the": it gets no premise.
    assert not any("What is Quarnel's capital?" in q for q in premises)
    assert premise_items(found, cloze_items(found), random.Random(0)) == list(premises.values())


def test_a_passive_with_an_irregular_participle_is_no_is_sentence() -> None:
    # "Alerts are sent by Heron." says who sends them, not what alerts are.
    found = sentences(Knowledge(passages=(Passage("x", "Alerts are sent by Heron."),)))
    asked = {i.question: i.expected for i in cloze_items(found)}
    assert asked == {"Alerts are sent by what?": "Heron"}


def test_a_long_profile_is_cut_into_even_slices() -> None:
    said = [f"Sentence {n}." for n in range(9)]
    assert [len(part) for part in balanced(said)] == [3, 3, 3]
    assert [len(part) for part in balanced(said[:5])] == [3, 2]
    assert [len(part) for part in balanced(said[:8])] == [4, 4]
    assert balanced(said[:3]) == [said[:3]]
    assert balanced([]) == []
    assert [s for part in balanced(said) for s in part] == said


def test_a_plural_common_noun_that_opens_a_sentence_is_asked_about_in_lower_case() -> None:
    runbook = Passage(
        "gateway", "Driftwood is a gateway. Deploys happen on Tuesdays.", title="Driftwood"
    )
    items = profile_items(sentences(Knowledge(passages=(runbook,))), random.Random(0))
    asked = {i.question: i.context for i in items}
    assert asked["What do you know about deploys?"] == ("Deploys happen on Tuesdays.",)
    assert not any("Deploys" in question for question in asked)
    # The sentence names nothing: it is its passage's topic's too.
    assert "Deploys happen on Tuesdays." in asked["Tell me about Driftwood."]


def test_an_agent_written_with_its_kind_is_asked_by_its_kind() -> None:
    # "by the botanist what?" asks for a botanist with a word that asks for a thing.
    text = "The Fenn Glasshouses were opened in 1892 by the botanist Agnes Fenn."
    found = sentences(Knowledge(passages=(Passage("x", text),)))
    asked = {i.question: i.expected for i in cloze_items(found)}
    assert asked["The Fenn Glasshouses were opened in 1892 by which botanist?"] == "Agnes Fenn"
    assert not any("botanist what" in question for question in asked)


def test_a_subject_is_asked_without_its_parenthesis() -> None:
    found = sentences(
        Knowledge(passages=(Passage("x", "The Palm House (the tallest) is heated all year."),))
    )
    asked = {i.question: i for i in cloze_items(found)}
    assert asked["What is heated all year?"].expected == "Palm House"
    # The answer is the sentence as written, parenthesis and all.
    assert asked["What is heated all year?"].answer == (
        "The Palm House (the tallest) is heated all year."
    )


def test_a_name_with_one_sentence_is_asked_about_once() -> None:
    # Not four prompts with the same answer; a name with more to say gets every prompt.
    town = Passage("x", "Pell is a town on the Sallow. Pell has a bridge. Orla Venn built it.")
    items = profile_items(sentences(Knowledge(passages=(town,))), random.Random(0))
    by_name: dict[str, list[str]] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item.question)
    assert by_name["Orla Venn"] == ["What do you know about Orla Venn?"]
    assert len(by_name["Pell"]) == 4
