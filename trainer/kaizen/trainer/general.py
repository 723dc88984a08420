"""General anchors: the model's own answers to everyday questions, for what nothing else rehearses.

Rehearsal draws its lines from the other domains of the suite: their training pools, their
facts in every wording, anchors asked of their entities (`rehearsal`, `anchors`). A suite
whose other domains carry no pool and no knowledge (evaluation items only, as a new user's
first suite often is) gives none of these, and the adapter is trained on its own domain
alone: measured on such a suite (benchmarks/suites/velorine), one adapter took its geography
items from 92.9% to 10.7% and 21.4% at two seeds, answering capitals with the trained
domain's names (docs/training-data.md, "When nothing else rehearses").

Then the trainer asks the model, before it trains anything, the everyday questions below,
and rehearses its answers, right or wrong, beside the new lines (source `anchor:general` on
the data card): the set no longer says only "answer everything the new domain's way". Each
other domain with nothing to rehearse gives its even share of the rehearsal lines to these
answers (`rehearsal.general_count`): all of them when no other domain has anything, half
when one of two has a pool, none when every one has lines of its own.
Such self-rehearsal keeps behaviour, it teaches nothing; like every line, each question
and answer passes the contamination guard, so a question the suite evaluates is never
rehearsed.

The questions cover what a small instruction model is asked: facts of the world, science,
words, numbers, time, everyday reasoning and short instructions. They were written for this
purpose, not taken from any suite.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kaizen.trainer.anchors import AnchorQuestion, admitted

if TYPE_CHECKING:  # pragma: no cover
    from kaizen.runtime.contamination import ContaminationGuard
    from kaizen.trainer.anchors import AnchorReport

#: The data card's domain of a general anchor (`anchor:general`).
DOMAIN = "general"

GENERAL_QUESTIONS = (
    # the world
    "Which is the largest planet in the solar system?",
    "What is the tallest mountain on Earth?",
    "Which ocean is the largest?",
    "What is the largest desert in the world?",
    "How many continents are there?",
    "Which country has the largest population?",
    "What language is spoken in Mexico?",
    "Which sea lies between Europe and Africa?",
    "What is the longest river in South America?",
    "Which country is shaped like a boot?",
    "What do you call a piece of land surrounded by water?",
    "What is the coldest continent?",
    # science and nature
    "What gas do plants take in from the air?",
    "What is the chemical symbol for gold?",
    "How many bones does an adult human have?",
    "What is the closest star to Earth?",
    "What force keeps the planets in orbit around the Sun?",
    "What is the freezing point of water in Fahrenheit?",
    "Which organ pumps blood through the body?",
    "What is the hardest natural substance?",
    "What do bees make?",
    "How many legs does a butterfly have?",
    "What is the main gas in the air we breathe?",
    "Which animal is known as the king of the jungle?",
    "What do caterpillars turn into?",
    "What part of the plant makes seeds?",
    "Why do we see lightning before we hear thunder?",
    "What causes the seasons on Earth?",
    "What is an atom made of?",
    "What does a thermometer measure?",
    "What is the largest mammal?",
    "What is photosynthesis?",
    # words and language
    "What is the opposite of 'ancient'?",
    "What is a synonym for 'happy'?",
    "What is the plural of 'mouse'?",
    "What is the past tense of 'swim'?",
    "Which word is a noun: run, table or quickly?",
    "How many letters are in the English alphabet?",
    "What is a haiku?",
    "What does 'benevolent' mean?",
    "Spell the word 'necessary'.",
    "What rhymes with 'light'?",
    "Translate 'thank you' into Spanish.",
    "What is the first letter of the Greek alphabet?",
    # numbers
    "What is 7 plus 8?",
    "What is 9 times 6?",
    "What is 100 divided by 4?",
    "What is 15 minus 9?",
    "Is 17 a prime number?",
    "What is half of 50?",
    "What is 3 squared?",
    "What comes after 99?",
    "How many sides does a hexagon have?",
    "What is 10 percent of 200?",
    "Which is larger, 0.5 or 0.45?",
    "What is the next number in the sequence 2, 4, 6, 8?",
    # time and everyday life
    "How many days are there in a leap year?",
    "How many minutes are in two hours?",
    "Which month comes after June?",
    "How many weeks are in a year?",
    "What do you use to cut paper?",
    "What colour do you get by mixing blue and yellow?",
    "What should you do if you feel cold?",
    "Where do you keep milk to stop it going off?",
    "What is the usual colour of a ripe banana?",
    "How do you boil an egg?",
    "What is a good way to save money?",
    "Why do people wear sunglasses?",
    # reasoning
    "If all cats are animals and Tom is a cat, is Tom an animal?",
    "If today is Monday, what day is it in three days?",
    "A box has 3 red balls and 2 blue balls. How many balls are in the box?",
    "If it is raining, what should you take when you go outside?",
    "Which is heavier, a kilogram of feathers or a kilogram of iron?",
    "If Anna is taller than Ben and Ben is taller than Carl, who is the shortest?",
    "A train leaves at 2 pm and the trip takes 3 hours. When does it arrive?",
    "What is the odd one out: apple, banana, carrot, cherry?",
    # history and culture
    "Who painted the Mona Lisa?",
    "Who wrote Romeo and Juliet?",
    "In which country were the ancient pyramids of Giza built?",
    "Who was the first person to walk on the Moon?",
    "What instrument has black and white keys?",
    "How many players are on a football team on the field?",
    "What is the name of the toy with coloured squares that you twist?",
    "Which festival is celebrated with decorated trees in December?",
    # short instructions
    "Write one sentence about the sea.",
    "Give me a word that means 'very big'.",
    "Name three colours.",
    "List two fruits that are red.",
    "Describe a cat in one sentence.",
    "Give one tip for sleeping well.",
    "Say hello in French.",
    "Suggest a name for a pet dog.",
    "Explain what a map is in one sentence.",
    "Tell me a fact about the Moon.",
)


def general_questions(
    guard: ContaminationGuard, seed: int, report: AnchorReport | None = None
) -> list[AnchorQuestion]:
    """`GENERAL_QUESTIONS` in a seeded order, less those the guard refuses (listed in
    `report` as dropped anchors)."""
    order = list(GENERAL_QUESTIONS)
    random.Random(seed + 3).shuffle(order)
    return [
        AnchorQuestion(question, "", "", DOMAIN)
        for question in order
        if admitted(question, guard, report)
    ]
