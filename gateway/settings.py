"""Settings: config/settings.toml, then the file GATEWAY_CONFIG names, then
GATEWAY_DATABASE_URL, then what the caller of ``create_app`` passes.

This is the only module that reads the environment. Unknown sections or keys are
refused, so a typo in a settings file fails at start instead of being ignored.

Each section is a frozen dataclass; its values are loaded by a marshmallow schema
made from the dataclass's annotations (``section_schema``): TOML's own types only
(a bool is never taken for a number, nor a string or number for a bool), items of
lists and tables checked too, ``X | None`` and fields with a default optional (the
key may be left out). A value that does not fit stops the gateway naming the
setting and the rule; the dataclasses' ``__post_init__`` then check the ranges.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
import types
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError
from marshmallow import fields as ma

from gateway.errors import ConfigError
from gateway.forwarded import proxy_networks

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULTS_FILE = CONFIG_DIR / "settings.toml"
# prometheus-client reads this variable itself, at import; `gateway serve` sets it
# before forking its workers (gateway/server.py).
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class GatewaySection:
    instance_dir: str
    agencies_file: str
    courts_file: str
    max_content_length: int
    log_level: str
    court_timezone: str

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.court_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"setting gateway.court_timezone: unknown time zone {self.court_timezone!r} "
                              "(an IANA name such as Asia/Shanghai)") from None


@dataclass(frozen=True)
class DatabaseSection:
    url: str


@dataclass(frozen=True)
class AuthSection:
    issuer: str
    audience: str
    jwks_file: str
    jwks_url: str
    algorithms: list[str]
    leeway_seconds: int
    signing_key_file: str
    token_lifetime_seconds: int
    login_failures_per_user: int
    login_failures_per_source: int
    login_failure_window_seconds: int

    def __post_init__(self) -> None:
        for name in ("login_failures_per_user", "login_failures_per_source", "login_failure_window_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting auth.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class AuditSection:
    subject_key_file: str
    checkpoint_key_file: str
    checkpoint_public_key_file: str
    checkpoint_every_events: int
    checkpoint_every_seconds: float
    checkpoint_file: str
    unsealed_after_seconds: float
    unauthenticated_audit_window_seconds: int
    export_max_events: int


@dataclass(frozen=True)
class AnomaliesSection:
    office_timezone: str
    office_hours_start: int
    office_hours_end: int
    office_weekdays: list[int]
    subjects_per_officer_hour: int
    courts_per_subject: int
    courts_per_subject_hours: float
    repeat_count: int
    repeat_window_minutes: float
    refused_purpose_count: int
    control_follow_up_days: float
    lookback_days: float


@dataclass(frozen=True)
class WorkersSection:
    threads: int
    poll_interval_seconds: float
    batch_size: int
    lease_seconds: int
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    batch_result_wait_seconds: float


@dataclass(frozen=True)
class BreakerSection:
    failure_threshold: int
    reset_seconds: float


@dataclass(frozen=True)
class ReuseSection:
    freshness_seconds: int


@dataclass(frozen=True)
class ControlsSection:
    """The law's rules on controls that a court may tighten (gateway/controls/rules.py)."""

    term_months: dict[str, int]
    warning_days: int
    exempt_account_kinds: list[str]
    protected_monthly_sum: str
    uncontrolled_after_days: int
    repeat_freeze_days: int


@dataclass(frozen=True)
class TerminationSection:
    """Terminated cases (终本, gateway/termination/): the SPC's rules, which a court may
    tighten but not loosen (docs/termination.md)."""

    required_categories: list[str]  # asked of every agency serving each, for every debtor, and answered
    min_months_after_filing: int  # art. 1(4): more than three months since the case was filed
    requery_every_months: int  # art. 9: the debtor's property queried at least every six months...
    requery_years: int  # ...for five years after termination
    interval_seconds: float  # how often the housekeeper looks for re-inquiries due and answered

    def __post_init__(self) -> None:
        if not self.required_categories or not all(c.strip() for c in self.required_categories):
            raise ConfigError("setting termination.required_categories must name at least one asset category")
        rules = (("min_months_after_filing", self.min_months_after_filing >= 3, "at least 3 (art. 1(4))"),
                 ("requery_every_months", 1 <= self.requery_every_months <= 6, "1..6 (art. 9: every six months)"),
                 ("requery_years", self.requery_years >= 5, "at least 5 (art. 9)"),
                 ("interval_seconds", self.interval_seconds > 0, "more than 0"))
        for name, holds, rule in rules:
            if not holds:
                raise ConfigError(f"setting termination.{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class LimitsSection:
    """How much one officer and one court may ask (gateway/requests/limits.py)."""

    officer_requests_per_hour: int
    court_requests_per_hour: int
    officer_subjects_per_day: int
    officer_batch_lines_per_day: int  # batch lines (gateway/batches/) count here, not per request

    def __post_init__(self) -> None:
        for name in ("officer_requests_per_hour", "court_requests_per_hour", "officer_subjects_per_day",
                     "officer_batch_lines_per_day"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting limits.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class DocumentsSection:
    """Legal documents and card images (gateway/attachments/)."""

    max_bytes: int


CONSOLE_ROLES = ("court_officer", "approver", "auditor")


@dataclass(frozen=True)
class ConsoleSection:
    """How people log in to the console (gateway/people/): OpenID Connect against the
    court's identity provider, and the built-in demo provider."""

    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret_env: str
    oidc_scopes: list[str]
    oidc_redirect_uri: str
    oidc_ca_file: str
    oidc_algorithms: list[str]
    oidc_timeout_seconds: float
    role_claim: str
    court_claim: str
    role_values: dict[str, str]
    session_minutes: int
    token_login: bool
    demo_provider: bool

    def __post_init__(self) -> None:
        for name in ("role_claim", "court_claim", "oidc_client_id"):
            if not getattr(self, name).strip():
                raise ConfigError(f"setting console.{name} must not be empty")
        for provider_value, role in self.role_values.items():
            if role not in CONSOLE_ROLES:
                raise ConfigError(f"setting console.role_values: {provider_value!r} maps to {role!r}, "
                                  f"not a console role ({', '.join(CONSOLE_ROLES)})")
        if "openid" not in self.oidc_scopes:
            raise ConfigError("setting console.oidc_scopes must include \"openid\" (OpenID Connect needs it)")
        if self.session_minutes < 1:
            raise ConfigError(f"setting console.session_minutes must be at least 1, got {self.session_minutes}")
        if self.oidc_timeout_seconds <= 0:
            raise ConfigError(f"setting console.oidc_timeout_seconds must be above 0, got {self.oidc_timeout_seconds}")
        if self.demo_provider and not self.oidc_issuer:
            raise ConfigError("setting console.demo_provider needs console.oidc_issuer: this gateway's own URL "
                              "followed by /console/demo-idp (e.g. http://127.0.0.1:8080/console/demo-idp)")


@dataclass(frozen=True)
class ReportsSection:
    """The asset report as CSV and PDF (gateway/reports/render.py)."""

    pdf_font_file: str  # a TrueType font with Chinese glyphs; empty: Debian's fonts-wqy-microhei


@dataclass(frozen=True)
class WebhooksSection:
    """Notifications to court systems (gateway/webhooks/)."""

    allowed_schemes: list[str]
    interval_seconds: float
    timeout_seconds: float
    max_attempts: int
    backoff_base_seconds: float
    backoff_cap_seconds: float
    batch_size: int


@dataclass(frozen=True)
class BankruptcySection:
    """Enforcement hands over to bankruptcy (gateway/bankruptcy/)."""

    screening_terminated_cases: int  # an enterprise debtor in this many terminated cases is listed for review

    def __post_init__(self) -> None:
        if self.screening_terminated_cases < 1:
            raise ConfigError("setting bankruptcy.screening_terminated_cases must be at least 1, "
                              f"got {self.screening_terminated_cases}")


@dataclass(frozen=True)
class CreditorsSection:
    """Several creditors of one debtor (gateway/creditors/): the priority classes of a
    distribution plan, highest first; a class is paid in full before the next gets anything."""

    priority_classes: list[str]

    def __post_init__(self) -> None:
        if not self.priority_classes or len(set(self.priority_classes)) != len(self.priority_classes):
            raise ConfigError("setting creditors.priority_classes must name at least one class, each once")


@dataclass(frozen=True)
class ServerSection:
    host: str
    port: int
    gunicorn_workers: int
    gunicorn_threads: int
    metrics_dir: str
    forwarded_allow_ips: list[str]
    worker_timeout_seconds: int
    graceful_timeout_seconds: int

    def __post_init__(self) -> None:
        proxy_networks(self.forwarded_allow_ips)  # raises ConfigError naming the bad entry
        for name in ("worker_timeout_seconds", "graceful_timeout_seconds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting server.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Settings:
    gateway: GatewaySection
    database: DatabaseSection
    auth: AuthSection
    audit: AuditSection
    workers: WorkersSection
    server: ServerSection
    breaker: BreakerSection
    reuse: ReuseSection
    anomalies: AnomaliesSection
    controls: ControlsSection
    termination: TerminationSection
    documents: DocumentsSection
    limits: LimitsSection
    reports: ReportsSection
    webhooks: WebhooksSection
    console: ConsoleSection
    bankruptcy: BankruptcySection
    creditors: CreditorsSection
    testing: bool = False
    # Set by `gateway serve` in its environment before gunicorn forks (not a settings
    # key): where prometheus-client's multiprocess mode keeps each process's values.
    prometheus_multiproc_dir: str = ""

    # Paths derived from the instance folder where a setting is left empty.
    @property
    def instance_path(self) -> Path:
        return Path(self.gateway.instance_dir).resolve()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.instance_path / 'gateway.db'}"

    @property
    def agencies_path(self) -> Path:
        return Path(self.gateway.agencies_file) if self.gateway.agencies_file else CONFIG_DIR / "agencies.toml"

    @property
    def courts_path(self) -> Path:
        return Path(self.gateway.courts_file) if self.gateway.courts_file else CONFIG_DIR / "courts.toml"

    @property
    def keys_dir(self) -> Path:
        return self.instance_path / "keys"

    @property
    def jwks_path(self) -> Path:
        return Path(self.auth.jwks_file) if self.auth.jwks_file else self.keys_dir / "jwks.json"

    @property
    def signing_key_path(self) -> Path:
        return Path(self.auth.signing_key_file) if self.auth.signing_key_file else self.keys_dir / "signing-key.pem"

    @property
    def metrics_path(self) -> Path:
        return Path(self.server.metrics_dir) if self.server.metrics_dir else self.instance_path / "metrics"

    @property
    def subject_key_path(self) -> Path:
        return Path(self.audit.subject_key_file) if self.audit.subject_key_file else self.keys_dir / "subject-hash.key"

    @property
    def checkpoint_key_path(self) -> Path:
        return Path(self.audit.checkpoint_key_file) if self.audit.checkpoint_key_file else self.keys_dir / "checkpoint-ed25519.pem"

    @property
    def checkpoint_public_key_path(self) -> Path:
        if self.audit.checkpoint_public_key_file:
            return Path(self.audit.checkpoint_public_key_file)
        return self.checkpoint_key_path.with_name(self.checkpoint_key_path.stem + ".pub.pem")

    @property
    def checkpoint_file_path(self) -> Path:
        """The copy of every checkpoint outside the database (audit/checkpoint_file.py)."""
        return Path(self.audit.checkpoint_file) if self.audit.checkpoint_file else self.instance_path / "audit-checkpoints.jsonl"


_SECTIONS: dict[str, type] = {
    "gateway": GatewaySection,
    "database": DatabaseSection,
    "auth": AuthSection,
    "audit": AuditSection,
    "workers": WorkersSection,
    "server": ServerSection,
    "breaker": BreakerSection,
    "reuse": ReuseSection,
    "anomalies": AnomaliesSection,
    "controls": ControlsSection,
    "termination": TerminationSection,
    "documents": DocumentsSection,
    "limits": LimitsSection,
    "reports": ReportsSection,
    "webhooks": WebhooksSection,
    "console": ConsoleSection,
    "bankruptcy": BankruptcySection,
    "creditors": CreditorsSection,
}

# --- typed loading: one marshmallow schema per section --------------------------------


class _TomlInt(ma.Integer):
    """A TOML integer: never a float, a string or a boolean (a Python bool is an int)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class _TomlFloat(ma.Float):
    """A TOML float or integer (a whole number of seconds is fine), never a string or a bool."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return value  # as written: an int stays an int


class _TomlBool(ma.Boolean):
    """A TOML boolean (true/false) only: marshmallow's own Boolean would take "yes", 1 or "0"."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if value is not True and value is not False:
            raise self.make_error("invalid")
        return value


_SCALARS: dict[type, type[ma.Field]] = {int: _TomlInt, float: _TomlFloat, bool: _TomlBool, str: ma.String}


def _field_for(annotation: Any, **options: Any) -> ma.Field:
    """The marshmallow field that loads a value of ``annotation`` from TOML."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _field_for(inner, allow_none=True, **options)
    if origin is list:
        return ma.List(_field_for(args[0]), **options)
    if origin is dict:
        return ma.Dict(keys=_field_for(args[0]), values=_field_for(args[1]), **options)
    if annotation in _SCALARS:
        return _SCALARS[annotation](**options)
    raise TypeError(f"no TOML field for settings of type {annotation!r}")


def section_schema(section_class: type) -> Schema:
    """A marshmallow schema loading the keys of one settings section (a dataclass):
    each annotation's TOML type; a field with a default, or ``X | None``, may be left out."""
    hints = get_type_hints(section_class)
    declared: dict[str, ma.Field] = {}
    for f in fields(section_class):
        options: dict[str, Any] = {"metadata": {"type_name": str(f.type)}}
        if f.default is not dataclasses.MISSING:
            options["load_default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            options["load_default"] = f.default_factory
        elif type(None) in get_args(hints[f.name]):
            options["load_default"] = None
        else:
            options["required"] = True
        declared[f.name] = _field_for(hints[f.name], **options)
    return Schema.from_dict(declared, name=f"{section_class.__name__}Schema")(unknown=RAISE)


_SCHEMAS = {name: section_schema(cls) for name, cls in _SECTIONS.items()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], override: Mapping[str, Any], source: str) -> None:
    for section, values in override.items():
        if section == "testing":
            if values is not True and values is not False:  # bool("no") would be True
                raise ConfigError(f"{source}: setting testing must be of type bool, got {values!r}")
            base["testing"] = values
            continue
        if section not in _SECTIONS:
            raise ConfigError(f"{source}: unknown settings section [{section}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table of settings")
        known = {f.name for f in fields(_SECTIONS[section])}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown setting {section}.{key} (known: {', '.join(sorted(known))})")
            if isinstance(value, Mapping) and isinstance(base[section].get(key), Mapping):
                base[section][key] = {**base[section][key], **value}  # a table overrides only the keys it names
            else:
                base[section][key] = value


def _load_section(name: str, values: Mapping[str, Any]) -> Any:
    """One section's values through its schema, into its dataclass (whose checks then run)."""
    schema = _SCHEMAS[name]
    try:
        loaded = schema.load(values)
    except ValidationError as error:
        problems = error.messages if isinstance(error.messages, dict) else {}
        lines = []
        for key in [*schema.fields, *sorted(set(problems) - set(schema.fields))]:
            if key not in problems:
                continue
            field = schema.fields.get(key)
            if field is None:
                lines.append(f"unknown setting {name}.{key}")
            elif key not in values:
                lines.append(f"setting {name}.{key} is missing (required, of type {field.metadata['type_name']})")
            else:
                lines.append(f"setting {name}.{key} must be of type {field.metadata['type_name']}, got {values[key]!r}")
        raise ConfigError("; ".join(lines) or f"[{name}]: {error.messages}") from None
    return _SECTIONS[name](**loaded)


def _build(merged: dict[str, Any], prometheus_multiproc_dir: str = "") -> Settings:
    sections = {name: _load_section(name, merged.get(name, {})) for name in _SECTIONS}
    return Settings(**sections, testing=merged.get("testing", False), prometheus_multiproc_dir=prometheus_multiproc_dir)


def load_settings(overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then GATEWAY_CONFIG, then GATEWAY_DATABASE_URL, then ``overrides``.

    ``overrides`` has the shape of the settings file: ``{"database": {"url": ...}}``.
    Raises ConfigError naming the file and the setting at fault.
    """
    environ = os.environ if environ is None else environ
    merged = copy.deepcopy(_read_toml(DEFAULTS_FILE))
    merged.setdefault("testing", False)
    config_file = environ.get("GATEWAY_CONFIG")
    if config_file:
        _merge(merged, _read_toml(Path(config_file)), config_file)
    if environ.get("GATEWAY_DATABASE_URL"):
        merged["database"]["url"] = environ["GATEWAY_DATABASE_URL"]
    if overrides:
        _merge(merged, overrides, "create_app overrides")
    return _build(merged, environ.get(PROMETHEUS_MULTIPROC_ENV, ""))


def read_secret(variable: str, *, environ: Mapping[str, str] | None = None) -> str:
    """A secret the agency registry names by its environment variable (``password_env``).

    Secrets never sit in config files; a missing one stops the gateway at start.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(variable)
    if not value:
        raise ConfigError(f"environment variable {variable} is not set (the agency registry names it for a secret)")
    return value
