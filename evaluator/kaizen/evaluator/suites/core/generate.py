"""Generate the `core` suite (eval.jsonl, train.jsonl) from the fact tables and templates below.

Run `python evaluator/kaizen/evaluator/suites/core/generate.py` after changing anything here
and commit the JSONL it writes; a test checks that the committed files are what this script
produces. Output is deterministic: random choices use a fixed seed, and every numeric answer
is computed, never typed. Facts are common knowledge written for this project (Apache-2.0).

Each domain has 12 evaluation items per capability:
- factual_recall: one fact;
- cross_referencing: two facts combined (a lookup through another fact, a sum, a difference);
- counterfactual: a premise that changes a fact, and a question whose answer follows from it;
- multi_step: several facts or operations chained.
The training pool of a domain teaches the same facts in other words and shows the same kinds
of reasoning on other numbers; it never repeats an evaluation question.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaizen.evaluator.scoring import normalize, score

HERE = Path(__file__).parent
PER_CAPABILITY = 12
SEED = 7
CAPABILITIES = ("factual_recall", "cross_referencing", "counterfactual", "multi_step")
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]


@dataclass
class Candidate:
    question: str
    answer: str
    aliases: tuple[str, ...] = ()
    numeric: bool = False
    context: str | None = None


@dataclass
class Domain:
    name: str
    prefix: str
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    train: list[dict[str, str]] = field(default_factory=list)

    def add(self, capability: str, *candidates: Candidate) -> None:
        self.candidates.setdefault(capability, []).extend(candidates)

    def teach(self, question: str, answer: str, capability: str = "factual_recall") -> None:
        question, answer = question[:1].upper() + question[1:], answer[:1].upper() + answer[1:]
        self.train.append(
            {"domain": self.name, "capability": capability, "question": question, "answer": answer}
        )


def num(question: str, value: float, context: str | None = None) -> Candidate:
    text = str(int(value)) if float(value).is_integer() else str(value)
    return Candidate(question, text, numeric=True, context=context)


def text(question: str, answer: str, *aliases: str, context: str | None = None) -> Candidate:
    return Candidate(question, answer, tuple(aliases), context=context)


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


# --------------------------------------------------------------------------- chemistry

ELEMENTS = {
    # name: (symbol, atomic number)
    "hydrogen": ("H", 1),
    "helium": ("He", 2),
    "lithium": ("Li", 3),
    "carbon": ("C", 6),
    "nitrogen": ("N", 7),
    "oxygen": ("O", 8),
    "fluorine": ("F", 9),
    "neon": ("Ne", 10),
    "sodium": ("Na", 11),
    "magnesium": ("Mg", 12),
    "aluminium": ("Al", 13),
    "silicon": ("Si", 14),
    "phosphorus": ("P", 15),
    "sulfur": ("S", 16),
    "chlorine": ("Cl", 17),
    "argon": ("Ar", 18),
    "potassium": ("K", 19),
    "calcium": ("Ca", 20),
    "iron": ("Fe", 26),
    "nickel": ("Ni", 28),
    "copper": ("Cu", 29),
    "zinc": ("Zn", 30),
    "silver": ("Ag", 47),
    "tin": ("Sn", 50),
    "iodine": ("I", 53),
    "gold": ("Au", 79),
    "mercury": ("Hg", 80),
    "lead": ("Pb", 82),
    "uranium": ("U", 92),
}
SYMBOLS = {symbol: (name, number) for name, (symbol, number) in ELEMENTS.items()}
# Two-letter symbols only are asked for as answers: a one-letter answer ("I", "C") would be
# found in almost any sentence. "He" is a pronoun, so it is never an answer either.
ANSWERABLE_SYMBOLS = [s for s in SYMBOLS if len(s) == 2 and s != "He"]
# Molecular compounds only: an ionic solid such as sodium chloride has no molecules.
COMPOUNDS = {
    "water": {"H": 2, "O": 1},
    "carbon dioxide": {"C": 1, "O": 2},
    "methane": {"C": 1, "H": 4},
    "ammonia": {"N": 1, "H": 3},
    "oxygen gas": {"O": 2},
    "nitrogen gas": {"N": 2},
    "hydrogen chloride": {"H": 1, "Cl": 1},
    "sulfur dioxide": {"S": 1, "O": 2},
    "hydrogen sulfide": {"H": 2, "S": 1},
    "carbon monoxide": {"C": 1, "O": 1},
    "ethane": {"C": 2, "H": 6},
    "hydrogen fluoride": {"H": 1, "F": 1},
    "nitrogen dioxide": {"N": 1, "O": 2},
    "hydrogen peroxide": {"H": 2, "O": 2},
    "ozone": {"O": 3},
    "carbon tetrachloride": {"C": 1, "Cl": 4},
}
FORMULAS = {
    "water": "H2O",
    "carbon dioxide": "CO2",
    "methane": "CH4",
    "ammonia": "NH3",
    "oxygen gas": "O2",
    "nitrogen gas": "N2",
    "hydrogen chloride": "HCl",
    "sulfur dioxide": "SO2",
    "hydrogen sulfide": "H2S",
    "carbon monoxide": "CO",
    "ethane": "C2H6",
    "hydrogen fluoride": "HF",
    "nitrogen dioxide": "NO2",
    "hydrogen peroxide": "H2O2",
    "ozone": "O3",
    "carbon tetrachloride": "CCl4",
}


def chemistry(rng: random.Random) -> Domain:
    d = Domain("chemistry", "chem")
    for name, (symbol, number) in ELEMENTS.items():
        d.add("factual_recall", num(f"What is the atomic number of {name}?", number))
        if symbol in ANSWERABLE_SYMBOLS:
            d.add("factual_recall", text(f"What is the chemical symbol for {name}?", symbol))
        d.add(
            "cross_referencing",
            num(f"What is the atomic number of the element whose symbol is {symbol}?", number),
        )
        d.teach(
            f"How many protons does an atom of {name} have?",
            f"An atom of {name} has {number} protons.",
        )
        d.teach(f"Give the element symbol of {name}.", f"The symbol of {name} is {symbol}.")
    for symbol in ANSWERABLE_SYMBOLS:
        name, number = SYMBOLS[symbol]
        d.add(
            "cross_referencing",
            text(
                f"What is the chemical symbol of the element with atomic number {number}?",
                symbol,
            ),
        )
        d.teach(
            f"Element number {number} is which element?",
            f"Element number {number} is {name} ({symbol}).",
        )
    for name, (_, number) in ELEMENTS.items():
        extra = rng.choice([1, 2, 3, 4, 5])
        d.add(
            "counterfactual",
            num(
                "What would its atomic number be in that case?",
                number + extra,
                context=f"Suppose every atom of {name} had {extra} more "
                f"{'proton' if extra == 1 else 'protons'} than it really has.",
            ),
        )
        d.add(
            "counterfactual",
            num(
                f"Under that rule, what would the atomic number of {name} be?",
                2 * number,
                context="Imagine that every element's atomic number were twice its real value.",
            ),
        )
    for compound, atoms in COMPOUNDS.items():
        protons = sum(SYMBOLS[s][1] * k for s, k in atoms.items())
        d.add(
            "multi_step",
            num(
                f"A molecule of {compound} has the formula {FORMULAS[compound]}. "
                "How many protons does one molecule contain in total?",
                protons,
            ),
        )
    for _ in range(4):
        a, b = rng.sample(list(ELEMENTS), 2)
        d.teach(
            f"Add the atomic numbers of {a} and {b}.",
            f"{a.capitalize()} is {ELEMENTS[a][1]} and {b} is {ELEMENTS[b][1]}, so the sum is "
            f"{ELEMENTS[a][1] + ELEMENTS[b][1]}.",
            "multi_step",
        )
    return d


# --------------------------------------------------------------------------- astronomy

PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
MOONS = {"Mercury": 0, "Venus": 0, "Earth": 1, "Mars": 2}


def astronomy(rng: random.Random) -> Domain:
    d = Domain("astronomy", "astro")
    for i, planet in enumerate(PLANETS):
        d.add(
            "factual_recall",
            text(f"Which planet is the {ORDINALS[i]} planet from the Sun?", planet),
        )
        d.teach(
            f"Counting outward from the Sun, where does {planet} come?",
            f"{planet} is the {ORDINALS[i]} planet from the Sun.",
        )
    d.add(
        "factual_recall",
        text("What is the largest planet in the Solar System?", "Jupiter"),
        text("Which planet is known as the Red Planet?", "Mars"),
        text("Which planet is famous for its bright, wide ring system?", "Saturn"),
        num("How many planets are there in the Solar System?", 8),
        num("How many natural moons does Mars have?", 2),
        text("What is the hottest planet in the Solar System?", "Venus"),
    )
    d.teach("Name the biggest planet of the Solar System.", "Jupiter is the largest planet.")
    d.teach("Which planet looks red in the night sky?", "Mars is the Red Planet.")
    d.teach("Which planet has the most famous rings?", "Saturn has the most famous rings.")
    d.teach("Count the planets of the Solar System.", "The Solar System has 8 planets.")
    d.teach("How many moons orbit Mars?", "Mars has 2 moons, Phobos and Deimos.")
    d.teach("How many moons orbit Earth?", "Earth has 1 moon.")
    d.teach("How many moons do Mercury and Venus have?", "Mercury and Venus have no moons.")
    d.teach("Which planet has the hottest surface?", "Venus is the hottest planet.")
    for i, planet in enumerate(PLANETS[:-1]):
        d.teach(
            f"Going outward from the Sun, which planet follows {planet}?",
            f"{PLANETS[i + 1]} follows {planet}.",
        )
        d.add(
            "cross_referencing",
            text(
                f"Which planet comes immediately after {planet} in order from the Sun?",
                PLANETS[i + 1],
            ),
        )
    for i, planet in enumerate(PLANETS[1:], start=1):
        d.add(
            "cross_referencing",
            text(
                f"Which planet comes immediately before {planet} in order from the Sun?",
                PLANETS[i - 1],
            ),
        )
    d.add(
        "cross_referencing",
        num("What is the position from the Sun of the largest planet?", 5),
        text("Which planet is next to the Red Planet, farther from the Sun?", "Jupiter"),
        num("How many moons do Earth and Mars have together?", 3),
    )
    for _ in range(40):
        removed = rng.choice(PLANETS)
        remaining = [p for p in PLANETS if p != removed]
        k = rng.randrange(len(remaining))
        d.add(
            "counterfactual",
            text(
                f"Which planet would then be the {ORDINALS[k]} planet from the Sun?",
                remaining[k],
                context=f"Suppose {removed} did not exist and every other planet kept its orbit.",
            ),
        )
    for extra in (3, 4, 5, 6):
        d.add(
            "counterfactual",
            num(
                "How many moons would Earth and Mars have together?",
                MOONS["Mars"] + extra + MOONS["Earth"],
                context=f"Suppose Mars had {extra} more moons than it really has.",
            ),
        )
    for _ in range(40):
        a, b = sorted(rng.sample(range(8), 2))
        if b - a >= 2:
            d.add(
                "multi_step",
                num(
                    f"How many planets lie between {PLANETS[a]} and {PLANETS[b]} in order from the Sun?",
                    b - a - 1,
                ),
            )
    for i, planet in enumerate(PLANETS[:-1]):
        d.add(
            "multi_step",
            num(f"How many planets are farther from the Sun than {planet}?", 7 - i),
        )
    d.teach(
        "How many planets orbit between Venus and Jupiter?",
        "Earth and Mars lie between Venus and Jupiter, so 2 planets.",
        "multi_step",
    )
    d.teach(
        "If Earth vanished, which planet would be third from the Sun?",
        "Without Earth, Mars would be the third planet.",
        "counterfactual",
    )
    return d


# --------------------------------------------------------------------------- biology

LEGS = {
    # animal: (legs, plural)
    "spider": (8, "spiders"),
    "ant": (6, "ants"),
    "bee": (6, "bees"),
    "beetle": (6, "beetles"),
    "dog": (4, "dogs"),
    "cat": (4, "cats"),
    "horse": (4, "horses"),
    "cow": (4, "cows"),
    "chicken": (2, "chickens"),
    "duck": (2, "ducks"),
    "ostrich": (2, "ostriches"),
    "goat": (4, "goats"),
}
CLASSES = {
    "whale": "mammal",
    "dolphin": "mammal",
    "bat": "mammal",
    "horse": "mammal",
    "penguin": "bird",
    "ostrich": "bird",
    "eagle": "bird",
    "frog": "amphibian",
    "salamander": "amphibian",
    "crocodile": "reptile",
    "snake": "reptile",
    "tortoise": "reptile",
    "shark": "fish",
    "salmon": "fish",
}
CLASS_ALIASES = {
    "mammal": ("mammals",),
    "bird": ("birds",),
    "amphibian": ("amphibians",),
    "reptile": ("reptiles",),
    "fish": ("fishes",),
}


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" or word.startswith("hour") else "a ") + word


def biology(rng: random.Random) -> Domain:
    d = Domain("biology", "bio")
    for animal, group in CLASSES.items():
        d.add(
            "factual_recall",
            text(
                f"To which class of vertebrates does the {animal} belong?",
                group,
                *CLASS_ALIASES[group],
            ),
        )
        d.teach(f"What kind of vertebrate is {_article(animal)}?", f"The {animal} is a {group}.")
    d.add(
        "factual_recall",
        num("How many bones are in the body of an adult human?", 206),
        num("How many chambers does the human heart have?", 4),
        num("How many legs does a spider have?", 8),
        num("How many legs does an insect have?", 6),
    )
    d.teach("Count the bones of a grown-up human skeleton.", "An adult human has 206 bones.")
    d.teach("The human heart is divided into how many chambers?", "The heart has 4 chambers.")
    for animal, (legs, _) in LEGS.items():
        d.teach(
            f"Count the legs of {_article(animal)}.",
            f"{_article(animal).capitalize()} has {legs} legs.",
        )
    animals = list(LEGS)
    for _ in range(40):
        a, b = rng.sample(animals, 2)
        d.add(
            "cross_referencing",
            num(
                f"How many legs do {_article(a)} and {_article(b)} have in total?",
                LEGS[a][0] + LEGS[b][0],
            ),
        )
    for _ in range(40):
        a = rng.choice(animals)
        extra, k = rng.choice([1, 2, 3]), rng.choice([3, 4, 5, 6])
        legs, plural = LEGS[a]
        d.add(
            "counterfactual",
            num(
                f"In that world, how many legs would {k} {plural} have altogether?",
                (legs + extra) * k,
                context=f"Imagine a world where every {a} had {extra} more "
                f"{'leg' if extra == 1 else 'legs'} than it really has.",
            ),
        )
    for _ in range(40):
        a, b = rng.sample(animals, 2)
        x, y = rng.randint(2, 9), rng.randint(2, 9)
        d.add(
            "multi_step",
            num(
                f"A farm has {x} {LEGS[a][1]} and {y} {LEGS[b][1]}. "
                "How many legs do these animals have altogether?",
                x * LEGS[a][0] + y * LEGS[b][0],
            ),
        )
    d.teach(
        "What is the total number of legs on 2 dogs and 3 chickens?",
        "2 dogs have 8 legs and 3 chickens have 6 legs, so 14 legs in total.",
        "multi_step",
    )
    d.teach(
        "If every cat had one extra leg, how many legs would 2 cats have?",
        "Each cat would have 5 legs, so 2 cats would have 10 legs.",
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


# --------------------------------------------------------------------------- arithmetic

QUANTITIES = {
    "the number of days in a week": 7,
    "the number of months in a year": 12,
    "the number of hours in a day": 24,
    "the number of sides of a triangle": 3,
    "the number of sides of a square": 4,
    "the number of sides of a hexagon": 6,
    "the number of sides of an octagon": 8,
    "the number of items in a dozen": 12,
    "the number of years in a decade": 10,
    "the number of years in a century": 100,
}
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Femi", "Grace", "Hugo", "Iris", "Jonas"]


def arithmetic(rng: random.Random) -> Domain:
    d = Domain("arithmetic", "arith")
    for _ in range(60):
        a, b = rng.randint(6, 12), rng.randint(6, 12)
        d.add("factual_recall", num(f"What is {a} times {b}?", a * b))
    for a in range(2, 6):
        for b in range(2, 10):
            d.teach(f"Multiply {a} by {b}.", f"{a} times {b} is {a * b}.")
    names = list(QUANTITIES)
    for _ in range(60):
        x, y = rng.sample(names, 2)
        op = rng.choice(["sum", "product"])
        value = QUANTITIES[x] + QUANTITIES[y] if op == "sum" else QUANTITIES[x] * QUANTITIES[y]
        word = "sum" if op == "sum" else "product"
        d.add("cross_referencing", num(f"What is the {word} of {x} and {y}?", value))
    for quantity, value in QUANTITIES.items():
        d.teach(f"State {quantity}.", f"{quantity} is {value}.")
    for _ in range(40):
        k = rng.randint(3, 9)
        if rng.random() < 0.5:
            days = rng.choice([5, 6, 8, 9, 10])
            d.add(
                "counterfactual",
                num(
                    f"How many days would {k} weeks have?",
                    days * k,
                    context=f"Suppose a week had {days} days instead of 7.",
                ),
            )
        else:
            size = rng.choice([10, 11, 13, 15])
            d.add(
                "counterfactual",
                num(
                    f"How many eggs would {k} dozen eggs be?",
                    size * k,
                    context=f"Imagine that a dozen meant {size} items instead of 12.",
                ),
            )
    for _ in range(40):
        name = rng.choice(NAMES)
        if rng.random() < 0.5:
            a, b, c = rng.randint(2, 9), rng.randint(2, 5), rng.randint(3, 8)
            e = rng.randint(1, a + b * c - 1)
            d.add(
                "multi_step",
                num(
                    f"{name} has {a} apples, buys {b} bags with {c} apples each, and then gives "
                    f"{e} apples away. How many apples does {name} have now?",
                    a + b * c - e,
                ),
            )
        else:
            price, count = rng.randint(2, 9), rng.randint(2, 6)
            note = 50 if price * count < 50 else 100
            d.add(
                "multi_step",
                num(
                    f"Pens cost {price} dollars each. {name} buys {count} pens and pays with a "
                    f"{note}-dollar note. How many dollars of change does {name} get?",
                    note - price * count,
                ),
            )
    d.teach(
        "Sam has 3 boxes of 4 pencils and loses 2 pencils. How many pencils are left?",
        "3 times 4 is 12, and 12 minus 2 is 10 pencils.",
        "multi_step",
    )
    d.teach(
        "If a week had 8 days, how many days would 2 weeks have?",
        "2 times 8 is 16 days.",
        "counterfactual",
    )
    return d


# --------------------------------------------------------------------------- units

CONVERSIONS = {
    # (larger unit, smaller unit plural): factor
    ("metre", "centimetres"): 100,
    ("kilogram", "grams"): 1000,
    ("litre", "millilitres"): 1000,
    ("kilometre", "metres"): 1000,
    ("centimetre", "millimetres"): 10,
    ("minute", "seconds"): 60,
    ("hour", "minutes"): 60,
    ("day", "hours"): 24,
    ("foot", "inches"): 12,
    ("yard", "feet"): 3,
    ("pound", "ounces"): 16,
    ("week", "days"): 7,
    ("gram", "milligrams"): 1000,
}
PLURALS = {"foot": "feet", "day": "days", "hour": "hours", "minute": "minutes"}
CHAINS = [
    ("hour", "seconds", 3600),
    ("day", "minutes", 1440),
    ("day", "seconds", 86400),
    ("kilometre", "centimetres", 100000),
    ("metre", "millimetres", 1000),
    ("yard", "inches", 36),
    ("week", "hours", 168),
    ("kilogram", "milligrams", 1000000),
    ("kilometre", "millimetres", 1000000),
    ("week", "minutes", 10080),
    ("litre", "millilitres", 1000),
    ("hour", "seconds", 3600),
]


def units(rng: random.Random) -> Domain:
    d = Domain("units", "unit")
    for (big, small), factor in CONVERSIONS.items():
        d.add("factual_recall", num(f"How many {small} are in one {big}?", factor))
        d.teach(f"One {big} equals how many {small}?", f"One {big} is {factor} {small}.")
    d.add(
        "factual_recall",
        num("At how many degrees Celsius does pure water boil at sea level?", 100),
    )
    d.teach("What is the boiling point of water in Celsius?", "Water boils at 100 degrees Celsius.")
    for big, small, factor in CHAINS[:8]:
        d.teach(
            f"Convert one {big} into {small}.",
            f"One {big} is {factor:,} {small}.",
            "cross_referencing",
        )
    seen = set()
    for big, small, factor in CHAINS:
        if (big, small) in seen:
            continue
        seen.add((big, small))
        d.add("cross_referencing", num(f"How many {small} are there in {_article(big)}?", factor))
    for _ in range(20):
        (big, small), factor = rng.choice(list(CONVERSIONS.items()))
        k = rng.randint(2, 9)
        bigs = PLURALS.get(big, big + "s")
        d.add("cross_referencing", num(f"How many {small} make up {k} {bigs}?", k * factor))
    for _ in range(40):
        (big, small), factor = rng.choice(
            [
                c
                for c in CONVERSIONS.items()
                if c[0][0] in ("hour", "minute", "kilometre", "foot", "day")
            ]
        )
        changed = (
            factor + rng.choice([-4, -2, 5, 10, 20]) if factor > 10 else factor + rng.choice([1, 2])
        )
        k = rng.randint(2, 6)
        d.add(
            "counterfactual",
            num(
                f"With that definition, how many {small} would {k} {PLURALS.get(big, big + 's')} contain?",
                changed * k,
                context=f"Suppose one {big} were defined as {changed} {small}.",
            ),
        )
    for _ in range(40):
        kind = rng.randrange(4)
        if kind == 0:
            h, m = rng.randint(1, 5), rng.choice([10, 15, 20, 25, 40, 45])
            d.add(
                "multi_step", num(f"How many minutes are in {h} hours and {m} minutes?", 60 * h + m)
            )
        elif kind == 1:
            c = rng.choice([10, 15, 20, 25, 30, 35, 40, 45, 50])
            d.add(
                "multi_step",
                num(f"What is {c} degrees Celsius in degrees Fahrenheit?", c * 9 // 5 + 32),
            )
        elif kind == 2:
            laps, track = rng.choice(
                [(5, 400), (10, 400), (25, 400), (8, 250), (12, 250), (20, 200)]
            )
            d.add(
                "multi_step",
                num(
                    f"A runner completes {laps} laps of a {track}-metre track. "
                    "How many kilometres has she run?",
                    laps * track / 1000,
                ),
            )
        else:
            bottles, ml = rng.choice([(4, 250), (6, 500), (8, 250), (3, 500), (10, 200)])
            d.add(
                "multi_step",
                num(
                    f"How many litres of water are in {bottles} bottles of {ml} millilitres each?",
                    bottles * ml / 1000,
                ),
            )
    d.teach(
        "How many minutes are in 3 hours and 5 minutes?",
        "3 hours are 180 minutes, plus 5 is 185 minutes.",
        "multi_step",
    )
    d.teach(
        "Convert 0 degrees Celsius to Fahrenheit.",
        "0 times 9/5 plus 32 is 32 degrees Fahrenheit.",
        "multi_step",
    )
    return d


# --------------------------------------------------------------------------- physics

SI_UNITS = {
    # quantity: (unit, unit aliases, scientist surname, scientist aliases)
    "force": ("newton", ("newtons",), "Newton", ("Isaac Newton",)),
    "energy": ("joule", ("joules",), "Joule", ()),
    "power": ("watt", ("watts",), "Watt", ()),
    "electric current": ("ampere", ("amperes", "amp", "amps"), "Ampère", ("Ampere",)),
    "electrical resistance": ("ohm", ("ohms",), "Ohm", ()),
    "voltage": ("volt", ("volts",), "Volta", ()),
    "frequency": ("hertz", (), "Hertz", ()),
    "pressure": ("pascal", ("pascals",), "Pascal", ()),
    "electric charge": ("coulomb", ("coulombs",), "Coulomb", ()),
    "thermodynamic temperature": ("kelvin", ("kelvins",), "Kelvin", ("Thomson",)),
    "magnetic flux density": ("tesla", ("teslas",), "Tesla", ("Nikola Tesla",)),
    "absorbed radiation dose": ("gray", ("grays",), "Gray", ()),
}


def _a(number: int) -> str:
    """`a 5` but `an 8`, `an 11`, `an 18`: the article as the number is spoken."""
    spoken_with_vowel = str(number).startswith("8") or number in (11, 18)
    return f"{'an' if spoken_with_vowel else 'a'} {number}"


def physics(rng: random.Random) -> Domain:
    d = Domain("physics", "phys")
    for quantity, (unit, aliases, person, person_aliases) in SI_UNITS.items():
        d.add("factual_recall", text(f"What is the SI unit of {quantity}?", unit, *aliases))
        d.add(
            "cross_referencing",
            text(
                f"The SI unit of {quantity} is named after which scientist? Give the surname.",
                person,
                *person_aliases,
            ),
        )
        d.teach(
            f"In which SI unit is {quantity} measured?",
            f"{quantity.capitalize()} is measured in {unit}s.",
        )
        d.teach(f"Who is the {unit} named after?", f"The {unit} is named after {person}.")
    for _ in range(40):
        if rng.random() < 0.5:
            g, m = rng.choice([5, 12, 15, 20, 25]), rng.randint(2, 9)
            d.add(
                "counterfactual",
                num(
                    f"What would the weight of {_a(m)} kg mass be in newtons?",
                    g * m,
                    context=f"Suppose the gravitational acceleration at Earth's surface were {g} m/s² instead of about 9.8.",
                ),
            )
        else:
            v, t = rng.choice([100, 200, 250, 400, 500]), rng.randint(2, 9)
            d.add(
                "counterfactual",
                num(
                    f"How many metres would sound travel through air in {t} seconds?",
                    v * t,
                    context=f"Suppose the speed of sound in air were {v} m/s.",
                ),
            )
    for _ in range(40):
        kind = rng.randrange(3)
        if kind == 0:
            voltage, resistance = rng.choice(
                [(12, 4), (12, 6), (10, 5), (20, 4), (9, 3), (24, 8), (6, 2)]
            )
            d.add(
                "multi_step",
                num(
                    f"{_a(voltage).capitalize()}-volt battery drives a current through {_a(resistance)}-ohm resistor. "
                    "What power, in watts, does the resistor dissipate?",
                    voltage * voltage // resistance,
                ),
            )
        elif kind == 1:
            m, v, t = rng.randint(2, 9), rng.choice([6, 10, 12, 20]), rng.choice([2, 3, 4])
            if (m * v) % t == 0:
                d.add(
                    "multi_step",
                    num(
                        f"{_a(m).capitalize()} kg cart speeds up uniformly from rest to {v} m/s in {t} seconds. "
                        "What net force, in newtons, acts on it?",
                        m * v // t,
                    ),
                )
        else:
            m, v = rng.choice([2, 4, 6, 8]), rng.randint(2, 9)
            d.add(
                "multi_step",
                num(
                    f"What is the kinetic energy, in joules, of {_a(m)} kg ball moving at {v} m/s?",
                    m * v * v // 2,
                ),
            )
    d.teach(
        "What current flows through a 3-ohm resistor across 6 volts?",
        "By Ohm's law, 6 divided by 3 is 2 amperes.",
        "multi_step",
    )
    d.teach(
        "What is the weight of a 3 kg mass on Earth, taking g as 10 m/s²?",
        "Weight is mass times g: 3 times 10 is 30 newtons.",
        "multi_step",
    )
    return d


# --------------------------------------------------------------------------- assembly

DOMAINS = [geography, chemistry, astronomy, biology, history, languages, arithmetic, units, physics]


def _gives_itself_away(candidate: Candidate) -> bool:
    """True when the question alone would score as a right answer (a parroting model passes)."""
    message = (
        f"{candidate.context}\n\n{candidate.question}" if candidate.context else candidate.question
    )
    scorer = "numeric" if candidate.numeric else "contains"
    return score(scorer, message, (candidate.answer, *candidate.aliases))[0] == 1.0


def _pick(rng: random.Random, candidates: list[Candidate], taken: set[str]) -> list[Candidate]:
    pool = list(candidates)
    rng.shuffle(pool)
    chosen = []
    for candidate in pool:
        key = normalize(f"{candidate.context or ''} {candidate.question}")
        if key in taken or _gives_itself_away(candidate):
            continue
        taken.add(key)
        chosen.append(candidate)
        if len(chosen) == PER_CAPABILITY:
            return chosen
    raise SystemExit(f"only {len(chosen)} usable candidates, need {PER_CAPABILITY}")


def build() -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """(eval items, training examples, domain names), deterministic."""
    items: list[dict[str, Any]] = []
    train: list[dict[str, str]] = []
    names = []
    for make in DOMAINS:
        rng = random.Random(f"{SEED}:{make.__name__}")
        domain = make(rng)
        names.append(domain.name)
        taken: set[str] = set()
        by_capability: dict[str, list[dict[str, Any]]] = {}
        for capability in CAPABILITIES:
            by_capability[capability] = []
            for n, candidate in enumerate(
                _pick(rng, domain.candidates[capability], taken), start=1
            ):
                item: dict[str, Any] = {
                    "id": f"{domain.prefix}-{capability.split('_')[0][:5]}-{n:02d}",
                    "domain": domain.name,
                    "capability": capability,
                }
                if candidate.context:
                    item["context"] = candidate.context
                item["question"] = candidate.question
                item["answer"] = candidate.answer
                if candidate.aliases:
                    item["aliases"] = list(candidate.aliases)
                if candidate.numeric:
                    item["scorer"] = "numeric"
                by_capability[capability].append(item)
        # Capabilities take turns in file order, so `--limit N` (the first N items of each
        # domain) still covers every capability.
        for row in zip(*by_capability.values(), strict=True):
            items.extend(row)
        asked = {normalize(i["question"]) for i in items if i["domain"] == domain.name}
        seen: set[str] = set()
        for example in domain.train:
            key = normalize(example["question"])
            if key in asked or key in seen:
                continue
            seen.add(key)
            train.append(example)
    return items, train, names


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def render() -> dict[str, str]:
    """File name -> content of the generated files."""
    items, train, _ = build()
    return {"eval.jsonl": _jsonl(items), "train.jsonl": _jsonl(train)}


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else HERE
    for name, content in render().items():
        (target / name).write_text(content, encoding="utf-8")
    items, train, names = build()
    print(
        f"{len(items)} evaluation items, {len(train)} training examples, domains: {', '.join(names)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
