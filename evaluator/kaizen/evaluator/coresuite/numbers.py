"""Templates of the `core` suite: arithmetic and unit conversion, every answer computed."""

from __future__ import annotations

import random

from kaizen.evaluator.coresuite.common import (
    Domain,
    article,
    num,
)

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
        d.add("cross_referencing", num(f"How many {small} are there in {article(big)}?", factor))
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
