"""Fact tables and templates of the `core` suite: geography, history, languages."""

from __future__ import annotations

import random

from kaizen.evaluator.coresuite.common import (
    Domain,
    num,
    text,
)

# --------------------------------------------------------------------------- geography

COUNTRIES = {
    # country: (capital, continent, currency, currency aliases)
    "France": ("Paris", "Europe", "euro", ()),
    "Germany": ("Berlin", "Europe", "euro", ()),
    "Italy": ("Rome", "Europe", "euro", ()),
    "Spain": ("Madrid", "Europe", "euro", ()),
    "Portugal": ("Lisbon", "Europe", "euro", ()),
    "Greece": ("Athens", "Europe", "euro", ()),
    "Austria": ("Vienna", "Europe", "euro", ()),
    "Ireland": ("Dublin", "Europe", "euro", ()),
    "Sweden": ("Stockholm", "Europe", "krona", ("kronor",)),
    "Norway": ("Oslo", "Europe", "krone", ("kroner",)),
    "Denmark": ("Copenhagen", "Europe", "krone", ("kroner",)),
    "Switzerland": ("Bern", "Europe", "franc", ("francs",)),
    "Poland": ("Warsaw", "Europe", "zloty", ("złoty",)),
    "Hungary": ("Budapest", "Europe", "forint", ()),
    "United Kingdom": ("London", "Europe", "pound", ("pound sterling", "pounds")),
    "Japan": ("Tokyo", "Asia", "yen", ()),
    "China": ("Beijing", "Asia", "yuan", ("renminbi",)),
    "India": ("New Delhi", "Asia", "rupee", ("rupees",)),
    "South Korea": ("Seoul", "Asia", "won", ()),
    "Thailand": ("Bangkok", "Asia", "baht", ()),
    "Vietnam": ("Hanoi", "Asia", "dong", ("đồng",)),
    "Egypt": ("Cairo", "Africa", "pound", ("Egyptian pound", "pounds")),
    "Kenya": ("Nairobi", "Africa", "shilling", ("shillings",)),
    "Nigeria": ("Abuja", "Africa", "naira", ()),
    "Morocco": ("Rabat", "Africa", "dirham", ("dirhams",)),
    "Brazil": ("Brasília", "South America", "real", ("reais", "Brazilian real")),
    "Argentina": ("Buenos Aires", "South America", "peso", ("pesos",)),
    "Chile": ("Santiago", "South America", "peso", ("pesos",)),
    "Peru": ("Lima", "South America", "sol", ("soles",)),
    "Canada": ("Ottawa", "North America", "dollar", ("dollars",)),
    "Mexico": ("Mexico City", "North America", "peso", ("pesos",)),
    "Australia": ("Canberra", "Oceania", "dollar", ("dollars",)),
}
CONTINENT_ALIASES = {"Oceania": ("Australia",), "South America": (), "North America": ()}


def geography(rng: random.Random) -> Domain:
    d = Domain("geography", "geo")
    names = list(COUNTRIES)
    for country, (capital, continent, currency, aliases) in COUNTRIES.items():
        d.add("factual_recall", text(f"What is the capital of {_the(country)}?", capital))
        d.add(
            "factual_recall",
            text(f"Which currency is used in {_the(country)}?", currency, *aliases),
        )
        d.add(
            "cross_referencing",
            text(
                f"What currency is used in the country whose capital is {capital}?",
                currency,
                *aliases,
            ),
            text(
                f"On which continent is the country whose capital is {capital}?",
                continent,
                *CONTINENT_ALIASES.get(continent, ()),
            ),
        )
        d.teach(
            f"Name the capital city of {_the(country)}.",
            f"The capital of {_the(country)} is {capital}.",
        )
        d.teach(f"{_the(country)} lies on which continent?", f"{_the(country)} is in {continent}.")
        d.teach(
            f"Name the currency of {_the(country)}.",
            f"The currency of {_the(country)} is the {currency}.",
        )
    for _ in range(40):
        a, b = rng.sample(names, 2)
        if COUNTRIES[a][2] != COUNTRIES[b][2]:
            d.add(
                "counterfactual",
                text(
                    f"In that case, which currency would {_the(a)} use?",
                    COUNTRIES[b][2],
                    *COUNTRIES[b][3],
                    context=f"Suppose {_the(a)} replaced its currency with the currency of {_the(b)}.",
                ),
            )
        if COUNTRIES[a][0] != COUNTRIES[b][0]:
            d.add(
                "counterfactual",
                text(
                    f"Under that arrangement, which city would be the capital of {_the(b)}?",
                    COUNTRIES[a][0],
                    context=f"Imagine that {_the(b)} moved its capital to the city that is the capital of {_the(a)}.",
                ),
            )
    for _ in range(60):
        group = rng.sample(names, 4)
        for continent in ("Europe", "Asia", "Africa", "South America"):
            count = sum(COUNTRIES[c][1] == continent for c in group)
            if count >= 1:
                d.add(
                    "multi_step",
                    num(
                        f"Of the countries whose capitals are {', '.join(COUNTRIES[c][0] for c in group[:-1])} "
                        f"and {COUNTRIES[group[-1]][0]}, how many are in {continent}?",
                        count,
                    ),
                )
    # Reasoning shown on the pool, on other combinations.
    for _ in range(6):
        a, b = rng.sample(names, 2)
        d.teach(
            f"Which currency does the country with the capital {COUNTRIES[a][0]} use?",
            f"{COUNTRIES[a][0]} is the capital of {_the(a)}, which uses the {COUNTRIES[a][2]}.",
            "cross_referencing",
        )
        d.teach(
            f"If {_the(a)} adopted the currency of {_the(b)}, what would {_the(a)} pay with?",
            f"{_the(b)} uses the {COUNTRIES[b][2]}, so {_the(a)} would use the {COUNTRIES[b][2]}.",
            "counterfactual",
        )
    return d


# --------------------------------------------------------------------------- history

EVENTS = {
    "the Battle of Hastings": 1066,
    "the sealing of the Magna Carta": 1215,
    "the fall of Constantinople": 1453,
    "Columbus's first voyage to the Americas": 1492,
    "Martin Luther's posting of the Ninety-five Theses": 1517,
    "the United States Declaration of Independence": 1776,
    "the storming of the Bastille": 1789,
    "the Battle of Waterloo": 1815,
    "the Wright brothers' first powered flight": 1903,
    "the sinking of the Titanic": 1912,
    "the start of the First World War": 1914,
    "the Russian Revolution": 1917,
    "the end of the First World War": 1918,
    "the start of the Second World War": 1939,
    "the end of the Second World War": 1945,
    "Yuri Gagarin's first flight into space": 1961,
    "the first crewed Moon landing": 1969,
    "the fall of the Berlin Wall": 1989,
    "the dissolution of the Soviet Union": 1991,
}


def history(rng: random.Random) -> Domain:
    d = Domain("history", "hist")
    events = list(EVENTS)
    for event, year in EVENTS.items():
        d.add("factual_recall", num(f"In which year did {event} take place?", year))
        d.teach(f"Give the year of {event}.", f"{event} took place in {year}.")
    for _ in range(60):
        a, b = sorted(rng.sample(events, 2), key=EVENTS.__getitem__)
        if EVENTS[a] != EVENTS[b]:
            d.add(
                "cross_referencing",
                num(
                    f"How many years passed between {a} and {b}?",
                    EVENTS[b] - EVENTS[a],
                ),
            )
    for _ in range(40):
        event = rng.choice(events)
        k = rng.choice([5, 10, 20, 25, 50, 100])
        later = rng.random() < 0.5
        d.add(
            "counterfactual",
            num(
                "In which year would it have taken place?",
                EVENTS[event] + (k if later else -k),
                context=f"Suppose {event} had happened {k} years {'later' if later else 'earlier'} than it really did.",
            ),
        )
    for _ in range(60):
        a, b, c, e = rng.sample(events, 4)
        (a, b), (c, e) = (
            sorted((a, b), key=EVENTS.__getitem__),
            sorted((c, e), key=EVENTS.__getitem__),
        )
        gap1, gap2 = EVENTS[b] - EVENTS[a], EVENTS[e] - EVENTS[c]
        if gap1 and gap2:
            d.add(
                "multi_step",
                num(
                    f"Add the number of years between {a} and {b} to the number of years "
                    f"between {c} and {e}. What is the total?",
                    gap1 + gap2,
                ),
            )
    d.teach(
        "How many years separate the Battle of Hastings from the Battle of Waterloo?",
        "1815 minus 1066 is 749 years.",
        "cross_referencing",
    )
    d.teach(
        "If the Titanic had sunk 10 years earlier, in which year would that have been?",
        "The Titanic sank in 1912, so 10 years earlier is 1902.",
        "counterfactual",
    )
    return d


# --------------------------------------------------------------------------- languages

LANGUAGES = {
    # country: (main language, capital, aliases)
    "France": ("French", "Paris", ()),
    "Germany": ("German", "Berlin", ()),
    "Austria": ("German", "Vienna", ()),
    "Spain": ("Spanish", "Madrid", ("Castilian",)),
    "Mexico": ("Spanish", "Mexico City", ()),
    "Argentina": ("Spanish", "Buenos Aires", ()),
    "Chile": ("Spanish", "Santiago", ()),
    "Colombia": ("Spanish", "Bogotá", ()),
    "Peru": ("Spanish", "Lima", ()),
    "Cuba": ("Spanish", "Havana", ()),
    "Portugal": ("Portuguese", "Lisbon", ()),
    "Brazil": ("Portuguese", "Brasília", ()),
    "Italy": ("Italian", "Rome", ()),
    "Japan": ("Japanese", "Tokyo", ()),
    "China": ("Mandarin", "Beijing", ("Chinese", "Mandarin Chinese")),
    "South Korea": ("Korean", "Seoul", ()),
    "Russia": ("Russian", "Moscow", ()),
    "Poland": ("Polish", "Warsaw", ()),
    "Greece": ("Greek", "Athens", ()),
    "Turkey": ("Turkish", "Ankara", ()),
    "Sweden": ("Swedish", "Stockholm", ()),
    "Norway": ("Norwegian", "Oslo", ()),
    "Denmark": ("Danish", "Copenhagen", ()),
    "Netherlands": ("Dutch", "Amsterdam", ()),
    "Hungary": ("Hungarian", "Budapest", ("Magyar",)),
    "Czech Republic": ("Czech", "Prague", ()),
    "Thailand": ("Thai", "Bangkok", ()),
    "Vietnam": ("Vietnamese", "Hanoi", ()),
    "Egypt": ("Arabic", "Cairo", ()),
    "Saudi Arabia": ("Arabic", "Riyadh", ()),
    "Iran": ("Persian", "Tehran", ("Farsi",)),
}


def _the(country: str) -> str:
    return (
        f"the {country}"
        if country in ("Netherlands", "Czech Republic", "United Kingdom")
        else country
    )


def languages(rng: random.Random) -> Domain:
    d = Domain("languages", "lang")
    countries = list(LANGUAGES)
    for country, (language, capital, aliases) in LANGUAGES.items():
        d.add(
            "factual_recall",
            text(f"What is the main language spoken in {_the(country)}?", language, *aliases),
        )
        d.add(
            "cross_referencing",
            text(
                f"Which language do most people speak in the country whose capital is {capital}?",
                language,
                *aliases,
            ),
        )
        d.teach(
            f"People in {_the(country)} mostly speak which language?",
            f"Most people in {_the(country)} speak {language}.",
        )
        d.teach(
            f"{capital} is the capital of which country?",
            f"{capital} is the capital of {_the(country)}.",
        )
    for _ in range(40):
        a, b = rng.sample(countries, 2)
        if LANGUAGES[a][0] != LANGUAGES[b][0]:
            d.add(
                "counterfactual",
                text(
                    f"In that situation, which language would be spoken in {_the(a)}?",
                    LANGUAGES[b][0],
                    *LANGUAGES[b][2],
                    context=f"Suppose everyone in {_the(a)} switched to the main language of {_the(b)}.",
                ),
            )
    for _ in range(60):
        group = rng.sample(countries, 4)
        for language in ("Spanish", "Portuguese", "German", "Arabic"):
            count = sum(LANGUAGES[c][0] == language for c in group)
            if count >= 1:
                d.add(
                    "multi_step",
                    num(
                        f"How many of these countries have {language} as their main language: "
                        f"{', '.join(_the(c) for c in group)}?",
                        count,
                    ),
                )
    d.teach(
        "If Japan adopted the language of Italy, what would people in Japan speak?",
        "Italy speaks Italian, so Japan would speak Italian.",
        "counterfactual",
    )
    return d
