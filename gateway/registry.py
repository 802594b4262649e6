"""The agency registry (config/agencies.toml): who holds what, and how to reach them.

``load_registry`` checks every entry and stops the gateway at start with the
file, the entry and the rule broken; nothing half-configured is ever routed to.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

from adapters import CODECS, TRANSPORTS
from adapters.interfaces import Codec
from gateway.auth.passwords import PasswordHashInvalid, parse_password_hash
from gateway.errors import ConfigError
from schemas.vocabulary import ACTIONS, CATEGORIES

_AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# endpoint: required for push; a pull agency has none to call (one given is ignored).
_REQUIRED = ("id", "kind", "name", "transport", "categories", "actions", "deadlines")
_OPTIONAL = {"concurrency": 4, "rate_limit_per_second": 50.0, "timeout_seconds": 10.0, "batch_size": 1000}
# push: the gateway sends each request (a call, or a batch file) to its endpoint;
# pull: the agency polls the gateway (the SOAP service for transport soap, the
# JSON agency API for rest), fetches its requests and feeds results back.
MODES = ("push", "pull")
_TABLES = ("options",)

# What each transport may be told in an agency's [agency.options] table, and what it
# must be told. Paths are relative to the registry file; secrets are never written
# here, only the name of the environment variable that holds them (``*_env``).
TRANSPORT_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "rest": {"required": (), "allowed": ("verify", "client_cert", "client_key")},
    "soap": {"required": ("wsdl",), "allowed": ("wsdl", "verify", "client_cert", "client_key", "username", "password_env")},
    "sftp": {"required": ("host_key", "client_key"), "allowed": ("host_key", "client_key", "partial_after_seconds")},
}
# A pull agency is not called: its options say how it proves who it is when it polls
# (a WS-Security UsernameToken checked against a scrypt hash, `gateway agency
# hash-password`; or its JWT) and when an unacknowledged fetch is offered again.
PULL_OPTIONS = {"required": (), "allowed": ("username", "password_hash", "refetch_after_seconds")}
PATH_OPTIONS = ("client_cert", "client_key")
_ENDPOINT_SCHEMES = {"rest": ("http", "https"), "soap": ("http", "https"), "sftp": ("sftp",)}


@dataclass(frozen=True)
class Agency:
    id: str
    kind: str
    name: str
    transport: str
    endpoint: str
    categories: tuple[str, ...]
    actions: tuple[str, ...]
    deadlines: dict[str, int]
    concurrency: int
    rate_limit_per_second: float
    timeout_seconds: float
    # Which of its categories each of its actions applies to (the codec's rule, cut
    # down to what this agency holds).
    action_categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1000  # batch transports: most records in one file
    mode: str = "push"

    @property
    def is_batch(self) -> bool:
        return self.transport == "sftp"


@dataclass(frozen=True)
class Route:
    agency: Agency
    categories: tuple[str, ...]


class Registry:
    def __init__(self, agencies: Iterable[Agency], source: str = "registry"):
        self.agencies = {a.id: a for a in agencies}
        self.source = source

    def __iter__(self):
        return iter(self.agencies.values())

    def get(self, agency_id: str) -> Agency:
        return self.agencies[agency_id]

    def categories_for(self, action: str) -> tuple[str, ...]:
        """Every category some agency answers for this action, in vocabulary order."""
        served = {c for a in self.agencies.values() for c in a.action_categories.get(action, ())}
        return tuple(c for c in CATEGORIES if c in served)

    def route(self, action: str, categories: Iterable[str]) -> list[Route]:
        """One route per agency that accepts the action for any of the categories."""
        wanted = tuple(categories)
        routes = []
        for agency in self.agencies.values():
            served = agency.action_categories.get(action, ())
            mine = tuple(c for c in wanted if c in served)
            if mine:
                routes.append(Route(agency, mine))
        return routes

    def accepts(self, agency_id: str, action: str, category: str) -> bool:
        agency = self.agencies.get(agency_id)
        return agency is not None and category in agency.action_categories.get(action, ())

    def with_endpoints(self, endpoints: dict[str, str]) -> Registry:
        """A copy with some endpoints replaced (the demo and tests point agencies at sandboxes on free ports)."""
        return Registry((replace(a, endpoint=endpoints.get(a.id, a.endpoint)) for a in self), self.source)


def _fail(source: str, where: str, rule: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {rule}")


def _check_list(value: Any, allowed: tuple[str, ...], source: str, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(source, where, f"{name} must be a non-empty list of names")
    for v in value:
        if v not in allowed:
            raise _fail(source, where, f"{name}: {v!r} is not one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise _fail(source, where, f"{name} lists a name twice")
    return tuple(value)


def parse_agency(entry: Any, source: str, index: int) -> Agency:
    """One [[agency]] entry checked field by field, in this order; the first broken rule
    stops the gateway naming the file, the entry and the rule."""
    where = _check_entry_shape(entry, source, index)
    codec = _check_codec_and_transport(entry, source, where)
    mode = _check_mode_and_endpoint(entry, source, where)
    options = _check_options(entry.get("options", {}), entry["transport"], source, where,
                             rule=PULL_OPTIONS if mode == "pull" else None)
    if mode == "pull":
        _check_pull_options(options, source, where)
    categories, actions = _check_offer(entry, codec, source, where)
    deadlines = _check_deadlines(entry["deadlines"], actions, source, where)
    values = _check_limits(entry, source, where)
    return Agency(
        id=entry["id"], kind=entry["kind"], name=str(entry["name"]), transport=entry["transport"],
        endpoint=str(entry.get("endpoint", "")), categories=categories, actions=actions,
        deadlines=deadlines, concurrency=values["concurrency"],
        rate_limit_per_second=float(values["rate_limit_per_second"]), timeout_seconds=float(values["timeout_seconds"]),
        action_categories=_action_categories(codec, categories, actions, source, where), options=options,
        batch_size=values["batch_size"], mode=mode,
    )


def _check_entry_shape(entry: Any, source: str, index: int) -> str:
    """A table with every required key and no unknown one; returns how errors name it."""
    where = f"agency[{index}]"
    if not isinstance(entry, dict):
        raise _fail(source, where, "each [[agency]] must be a table")
    if isinstance(entry.get("id"), str):
        where = f"agency[{index}] {entry['id']!r}"
    for key in _REQUIRED:
        if key not in entry:
            raise _fail(source, where, f"{key} is required")
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL) - set(_TABLES) - {"mode", "endpoint"}
    if unknown:
        raise _fail(source, where, f"unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(entry["id"], str) or not _AGENCY_ID.match(entry["id"]):
        raise _fail(source, where, "id must be 1-64 lower-case letters, digits, '_' or '-'")
    return where


def _check_codec_and_transport(entry: dict[str, Any], source: str, where: str) -> type[Codec]:
    """The codec of the entry's kind, which must be able to travel over its transport."""
    if not isinstance(entry["kind"], str) or entry["kind"] not in CODECS:
        raise _fail(source, where, f"kind {entry['kind']!r} has no codec (known: {', '.join(CODECS)})")
    codec = CODECS[entry["kind"]]
    if not isinstance(entry["transport"], str) or entry["transport"] not in TRANSPORTS:
        raise _fail(source, where, f"transport {entry['transport']!r} is not available (known: {', '.join(TRANSPORTS)})")
    if entry["transport"] not in codec.transports:
        raise _fail(source, where, f"codec {codec.kind} cannot travel over {entry['transport']} (it can over: {', '.join(codec.transports)})")
    return codec


def _check_mode_and_endpoint(entry: dict[str, Any], source: str, where: str) -> str:
    """push (the gateway calls the agency at its endpoint) or pull (the agency polls)."""
    mode = entry.get("mode", "push")
    if mode not in MODES:
        raise _fail(source, where, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "pull" and entry["transport"] == "sftp":
        raise _fail(source, where, "mode pull is for message agencies; an sftp agency takes batch files (push)")
    if mode == "push" and "endpoint" not in entry:
        raise _fail(source, where, "endpoint is required (the gateway calls a push agency there)")
    if mode == "push":
        endpoint = urlparse(str(entry["endpoint"]))
        schemes = _ENDPOINT_SCHEMES[entry["transport"]]
        if endpoint.scheme not in schemes or not endpoint.netloc:
            raise _fail(source, where, f"endpoint must be an {' or '.join(s + '://' for s in schemes)} URL for the {entry['transport']} transport")
    return str(mode)


def _check_offer(entry: dict[str, Any], codec: type[Codec], source: str,
                 where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The categories and actions the agency offers, each one its codec knows."""
    categories = _check_list(entry["categories"], CATEGORIES, source, where, "categories")
    for c in categories:
        if c not in codec.categories:
            raise _fail(source, where, f"categories: codec {codec.kind} does not answer for {c!r}")
    actions = _check_list(entry["actions"], ACTIONS, source, where, "actions")
    for a in actions:
        if a not in codec.actions:
            raise _fail(source, where, f"actions: codec {codec.kind} does not support {a!r}")
    return categories, actions


def _check_deadlines(deadlines: Any, actions: tuple[str, ...], source: str, where: str) -> dict[str, int]:
    """Seconds to answer, for exactly the actions offered."""
    if not isinstance(deadlines, dict):
        raise _fail(source, where, "deadlines must be a table of action = seconds")
    for a in actions:
        seconds = deadlines.get(a)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise _fail(source, where, f"deadlines.{a} must be a whole number of seconds above 0")
    for a in deadlines:
        if a not in actions:
            raise _fail(source, where, f"deadlines.{a}: the agency does not accept action {a!r}")
    return dict(deadlines)


def _check_limits(entry: dict[str, Any], source: str, where: str) -> dict[str, Any]:
    """The optional numbers (concurrency, rate, timeout, batch size), defaults filled in."""
    values = {**_OPTIONAL, **{k: entry[k] for k in _OPTIONAL if k in entry}}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise _fail(source, where, f"{key} must be a finite number above 0")
    for key in ("concurrency", "batch_size"):
        if not isinstance(values[key], int):
            raise _fail(source, where, f"{key} must be a whole number")
    return values


def _action_categories(codec: type[Codec], categories: tuple[str, ...], actions: tuple[str, ...], source: str,
                       where: str) -> dict[str, tuple[str, ...]]:
    """Which of the agency's categories each of its actions applies to; none is an error."""
    action_categories = {
        a: tuple(c for c in codec.action_categories.get(a, ()) if c in categories) for a in actions
    }
    for a, cats in action_categories.items():
        if not cats:
            raise _fail(source, where, f"actions: {a!r} applies to {', '.join(codec.action_categories.get(a, ()))} at a {codec.kind} agency, and this one lists none of them")
    return action_categories


def _check_options(options: Any, transport: str, source: str, where: str,
                   rule: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise _fail(source, where, "options must be a table")
    what = f"the {transport} transport" if rule is None else "a pull agency"
    rule = rule or TRANSPORT_OPTIONS[transport]
    unknown = set(options) - set(rule["allowed"])
    if unknown:
        allowed = ", ".join(rule["allowed"]) or "none"
        raise _fail(source, where, f"options: unknown key(s) {', '.join(sorted(unknown))} for {what} (allowed: {allowed})")
    for key in rule["required"]:
        if key not in options:
            raise _fail(source, where, f"options.{key} is required for {what}")
    for key, value in options.items():
        if not isinstance(value, (str, bool, int, float)) or isinstance(value, float) and not math.isfinite(value):
            raise _fail(source, where, f"options.{key} must be a string, a number or true/false")
    return dict(options)


def _check_pull_options(options: dict[str, Any], source: str, where: str) -> None:
    if ("username" in options) != ("password_hash" in options):
        raise _fail(source, where, "options.username and options.password_hash go together (or neither: JWT only)")
    if "username" in options and (not isinstance(options["username"], str) or not options["username"].strip()):
        raise _fail(source, where, "options.username must be a non-empty string")
    if "password_hash" in options:
        try:
            parse_password_hash(options["password_hash"])
        except PasswordHashInvalid as exc:
            raise _fail(source, where, f"options.password_hash: {exc}") from None
    refetch = options.get("refetch_after_seconds", 600)
    if isinstance(refetch, bool) or not isinstance(refetch, int) or refetch <= 0:
        raise _fail(source, where, "options.refetch_after_seconds must be a whole number of seconds above 0")


def load_registry(path: Path) -> Registry:
    source = str(path)
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{source}: agency registry not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(document) - {"agency"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; agencies go in [[agency]] tables")
    entries = document.get("agency", [])
    if not entries:
        raise ConfigError(f"{source}: no [[agency]] entries")
    agencies = [parse_agency(e, source, i) for i, e in enumerate(entries)]
    seen: set[str] = set()
    for i, agency in enumerate(agencies):
        if agency.id in seen:
            raise _fail(source, f"agency[{i}] {agency.id!r}", "id is used by an earlier entry")
        seen.add(agency.id)
    usernames: set[str] = set()
    for i, agency in enumerate(agencies):
        username = agency.options.get("username") if agency.mode == "pull" else None
        if username in usernames:
            raise _fail(source, f"agency[{i}] {agency.id!r}", f"options.username {username!r} is used by an earlier pull agency")
        if username:
            usernames.add(username)
    return Registry(agencies, source)
