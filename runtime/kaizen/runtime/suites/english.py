"""English verb forms the readers of a suite's prose share.

One table of irregular verbs, and the views of it each reader wants: the participles that
make a passive ("was born in", "are kept"), the past forms that follow a name without
telling its number ("Hermes built …"). A reader that needs another view takes it from the
table rather than keeping its own list.
"""

#: Irregular verbs as (base, past, past participle), the forms not made with "-ed".
IRREGULAR_VERBS: tuple[tuple[str, str, str], ...] = (
    ("bear", "bore", "born"), ("become", "became", "become"), ("begin", "began", "begun"),
    ("bring", "brought", "brought"), ("build", "built", "built"), ("buy", "bought", "bought"),
    ("catch", "caught", "caught"), ("choose", "chose", "chosen"), ("come", "came", "come"),
    ("cut", "cut", "cut"), ("do", "did", "done"), ("draw", "drew", "drawn"),
    ("drive", "drove", "driven"), ("fall", "fell", "fallen"), ("feed", "fed", "fed"),
    ("feel", "felt", "felt"), ("find", "found", "found"), ("flee", "fled", "fled"),
    ("freeze", "froze", "frozen"), ("get", "got", "got"), ("give", "gave", "given"),
    ("go", "went", "gone"), ("grow", "grew", "grown"), ("hang", "hung", "hung"),
    ("have", "had", "had"), ("hide", "hid", "hidden"), ("hold", "held", "held"),
    ("keep", "kept", "kept"), ("know", "knew", "known"), ("lead", "led", "led"),
    ("leave", "left", "left"), ("lend", "lent", "lent"), ("let", "let", "let"),
    ("lose", "lost", "lost"), ("make", "made", "made"), ("mean", "meant", "meant"),
    ("meet", "met", "met"), ("pay", "paid", "paid"), ("put", "put", "put"),
    ("read", "read", "read"), ("ride", "rode", "ridden"), ("rise", "rose", "risen"),
    ("run", "ran", "run"), ("say", "said", "said"), ("see", "saw", "seen"),
    ("sell", "sold", "sold"), ("send", "sent", "sent"), ("set", "set", "set"),
    ("shine", "shone", "shone"), ("show", "showed", "shown"), ("shut", "shut", "shut"),
    ("sing", "sang", "sung"), ("sink", "sank", "sunk"), ("speak", "spoke", "spoken"),
    ("spend", "spent", "spent"), ("spin", "spun", "spun"), ("stand", "stood", "stood"),
    ("strike", "struck", "struck"), ("swim", "swam", "swum"), ("take", "took", "taken"),
    ("teach", "taught", "taught"), ("tell", "told", "told"), ("think", "thought", "thought"),
    ("throw", "threw", "thrown"), ("understand", "understood", "understood"),
    ("wear", "wore", "worn"), ("win", "won", "won"), ("withdraw", "withdrew", "withdrawn"),
    ("write", "wrote", "written"),
)  # fmt: skip

#: Past forms not made with "-ed" ("built", "wrote").
PAST_FORMS = frozenset(past for _, past, _ in IRREGULAR_VERBS)
#: Past participles not made with "-ed" ("born", "kept", "written").
PARTICIPLES = frozenset(participle for _, _, participle in IRREGULAR_VERBS)

#: Verbs that follow a subject and carry its tense or number ("is", "has", "can").
AUXILIARIES = frozenset(
    ("is", "are", "was", "were", "has", "have", "had", "can", "could", "will", "would", "must",
     "should", "may", "might", "do", "does", "did")
)  # fmt: skip
#: Their negations as a sentence writes them ("isn't", "weren't").
NEGATED_AUXILIARIES = frozenset(
    ("isn't", "aren't", "wasn't", "weren't", "hasn't", "haven't", "hadn't", "can't", "couldn't",
     "won't", "wouldn't", "mustn't", "shouldn't", "don't", "doesn't", "didn't")
)  # fmt: skip


def participle(word: str) -> bool:
    """Whether `word` reads as a past participle: "-ed", "-en", "-wn", or an irregular
    one ("kept", "sent", "born")."""
    return word.endswith(("ed", "en", "wn")) or word in PARTICIPLES
