"""Synthesis of training items from a domain's knowledge: forms, compositions, and the mix."""

from __future__ import annotations

from kaizen.runtime.suites.knowledge import Fact, Knowledge, Passage, Relation
from kaizen.trainer.synthesis import (
    COUNTERFACTUAL,
    CROSS,
    MULTI,
    PROFILE_PROMPTS,
    PROFILE_STATEMENTS,
    RECALL,
    Steering,
    candidates,
    capability_weights,
    choose,
    stable_seed,
)
from kaizen.trainer.targeted import synthesis_seed

RELATIONS = {
    "capital": Relation(
        "capital",
        "The capital of {subject} is {object}.",
        ("What is the capital of {subject}?", "Which city is the capital of {subject}?"),
        describe="the capital of {subject}",
        describe_subject="the land whose capital is {object}",
        inverse_questions=("{object} is the capital of which land?",),
    ),
    "river": Relation(
        "river",
        "The river that flows through {subject} is {object}.",
        ("Which river flows through {subject}?",),
        describe="the river that flows through {subject}",
    ),
    "source": Relation(
        "source",
        "{subject} rises in {object}.",
        ("Where does {subject} rise?",),
    ),
    "currency": Relation(
        "currency",
        "The currency of {subject} is the {object}.",
        ("What is the currency of {subject}?",),
    ),
}
FACTS = (
    Fact("quarn", "Quarnel", "capital", "Ostrivel"),
    Fact("quarn", "Ostrivel", "river", "the Danth"),
    Fact("quarn", "the Danth", "source", "the Pelle Hills"),
    Fact("quarn", "Quarnel", "currency", "brisk"),
    Fact("quarn", "Veyla", "capital", "Murrow"),
)
KNOWLEDGE = Knowledge(relations=RELATIONS, facts=FACTS)


def by_kind(kind: str) -> list:
    return [c for c in candidates(KNOWLEDGE) if c.kind == kind]


def test_every_fact_gets_several_surface_forms_and_its_inverse() -> None:
    forms = [c for c in by_kind("surface") if c.facts == ("Quarnel|capital|Ostrivel",)]
    assert {c.question for c in forms} == {
        "What is the capital of Quarnel?",
        "Which city is the capital of Quarnel?",
    }
    assert all(c.answer == "The capital of Quarnel is Ostrivel." for c in forms)
    (inverse,) = [c for c in by_kind("inverse") if "Ostrivel" in c.question]
    assert inverse.question == "Ostrivel is the capital of which land?"
    assert inverse.expected == "Quarnel" and inverse.capability == RECALL


def test_facts_sharing_an_entity_compose_into_one_question() -> None:
    (chain,) = [c for c in by_kind("chain") if c.facts[-1] == "Ostrivel|river|the Danth"]
    assert chain.question == "Which river flows through the capital of Quarnel?"
    assert chain.answer == (
        "The capital of Quarnel is Ostrivel. The river that flows through Ostrivel is the Danth."
    )
    assert chain.capability == CROSS and chain.expected == "the Danth"
    (sibling,) = by_kind("sibling")
    assert sibling.question == "What is the currency of the land whose capital is Ostrivel?"
    assert sibling.answer.startswith("The land whose capital is Ostrivel is Quarnel.")
    assert sibling.expected == "brisk"


def test_a_name_spelt_with_an_inner_capital_keeps_its_spelling_where_a_sentence_opens() -> None:
    relations = {
        "maker": Relation(
            "maker",
            "{subject} is made by {object}.",
            ("Who makes {subject}?",),
            describe="the maker of {subject}",
        ),
        "founded": Relation(
            "founded", "{subject} was founded in {object}.", ("When was {subject} founded?",)
        ),
    }
    facts = (
        Fact("gadgets", "iPhone", "maker", "Quell"),
        Fact("gadgets", "Quell", "founded", "1976"),
        Fact("gadgets", "velorine", "maker", "Quell"),
    )
    pool = candidates(Knowledge(relations=relations, facts=facts))
    (surface,) = [c for c in pool if c.kind == "surface" and c.facts == ("iPhone|maker|Quell",)]
    assert surface.answer == "iPhone is made by Quell."
    (chain,) = [c for c in pool if c.kind == "chain" and c.facts[0] == "iPhone|maker|Quell"]
    assert chain.question == "When was the maker of iPhone founded?"
    assert chain.answer == "iPhone is made by Quell. Quell was founded in 1976."
    (lower,) = [c for c in pool if c.kind == "surface" and c.facts == ("velorine|maker|Quell",)]
    assert lower.answer == "Velorine is made by Quell."


def test_three_facts_chain_into_a_multi_step_item() -> None:
    (three,) = [c for c in by_kind("three-hop") if c.facts[0] == "Quarnel|capital|Ostrivel"]
    assert three.capability == MULTI
    assert three.question == "Where does the river that flows through the capital of Quarnel rise?"
    assert three.expected == "the Pelle Hills"
    assert three.answer.count(".") == 3


def test_a_counterfactual_answers_from_the_premise_not_the_knowledge() -> None:
    premises = [c for c in by_kind("premise") if c.facts == ("Quarnel|capital|Ostrivel",)]
    assert premises and all(c.capability == COUNTERFACTUAL for c in premises)
    for item in premises:
        assert item.question.startswith(
            "Suppose that the capital of Quarnel is Murrow, not Ostrivel."
        )
        assert (
            item.expected == "Murrow" and "Murrow" in item.answer and "Ostrivel" not in item.answer
        )


def test_synthesis_is_deterministic_for_a_seed() -> None:
    pool = candidates(KNOWLEDGE, seed=3)
    one = choose(pool, budget=10, steering=Steering(), seed=3, domain="quarn")
    two = choose(
        candidates(KNOWLEDGE, seed=3), budget=10, steering=Steering(), seed=3, domain="quarn"
    )
    assert [c.question for c in one.items] == [c.question for c in two.items]
    other = choose(pool, budget=10, steering=Steering(), seed=4, domain="quarn")
    assert [c.question for c in other.items] != [c.question for c in one.items]


def test_the_mix_follows_the_analysis() -> None:
    plain = capability_weights(Steering())
    assert set(plain.values()) == {1.0}
    reasoning = capability_weights(Steering(targeted_capabilities=(CROSS,), diagnosis="reasoning"))
    assert reasoning[CROSS] == 2.0 and reasoning[RECALL] == 0.5
    knowledge = capability_weights(Steering(diagnosis="knowledge"))
    assert knowledge[RECALL] == 2.0
    pool = candidates(KNOWLEDGE)
    steered = choose(
        pool,
        budget=6,
        steering=Steering(targeted_capabilities=(CROSS,), diagnosis="reasoning"),
        seed=0,
        domain="quarn",
    )
    neutral = choose(pool, budget=6, steering=Steering(), seed=0, domain="quarn")
    assert steered.chosen[CROSS] > neutral.chosen[CROSS]
    assert steered.chosen[RECALL] < neutral.chosen[RECALL]
    assert sum(steered.chosen.values()) == len(steered.items) == 6


def test_facts_behind_failed_items_come_first() -> None:
    pool = candidates(KNOWLEDGE)
    steering = Steering(failed_texts=("What do they pay with in Veyla? Murrow",))
    chosen = choose(pool, budget=4, steering=steering, seed=0, domain="quarn")
    recall = [c for c in chosen.items if c.capability == RECALL]
    assert any("Veyla" in c.question or "Murrow" in c.question for c in recall)
    assert chosen.behind_failures > 0


def test_a_budget_beyond_the_candidates_takes_them_all() -> None:
    pool = candidates(KNOWLEDGE)
    chosen = choose(pool, budget=10_000, steering=Steering(), seed=0, domain="quarn")
    assert len(chosen.items) == len(pool)


def test_premises_keep_names_capitalised_and_never_point_a_fact_at_itself() -> None:
    relations = {
        "next": Relation(
            "next", "{subject} is followed by {object}.", ("What follows {subject}?",)
        ),
    }
    facts = (Fact("p", "Uranus", "next", "Neptune"), Fact("p", "Saturn", "next", "Uranus"))
    items = [
        c for c in candidates(Knowledge(relations=relations, facts=facts)) if c.kind == "premise"
    ]
    uranus = [c for c in items if c.facts == ("Uranus|next|Neptune",)]
    # The only other object of the relation is the fact's own subject: no premise.
    assert uranus == []
    (saturn, *_) = [c for c in items if c.facts == ("Saturn|next|Uranus",)]
    assert saturn.question.startswith("Suppose that Saturn is followed by Neptune, not Uranus.")


def test_an_entity_profile_teaches_its_facts_from_both_ends_in_several_orders() -> None:
    profiles = by_kind("profile")
    ostrivel = [
        p for p in profiles if p.question.endswith("Ostrivel?") or "Ostrivel." in p.question
    ]
    # Ostrivel is the object of the capital fact and the subject of the river fact: both.
    assert len(ostrivel) == len(PROFILE_PROMPTS)
    for item in ostrivel:
        assert item.capability == RECALL
        assert set(item.facts) == {"Quarnel|capital|Ostrivel", "Ostrivel|river|the Danth"}
        assert "The capital of Quarnel is Ostrivel." in item.answer
        assert "The river that flows through Ostrivel is the Danth." in item.answer
    assert len({item.answer for item in ostrivel}) == 2  # both orders of two statements
    # An entity with a single fact (Murrow, Veyla, brisk) gets no profile: its surface
    # forms already teach it.
    assert not [p for p in profiles if "Murrow" in p.question or "Veyla" in p.question]
    assert profiles == [c for c in candidates(KNOWLEDGE, seed=0) if c.kind == "profile"]


def test_a_profile_never_holds_more_than_its_share_of_statements() -> None:
    many = Knowledge(
        relations=RELATIONS,
        facts=tuple(Fact("quarn", f"Land{i}", "capital", "Hub") for i in range(9)),
    )
    hub = [c for c in candidates(many) if c.kind == "profile"]
    assert hub and all(len(c.facts) <= PROFILE_STATEMENTS for c in hub)
    covered = {key for c in hub for key in c.facts}
    assert covered == {f"Land{i}|capital|Hub" for i in range(8)} | {"Land8|capital|Hub"}


def test_derived_seeds_keep_their_values() -> None:
    """Every derived seed comes from `stable_seed`, and the same inputs keep their seed: a
    cycle (the demo's, a chain's next one) draws the lines it drew before."""
    assert stable_seed(0, ["profile"]) == 10317077217900  # entity profiles' orders
    assert stable_seed(7, ["quarnel"]) == 102468375000305  # a domain's shuffles in choose
    assert synthesis_seed(0, set()) == 0  # a first cycle draws with the seed itself
    assert synthesis_seed(0, {"b", "a"}) == 2752351792  # a chained cycle, moved on
    assert synthesis_seed(3, {"Who founded Lumora?"}) == 2915107437
    assert stable_seed(0, ["a"]) != stable_seed(1, ["a"]) != stable_seed(0, ["b"])


#: A relation that holds several values for one subject (Veldra borders two lands), and one
#: that gives one object to several subjects (two lands pay with the ostel).
SEVERAL = Knowledge(
    relations={
        **RELATIONS,
        "borders": Relation(
            "borders",
            "{subject} borders {object}.",
            ("Which land does {subject} border?",),
            describe="the land that {subject} borders",
            inverse_questions=("Which land borders {object}?",),
        ),
        "coin": Relation(
            "coin",
            "{subject} pays with the {object}.",
            ("What does {subject} pay with?",),
            describe_subject="the land that pays with the {object}",
        ),
    },
    facts=(
        Fact("v", "Veldra", "capital", "Osk"),
        Fact("v", "Veldra", "borders", "Marn"),
        Fact("v", "Veldra", "borders", "Tessaly"),
        Fact("v", "Marn", "capital", "Drell"),
        Fact("v", "Tessaly", "capital", "Ivro"),
        Fact("v", "Veldra", "coin", "ostel"),
        Fact("v", "Marn", "coin", "ostel"),
        Fact("v", "Tessaly", "coin", "vark"),
        Fact("v", "Osk", "river", "the Senn"),
    ),
)


def test_a_question_with_several_answers_is_answered_with_all_of_them() -> None:
    items = {c.question: c for c in candidates(SEVERAL)}
    border = items["Which land does Veldra border?"]
    # Answering with one would teach that it is the only one.
    assert border.answer == "Veldra borders Marn. Veldra borders Tessaly."
    assert border.answers == ("Marn", "Tessaly")
    assert border.facts == ("Veldra|borders|Marn", "Veldra|borders|Tessaly")
    marn = items["Which land borders Marn?"]  # inverse: one holder
    assert (marn.answer, marn.answers) == ("Veldra borders Marn.", ("Veldra",))
    single = items["What is the capital of Veldra?"]
    assert (single.answers, single.also) == (("Osk",), ())
    # A composition whose last fact has several values states them all.
    sibling = items["Which land does the land whose capital is Osk border?"]
    assert sibling.answer.endswith("Veldra borders Marn. Veldra borders Tessaly.")
    assert sibling.answers == ("Marn", "Tessaly")


def test_an_entity_is_never_named_through_a_fact_that_names_others_too() -> None:
    questions = [c.question for c in candidates(SEVERAL)]
    # "the land that Veldra borders" is Marn or Tessaly: no chain runs through it ...
    assert not [q for q in questions if "the land that Veldra borders" in q]
    # ... nor through "the land that pays with the ostel" (Veldra and Marn).
    assert not [q for q in questions if "the land that pays with the ostel" in q]
    # Where a description names one entity, it is used.
    assert "What is the capital of the land that pays with the vark?" in questions
    assert "Which river flows through the capital of Veldra?" in questions


def test_no_premise_replaces_one_of_several_values_or_equates_a_thing_with_itself() -> None:
    premises = [c for c in candidates(SEVERAL) if c.kind == "premise"]
    assert premises
    # "Suppose that Veldra borders Tessaly, not Marn" would be true, not a supposition.
    assert not [c for c in premises if "borders" in c.question]
    units = Knowledge(
        relations={
            "equals": Relation(
                "equals", "One {subject} equals {object}.", ("How much is one {subject}?",)
            )
        },
        facts=(
            Fact("u", "day", "equals", "24 hours"),
            Fact("u", "inch", "equals", "2.54 centimetres"),
            Fact("u", "centimetre", "equals", "10 millimetres"),
        ),
    )
    made: set[str] = set()
    for seed in range(6):
        made |= {c.question for c in candidates(units, seed=seed) if c.kind == "premise"}
    # Never "one centimetre equals 2.54 centimetres" (a contradiction, not a supposition); a
    # statement opening with a function word is lower-cased inside the premise.
    assert made == {
        "Suppose that one day equals 2.54 centimetres, not 24 hours. How much is one day?",
        "Suppose that one day equals 10 millimetres, not 24 hours. How much is one day?",
        "Suppose that one inch equals 24 hours, not 2.54 centimetres. How much is one inch?",
        "Suppose that one inch equals 10 millimetres, not 2.54 centimetres. How much is one inch?",
        "Suppose that one centimetre equals 24 hours, not 10 millimetres. "
        "How much is one centimetre?",
    }


def test_names_that_differ_in_a_number_make_premises() -> None:
    # "E1" and "E3" share no word (a word is its letters and digits together).
    relations = {
        "r": Relation("r", "{subject} links to {object}.", ("What does {subject} link to?",))
    }
    facts = tuple(Fact("x", f"E{i}", "r", f"E{i + 1}") for i in range(4))
    premises = [
        c for c in candidates(Knowledge(relations=relations, facts=facts)) if c.kind == "premise"
    ]
    assert len(premises) == 4
    assert all("Suppose that E" in c.question for c in premises)


def test_an_faqs_questions_are_asked_as_it_answers_them_whatever_its_length() -> None:
    long_answer = "Use the Keyhole portal, which every team can reach. " * 12
    access = Passage(
        "helpdesk",
        f"How do I reset my password? {long_answer}Who approves access to production? "
        "The on-call lead of the Platform team approves it.",
        title="Access FAQ",
    )
    assert len(access.text) > 600  # no whole-passage item
    made = [c for c in candidates(Knowledge(passages=(access,))) if c.kind == "passage-faq"]
    assert [(c.question, c.answer, c.capability) for c in made] == [
        ("How do I reset my password?", long_answer.strip(), RECALL),
        (
            "Who approves access to production?",
            "The on-call lead of the Platform team approves it.",
            RECALL,
        ),
    ]
    assert {c.facts for c in made} == {("Access FAQ|passage|",)}
