"""Routed adapters: each domain's adapter applied only to the prompts that name its knowledge.

A merge makes every domain's adapter act on every prompt, so each one's update moves what
the others (and the base model) answered, most of all where the base model barely knew the
answer (docs/forgetting.md). Routing keeps the adapters apart instead: a folder of routed
adapters holds each domain's adapter and a route table (`routes.json`,
`kaizen.api.artifacts.RouteTable`) that lists, per domain, the names whose mention sends a
prompt through its adapter. For each prompt:

- the user turns are searched for every route's keys (whole words, any case, also with an
  English plural or demonym ending: "Zephyrians" names Zephyria, "Ostravalean" Ostravale);
- the adapters of the routes found are applied together (their updates summed, as `cat`
  merges them); a prompt naming no key gets the folder's fallback adapter (the merge step's
  `routed-<merge>` candidate: its merge of the same adapters, which keeps what the merge
  transfers to other domains), or without one the model without the routed adapters.

The keys come from the suite's knowledge (`route_keys`): the proper names a domain's facts
and passages are about, and the lower-case subjects and objects of its facts that the model's
tokenizer finds invented words (`invented_words`: "velorine", not "water"). A name two domains' knowledge share routes neither (it cannot tell
them apart). So a routed candidate protects every prompt outside the trained domains by
construction, and a question about a domain that names none of its keys gets none of its
learning: the combine step reports both (each domain's dev items and the routes they took).

A routed folder stacks like any adapter in a model's adapter list. Plain adapters before the
first routed folder are merged into the weights; from it on, adapters stay unmerged and each
prompt gets the routes it names plus every later plain adapter. A training step on a domain
(`resolve`) takes each routed folder's route of that domain, merged like a plain adapter.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from kaizen.api.artifacts import ArtifactError, RouteTable, read_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.runtime.similar import Similar, embed
from kaizen.runtime.suites import prose
from kaizen.runtime.suites.knowledge import Knowledge
from kaizen.runtime.suites.names import untitled

ROUTES_FILE = RouteTable.FILE_NAME
ADAPTER_CONFIG = "adapter_config.json"
#: A lower-case name is a key when one of its words takes the model's tokenizer this many
#: pieces or more: an invented or rare word ("velorine", "tessel"), which a question about the
#: domain has to name, not an everyday one ("water", "gold"), which any question may.
INVENTED_PIECES = 2
#: How `route_keys` chooses a domain's keys (recorded in every routes.json).
RULE = (
    "keys: the proper names of the domain's knowledge (the subjects and objects of its facts, "
    "its passages' titles and the names they mention, and a titled person's full name "
    "without the title: 'Anwen Roke' for 'Dr Anwen Roke') that hold a capital letter and at "
    "least 3 characters, without a leading 'the' and not only digits, and the subjects and "
    "objects written in lower case that hold a word the model's tokenizer writes in "
    f"{INVENTED_PIECES} pieces or more (an invented or rare word: 'velorine', not 'water'), "
    "and that no other domain's knowledge names; a prompt goes through every route whose key "
    "its user turns name (whole words, any case, also with a plural or demonym ending: -s, "
    "-es, -n, -an, -ian, -ean, -ese, -ish)"
)
MIN_KEY_LENGTH = 3
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


def is_routed(path: str | Path) -> bool:
    """Whether `path` is a folder of routed adapters (it holds routes.json)."""
    return (Path(path) / ROUTES_FILE).is_file()


def is_adapter(path: str | Path) -> bool:
    """Whether `path` is an adapter folder: a peft adapter or a folder of routed adapters."""
    return (Path(path) / ADAPTER_CONFIG).is_file() or is_routed(path)


def read_routes(folder: str | Path) -> RouteTable:
    """The route table of a routed folder, checked: unique route names, adapters inside the
    folder and present; `ConfigurationError` naming the file and field otherwise."""
    path = Path(folder) / ROUTES_FILE
    try:
        table = read_artifact(path, RouteTable)
    except (OSError, ArtifactError) as error:
        raise ConfigurationError(str(error)) from None
    seen: set[str] = set()
    for index, route in enumerate(table.routes):
        where = f"{path}: routes[{index}]"
        if route.name in seen:
            raise ConfigurationError(f"{where}.name: route {route.name!r} is listed twice")
        seen.add(route.name)
        _check_folder(folder, route.adapter, f"{where}.adapter")
        blank = [key for key in route.keys if not key.strip()]
        if blank:
            raise ConfigurationError(f"{where}.keys: a key is empty")
    if table.fallback is not None:
        _check_folder(folder, table.fallback, f"{path}: fallback")
    if table.similar is not None:
        inside = PurePosixPath(table.similar.file)
        if inside.is_absolute() or ".." in inside.parts or not (Path(folder) / inside).is_file():
            raise ConfigurationError(
                f"{path}: similar.file: {table.similar.file!r} is not a file inside {Path(folder)}"
            )
        unknown = sorted(set(table.similar.thresholds) - seen)
        if unknown:
            raise ConfigurationError(f"{path}: similar.thresholds: no route named {unknown}")
    return table


def _check_folder(folder: str | Path, relative: str, where: str) -> None:
    inside = PurePosixPath(relative)
    if inside.is_absolute() or ".." in inside.parts:
        raise ConfigurationError(f"{where}: {relative!r} must be a folder inside {Path(folder)}")
    if not (Path(folder) / inside / ADAPTER_CONFIG).is_file():
        raise ConfigurationError(f"{where}: {Path(folder) / inside} has no {ADAPTER_CONFIG}")


def adapter_folder(folder: str | Path, table: RouteTable, route: str) -> Path:
    """The adapter folder of `route` in the routed folder `folder`."""
    entry = next(r for r in table.routes if r.name == route)
    return Path(folder) / entry.adapter


class Router:
    """Finds which routes of a table a text names (or, with similar routes, asks about)."""

    def __init__(self, table: RouteTable, similar: Similar | None = None) -> None:
        self.names = tuple(route.name for route in table.routes)
        self._patterns = [_pattern(route.keys) for route in table.routes]
        self.similar = similar
        """The table's similar routes, loaded (`load_router`); None: keys only."""

    def match(self, text: str, vector: Any = None) -> tuple[str, ...]:
        """The routes whose keys `text` names, in the table's order (accents compared in
        their composed form, NFC, as suites are read); when it names none, the similar route
        `vector` (`text`'s vector, `similar.embed`) takes, if any."""
        text = unicodedata.normalize("NFC", text)
        named = tuple(
            name
            for name, pattern in zip(self.names, self._patterns, strict=True)
            if pattern.search(text)
        )
        if named or vector is None or self.similar is None:
            return named
        found = self.similar.match(vector)
        return (found[0],) if found else ()


def load_router(folder: str | Path, table: RouteTable | None = None) -> Router:
    """The router of a routed folder, its similar routes loaded where the table has them."""
    table = table or read_routes(folder)
    if table.similar is None:
        return Router(table)
    path = Path(folder) / table.similar.file
    try:
        similar = Similar.load(path, table.similar)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{Path(folder) / ROUTES_FILE}: similar.file: {error}") from None
    return Router(table, similar)


#: Endings a key may carry and still name its entity: English demonyms and adjectives
#: (Zephyrian, Ostravalean, Korrinese, Korrinish), then a plural (Zephyrians). Any other
#: letters after a key make another word (Titan is not Titanic).
_ENDINGS = r"(?:n|an|ian|ean|ese|ish)?(?:s|es)?"


def _pattern(keys: Sequence[str]) -> re.Pattern[str]:
    # Longest first, so that a key inside a longer one does not stop the longer one matching.
    alternatives = sorted({" ".join(k.split()) for k in keys}, key=len, reverse=True)
    body = "|".join(re.escape(k).replace(r"\ ", r"\s+") for k in alternatives)
    return re.compile(rf"(?<!\w)(?:{body}){_ENDINGS}(?!\w)", re.IGNORECASE)


def prompt_text(conversation: Sequence[Mapping[str, str]]) -> str:
    """What routing reads of a chat: its user turns (not the system prompt, not answers)."""
    return "\n".join(turn["content"] for turn in conversation if turn.get("role") == "user")


def _bare(name: str) -> str:
    """`name` with single spaces and no leading article."""
    return _ARTICLE.sub("", " ".join(name.split()))


def _clean(name: str) -> str | None:
    name = _bare(name)
    if len(name) < MIN_KEY_LENGTH or name.isdigit() or not any(c.isupper() for c in name):
        return None
    return name


def _lower(name: str) -> str | None:
    """A name written in lower case (no capital, no digit), without a leading article."""
    name = _bare(name)
    if len(name) < MIN_KEY_LENGTH or any(c.isupper() or c.isdigit() for c in name):
        return None
    return name


def invented_words(tokenizer: Any) -> Callable[[str], bool]:
    """Whether a lower-case name holds a word that `tokenizer` writes (after a space) in
    `INVENTED_PIECES` pieces or more: an invented or rare word, which a question about the
    domain has to name ("velorine"), not an everyday one that any question may ("water")."""

    @functools.cache
    def invented(name: str) -> bool:  # a name recurs in many facts: tokenized once
        return any(
            len(tokenizer(f" {word}", add_special_tokens=False)["input_ids"]) >= INVENTED_PIECES
            for word in re.findall(r"[^\W\d_]{3,}", name)
        )

    return invented


def unkeyed_names(
    knowledge: Knowledge, domain: str, invented: Callable[[str], bool] | None = None
) -> list[str]:
    """The subjects and objects of `domain`'s facts that are no key for want of a capital
    letter ("velorine", "the glint"), less those `invented` makes keys: a prompt that names
    one of them and no key gets no route. In file order, each once, without a leading
    article."""
    found: list[str] = []
    for fact in knowledge.facts:
        if fact.domain != domain:
            continue
        for raw in (fact.subject, fact.object):
            name = _lower(raw)
            if name and name not in found and not (invented and invented(name)):
                found.append(name)
    return found


def route_keys(
    knowledge: Knowledge, domains: Sequence[str], invented: Callable[[str], bool] | None = None
) -> dict[str, list[str]]:
    """Each of `domains`' keys (`RULE`), in the order its knowledge names them; a domain
    without one maps to an empty list. Names every domain of `knowledge` is checked against,
    so pass the whole suite's knowledge, not only the trained domains'. Without `invented`
    (`invented_words` of the model's tokenizer), no lower-case name is a key."""
    owners: dict[str, set[str]] = {}
    order: dict[str, list[str]] = {}
    names = [
        (fact.domain, name) for fact in knowledge.facts for name in (fact.subject, fact.object)
    ]
    names += [(p.domain, p.title) for p in knowledge.passages if p.title]
    # A passage names its domain's entities as facts do ("The Orrin rises in the Pale Mountains.").
    names += prose.proper_names(knowledge)
    # A question may name a titled person without the title ("Anwen Roke" for "Dr Anwen Roke").
    names += [(domain, bare) for domain, name in names if (bare := untitled(_bare(name)))]
    for domain, raw in names:
        name = _clean(raw)
        if name is None and invented is not None:
            lower = _lower(raw)
            name = lower if lower and invented(lower) else None
        if name is None:
            continue
        owners.setdefault(name.casefold(), set()).add(domain)
        known = order.setdefault(domain, [])
        if name.casefold() not in {k.casefold() for k in known}:
            known.append(name)
    return {
        domain: [k for k in order.get(domain, []) if owners[k.casefold()] == {domain}]
        for domain in domains
    }


def resolve(adapters: Sequence[str], route: str | None) -> list[str]:
    """Plain adapter folders for a model that serves one route: each routed folder replaced by
    its adapter of route `route`, or where it has no such route (or `route` is None) by what a
    prompt naming no route gets: its fallback adapter, or nothing."""
    plain: list[str] = []
    for adapter in adapters:
        if not is_routed(adapter):
            plain.append(adapter)
            continue
        table = read_routes(adapter)
        if route is not None and route in {r.name for r in table.routes}:
            plain.append(str(adapter_folder(adapter, table, route)))
        elif table.fallback is not None:
            plain.append(str(Path(adapter) / table.fallback))
    return plain


@dataclass(frozen=True)
class _Layer:
    """One entry of a model's adapter list, from the first routed folder on."""

    router: Router | None
    """None: a plain adapter, applied to every prompt."""
    adapters: Mapping[str, str]
    """peft adapter name by route (a plain adapter, or a routed folder's fallback: by "")."""

    def select(
        self, text: str, vectors: Mapping[int, Any] | None = None
    ) -> tuple[tuple[str, ...], list[str]]:
        """(the routes `text` goes through here, the peft adapters this layer applies to it);
        `vectors`: `text`'s vector by hidden layer (`Routing.embed`), for similar routes."""
        if self.router is None:
            return (), [self.adapters[""]]
        similar = self.router.similar
        vector = vectors.get(similar.layer) if vectors is not None and similar else None
        routes = self.router.match(text, vector)
        if routes:
            return routes, [self.adapters[name] for name in routes]
        return (), [self.adapters[""]] if "" in self.adapters else []


class Routing:
    """Which peft adapters a model with routed adapters applies to each prompt."""

    def __init__(self, layers: Sequence[_Layer]) -> None:
        self._layers = tuple(layers)

    @property
    def hidden_layers(self) -> tuple[int, ...]:
        """The hidden layers similar routes read (none: keys only)."""
        found = {
            layer.router.similar.layer
            for layer in self._layers
            if layer.router is not None and layer.router.similar is not None
        }
        return tuple(sorted(found))

    def embed(
        self, model: Any, tokenizer: Any, texts: Sequence[str]
    ) -> list[dict[int, Any]] | None:
        """Each text's vector by hidden layer, read with every adapter off (the model the
        similar routes were set on); None when no routed folder has similar routes."""
        if not self.hidden_layers or not texts:
            return None
        with model.disable_adapter():
            by_layer = {
                layer: embed(model, tokenizer, texts, layer) for layer in self.hidden_layers
            }
        return [{layer: rows[i] for layer, rows in by_layer.items()} for i in range(len(texts))]

    def select(
        self, text: str, vectors: Mapping[int, Any] | None = None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the routes `text` goes through, of every routed folder in order; the peft
        adapters to apply to it: its routes' or the fallbacks, and every plain one).
        `vectors` (`embed`): what similar routes read; without them, keys only."""
        routes: list[str] = []
        active: list[str] = []
        for layer in self._layers:
            matched, names = layer.select(text, vectors)
            routes += matched
            active += names
        return tuple(routes), tuple(active)

    @contextmanager
    def active(self, model: Any, adapters: tuple[str, ...]) -> Iterator[None]:
        """`model` (a peft model) with exactly `adapters` applied, their updates summed."""
        if not adapters:
            with model.disable_adapter():
                yield
            return
        model.base_model.set_adapter(list(adapters))
        yield


def attach(model: Any, adapters: Sequence[str]) -> Any:
    """`model` as a peft model holding every adapter of `adapters` (the first a routed
    folder), unmerged, with its `Routing` as `model.kaizen_routing`."""
    from peft import PeftModel

    layers: list[_Layer] = []
    folders: list[tuple[str, Path]] = []
    for index, adapter in enumerate(adapters):
        if is_routed(adapter):
            table = read_routes(adapter)
            names = {route.name: f"routed{index}_{n}" for n, route in enumerate(table.routes)}
            folders += [(names[r.name], Path(adapter) / r.adapter) for r in table.routes]
            if table.fallback is not None:
                names[""] = f"routed{index}_fallback"
                folders.append((names[""], Path(adapter) / table.fallback))
            layers.append(_Layer(load_router(adapter, table), names))
        else:
            if not (Path(adapter) / ADAPTER_CONFIG).is_file():
                raise ConfigurationError(f"adapter directory {adapter} has no {ADAPTER_CONFIG}")
            folders.append((f"plain{index}", Path(adapter)))
            layers.append(_Layer(None, {"": f"plain{index}"}))
    (first, path), rest = folders[0], folders[1:]
    peft_model: Any = PeftModel.from_pretrained(model, str(path), adapter_name=first)
    for name, folder in rest:
        peft_model.load_adapter(str(folder), adapter_name=name)
    peft_model.kaizen_routing = Routing(layers)
    return peft_model


def routing_of(model: Any) -> Routing | None:
    """The `Routing` of a model loaded with routed adapters; None for any other model."""
    routing = getattr(model, "kaizen_routing", None)
    return routing if isinstance(routing, Routing) else None
