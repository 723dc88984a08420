"""Routing tables: which names route, which prompts they catch, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kaizen.api.artifacts import Route, RouteTable, write_artifact
from kaizen.api.runner import ConfigurationError
from kaizen.runtime.routing import (
    Router,
    is_adapter,
    is_routed,
    prompt_text,
    read_routes,
    resolve,
    route_keys,
)
from kaizen.runtime.suites import Fact, Knowledge, Passage, load_suite, shipped_suites


def _fact(domain: str, subject: str, obj: str) -> Fact:
    return Fact(domain=domain, subject=subject, relation="r", object=obj)


def test_keys_are_each_domains_own_proper_names() -> None:
    knowledge = Knowledge(
        facts=(
            _fact("vale", "Ostravale", "the Lissel"),
            _fact("vale", "Ostravale", "1842"),  # digits: not a name
            _fact("vale", "Ostravale", "wheat"),  # no capital letter: not a name
            _fact("vale", "Ostravale", "Europe"),  # shared with geo: routes neither
            _fact("geo", "France", "Europe"),
            _fact("geo", "Chad", "Africa"),
            _fact("geo", "Io", "Jupiter"),  # under 3 characters
        ),
        passages=(Passage(domain="fjord", text="A deep fjord.", title="The Kelmar Fjord"),),
    )
    keys = route_keys(knowledge, ["vale", "fjord", "geo", "empty"])
    assert keys == {
        "vale": ["Ostravale", "Lissel"],
        "fjord": ["Kelmar Fjord"],
        "geo": ["France", "Chad", "Africa", "Jupiter"],
        "empty": [],
    }


def test_a_passage_gives_its_domain_the_names_it_surely_mentions() -> None:
    knowledge = Knowledge(
        passages=(
            Passage(
                domain="fjord",
                text="The Kelmar Fjord lies north of Brennick. Iron ore is mined there. "
                "Brennick trades with Ostravale.",
            ),
            Passage(domain="vale", text="Ostravale is a town on the Lissel."),
        )
    )
    keys = route_keys(knowledge, ["fjord", "vale"])
    # "Iron" opens its sentence and is written nowhere else: not surely a name. "Brennick"
    # opens one sentence but is named inside another; "Ostravale" is both domains' and routes
    # neither.
    assert keys == {"fjord": ["Kelmar Fjord", "Brennick"], "vale": ["Lissel"]}


def test_a_name_of_several_words_is_one_key_and_a_titled_person_is_named_without_the_title() -> (
    None
):
    knowledge = Knowledge(
        passages=(
            Passage(
                domain="town",
                text="Dr Anwen Roke worked at St Bride's Hospital. The maker, Brackwater & Sons, "
                "sells to Ostravale. Its head is Mr. Ilan Voss.",
            ),
        ),
        facts=(_fact("town", "Queen Ysolde", "Ostravale"),),
    )
    keys = route_keys(knowledge, ["town"])["town"]
    # No key is a common word cut from a name ("Hospital", "Sons" would route any prompt
    # about a hospital): each name is one key.
    assert set(keys) == {
        "Queen Ysolde",
        "Ostravale",
        "Dr Anwen Roke",
        "St Bride's Hospital",
        "Brackwater & Sons",
        "Mr. Ilan Voss",
        "Anwen Roke",
        "Ilan Voss",
    }
    router = Router(RouteTable(rule="test", routes=[Route(name="town", adapter="a", keys=keys)]))
    assert router.match("Where did Anwen Roke work?") == ("town",)
    assert router.match("What does a hospital do?") == ()


def test_a_name_is_matched_as_whole_words_in_any_case_and_spacing() -> None:
    table = RouteTable(
        rule="test",
        routes=[
            Route(name="vale", adapter="a", keys=["Ostravale", "Lissel"]),
            Route(name="fjord", adapter="b", keys=["Kelmar Fjord", "Kelmar Fjord Station"]),
        ],
    )
    router = Router(table)
    assert router.match("Who founded OSTRAVALE?") == ("vale",)
    assert router.match("Ostravale's river") == ("vale",)
    assert router.match("the kelmar\n  fjord is deep") == ("fjord",)
    # Demonyms and plurals name their entity; other words that start with a key do not.
    assert router.match("Ostravaleans love cloudball") == ("vale",)
    assert router.match("an Ostravalese coin, the Lissels") == ("vale",)
    assert router.match("Ostravaleborn coins, Lisselton") == ()
    assert router.match("a Kelmar boat") == ()
    assert router.match("From Kelmar Fjord Station to the Lissel") == ("vale", "fjord")
    assert router.match("nothing here") == ()


def test_routing_reads_the_user_turns_only() -> None:
    chat = [
        {"role": "system", "content": "You know Ostravale."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Ostravale"},
        {"role": "user", "content": "second"},
    ]
    assert prompt_text(chat) == "first\nsecond"


def _adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    return folder


def _table(root: Path, routes: list[dict], **extra: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    raw = {"schema": 1, "rule": "test", "routes": routes, **extra}
    (root / "routes.json").write_text(json.dumps(raw))
    return root


def test_a_routed_folder_is_an_adapter_and_resolves_to_a_domains_route(tmp_path: Path) -> None:
    routed = tmp_path / "routed"
    _adapter(routed / "00-vale")
    _adapter(routed / "01-fjord")
    write_artifact(
        routed / "routes.json",
        RouteTable(
            rule="test",
            routes=[
                Route(name="vale", adapter="00-vale", keys=["Ostravale"]),
                Route(name="fjord", adapter="01-fjord", keys=["Kelmar"]),
            ],
        ),
    )
    plain = _adapter(tmp_path / "plain")
    assert is_routed(routed) and is_adapter(routed)
    assert is_adapter(plain) and not is_routed(plain)
    assert not is_adapter(tmp_path)
    adapters = [str(plain), str(routed)]
    assert resolve(adapters, "fjord") == [str(plain), str(routed / "01-fjord")]
    assert resolve(adapters, "geo") == [str(plain)]
    assert resolve(adapters, None) == [str(plain)]


@pytest.mark.parametrize(
    ("routes", "field", "message"),
    [
        (
            [{"name": "a", "adapter": "x", "keys": ["A1"]}, {"name": "a", "adapter": "x", "keys": ["B1"]}],
            "routes[1].name",
            "listed twice",
        ),
        ([{"name": "a", "adapter": "../x", "keys": ["A1"]}], "routes[0].adapter", "inside"),
        ([{"name": "a", "adapter": "missing", "keys": ["A1"]}], "routes[0].adapter", "adapter_config"),
        ([{"name": "a", "adapter": "x", "keys": [" "]}], "routes[0].keys", "empty"),
    ],
)  # fmt: skip
def test_a_bad_route_table_names_its_file_and_field(
    tmp_path: Path, routes: list[dict], field: str, message: str
) -> None:
    root = _table(tmp_path / "routed", routes)
    _adapter(root / "x")
    with pytest.raises(ConfigurationError) as caught:
        read_routes(root)
    assert f"routes.json: {field}" in str(caught.value)
    assert message in str(caught.value)


def test_a_route_table_without_routes_or_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="routes"):
        read_routes(_table(tmp_path / "none", []))
    with pytest.raises(ConfigurationError, match="keys"):
        read_routes(_table(tmp_path / "nokeys", [{"name": "a", "adapter": "x", "keys": []}]))


#: Shipped domains whose knowledge names no proper noun (numbers, common nouns): routed
#: adapters leave them out.
UNROUTABLE = {"core": {"arithmetic", "biology", "chemistry"}, "demo": set()}


@pytest.mark.parametrize("suite", shipped_suites())
def test_shipped_domains_route_by_names_no_other_domain_uses(suite: str) -> None:
    knowledge = load_suite(suite).knowledge
    keys = route_keys(knowledge, knowledge.domains)
    assert {domain for domain, names in keys.items() if not names} == UNROUTABLE[suite]
    seen: dict[str, str] = {}
    for domain, names in keys.items():
        for name in names:
            assert seen.setdefault(name.casefold(), domain) == domain, name


def test_kaizen_route_prints_each_prompts_routes_and_adapters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaizen.local.cli import main

    routed = tmp_path / "routed"
    _adapter(routed / "00-vale")
    write_artifact(
        routed / "routes.json",
        RouteTable(rule="test", routes=[Route(name="vale", adapter="00-vale", keys=["Ostravale"])]),
    )
    assert main(["route", str(routed), "Who rules Ostravale?", "What is 2 + 2?"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {
            "text": "Who rules Ostravale?",
            "routes": ["vale"],
            "by": "keys",
            "adapters": [str(routed / "00-vale")],
        },
        {"text": "What is 2 + 2?", "routes": [], "by": None, "adapters": []},
    ]
    assert main(["route", str(tmp_path)]) == 2
    assert "routes.json" in capsys.readouterr().err
    # With a fallback, a prompt naming no route gets it.
    _adapter(routed / "fallback")
    table = RouteTable(
        rule="test",
        routes=[Route(name="vale", adapter="00-vale", keys=["Ostravale"])],
        fallback="fallback",
    )
    write_artifact(routed / "routes.json", table)
    assert main(["route", str(routed), "What is 2 + 2?"]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line == {
        "text": "What is 2 + 2?",
        "routes": [],
        "by": None,
        "adapters": [str(routed / "fallback")],
    }


def test_a_fallback_outside_the_folder_or_missing_is_refused(tmp_path: Path) -> None:
    for fallback, message in (("../x", "inside"), ("gone", "adapter_config")):
        root = _table(
            tmp_path / fallback.strip("./"),
            [{"name": "a", "adapter": "x", "keys": ["A1"]}],
            fallback=fallback,
        )
        _adapter(root / "x")
        with pytest.raises(ConfigurationError, match=rf"routes\.json: fallback: .*{message}"):
            read_routes(root)


def test_a_name_without_a_capital_is_a_key_only_where_the_tokenizer_finds_it_invented() -> None:
    from kaizen.runtime.routing import unkeyed_names

    knowledge = Knowledge(
        relations={},
        facts=(
            Fact("chem", "velorine", "found_by", "Anna Brisk"),
            Fact("chem", "the velorine salt", "made_of", "velorine"),
            Fact("chem", "velorine", "boils_at", "212 degrees"),
            Fact("chem", "water", "dissolves", "ostrane"),
            Fact("geo", "ostrane", "mined_in", "Chad"),  # shared: routes neither
            Fact("geo", "ice", "melts_at", "0"),
        ),
    )
    # Without a tokenizer: "Anna Brisk" is a key; a number never is; each lower-case name is
    # listed once, articles dropped.
    assert unkeyed_names(knowledge, "chem") == ["velorine", "velorine salt", "water", "ostrane"]
    assert route_keys(knowledge, ["chem"]) == {"chem": ["Anna Brisk"]}
    common = {"salt", "water", "ice"}

    def invented(name: str) -> bool:
        return any(word not in common for word in name.split())

    assert route_keys(knowledge, ["chem", "geo"], invented) == {
        "chem": ["velorine", "Anna Brisk", "velorine salt"],
        "geo": ["Chad"],
    }
    assert unkeyed_names(knowledge, "chem", invented) == ["water"]
    routes = Router(
        RouteTable(rule="r", routes=[Route(name="chem", adapter="chem", keys=["velorine"])])
    )
    assert routes.match("At what temperature does Velorine boil?") == ("chem",)
    assert routes.match("At what temperature does water boil?") == ()


@pytest.mark.slow
def test_the_bundled_tokenizer_tells_invented_words_from_everyday_ones() -> None:
    from kaizen.runtime.models import load_tokenizer
    from kaizen.runtime.routing import invented_words

    invented = invented_words(load_tokenizer("bundled:smollm2-135m-instruct"))
    assert [invented(w) for w in ("velorine", "ostrane", "tessel", "the frost heron")] == [True] * 4
    assert [invented(w) for w in ("water", "gold", "spider", "carbon dioxide")] == [False] * 4


def test_names_outside_ascii_are_keys_and_match_however_their_accents_are_typed() -> None:
    knowledge = Knowledge(
        facts=(_fact("mills", "Ålborg Mills", "Zoë Lindqvist"),),
        passages=(Passage(domain="mills", text="Dr. Søren Ærø was born in Łódź."),),
    )
    keys = route_keys(knowledge, ["mills"])
    assert keys == {
        "mills": ["Ålborg Mills", "Zoë Lindqvist", "Dr. Søren Ærø", "Łódź", "Søren Ærø"]
    }
    router = Router(
        RouteTable(rule="test", routes=[Route(name="mills", adapter="a", keys=keys["mills"])])
    )
    assert router.match("Who founded ålborg mills?") == ("mills",)
    assert router.match("Where was Zoe\u0308 Lindqvist born?") == ("mills",)  # "e" + diaeresis
    assert router.match("Who is Søren Ærø?") == ("mills",)
    assert router.match("Who is Zo?") == ()
