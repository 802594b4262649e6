"""gateway.registry: loading and checking config/agencies.toml, and routing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import toml_value

import gateway.registry as registry_module
from adapters import CODECS, TRANSPORTS
from gateway.errors import ConfigError
from gateway.registry import Agency, Registry, load_registry

DEFAULT_FILE = Path(__file__).resolve().parents[3] / "config" / "agencies.toml"


def render(entries: list[dict]) -> str:
    blocks = []
    for entry in entries:
        lines = ["[[agency]]"] + [f"{key} = {toml_value(value)}" for key, value in entry.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def psb(**changes) -> dict:
    entry = {
        "id": "psb",
        "kind": "public_security",
        "name": "Public Security Bureau",
        "transport": "rest",
        "endpoint": "http://127.0.0.1:18083/psb/v1",
        "categories": ["identity", "vehicle", "whereabouts"],
        "actions": ["inquiry"],
        "deadlines": {"inquiry": 86400},
    }
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not _DROP}


_DROP = object()


@pytest.fixture
def write(tmp_path: Path):
    def _write(text: str, name: str = "agencies.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    message = str(info.value)
    assert message == info.value.message
    assert message.startswith(f"{path}: ")
    return message


# --- what loads ---------------------------------------------------------------


def test_default_registry_file_loads() -> None:
    registry = load_registry(DEFAULT_FILE)
    assert registry.source == str(DEFAULT_FILE)
    # Five agency kinds over three protocols, as issue 3 asks of the default registry.
    assert [(a.id, a.kind, a.transport) for a in registry] == [
        ("bank-a", "bank", "soap"), ("bank-b", "bank", "soap"), ("bank-c", "bank", "soap"), ("bank-national", "bank", "sftp"),
        ("tax", "tax", "soap"), ("psb", "public_security", "rest"), ("land", "real_estate", "sftp"),
        ("samr", "market_regulation", "rest"),
    ]
    assert [a.id for a in registry if a.mode == "pull"] == ["bank-c"]  # it polls: no endpoint
    assert registry.get("bank-c").endpoint in ("", None)
    assert registry.get("land").options["client_key"] == "demo/gateway-sftp-client-ed25519"
    assert registry.get("tax").action_categories == {"inquiry": ("tax",), "valuation": ("real_estate",)}
    agency = registry.get("psb")
    assert agency.kind == "public_security"
    assert agency.transport == "rest"
    assert agency.categories == ("identity", "vehicle", "whereabouts")
    assert agency.actions == ("inquiry", "seal", "release", "watch")
    assert agency.deadlines == {"inquiry": 86400, "seal": 86400, "release": 86400, "watch": 86400}
    assert agency.concurrency == 8
    assert agency.rate_limit_per_second == 200.0
    assert isinstance(agency.rate_limit_per_second, float)
    assert agency.timeout_seconds == 10.0
    assert isinstance(agency.timeout_seconds, float)


def test_optional_settings_take_their_defaults(write) -> None:
    agency = load_registry(write(render([psb()]))).get("psb")
    assert (agency.concurrency, agency.rate_limit_per_second, agency.timeout_seconds) == (4, 50.0, 10.0)


def test_optional_settings_are_read(write) -> None:
    path = write(render([psb(concurrency=2, rate_limit_per_second=0.5, timeout_seconds=3)]))
    agency = load_registry(path).get("psb")
    assert (agency.concurrency, agency.rate_limit_per_second, agency.timeout_seconds) == (2, 0.5, 3.0)


def test_two_agencies_load_in_file_order(write) -> None:
    path = write(render([psb(), psb(id="psb-2", categories=["vehicle"], endpoint="https://agency.example/v1")]))
    registry = load_registry(path)
    assert [a.id for a in registry] == ["psb", "psb-2"]
    assert registry.get("psb-2").endpoint == "https://agency.example/v1"


# --- what is refused -----------------------------------------------------------

WHERE = "agency[0] 'psb'"
KNOWN_CODECS = ", ".join(CODECS)  # grows as codecs and transports are added
KNOWN_TRANSPORTS = ", ".join(TRANSPORTS)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"kind": "land_registry"}, f"kind 'land_registry' has no codec (known: {', '.join(CODECS)})"),
        ({"transport": "carrier_pigeon"}, f"transport 'carrier_pigeon' is not available (known: {', '.join(TRANSPORTS)})"),
        ({"transport": "soap"}, "codec public_security cannot travel over soap (it can over: rest)"),
        ({"categories": ["gold"]}, "categories: 'gold' is not one of deposit,"),
        ({"categories": ["identity", "deposit"]}, "categories: codec public_security does not answer for 'deposit'"),
        ({"categories": []}, "categories must be a non-empty list of names"),
        ({"categories": "identity"}, "categories must be a non-empty list of names"),
        ({"categories": ["identity", "identity"]}, "categories lists a name twice"),
        ({"actions": ["freeze"], "deadlines": {"freeze": 10}}, "actions: codec public_security does not support 'freeze'"),
        ({"actions": ["teleport"]}, "actions: 'teleport' is not one of inquiry,"),
        ({"deadlines": {}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": 0}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": -5}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": True}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": 1.5}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": "86400"}}, "deadlines.inquiry must be a whole number of seconds above 0"),
        ({"deadlines": {"inquiry": 10, "freeze": 10}}, "deadlines.freeze: the agency does not accept action 'freeze'"),
        ({"deadlines": 86400}, "deadlines must be a table of action = seconds"),
        ({"endpoint": "ftp://127.0.0.1/psb"}, "endpoint must be an http:// or https:// URL for the rest transport"),
        ({"endpoint": "127.0.0.1:18083/psb"}, "endpoint must be an http:// or https:// URL for the rest transport"),
        ({"endpoint": "http://"}, "endpoint must be an http:// or https:// URL for the rest transport"),
        ({"colour": "blue"}, "unknown key(s) colour"),
        ({"endpoint": _DROP}, "endpoint is required"),
        ({"deadlines": _DROP}, "deadlines is required"),
        ({"concurrency": 0}, "concurrency must be a finite number above 0"),
        ({"concurrency": -1}, "concurrency must be a finite number above 0"),
        ({"concurrency": 2.5}, "concurrency must be a whole number"),
        ({"concurrency": True}, "concurrency must be a finite number above 0"),
        ({"rate_limit_per_second": 0}, "rate_limit_per_second must be a finite number above 0"),
        ({"timeout_seconds": -1.0}, "timeout_seconds must be a finite number above 0"),
        ({"timeout_seconds": "10"}, "timeout_seconds must be a finite number above 0"),
    ],
)
def test_broken_rule_names_file_entry_and_rule(write, changes: dict, rule: str) -> None:
    path = write(render([psb(**changes)]))
    message = load_error(path)
    assert message.startswith(f"{path}: {WHERE}: ")
    assert rule in message


@pytest.mark.parametrize("bad_id", ["PSB", "-psb", "psb bureau", "p" * 65, "公安"])
def test_bad_id_is_refused(write, bad_id: str) -> None:
    path = write(render([psb(id=bad_id)]))
    message = load_error(path)
    assert message == f"{path}: agency[0] {bad_id!r}: id must be 1-64 lower-case letters, digits, '_' or '-'"


def test_non_string_id_is_refused_naming_the_position(write) -> None:
    path = write(render([psb(id=7)]))
    assert load_error(path) == f"{path}: agency[0]: id must be 1-64 lower-case letters, digits, '_' or '-'"


def test_missing_id_names_the_position(write) -> None:
    path = write(render([psb(id=_DROP)]))
    assert load_error(path) == f"{path}: agency[0]: id is required"


def test_error_in_second_entry_names_it(write) -> None:
    path = write(render([psb(), psb(id="second", kind="land_registry")]))
    message = load_error(path)
    assert message.startswith(f"{path}: agency[1] 'second': kind 'land_registry' has no codec")


def test_duplicate_id_is_refused(write) -> None:
    path = write(render([psb(), psb(categories=["vehicle"])]))
    assert load_error(path) == f"{path}: agency[1] 'psb': id is used by an earlier entry"


def test_transport_the_codec_cannot_travel_over(write, monkeypatch) -> None:
    # Once a SOAP transport exists, a JSON codec still cannot be carried over it.
    monkeypatch.setitem(registry_module.TRANSPORTS, "soap", object)
    path = write(render([psb(transport="soap")]))
    message = load_error(path)
    assert message == f"{path}: {WHERE}: codec public_security cannot travel over soap (it can over: rest)"


def test_no_agencies_at_all(write) -> None:
    path = write("# nothing configured\n")
    assert load_error(path) == f"{path}: no [[agency]] entries"


def test_empty_agency_array(write) -> None:
    path = write("agency = []\n")
    assert load_error(path) == f"{path}: no [[agency]] entries"


def test_agency_that_is_not_a_table(write) -> None:
    path = write('agency = ["psb"]\n')
    assert load_error(path) == f"{path}: agency[0]: each [[agency]] must be a table"


def test_unknown_top_level_key(write) -> None:
    path = write('version = 2\n\n' + render([psb()]))
    message = load_error(path)
    assert "unknown top-level key(s) version" in message


def test_invalid_toml(write) -> None:
    path = write('[[agency]]\nid = "psb\n')
    message = load_error(path)
    assert message.startswith(f"{path}: not valid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert load_error(path) == f"{path}: agency registry not found"


# Regressions: these once escaped as TypeError (unhashable list) or were accepted (NaN).


def test_kind_that_is_a_list_is_a_config_error(write) -> None:
    path = write(render([psb(kind=["public_security"])]))
    assert load_error(path) == f"{path}: {WHERE}: kind ['public_security'] has no codec (known: {', '.join(CODECS)})"


def test_transport_that_is_a_list_is_a_config_error(write) -> None:
    path = write(render([psb(transport=["rest"])]))
    assert load_error(path) == f"{path}: {WHERE}: transport ['rest'] is not available (known: {', '.join(TRANSPORTS)})"


@pytest.mark.parametrize("key", ["timeout_seconds", "rate_limit_per_second", "concurrency"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(write, key: str, value: float) -> None:
    path = write(render([psb(**{key: value})]))
    assert load_error(path) == f"{path}: {WHERE}: {key} must be a finite number above 0"


# --- Registry: routing ---------------------------------------------------------


def agency(id: str, categories: tuple[str, ...], actions: tuple[str, ...] = ("inquiry",), endpoint: str = "") -> Agency:
    return Agency(
        id=id, kind="public_security", name=id, transport="rest",
        endpoint=endpoint or f"http://127.0.0.1:1/{id}", categories=categories, actions=actions,
        deadlines={a: 60 for a in actions}, concurrency=1, rate_limit_per_second=1.0, timeout_seconds=1.0,
        action_categories={a: categories for a in actions},
    )


@pytest.fixture
def registry() -> Registry:
    return Registry(
        [
            agency("psb", ("identity", "vehicle", "whereabouts")),
            agency("bank", ("deposit", "wealth_product"), ("inquiry", "freeze")),
            agency("dmv", ("vehicle",), ("seal",)),
        ],
        source="test",
    )


def test_route_gives_each_agency_the_categories_it_holds(registry: Registry) -> None:
    routes = registry.route("inquiry", ["vehicle", "deposit", "identity", "tax"])
    assert [(r.agency.id, r.categories) for r in routes] == [("psb", ("vehicle", "identity")), ("bank", ("deposit",))]


def test_route_skips_agencies_that_refuse_the_action(registry: Registry) -> None:
    assert [(r.agency.id, r.categories) for r in registry.route("seal", ["vehicle", "identity"])] == [("dmv", ("vehicle",))]
    assert [(r.agency.id, r.categories) for r in registry.route("freeze", ["deposit", "vehicle"])] == [("bank", ("deposit",))]


def test_route_with_nothing_served_is_empty(registry: Registry) -> None:
    assert registry.route("inquiry", ["tax", "equity"]) == []
    assert registry.route("valuation", ["vehicle"]) == []
    assert registry.route("inquiry", []) == []


def test_route_accepts_any_iterable(registry: Registry) -> None:
    routes = registry.route("inquiry", (c for c in ["identity"]))
    assert [(r.agency.id, r.categories) for r in routes] == [("psb", ("identity",))]


def test_categories_for_in_vocabulary_order(registry: Registry) -> None:
    assert registry.categories_for("inquiry") == ("deposit", "wealth_product", "vehicle", "identity", "whereabouts")
    assert registry.categories_for("seal") == ("vehicle",)
    assert registry.categories_for("freeze") == ("deposit", "wealth_product")
    assert registry.categories_for("watch") == ()


def test_get_and_iteration(registry: Registry) -> None:
    assert registry.get("bank").categories == ("deposit", "wealth_product")
    assert [a.id for a in registry] == ["psb", "bank", "dmv"]
    with pytest.raises(KeyError):
        registry.get("nobody")


def test_with_endpoints_replaces_only_those_named(registry: Registry) -> None:
    moved = registry.with_endpoints({"psb": "http://127.0.0.1:5555/psb", "ghost": "http://x"})
    assert moved is not registry
    assert moved.source == "test"
    assert moved.get("psb").endpoint == "http://127.0.0.1:5555/psb"
    assert moved.get("bank").endpoint == "http://127.0.0.1:1/bank"
    assert [a.id for a in moved] == ["psb", "bank", "dmv"]
    assert "ghost" not in moved.agencies
    # the original is untouched
    assert registry.get("psb").endpoint == "http://127.0.0.1:1/psb"
    # everything else is carried over
    assert moved.get("psb").categories == registry.get("psb").categories


def test_loaded_registry_routes(write) -> None:
    registry = load_registry(write(render([psb(categories=["identity", "vehicle"])])))
    routes = registry.route("inquiry", ["whereabouts", "vehicle"])
    assert [(r.agency.id, r.categories) for r in routes] == [("psb", ("vehicle",))]
    assert registry.categories_for("inquiry") == ("vehicle", "identity")


# --- transport options and per-action categories -------------------------------------


def test_rest_takes_only_tls_options(write) -> None:
    path = write(render([psb(options={"wsdl": "bank-v1"})]))
    assert load_error(path) == (f"{path}: {WHERE}: options: unknown key(s) wsdl for the rest transport "
                                "(allowed: verify, client_cert, client_key)")


def test_options_must_be_a_table(write) -> None:
    path = write(render([psb(options="fast")]))
    assert load_error(path) == f"{path}: {WHERE}: options must be a table"


def test_sftp_needs_a_pinned_host_key_and_a_client_key(write, monkeypatch) -> None:
    class BatchCodec:
        kind, transports = "public_security", ("rest", "sftp")
        categories, actions = ("identity",), ("inquiry",)
        action_categories = {"inquiry": ("identity",)}

    monkeypatch.setitem(registry_module.TRANSPORTS, "sftp", object)
    monkeypatch.setitem(registry_module.CODECS, "public_security", BatchCodec)
    base = {"transport": "sftp", "endpoint": "sftp://gw@127.0.0.1:2222/in", "categories": ["identity"]}
    path = write(render([psb(**base, options={"client_key": "k"})]))
    assert load_error(path) == f"{path}: {WHERE}: options.host_key is required for the sftp transport"
    path = write(render([psb(**{**base, "endpoint": "http://127.0.0.1:2222/in"}, options={"client_key": "k", "host_key": "h"})]))
    assert load_error(path) == f"{path}: {WHERE}: endpoint must be an sftp:// URL for the sftp transport"
    path = write(render([psb(**base, batch_size=2.5, options={"client_key": "k", "host_key": "h"})]))
    assert load_error(path) == f"{path}: {WHERE}: batch_size must be a whole number"
    path = write(render([psb(**base, batch_size=500, options={"client_key": "k", "host_key": "ssh-ed25519 AAAA"})]))
    agency = load_registry(path).get("psb")
    assert (agency.is_batch, agency.batch_size, agency.options["host_key"]) == (True, 500, "ssh-ed25519 AAAA")


def test_action_categories_are_the_codecs_cut_to_the_agencys(write, monkeypatch) -> None:
    class ControlCodec:
        kind, transports = "public_security", ("rest",)
        action_categories = {"inquiry": ("identity", "vehicle", "whereabouts"), "seal": ("vehicle",),
                             "watch": ("whereabouts",)}
        categories = ("identity", "vehicle", "whereabouts")
        actions = tuple(action_categories)

    monkeypatch.setitem(registry_module.CODECS, "public_security", ControlCodec)
    path = write(render([psb(categories=["identity", "vehicle"], actions=["inquiry", "seal"],
                             deadlines={"inquiry": 60, "seal": 60})]))
    registry = load_registry(path)
    assert registry.get("psb").action_categories == {"inquiry": ("identity", "vehicle"), "seal": ("vehicle",)}
    assert [(r.agency.id, r.categories) for r in registry.route("seal", ["vehicle", "identity"])] == [("psb", ("vehicle",))]
    assert registry.accepts("psb", "seal", "vehicle") and not registry.accepts("psb", "seal", "identity")
    path = write(render([psb(categories=["identity"], actions=["inquiry", "watch"], deadlines={"inquiry": 60, "watch": 60})]))
    assert load_error(path) == (f"{path}: {WHERE}: actions: 'watch' applies to whereabouts at a public_security "
                                "agency, and this one lists none of them")
