"""Fact tables and templates of the `core` suite: chemistry, astronomy, biology, physics."""

from __future__ import annotations

import random

from kaizen.evaluator.coresuite.common import (
    ORDINALS,
    Domain,
    article,
    num,
    text,
)

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
        d.teach(f"What kind of vertebrate is {article(animal)}?", f"The {animal} is a {group}.")
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
            f"Count the legs of {article(animal)}.",
            f"{article(animal).capitalize()} has {legs} legs.",
        )
    animals = list(LEGS)
    for _ in range(40):
        a, b = rng.sample(animals, 2)
        d.add(
            "cross_referencing",
            num(
                f"How many legs do {article(a)} and {article(b)} have in total?",
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
