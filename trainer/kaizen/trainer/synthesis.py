"""Training items synthesised from a domain's knowledge, in the mix the analysis asks for.

From the facts of one domain (a small graph: facts that share an entity connect) this
module builds candidate question–answer items of four capabilities:

- `factual_recall`: every question template of a fact's relation (and its inverse
  questions), so one fact is learned in several surface forms; and entity profiles: what is
  known about one entity (its facts as subject and as object) in several seeded orders, so a
  fact is stored from both of its ends and not tied to one sentence position;
- `cross_referencing`: two facts composed through a shared entity, asked in one question:
  a chain (the object of one is the subject of the other: "Which river flows through the
  capital of Zephyria?") or a sibling (both about one subject, one naming it: "What is the
  currency of the country whose capital is Velmora?");
- `counterfactual`: a premise that replaces a fact's object with another object of the same
  relation, and the question the premise changes, answered from the premise;
- `multi_step`: three facts chained (the subject found through one fact, a second fact
  reached from it, a third from that).

Every answer spells out the facts it uses, in the relation's own wording, so the model learns
the steps and not only the final word. Then `choose` draws a training set from the
candidates: capabilities weigh by what the plan found (a targeted capability weighs more; a
domain whose failures are reasoning failures gets compositions rather than more recall),
and facts behind failed evaluation items come first. Everything is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kaizen.runtime.scoring import normalize
from kaizen.runtime.suites import prose
from kaizen.runtime.suites.knowledge import Fact, Knowledge, fill, sentence_start
from kaizen.runtime.suites.names import FUNCTION_WORDS, lower_article, without_article
from kaizen.trainer import passages
from kaizen.trainer.graph import holders, tell, values
from kaizen.trainer.profiles import PROFILE_PROMPTS, PROFILE_STATEMENTS, asking

RECALL = "factual_recall"
CROSS = "cross_referencing"
COUNTERFACTUAL = "counterfactual"
MULTI = "multi_step"
CAPABILITIES = (RECALL, CROSS, COUNTERFACTUAL, MULTI)
#: The capability of an item made from passages, by kind (recall where not named).
PASSAGE_CAPABILITY = {"passage-chain": CROSS, "passage-premise": COUNTERFACTUAL}
#: Passages are taught as recall of the passage.
PASSAGE_CHARS = 600


@dataclass(frozen=True)
class Candidate:
    """One synthesised item and where it came from."""

    question: str
    answer: str
    capability: str
    kind: str
    """How it was made: `surface`, `inverse`, `profile`, `chain`, `sibling`, `premise`,
    `three-hop`, `passage`, `passage-profile`, `passage-cloze`, `passage-chain`,
    `passage-premise`, `passage-faq`."""
    facts: tuple[str, ...] = ()
    """Keys of the facts it uses (`subject|relation|object`); an item made from passages has
    `name|passage|`, the name it is about."""
    expected: str = ""
    """The word(s) a right answer must contain (what a teacher's answer is checked against)."""
    context: tuple[str, ...] = ()
    """The passage sentences it comes from (shown to a teacher beside the facts)."""
    also: tuple[str, ...] = ()
    """Further words a right answer must contain: the other values where a relation holds
    several for the entity asked about ("Which country does Veldra border?": Osk and Marn)."""

    @property
    def answers(self) -> tuple[str, ...]:
        """Every word a right answer must contain: `expected`, then `also`."""
        return (self.expected, *self.also) if self.expected else self.also


@dataclass(frozen=True)
class Steering:
    """What the analysis says about one domain, as synthesis uses it."""

    targeted_capabilities: tuple[str, ...] = ()
    """Capabilities the plan targets (weakest across the suite)."""
    failed_capabilities: Mapping[str, int] = field(default_factory=dict)
    """Failed evaluation items of this domain, by capability."""
    diagnosis: str | None = None
    """`knowledge`, `reasoning` or `mixed` (the analysis's knowledge-vs-reasoning call)."""
    failed_texts: tuple[str, ...] = ()
    """Question and expected answer of each failed item of this domain."""


def _clause(statement: str) -> str:
    """A statement without its final full stop, for use inside a sentence.

    Only a leading function word is lower-cased ("The capital …" → "the capital …", "Most
    people in …" → "most people in …"); any other first word may be a name ("Paris lies …")
    and keeps its capital.
    """
    text = statement.strip().rstrip(".")
    first, _, rest = text.partition(" ")
    if rest and first.lower() in FUNCTION_WORDS and first not in ("I", "I'm"):
        return f"{first.lower()} {rest}"
    return text


def recall_items(knowledge: Knowledge, fact: Fact) -> list[Candidate]:
    """Every surface form of one fact: its relation's questions and inverse questions.

    Where the relation holds several values for the fact's subject, a question answers with
    all of them ("Which country does Veldra border?" → "Veldra borders Osk. Veldra borders
    Marn."): answering with one would teach that it is the only one. Inverse questions
    likewise name every subject that has the fact's object.
    """
    relation = knowledge.relations[fact.relation]
    told = tell(knowledge, values(knowledge, fact))
    items = [
        Candidate(
            fill(q, fact), told.statements, RECALL, "surface", told.keys, told.expected,
            also=told.also,
        )
        for q in relation.questions
    ]  # fmt: skip
    if relation.inverse_questions:
        back = tell(knowledge, holders(knowledge, fact), inverse=True)
        items += [
            Candidate(
                fill(q, fact), back.statements, RECALL, "inverse", back.keys, back.expected,
                also=back.also,
            )
            for q in relation.inverse_questions
        ]  # fmt: skip
    return items


def _through(knowledge: Knowledge, fact: Fact, subject: str | None = None) -> str | None:
    """The object of `fact` named through its subject ("the capital of Zephyria"); None where
    the relation has no description or holds several values for the subject ("the moon of
    Mars" names no one moon)."""
    relation = knowledge.relations[fact.relation]
    if relation.describe is None or len(values(knowledge, fact)) > 1:
        return None
    return fill(relation.describe, fact, **({"subject": subject} if subject else {}))


def _naming_subject(knowledge: Knowledge, fact: Fact) -> str | None:
    """The subject of `fact` named through its object ("the country whose capital is
    Velmora"); None where the relation has no such description or gives the object to
    several subjects ("the country in Africa" names no one country)."""
    relation = knowledge.relations[fact.relation]
    if relation.describe_subject is None or len(holders(knowledge, fact)) > 1:
        return None
    return fill(relation.describe_subject, fact)


def composed_items(knowledge: Knowledge, facts: Sequence[Fact]) -> list[Candidate]:
    """Cross-reference items (two facts) and multi-step items (three facts).

    An entity is named through a fact only where that fact names it alone (`_through`,
    `_naming_subject`); the last fact asked is answered with every value its relation holds
    for the entity (as `recall_items`)."""
    relations = knowledge.relations
    by_subject: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_subject[normalize(fact.subject)].append(fact)
    items: list[Candidate] = []
    for first in facts:
        # Chains: the object of `first` is the subject of `second`.
        for second in by_subject.get(normalize(first.object), []):
            named = _through(knowledge, first)
            if named is None or second.key == first.key:
                continue
            told = tell(knowledge, values(knowledge, second))
            answer = f"{knowledge.statement(first)} {told.statements}"
            for q in relations[second.relation].questions:
                items.append(
                    Candidate(
                        sentence_start(fill(q, second, subject=named)),
                        answer,
                        CROSS,
                        "chain",
                        (first.key, *told.keys),
                        told.expected,
                        also=told.also,
                    )
                )
            # Three hops: a third fact about the object of `second`.
            items += _third_hops(
                knowledge, by_subject, first, second,
                _through(knowledge, second, subject=named),
                f"{knowledge.statement(first)} {knowledge.statement(second)}",
            )  # fmt: skip
        # Siblings: `first` names the subject; `second` is another fact about it.
        naming = _naming_subject(knowledge, first)
        if naming is None:
            continue
        for second in by_subject[normalize(first.subject)]:
            if second.relation == first.relation:
                continue
            lead = f"{sentence_start(naming)} is {first.subject}."
            told = tell(knowledge, values(knowledge, second))
            for q in relations[second.relation].questions:
                items.append(
                    Candidate(
                        sentence_start(fill(q, second, subject=naming)),
                        f"{lead} {told.statements}",
                        CROSS,
                        "sibling",
                        (first.key, *told.keys),
                        told.expected,
                        also=told.also,
                    )
                )
            # Subject named through one fact, then a chain from another: three facts.
            items += _third_hops(
                knowledge, by_subject, first, second,
                _through(knowledge, second, subject=naming),
                f"{lead} {knowledge.statement(second)}",
            )  # fmt: skip
    return items


def _third_hops(
    knowledge: Knowledge,
    by_subject: Mapping[str, list[Fact]],
    first: Fact,
    second: Fact,
    named: str | None,
    answer: str,
) -> list[Candidate]:
    """Multi-step items: a third fact about `second`'s object, asked through `named` (its
    description via the first two facts) and answered with all three statements (every value
    of the third's relation, where it holds several)."""
    if named is None:
        return []
    items = []
    for third in by_subject.get(normalize(second.object), []):
        if third.key in (first.key, second.key):
            continue
        told = tell(knowledge, values(knowledge, third))
        question = knowledge.relations[third.relation].questions[0]
        items.append(
            Candidate(
                sentence_start(fill(question, third, subject=named)),
                f"{answer} {told.statements}",
                MULTI,
                "three-hop",
                (first.key, second.key, *told.keys),
                told.expected,
                also=told.also,
            )
        )
    return items


def counterfactual_items(
    knowledge: Knowledge, facts: Sequence[Fact], rng: random.Random
) -> list[Candidate]:
    """Premises that replace a fact's object with another object of the same relation.

    A fact whose relation holds several values for its subject gets none: replacing one of
    them leaves the question ("Which country does Veldra border?") with more than one answer.
    Nor is an object drawn that shares a word with the subject ("one day equals 7 days" is
    no supposition but a contradiction; "Korrin lies in Korrin" likewise).

    The question asks for the object the premise changes, and the answer follows the
    premise, not the knowledge: what a model that ignores premises gets wrong.
    """
    objects: dict[str, dict[str, None]] = defaultdict(dict)
    for fact in knowledge.facts:
        objects[fact.relation].setdefault(fact.object)
    # Each relation's objects, sorted, with what the draw compares (read once, not per fact).
    drawn = {
        relation: sorted((o, normalize(o), _stems(o)) for o in found)
        for relation, found in objects.items()
    }
    items: list[Candidate] = []
    for fact in facts:
        if len(values(knowledge, fact)) > 1:
            continue  # one value of several replaced: what the question asks is unclear
        own, words = normalize(fact.object), _stems(fact.subject)
        others = [o for o, norm, stems in drawn[fact.relation] if norm != own and not stems & words]
        if not others:
            continue
        alternative = rng.choice(others)
        relation = knowledge.relations[fact.relation]
        supposed = fill(relation.statement, fact, object=alternative)
        premise = f"Suppose that {_clause(supposed)}, not {fact.object}."
        answer = f"Under that supposition, {_clause(supposed)}."
        for q in relation.questions[:2]:
            items.append(
                Candidate(
                    f"{premise} {fill(q, fact)}",
                    answer,
                    COUNTERFACTUAL,
                    "premise",
                    (fact.key,),
                    alternative,
                )
            )
    return items


def _stems(text: str) -> set[str]:
    """The content words of `text`, each also without a plural ending ("12 inches" →
    {"inches", "inche", "inch"}), so a singular and its plural share one."""
    stems: set[str] = set()
    for word in re.findall(r"[^\W\d_][^\W_]*", text.lower()):
        if len(word) < 3 or word in FUNCTION_WORDS:
            continue
        stems.add(word)
        if word.endswith("s") and not word.endswith("ss"):
            stems.add(word[:-1])
            if word.endswith("es"):
                stems.add(word[:-2])
    return stems


def passage_items(knowledge: Knowledge, *, seed: int = 0) -> list[Candidate]:
    """What passages teach: a short passage as what the model says about its title; then,
    from their sentences (`passages`), what they say of each name they mention and each name
    left out of its sentence."""
    items = []
    for passage in knowledge.passages:
        if passage.title is None or len(passage.text) > PASSAGE_CHARS:
            continue
        # Written as the passage writes it: "the Ashby Ferry" where it opens "The Ashby Ferry …".
        title, about = passage.title.strip(), prose.topic(passage)
        title = lower_article(about if about and without_article(about) == title else title)
        # A heading that opens with a function word reads in lower case inside a question
        # ("Tell me about on call for Driftwood.", not "… about On call for Driftwood.").
        if " " in title and title.split(" ", 1)[0].lower() in FUNCTION_WORDS:
            title = title[:1].lower() + title[1:]
        for q in (asking(p, title) for p in PROFILE_PROMPTS[:2]):
            items.append(Candidate(q, passage.text.strip(), RECALL, "passage", (), ""))
    # An FAQ's own questions, answered as it answers them, whatever the passage's length.
    for passage in knowledge.passages:
        key = (f"{(passage.title or '').strip()}|passage|",)
        for asked, answer in prose.faq(passage):
            items.append(Candidate(asked, answer, RECALL, "passage-faq", key, "", (answer,)))
    found = prose.sentences(knowledge)
    rng = random.Random(stable_seed(seed, ["passage-profile"]))
    cloze = passages.cloze_items(found)
    made = passages.profile_items(found, rng) + cloze + passages.chain_items(found, cloze)
    made += passages.premise_items(found, cloze, random.Random(stable_seed(seed, ["premise"])))
    for item in made:
        capability = PASSAGE_CAPABILITY.get(item.kind, RECALL)
        key = (f"{item.name}|passage|",)
        items.append(
            Candidate(
                item.question, item.answer, capability, item.kind, key, item.expected, item.context
            )
        )
    return items


def profile_items(
    knowledge: Knowledge, facts: Sequence[Fact], rng: random.Random
) -> list[Candidate]:
    """What is known about each entity, in its facts' own statements, in several orders.

    An entity is any subject or object of `facts`; its profile is every fact that names it,
    on either side, so "Tell me about Vaskel." teaches the capital fact from the city's end
    as well as the city's own facts. Each prompt of `PROFILE_PROMPTS` gets its own seeded
    order (the facts are not tied to one position in one sentence); an entity with more
    than `PROFILE_STATEMENTS` facts gets one profile per slice of them.
    """
    about: dict[str, list[Fact]] = defaultdict(list)
    names: dict[str, str] = {}
    for fact in facts:
        for entity in (fact.subject, fact.object):
            key = normalize(entity)
            names.setdefault(key, entity)
            if fact not in about[key]:
                about[key].append(fact)
    items: list[Candidate] = []
    for key, known in about.items():
        if len(known) < 2:
            continue  # one fact: its surface forms already teach it
        entity = names[key]
        slices = [
            known[i : i + PROFILE_STATEMENTS] for i in range(0, len(known), PROFILE_STATEMENTS)
        ]
        for number, prompt in enumerate(PROFILE_PROMPTS):
            part = list(slices[number % len(slices)])
            rng.shuffle(part)
            answer = " ".join(knowledge.statement(fact) for fact in part)
            question = asking(prompt, entity)
            items.append(
                Candidate(question, answer, RECALL, "profile", tuple(f.key for f in part), "")
            )
    return items


def candidates(knowledge: Knowledge, *, seed: int = 0) -> list[Candidate]:
    """Every item the knowledge of one domain supports, deduplicated by question."""
    facts = list(knowledge.facts)
    rng = random.Random(seed)
    items: list[Candidate] = []
    for fact in facts:
        items += recall_items(knowledge, fact)
    items += composed_items(knowledge, facts)
    items += counterfactual_items(knowledge, facts, rng)
    items += profile_items(knowledge, facts, random.Random(stable_seed(seed, ["profile"])))
    items += passage_items(knowledge, seed=seed)
    seen: set[str] = set()
    unique = []
    for item in items:
        key = normalize(item.question)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def capability_weights(steering: Steering) -> dict[str, float]:
    """How much each capability weighs in the mix, from the analysis (documented rule).

    Every capability starts at 1. A capability the plan targets, or that failed items of
    this domain need, doubles. A domain whose failures are reasoning failures halves recall
    (it knows the facts; it needs to combine them); a knowledge gap doubles it.
    """
    weights = dict.fromkeys(CAPABILITIES, 1.0)
    for capability in CAPABILITIES:
        if capability in steering.targeted_capabilities:
            weights[capability] *= 2.0
        if steering.failed_capabilities.get(capability, 0) > 0 and capability != RECALL:
            weights[capability] *= 2.0
    if steering.diagnosis == "reasoning":
        weights[RECALL] *= 0.5
    elif steering.diagnosis == "knowledge":
        weights[RECALL] *= 2.0
    return weights


def _behind_failures(item: Candidate, failed: Iterable[str]) -> bool:
    """Whether an item's facts mention an entity of a failed evaluation item."""
    texts = [normalize(t) for t in failed]
    entities = {normalize(part) for key in item.facts for part in key.split("|")[::2]}
    return any(e and e in text for e in entities for text in texts)


def stable_seed(seed: int, parts: Iterable[str], *, separator: str = "|", width: int = 12) -> int:
    """A seed derived from `seed` and `parts`: the same in every process and on every machine
    (unlike `hash()`, salted per process), and another one for other parts. It is the integer of
    the first `width` hex digits of the sha256 of `seed` and `parts` joined by `separator`.

    Every seed synthesis derives comes from here (an entity profile's orders, a domain's
    shuffles, a chained cycle's draws: `targeted.synthesis_seed`); the same inputs must keep
    giving the same seed, or the same cycle would draw other lines after an upgrade.
    """
    text = separator.join([str(seed), *parts])
    return int(hashlib.sha256(text.encode()).hexdigest()[:width], 16)


@dataclass
class Selection:
    """The chosen items and how the mix was decided."""

    items: list[Candidate]
    weights: dict[str, float]
    available: dict[str, int]
    chosen: dict[str, int]
    behind_failures: int
    repeated: int = 0
    """Chosen items an earlier adapter of this model was already trained on."""


def choose(
    pool: Sequence[Candidate],
    *,
    budget: int,
    steering: Steering,
    seed: int,
    domain: str,
    seen: Collection[str] = (),
) -> Selection:
    """At most `budget` items, split across capabilities by weight, failures' facts first.

    `seen` holds the normalised questions earlier adapters of this model were trained on (an
    earlier cycle's): within each capability, items not seen come first, so a chained cycle
    learns new lines before it repeats old ones.

    Capabilities with fewer candidates than their share give the rest to the others, in
    proportion.
    """
    rng = random.Random(stable_seed(seed, [domain]))
    seen_set = set(seen)
    weights = capability_weights(steering)
    groups: dict[str, list[Candidate]] = {c: [] for c in CAPABILITIES}
    for item in pool:
        groups.setdefault(item.capability, []).append(item)
    behind = 0
    for capability, items in groups.items():
        rng.shuffle(items)
        # Facts behind failed items first; then spread over facts (one form each, then more).
        firsts = [i for i in items if _behind_failures(i, steering.failed_texts)]
        behind += len(firsts)
        rest = [i for i in items if i not in firsts]
        fresh = [i for i in firsts + rest if normalize(i.question) not in seen_set]
        again = [i for i in firsts + rest if normalize(i.question) in seen_set]
        groups[capability] = (
            _round_robin([i for i in fresh if i in firsts])
            + _round_robin([i for i in fresh if i not in firsts])
            + _round_robin(again)
        )
    available = {c: len(v) for c, v in groups.items()}
    shares = _allocate(budget, {c: weights.get(c, 1.0) for c in groups}, available)
    chosen_items: list[Candidate] = []
    for capability, items in groups.items():
        chosen_items += items[: shares[capability]]
    rng.shuffle(chosen_items)
    repeated = sum(1 for i in chosen_items if normalize(i.question) in seen_set)
    return Selection(chosen_items, weights, available, shares, behind, repeated)


def _round_robin(items: list[Candidate]) -> list[Candidate]:
    """Interleave by first fact, so every fact gets one item before any gets a second."""
    by_fact: dict[tuple[str, ...], list[Candidate]] = defaultdict(list)
    for item in items:
        by_fact[item.facts[:1]].append(item)
    queues = list(by_fact.values())
    out: list[Candidate] = []
    while queues:
        for queue in list(queues):
            out.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    return out


def _allocate(
    budget: int, weights: Mapping[str, float], available: Mapping[str, int]
) -> dict[str, int]:
    """Integer shares of `budget` in proportion to `weights`, capped by `available`.

    Largest remainders round the shares; what a full capability cannot take goes to the
    others in proportion; ties go to the heavier weight, then to `CAPABILITIES` order.
    """
    order = {c: i for i, c in enumerate(CAPABILITIES)}
    shares = dict.fromkeys(weights, 0)
    open_ = {c for c in weights if available.get(c, 0) > 0 and weights[c] > 0}
    left = min(budget, sum(available[c] for c in open_))
    while left > 0 and open_:
        total = sum(weights[c] for c in open_)
        exact = {c: left * weights[c] / total for c in open_}
        give = {c: min(int(exact[c]), available[c] - shares[c]) for c in open_}
        if not any(give.values()):
            best = max(
                open_, key=lambda c: (exact[c] - int(exact[c]), weights[c], -order.get(c, 99))
            )
            give = {best: 1}
        for capability, count in give.items():
            shares[capability] += count
            left -= count
            if shares[capability] >= available[capability]:
                open_.discard(capability)
    return shares
