"""The agency side of the JSON-over-REST contracts, shared by the REST sandboxes.

Strict reading of a request (UTF-8 JSON object, no repeated keys, no unknown
fields, every broken rule named by its field path), the answer envelope
(``Head`` with ``RESPONSECODE``/``RESPONSEINFO``), the common request ``Head``
and the duplicate memory keyed by message id (``XXID``). Written on the
agency's side on purpose: it imports nothing of the gateway, so a codec
mistake shows up as a failing exchange.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import date, datetime, timezone
from typing import Any, Callable

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from sandboxes.server import FaultInjector

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

CODE_ANSWERED = "0000"
CODE_UNAVAILABLE = "1000"
CODE_CONTRACT_VIOLATION = "3000"

HEAD_REQUIRED = ("XXID", "CJSJ", "FYDM", "CBR", "AH")
HEAD_OPTIONAL = ("WSLX", "WSH")
# RFC 3339 date-time in UTC: "Z" (any case) or a +00:00 offset; "-00:00"
# means "offset unknown" in RFC 3339, so it is not UTC.
_RFC3339_UTC = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|\+00:00)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONEY = re.compile(r"(0|[1-9]\d{0,15})\.\d{2}")


class ContractViolation(Exception):
    """A request outside the contract; ``info`` is the RESPONSEINFO text."""

    def __init__(self, field_name: str, rule: str):
        super().__init__(f"{field_name}: {rule}")
        self.field_name = field_name
        self.rule = rule
        self.info = f"{field_name}: {rule}"


class SandboxState:
    """What a running REST sandbox has seen, kept in ``app.extensions``.

    ``calls`` counts every call (injected failures and refusals included);
    ``arrived`` holds the XXID of each call as it arrives, before its latency
    (None where the body has none), so a test can tell a message reached the
    agency while its answer is still on the way; ``answered_count`` the distinct XXIDs answered; each repeat of an answered
    XXID adds one to ``duplicate_count``; ``failures_injected`` and
    ``rejected_count`` (3000 refusals) say where the other calls went.
    Counters change under the lock and are plain ints to read.
    """

    def __init__(self, faults: FaultInjector):
        self.faults = faults
        self.calls = 0
        self.arrived: list[str | None] = []
        self.duplicate_count = 0
        self.failures_injected = 0
        self.rejected_count = 0
        self._answers: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def answered_count(self) -> int:
        return len(self._answers)

    def count_call(self, xxid: str | None = None) -> None:
        with self._lock:
            self.calls += 1
            self.arrived.append(xxid)

    def count_failure(self) -> None:
        with self._lock:
            self.failures_injected += 1

    def count_rejection(self) -> None:
        with self._lock:
            self.rejected_count += 1

    def answer_once(self, xxid: str, render: Callable[[], bytes]) -> bytes:
        """The stored answer for ``xxid``, rendering and storing it the first time.

        Rendering (and any effect it has, such as placing a seal) runs under the
        lock, so "first answer wins, one effect" holds for concurrent repeats
        too, and every effect and every read of the agency's registers is
        serialised. Rendering is microseconds, so this costs nothing.
        """
        with self._lock:
            stored = self._answers.get(xxid)
            if stored is not None:
                self.duplicate_count += 1
                return stored
            answer = render()
            self._answers[xxid] = answer
            return answer


# --------------------------------------------------------------------------
# Reading a request
# --------------------------------------------------------------------------


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last of repeated keys; a codec emitting
    # them is broken, and the agency would not guess which one was meant.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ContractViolation("body", f"repeated key {key!r} in a JSON object")
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> Any:
    raise ContractViolation("body", f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractViolation("body", "must be UTF-8 encoded JSON") from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ContractViolation("body", f"must be a JSON object ({error.msg} at character {error.pos})") from None
    except RecursionError:  # a body nested thousands deep: refused, not a 500
        raise ContractViolation("body", "nests arrays and objects too deep to decode") from None


def check_fields(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractViolation(path, "must be a JSON object")
    prefix = f"{path}." if path != "body" else ""
    for key in value:
        if key not in required and key not in optional:
            raise ContractViolation(f"{prefix}{key}", "unknown field")
    for key in required:
        if key not in value:
            raise ContractViolation(f"{prefix}{key}", "required")
    return value


def text(container: dict[str, Any], path: str, key: str, max_length: int | None = None) -> str:
    value = container[key]
    name = f"{path}.{key}"
    if not isinstance(value, str):
        raise ContractViolation(name, f"must be a string, got {type(value).__name__}")
    if max_length is not None and not 1 <= len(value) <= max_length:
        raise ContractViolation(name, f"must be 1-{max_length} characters, got {len(value)}")
    if not value:
        raise ContractViolation(name, "must not be empty")
    return value


def one_of(container: dict[str, Any], path: str, key: str, choices: dict[str, str]) -> str:
    value = container[key]
    if not isinstance(value, str) or value not in choices:
        meanings = ", ".join(f"'{code}' {meaning}" for code, meaning in choices.items())
        raise ContractViolation(f"{path}.{key}", f"must be one of {meanings}; got {value!r}")
    return value


def iso_date(container: dict[str, Any], path: str, key: str) -> date:
    value = container[key]
    name = f"{path}.{key}"
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ContractViolation(name, f"must be a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ContractViolation(name, f"is not a real date: {value!r}") from None


def money(container: dict[str, Any], path: str, key: str) -> str:
    value = container[key]
    if not isinstance(value, str) or not _MONEY.fullmatch(value):
        raise ContractViolation(f"{path}.{key}", f'must be yuan as a string with two places, like "1000.00"; got {value!r}')
    if value == "0.00":
        raise ContractViolation(f"{path}.{key}", "must be above 0.00")
    return value


def check_rfc3339_utc(value: str, name: str) -> None:
    match = _RFC3339_UTC.fullmatch(value)
    if match is None:
        raise ContractViolation(name, "must be an RFC 3339 UTC time like 2026-11-23T10:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ContractViolation(name, f"is not a real date and time: {value!r}") from None


def check_content_type() -> None:
    charset = request.mimetype_params.get("charset")
    if request.mimetype != "application/json" or (charset is not None and charset.lower() != "utf-8"):
        raise ContractViolation("Content-Type", f"must be {JSON_CONTENT_TYPE}, got {request.content_type!r}")


def check_head(document: dict[str, Any], *, basis_required: bool = False) -> dict[str, Any]:
    """The request ``Head`` every agency shares; returns it checked."""
    head = check_fields(document["Head"], "Head", HEAD_REQUIRED, HEAD_OPTIONAL)
    text(head, "Head", "XXID", 64)
    check_rfc3339_utc(text(head, "Head", "CJSJ"), "Head.CJSJ")
    text(head, "Head", "FYDM", 32)
    text(head, "Head", "CBR", 64)
    text(head, "Head", "AH")
    if ("WSLX" in head) != ("WSH" in head):
        given, missing = ("WSLX", "WSH") if "WSLX" in head else ("WSH", "WSLX")
        raise ContractViolation(f"Head.{missing}", f"required with Head.{given} (both or neither)")
    if basis_required and "WSH" not in head:
        raise ContractViolation("Head.WSH", "required for a control: the legal basis (WSLX and WSH)")
    for key in HEAD_OPTIONAL:
        if key in head:
            text(head, "Head", key)
    return head


def check_message_id_header(xxid: str) -> None:
    """Checked last: the header can only be compared once Head.XXID is known good."""
    message_id = request.headers.get("X-Message-Id")
    if message_id is None:
        raise ContractViolation("X-Message-Id", "required header, must equal Head.XXID")
    if message_id != xxid:
        raise ContractViolation("X-Message-Id", "must equal Head.XXID")


def readable_xxid(raw: bytes) -> str | None:
    """Head.XXID when it can be read from the body, for error answers.

    Lenient on purpose: a request broken elsewhere still gets its XXID echoed
    so the gateway can match the refusal to its delivery.
    """
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nesting too deep to decode
        return None
    head = document.get("Head") if isinstance(document, dict) else None
    xxid = head.get("XXID") if isinstance(head, dict) else None
    return xxid if isinstance(xxid, str) and 1 <= len(xxid) <= 64 else None


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def json_response(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type=JSON_CONTENT_TYPE)


def error_response(status: int, code: str, info: str, xxid: str | None) -> Response:
    head: dict[str, Any] = {}
    if xxid is not None:
        head["XXID"] = xxid
    head.update({"RESPONSECODE": code, "RESPONSEINFO": info, "FKSJ": utc_now()})
    return json_response(status, encode({"Head": head}))


def answer_head(xxid: str, request_sha256: str) -> dict[str, str]:
    return {"XXID": xxid, "QQSHA256": request_sha256, "RESPONSECODE": CODE_ANSWERED,
            "RESPONSEINFO": "成功", "FKSJ": utc_now()}


def answer(xxid: str, raw: bytes, data: dict[str, Any]) -> bytes:
    """An answered call's body: the head binds it to the request's bytes (their SHA-256), then the data."""
    return encode({"Head": answer_head(xxid, hashlib.sha256(raw).hexdigest()), "Data": data})


def serve_call(state: SandboxState, max_body_bytes: int,
               read: Callable[[bytes], tuple[str, Callable[[], bytes]]]) -> Response:
    """One call to a REST sandbox, in the order every contract states:

    1. fault injection (latency on every call, then ``503``/``1000`` with
       probability ``failure_rate``) before any processing;
    2. strict validation by ``read`` (``raw -> (xxid, render)``): anything
       outside the contract is ``400``/``3000`` naming the field and the rule;
    3. a repeated ``XXID`` gets the very bytes of its first answer and no new
       effect; otherwise ``render()`` makes the answer (and its effect).
    """
    try:
        raw = request.get_data(cache=True)
        too_large = len(raw) > max_body_bytes  # in case no limit was applied upstream
    except RequestEntityTooLarge:
        raw, too_large = b"", True
    state.count_call(None if too_large else readable_xxid(raw))
    must_fail = state.faults.apply()
    if must_fail:
        state.count_failure()
        return error_response(503, CODE_UNAVAILABLE, "temporarily unable to answer (injected failure)",
                              readable_xxid(raw))
    if too_large:
        state.count_rejection()
        return body_too_large(max_body_bytes)
    try:
        check_content_type()
        xxid, render = read(raw)
    except ContractViolation as violation:
        state.count_rejection()
        return error_response(400, CODE_CONTRACT_VIOLATION, violation.info, readable_xxid(raw))
    return json_response(200, state.answer_once(xxid, render))


def unique_choices(container: dict[str, Any], path: str, key: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list of names from ``choices``, none repeated (an inquiry's CXLB)."""
    value, where = container[key], f"{path}.{key}"
    if not isinstance(value, list):
        raise ContractViolation(where, "must be a list")
    if not value:
        raise ContractViolation(where, "must not be empty")
    seen: list[str] = []
    for index, item in enumerate(value):
        if item not in choices:  # also refuses non-strings
            raise ContractViolation(f"{where}[{index}]", f"must be one of {', '.join(choices)}, got {item!r}")
        if item in seen:
            raise ContractViolation(f"{where}[{index}]", f"repeats {item!r} (no repeats)")
        seen.append(item)
    return tuple(seen)


Reader = Callable[[bytes], tuple[str, Callable[[], bytes]]]


def create_contract_app(import_name: str, *, prefix: str, state: SandboxState, extension_key: str,
                        max_body_bytes: int, routes: dict[str, Reader]) -> Flask:
    """A REST sandbox: each POST ``{prefix}/{route}`` served by ``serve_call`` with its
    reader, a ``{prefix}/healthz`` outside the fault knobs, oversized bodies refused
    by the contract's own rule, the state at ``app.extensions[extension_key]``."""
    if not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/', got {prefix!r}")
    prefix = prefix.rstrip("/")
    app = Flask(import_name)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.extensions[extension_key] = state
    for route, read in routes.items():
        app.add_url_rule(f"{prefix}/{route}", route, lambda read=read: serve_call(state, max_body_bytes, read),
                         methods=["POST"])

    @app.get(f"{prefix}/healthz")
    def healthz() -> Response:
        # Not subject to fault knobs: readiness checks must not flap.
        return json_response(200, encode({"status": "ok"}))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error: RequestEntityTooLarge) -> Response:
        return body_too_large(max_body_bytes)

    return app


def body_too_large(max_body_bytes: int) -> Response:
    # The contract has one refusal status: 400 + 3000, not 413. (Werkzeug's
    # server drains the unread rest of the body and closes every connection,
    # so the client reads this answer rather than a connection reset.)
    return error_response(400, CODE_CONTRACT_VIOLATION, f"body: must be at most {max_body_bytes} bytes", None)


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)
