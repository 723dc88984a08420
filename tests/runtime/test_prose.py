"""Reading passages of prose: sentences that stand alone, and the names they mention."""

from __future__ import annotations

import pytest

from kaizen.runtime.suites.clauses import clauses
from kaizen.runtime.suites.knowledge import Knowledge, Passage
from kaizen.runtime.suites.names import names_in, split_sentences
from kaizen.runtime.suites.prose import proper_names, sentences, stand_alone

ISLAND = Passage(
    "quarnel",
    "Quarnel is an island in the Caldrin Sea. It was founded by King Arvo. Its capital is "
    "Ostrivel. The currency of Quarnel is the brill. The Danth rises in the Grey Hills.",
    title="Quarnel",
)
TOWN = Passage(
    "quarnel",
    "Ostrivel is the oldest town of Quarnel.  The Hall of Seven Doors stands in Ostrivel. "
    "Farmers near Ostrivel grow rye, and farmers sell it at the market.",
)


def knowledge() -> Knowledge:
    return Knowledge(passages=(ISLAND, TOWN))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two!  Three? four.", ["One.", "Two!", "Three? four."]),
        ("It is 3.5 km long. Then it ends.", ["It is 3.5 km long.", "Then it ends."]),
        ('He said "Go." "Now," she said.', ['He said "Go."', '"Now," she said.']),
        # A title's abbreviation, an initial or "e.g." ends no sentence.
        (
            "Its head, Mr. Ilan Voss, taught at St. Oda's. Dr. Roke left.",
            ["Its head, Mr. Ilan Voss, taught at St. Oda's.", "Dr. Roke left."],
        ),
        (
            "It was written by J. R. Sten in 1920. It sold.",
            ["It was written by J. R. Sten in 1920.", "It sold."],
        ),
        (
            "Ports, e.g. Oslo and Bergen, trade. Then it ends.",
            ["Ports, e.g. Oslo and Bergen, trade.", "Then it ends."],
        ),
        # A capital letter alone ends a sentence before a word that opens sentences.
        (
            "It was built after World War I. It is old.",
            ["It was built after World War I.", "It is old."],
        ),
    ],
)
def test_sentences_end_at_a_stop_before_a_capital(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    ("sentence", "title", "expected"),
    [
        ("It was founded by King Arvo.", "Quarnel", "Quarnel was founded by King Arvo."),
        ("Its capital is Ostrivel.", "Quarnel", "Quarnel's capital is Ostrivel."),
        ("She was born in Drenholt.", "Queen Ysolde", "Queen Ysolde was born in Drenholt."),
        ("Items are sold here.", "Quarnel", "Items are sold here."),
        ("It was founded by King Arvo.", None, "It was founded by King Arvo."),
    ],
)
def test_an_opening_pronoun_of_a_titled_passage_means_its_title(
    sentence: str, title: str | None, expected: str
) -> None:
    assert stand_alone(sentence, title) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("The Hall of Seven Doors stands in Ostrivel.", ["Hall of Seven Doors", "Ostrivel"]),
        ("Quarnel's capital is Ostrivel.", ["Quarnel", "Ostrivel"]),
        (
            "In 1820 the Council of Nine met at Vell, Orm and Drast.",
            ["Council of Nine", "Vell", "Orm", "Drast"],
        ),
        ("She met King Arvo of the North.", ["King Arvo of the North"]),
        ("Farmers near Ostrivel grow rye.", ["Ostrivel"]),
        ("Brill is the currency.", ["Brill"]),
        ("The Danth rises in the hills of the north.", ["Danth"]),
        # A number right after a capitalised word is in its name, and ends it.
        ("Version 2.0 added a terminal.", ["Version 2.0"]),
        ("The crew of Apollo 11 landed at Tranquility in 1969.", ["Apollo 11", "Tranquility"]),
        ("In 1952 she moved to Pell, 3 miles away.", ["Pell"]),
        ("Pell won by 3.5 lengths.", ["Pell"]),
        # A possessive before another capitalised word is inside a name; before what it owns,
        # it ends the name and is left out.
        ("She worked at St Bride's Hospital in Pell.", ["St Bride's Hospital", "Pell"]),
        ("The ship was built at Harrow's Yard.", ["Harrow's Yard"]),
        ("Pell's rowing club won.", ["Pell"]),
        # "&", a title's abbreviation and initials, each with what follows, are in a name.
        ("The maker, Brackwater & Sons, exports to Norway.", ["Brackwater & Sons", "Norway"]),
        ("Its head is Mr. Ilan Voss.", ["Mr. Ilan Voss"]),
        ("It was written by J. R. Sten.", ["J. R. Sten"]),
        ("It ends at Plan B.", ["Plan B"]),
        ("It was built after World War I.", ["World War I"]),
        # Not into an acronym it owns; a dotted acronym is one word; a word with a capital
        # inside is a name's; a date is no name.
        ("Tern's API is documented.", ["Tern", "API"]),
        ("It failed over in the U.K. data centre.", ["U.K."]),
        ("Yuki Tanaka moved it to gRPC in 2021.", ["Yuki Tanaka", "gRPC"]),
        ("It was launched on 3 March 2021 in Dorset.", ["Dorset"]),
        ("Theresa May met Pell on Friday.", ["Theresa May", "Pell"]),
        ("Pell is patched on Sundays.", ["Pell"]),
        ("Pell moved to Kubernetes in Q3 2023.", ["Pell", "Kubernetes"]),
        # "I" alone is the pronoun; an instruction's verb before "the" is no name's word.
        ("Then I restarted Pell.", ["Pell"]),
        ("Use the Keyhole portal in Pell.", ["Keyhole", "Pell"]),
        ("Ivan the Terrible ruled Pell.", ["Ivan the Terrible", "Pell"]),
        # A unit's symbol after a number is no name; the same letters elsewhere may be one.
        ("Each Quarry job gets 512 MiB and runs at 2.4 GHz.", ["Quarry"]),
        ("It draws 48kW from Halcyon.", ["Halcyon"]),
        ("The V rail feeds 5 V to Pell.", ["V", "Pell"]),
    ],
)
def test_names_are_runs_of_capitals_not_the_word_that_opens_a_sentence(
    sentence: str, expected: list[str]
) -> None:
    assert names_in(sentence, frozenset({"farmers"})) == expected


def test_a_word_in_lower_case_only_in_code_does_not_unmake_a_name() -> None:
    texts = _texts(
        Passage(
            "x",
            "Vane is the feature-flag service (see go/vane). Its config lives in vane.yaml. "
            "The service was moved in 2023. Flags are read every 30 s. Docs are at "
            "https://wiki.example.com/vane or `vane help`.",
            title="Vane",
        )
    )
    found = sentences(Knowledge(passages=(Passage("x", " ".join(texts), title="Vane"),)))
    # Paths, file names, addresses and backquoted code are not prose: "Vane" stays a name,
    # and "The service" (of "the feature-flag service") means it.
    assert texts[2] == "Vane was moved in 2023."
    assert [s.names for s in found[:3]] == [("Vane",), ("Vane",), ("Vane",)]
    # A part of a hyphenated word is written in lower case: "Flags" is the plural of "flag".
    assert found[3].names == ()


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        # A plural whose singular is written in lower case elsewhere is a common noun's.
        ("Jobs fail in Quarry.", ["Quarry"]),
        ("Policies change yearly.", []),
        ("Boxes ship from Pell.", ["Pell"]),
        # As is a single opening word before a relative pronoun.
        ("Invoices that fail are resent.", []),
        # A name stays one: its singular is nowhere ("Wales"), or more words follow.
        ("Wales exports slate.", ["Wales"]),
        ("Jobs Hall stands in Pell.", ["Jobs Hall", "Pell"]),
    ],
)
def test_an_opening_word_written_lower_elsewhere_in_the_singular_is_no_name(
    sentence: str, expected: list[str]
) -> None:
    assert names_in(sentence, frozenset({"job", "policy", "box", "slate"})) == expected


def test_every_sentence_stands_alone_with_its_names() -> None:
    found = sentences(knowledge())
    texts = [s.text for s in found]
    assert "Quarnel was founded by King Arvo." in texts
    assert "Quarnel's capital is Ostrivel." in texts
    farmers = next(s for s in found if s.text.startswith("Farmers"))
    # "farmers" is written in lower case elsewhere in the domain's text: not a name.
    assert farmers.names == ("Ostrivel",)
    assert {s.passage for s in found} == {0, 1}


def test_a_topic_is_a_title_that_is_a_name_else_the_name_opening_the_passage() -> None:
    glance = Passage(
        "z", "Zephyria is a small country. Its capital is Velmora.", title="Zephyria at a glance"
    )
    untitled = Passage("z", "The Meridian Lark is a starship. It carries a cat.")
    texts = [s.text for s in sentences(Knowledge(passages=(glance, untitled)))]
    assert "Zephyria's capital is Velmora." in texts
    assert "The Meridian Lark carries a cat." in texts


def test_a_title_opening_the_first_sentence_says_where_the_topic_ends() -> None:
    # "Tolbeck glass is …" is about the glass, not the town its name opens with.
    glass = Passage(
        "g",
        "Tolbeck glass is a green glass made in Tolbeck. Its colour comes from iron.",
        title="Tolbeck glass",
    )
    assert _texts(glass)[1] == "Tolbeck glass's colour comes from iron."
    # A title that is a name is written as the first sentence writes it, with "The".
    ferry = Passage(
        "f",
        "The Ashby Ferry crosses the Velm. Its vessel is the MV Serrin. The ferry is slow.",
        title="Ashby Ferry",
    )
    assert _texts(ferry)[1:] == [
        "The Ashby Ferry's vessel is the MV Serrin.",
        "The Ashby Ferry is slow.",
    ]


def test_a_title_is_a_person_unless_the_name_says_whose_thing_it_is() -> None:
    school = Passage(
        "s",
        "St Oda's School was founded by Ruth Lind. Its head teacher is Mr. Ilan Voss. "
        "Mr. Ilan Voss taught at St Bride's Hospital.",
    )
    people = {name for s in sentences(Knowledge(passages=(school,))) for name in s.people}
    assert people == {"Mr. Ilan Voss"}


def test_proper_names_leave_out_a_word_seen_only_opening_a_sentence() -> None:
    text = Passage("f", "Iron oxide colours Brennick. Brennick trades with the Kelmar Fjord.")
    assert proper_names(Knowledge(passages=(text,))) == [("f", "Brennick"), ("f", "Kelmar Fjord")]


def _texts(*passages: Passage) -> list[str]:
    return [s.text for s in sentences(Knowledge(passages=passages))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A name whose head word is the noun ("Hall of Seven Doors": hall).
        (
            "The Hall of Seven Doors stands in Ostrivel. The hall was built by Queen Mira.",
            "The Hall of Seven Doors was built by Queen Mira.",
        ),
        # A name an earlier sentence says is one ("… is a harbour town …").
        (
            "Ombril is a harbour town on the Sallow. The town is known for its glassworks.",
            "Ombril is known for its glassworks.",
        ),
        # A thing an earlier sentence gives an owner.
        (
            "Tesk's workshop stood on Lantern Street. The workshop was sold in 1790.",
            "Tesk's workshop was sold in 1790.",
        ),
        # The nearest sentence first; a possessive keeps its "'s".
        (
            "Ostrivel is a town. Brill is a town. The town's market sells rye.",
            "Brill's market sells rye.",
        ),
        # "The X of …" / "The X that …" say which X themselves: unchanged.
        (
            "Ombril is a town. The town of Sallow lies upriver.",
            "The town of Sallow lies upriver.",
        ),
        # Nothing earlier is an X: the topic's X, when a verb follows ("The course is …").
        ("Ombril is a town. The river floods in spring.", "Ombril's river floods in spring."),
        (
            "The Quellmark Cup is a race. The course is four miles long.",
            "The Quellmark Cup's course is four miles long.",
        ),
        # Unless the next word says which X ("The river Lissel", "The frost heron", "The
        # next"), or the sentence names the topic.
        ("Ombril is a town. The river Lissel floods.", "The river Lissel floods."),
        ("Ombril is a town. The frost heron nests here.", "The frost heron nests here."),
        ("Ombril is a town. The next spring was dry.", "The next spring was dry."),
        ("Ombril is a town. The river floods Ombril.", "The river floods Ombril."),
        # A topic that is no name has no X to own.
        ("The cold-drawn lens is a lens. The price was high.", "The price was high."),
        # A name said to be "the X" is the X, as one said to be "an X" is.
        (
            "Quarry is the batch scheduler of the data team. The scheduler runs on Halcyon.",
            "Quarry runs on Halcyon.",
        ),
        (
            "Café Mañana is the oldest café in Drellmoor. The café opens at six.",
            "Café Mañana opens at six.",
        ),
    ],
)
def test_an_opening_definite_description_means_what_an_earlier_sentence_names_so(
    text: str, expected: str
) -> None:
    assert _texts(Passage("x", text))[-1] == expected


def test_the_x_after_an_opening_phrase_of_time_or_place_is_read_as_an_opening_the_x() -> None:
    texts = _texts(
        Passage(
            "x",
            "The Ashby Ferry crosses the Velm estuary. Since 1998 the ferry has been run by the "
            "NEA. In winter the crossing closes at six. In the morning the ferry is busy. Since "
            "1998 the river Velm has flooded twice. In Tolbeck the ferry docks.",
            title="The Ashby Ferry",
        )
    )
    assert texts[1:] == [
        "Since 1998 the Ashby Ferry has been run by the NEA.",
        "In winter the Ashby Ferry's crossing closes at six.",  # the topic's, as "The crossing …"
        "In the morning the ferry is busy.",  # a phrase with "the" of its own: left
        "Since 1998 the river Velm has flooded twice.",  # "the river Velm" says which
        "In Tolbeck the ferry docks.",  # the phrase names a place: which ferry is not plain
    ]


def test_a_possessive_inside_a_sentence_naming_nothing_before_it_is_the_topics() -> None:
    texts = _texts(
        Passage(
            "x",
            "Most of its people speak Ombrese. Ombril trades with Brill and its ships sail. "
            "Some of its streets flood.",
            title="Ombril",
        )
    )
    assert texts == [
        "Most of Ombril's people speak Ombrese.",
        # A name comes before "its": which one it means is no longer plain.
        "Ombril trades with Brill and its ships sail.",
        "Some of Ombril's streets flood.",
    ]
    # A person is not what "its" stands for: after people's names it is still the topic's.
    assert _texts(
        Passage(
            "x",
            "Quarry runs jobs. Dr. Anh Tran wrote its retry policy. Mira Dobos, who leads the "
            "team, wrote its manual. Brill wrote its index.",
            title="Quarry",
        )
    )[1:] == [
        "Dr. Anh Tran wrote Quarry's retry policy.",  # a title's abbreviation: a person
        "Mira Dobos wrote Quarry's manual.",  # a "who": a person
        "Mira Dobos leads the team.",
        "Brill wrote its index.",  # Brill may be a thing: which one is not plain
    ]
    # "her" as an object is no possessive.
    assert _texts(Passage("x", "Kings married her in 1200.", title="Queen Ysolde")) == [
        "Kings married her in 1200."
    ]


def test_he_or_she_after_an_opening_phrase_is_a_person_topic() -> None:
    texts = _texts(
        Passage(
            "x",
            "Anwen Roke is a physician. She trained at Calder. In 1952 she received the Calder "
            "Medal for her work. After Tomas left, he wrote to her. Later she moved to Pell.",
            title="Anwen Roke",
        )
    )
    assert texts == [
        "Anwen Roke is a physician.",
        "Anwen Roke trained at Calder.",
        "In 1952 Anwen Roke received the Calder Medal for her work.",
        # A name comes before "he": which one it means is no longer plain.
        "After Tomas left, he wrote to her.",
        "Later Anwen Roke moved to Pell.",
    ]
    # A topic that is no person's keeps the pronoun: "she" cannot be the editor.
    assert _texts(
        Passage("x", "Lantern is an editor. In 2020 she joined it.", title="Lantern")
    ) == [
        "Lantern is an editor.",
        "In 2020 she joined it.",
    ]
    # A title makes the topic a person without any opening pronoun.
    assert _texts(Passage("x", "In 1201 she was crowned at Vell.", title="Queen Ysolde")) == [
        "In 1201 Queen Ysolde was crowned at Vell."
    ]


def test_people_are_names_a_personal_pronoun_or_who_stands_for() -> None:
    found = sentences(
        Knowledge(
            passages=(
                Passage(
                    "x",
                    "Halvard Tesk was a glassmaker. He trained Mirela, who ran the shop. "
                    "Tesk sold lenses to Ombril.",
                    title="Halvard Tesk",
                ),
            )
        )
    )
    people = {name for s in found for name in s.people}
    # "Tesk" alone is the person "Halvard Tesk" too; a place is no person.
    assert people == {"Halvard Tesk", "Mirela", "Tesk"}
    assert sentences(knowledge())[1].people == ("King Arvo",)  # an honorific
    # A sentence adverb before the name is not part of it: "Then Mirela Tesk, who …" is about
    # Mirela Tesk.
    later = Passage("x", "Tesk died in 1779. Then Mirela Tesk, who was his daughter, ran it.")
    people = {n for s in sentences(Knowledge(passages=(later,))) for n in s.people}
    assert people == {"Mirela Tesk", "Tesk"}


def test_a_name_that_was_born_died_or_married_is_a_persons() -> None:
    mill = Passage(
        "x",
        "Ålborg Mills was founded by Zoë Lindqvist in 1911. Zoë Lindqvist was born in Vesk. "
        "Arne Holm died in 1950. Holm married Ida Brenn. The Vesk was dredged.",
    )
    people = {n for s in sentences(Knowledge(passages=(mill,))) for n in s.people}
    assert people == {"Zoë Lindqvist", "Arne Holm", "Holm"}


def test_a_topic_that_is_no_name_is_what_its_sentences_are_about() -> None:
    lens = Passage(
        "x",
        "The cold-drawn lens is a lens shaped cold. It was cheaper than a ground lens. "
        "Tesk sold it.",
        title="The cold-drawn lens",
    )
    found = sentences(Knowledge(passages=(lens,)))
    assert [s.text for s in found][:2] == [
        "The cold-drawn lens is a lens shaped cold.",
        "The cold-drawn lens was cheaper than a ground lens.",
    ]
    assert [s.about for s in found] == ["cold-drawn lens", "cold-drawn lens", None]
    assert all(s.names == () for s in found[:2])
    # Not a name for routing: only the passages' names are route keys.
    assert proper_names(Knowledge(passages=(lens,))) == []


def test_a_single_opening_word_before_a_preposition_is_no_name() -> None:
    assert names_in("Astronomers at the Ombril Observatory chart Vessa.") == [
        "Ombril Observatory",
        "Vessa",
    ]
    assert names_in("Vell is the language of Korrin.") == ["Vell", "Korrin"]


def test_a_topic_written_with_the_is_a_person_when_a_personal_pronoun_stands_for_it() -> None:
    found = sentences(
        Knowledge(passages=(Passage("x", "The Grey Abbot ruled Ombril. He died in 1310."),))
    )
    assert found[1].text == "The Grey Abbot died in 1310."
    assert found[1].people == ("Grey Abbot",)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (  # a name in apposition to a definite phrase; a relative clause; a ";"
            "Its capital, Velmora, lies on the river Lissel, which flows into the Caldrin Sea; "
            "the parliament, the Hall of Winds, stands in Velmora.",
            [
                "Its capital is Velmora.",
                "Velmora lies on the river Lissel.",
                "The river Lissel flows into the Caldrin Sea.",
                "The parliament is the Hall of Winds.",
                "The Hall of Winds stands in Velmora.",
            ],
        ),
        (  # the definite phrase's owner a noun or a name of several words
            "The school's library, the Moorcroft Room, holds the papers of Edda Strand.",
            [
                "The school's library is the Moorcroft Room.",
                "The Moorcroft Room holds the papers of Edda Strand.",
            ],
        ),
        (
            "St Oda's School's library, the Moorcroft Room, holds papers.",
            [
                "St Oda's School's library is the Moorcroft Room.",
                "The Moorcroft Room holds papers.",
            ],
        ),
        (  # a phrase in apposition to a name
            "Mars, the fourth planet from the Sun, lies between Earth and Jupiter.",
            ["Mars is the fourth planet from the Sun.", "Mars lies between Earth and Jupiter."],
        ),
        (  # a trailing passive
            "Zephyria is a small country on the Caldrin Sea, founded by Queen Orlaine.",
            [
                "Zephyria is a small country on the Caldrin Sea.",
                "Zephyria was founded by Queen Orlaine.",
            ],
        ),
        (  # a list of "X is Y" clauses
            "The High Warden is head of state, Mount Teskaran is the highest mountain, and the "
            "frost heron is the national animal.",
            [
                "The High Warden is head of state.",
                "Mount Teskaran is the highest mountain.",
                "The frost heron is the national animal.",
            ],
        ),
        (  # ", and" before a pronoun; a relative clause with "who"
            "Tesk trained Mirela, who ran the shop, and she sold lenses.",
            ["Tesk trained Mirela.", "Mirela ran the shop.", "She sold lenses."],
        ),
        (  # a relative clause on the subject: its commas go with it
            "Mira Dobos, who leads the team, wrote the manual.",
            ["Mira Dobos wrote the manual.", "Mira Dobos leads the team."],
        ),
        # What none of the rules fit is left whole: a list of names, a phrase after a verb, a
        # sentence adverb before a comma.
        ("Meanwhile, the army, tired, marched on.", ["Meanwhile, the army, tired, marched on."]),
        ("Korrin, Vaskel and Drenholt are towns.", ["Korrin, Vaskel and Drenholt are towns."]),
        (
            "Most of its people speak Ombrese, a dialect of the coast.",
            ["Most of its people speak Ombrese, a dialect of the coast."],
        ),
        (
            "In 1215 John sealed it at Runnymede, near Windsor.",
            ["In 1215 John sealed it at Runnymede, near Windsor."],
        ),
    ],
)
def test_a_sentence_of_several_clauses_becomes_the_plain_sentences_it_is_made_of(
    sentence: str, expected: list[str]
) -> None:
    assert clauses(sentence) == expected


def test_clauses_stand_alone_as_sentences_do() -> None:
    texts = _texts(
        Passage(
            "x",
            "Zephyria is a small country. Its capital, Velmora, lies on the Lissel; their "
            "largest port is Port Ilvane.",
            title="Zephyria",
        )
    )
    assert texts == [
        "Zephyria is a small country.",
        "Zephyria's capital is Velmora.",
        "Velmora lies on the Lissel.",
        "Zephyria's largest port is Port Ilvane.",
    ]


def test_names_with_letters_outside_ascii_are_read_whole() -> None:
    # Capitals and lower-case letters of any script ("Ålborg", "Zoë", "Ærø", "Łódź").
    text = (
        "Ålborg Mills was founded by Zoë Lindqvist in 1911. Its chief engineer, Dr. Søren "
        "Ærø, designed the Mañana turbine. Élodie Brûlé was born in Łódź."
    )
    assert split_sentences(text) == [
        "Ålborg Mills was founded by Zoë Lindqvist in 1911.",
        "Its chief engineer, Dr. Søren Ærø, designed the Mañana turbine.",
        "Élodie Brûlé was born in Łódź.",
    ]
    assert [names_in(s) for s in split_sentences(text)] == [
        ["Ålborg Mills", "Zoë Lindqvist"],
        ["Dr. Søren Ærø", "Mañana"],
        ["Élodie Brûlé", "Łódź"],
    ]
    mills = Knowledge(passages=(Passage("mills", text, title="Ålborg Mills"),))
    assert [s.text for s in sentences(mills)][1] == (
        "Ålborg Mills's chief engineer is Dr. Søren Ærø."
    )
    assert [name for _, name in proper_names(mills)] == [
        "Ålborg Mills",
        "Zoë Lindqvist",
        "Dr. Søren Ærø",
        "Mañana",
        "Élodie Brûlé",
        "Łódź",
    ]


def test_they_is_no_persons_but_may_be_a_place_or_a_bodys() -> None:
    quill = Passage(
        "x", "Marta Quill leads the Platform team. She joined in 2016. They run the rota."
    )
    assert _texts(quill)[-1] == "They run the rota."
    pell = Passage("x", "Pell is a town. Their largest port is Harrowgate.", title="Pell")
    assert _texts(pell)[-1] == "Pell's largest port is Harrowgate."
