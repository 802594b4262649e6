"""Public security bureau sandbox: the AGENCY side of the REST inquiry contract.

Contract: ``docs/agencies/public-security.md``. This module reads and writes the
agency format on its own — it must not import ``gateway``, ``adapters``,
``schemas`` or ``audit`` — so that a mistake in the gateway's codec shows up as
a failing exchange instead of being mirrored here.

Per call to ``POST {prefix}/inquiries``:

1. fault injection (latency on every call, then ``503``/``1000`` with
   probability ``failure_rate``) before any processing;
2. strict validation: anything outside the contract is ``400``/``3000`` with
   ``RESPONSEINFO`` naming the field and the rule;
3. a repeated ``XXID`` gets the very bytes of its first answer and no new effect;
4. otherwise the answer carries the deterministic records of
   ``public_security_data`` for the lists asked in ``CXLB``.

Run one by hand: ``python -m sandboxes.public_security --port 18083``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from sandboxes.public_security_data import CATEGORIES, ID_TYPES, describe_subject
from sandboxes.server import FaultInjector, FaultKnobs, SandboxServer

__all__ = ["MAX_BODY_BYTES", "PublicSecuritySandboxState", "create_app", "describe_subject"]

DEFAULT_PREFIX = "/psb/v1"
EXTENSION_KEY = "psb_sandbox"
MAX_BODY_BYTES = 64 * 1024
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

CODE_ANSWERED = "0000"
CODE_UNAVAILABLE = "1000"
CODE_CONTRACT_VIOLATION = "3000"

_HEAD_REQUIRED = ("XXID", "CJSJ", "FYDM", "CBR", "AH")
_HEAD_OPTIONAL = ("WSLX", "WSH")
_QUERY_REQUIRED = ("XM", "ZJZL", "ZJHM", "CXLB")
# RFC 3339 date-time in UTC: "Z" (any case) or a +00:00 offset; "-00:00"
# means "offset unknown" in RFC 3339, so it is not UTC.
_RFC3339_UTC = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|\+00:00)"
)


# --------------------------------------------------------------------------
# Counters and the duplicate memory
# --------------------------------------------------------------------------


class PublicSecuritySandboxState:
    """What the running sandbox has seen; ``app.extensions["psb_sandbox"]``.

    ``calls`` counts every inquiry call (injected failures and refusals
    included); ``answered_count`` the distinct XXIDs answered; each repeat of
    an answered XXID adds one to ``duplicate_count``; ``failures_injected``
    and ``rejected_count`` (3000 refusals) say where the other calls went.
    Counters change under the lock and are plain ints to read.
    """

    def __init__(self, faults: FaultInjector):
        self.faults = faults
        self.calls = 0
        self.duplicate_count = 0
        self.failures_injected = 0
        self.rejected_count = 0
        self._answers: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def answered_count(self) -> int:
        return len(self._answers)

    def count_call(self) -> None:
        with self._lock:
            self.calls += 1

    def count_failure(self) -> None:
        with self._lock:
            self.failures_injected += 1

    def count_rejection(self) -> None:
        with self._lock:
            self.rejected_count += 1

    def answer_once(self, xxid: str, render: Callable[[], bytes]) -> bytes:
        """The stored answer for ``xxid``, rendering and storing it the first time.

        Rendering under the lock makes "first answer wins" hold for concurrent
        repeats too: two racing calls with one XXID get one answer, one effect.
        Rendering is microseconds, so serialising it costs nothing.
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
# Request validation
# --------------------------------------------------------------------------


class ContractViolation(Exception):
    """A request outside the contract; ``info`` is the RESPONSEINFO text."""

    def __init__(self, field_name: str, rule: str):
        super().__init__(f"{field_name}: {rule}")
        self.field_name = field_name
        self.rule = rule
        self.info = f"{field_name}: {rule}"


@dataclass(frozen=True)
class Inquiry:
    xxid: str
    name: str
    id_type: str
    id_number: str
    categories: tuple[str, ...]


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


def _parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractViolation("body", "must be UTF-8 encoded JSON") from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ContractViolation("body", f"must be a JSON object ({error.msg} at character {error.pos})") from None


def _check_fields(value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
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


def _text(container: dict[str, Any], path: str, key: str, max_length: int | None = None) -> str:
    value = container[key]
    name = f"{path}.{key}"
    if not isinstance(value, str):
        raise ContractViolation(name, f"must be a string, got {type(value).__name__}")
    if max_length is not None and not 1 <= len(value) <= max_length:
        raise ContractViolation(name, f"must be 1-{max_length} characters, got {len(value)}")
    if not value:
        raise ContractViolation(name, "must not be empty")
    return value


def _check_rfc3339_utc(value: str, name: str) -> None:
    match = _RFC3339_UTC.fullmatch(value)
    if match is None:
        raise ContractViolation(name, "must be an RFC 3339 UTC time like 2026-11-23T10:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ContractViolation(name, f"is not a real date and time: {value!r}") from None


def _check_content_type() -> None:
    charset = request.mimetype_params.get("charset")
    if request.mimetype != "application/json" or (charset is not None and charset.lower() != "utf-8"):
        raise ContractViolation("Content-Type", f"must be {JSON_CONTENT_TYPE}, got {request.content_type!r}")


def _validate_inquiry(raw: bytes) -> Inquiry:
    _check_content_type()
    document = _check_fields(_parse_json(raw), "body", ("Head", "Query"))

    head = _check_fields(document["Head"], "Head", _HEAD_REQUIRED, _HEAD_OPTIONAL)
    xxid = _text(head, "Head", "XXID", 64)
    _check_rfc3339_utc(_text(head, "Head", "CJSJ"), "Head.CJSJ")
    _text(head, "Head", "FYDM", 32)
    _text(head, "Head", "CBR", 64)
    _text(head, "Head", "AH")
    if ("WSLX" in head) != ("WSH" in head):
        given, missing = ("WSLX", "WSH") if "WSLX" in head else ("WSH", "WSLX")
        raise ContractViolation(f"Head.{missing}", f"required with Head.{given} (both or neither)")
    for key in _HEAD_OPTIONAL:
        if key in head:
            _text(head, "Head", key)

    query = _check_fields(document["Query"], "Query", _QUERY_REQUIRED)
    name = _text(query, "Query", "XM")
    id_type = _text(query, "Query", "ZJZL")
    if id_type not in ID_TYPES:
        raise ContractViolation("Query.ZJZL", f"must be '1' (resident ID) or '8' (social credit code), got {id_type!r}")
    id_number = _text(query, "Query", "ZJHM")
    if len(id_number) != 18:
        raise ContractViolation("Query.ZJHM", f"must be 18 characters, got {len(id_number)}")
    categories = _check_categories(query["CXLB"])

    # Checked last: the header can only be compared once Head.XXID is known good.
    message_id = request.headers.get("X-Message-Id")
    if message_id is None:
        raise ContractViolation("X-Message-Id", "required header, must equal Head.XXID")
    if message_id != xxid:
        raise ContractViolation("X-Message-Id", "must equal Head.XXID")
    return Inquiry(xxid, name, id_type, id_number, categories)


def _check_categories(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ContractViolation("Query.CXLB", "must be a list")
    if not value:
        raise ContractViolation("Query.CXLB", "must not be empty")
    seen: list[str] = []
    for index, item in enumerate(value):
        if item not in CATEGORIES:  # also refuses non-strings
            raise ContractViolation(f"Query.CXLB[{index}]", f"must be one of {', '.join(CATEGORIES)}, got {item!r}")
        if item in seen:
            raise ContractViolation(f"Query.CXLB[{index}]", f"repeats {item!r} (no repeats)")
        seen.append(item)
    return tuple(seen)


def _readable_xxid(raw: bytes) -> str | None:
    """Head.XXID when it can be read from the body, for error answers.

    Lenient on purpose: a request broken elsewhere still gets its XXID echoed
    so the gateway can match the refusal to its delivery.
    """
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    head = document.get("Head") if isinstance(document, dict) else None
    xxid = head.get("XXID") if isinstance(head, dict) else None
    return xxid if isinstance(xxid, str) and 1 <= len(xxid) <= 64 else None


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _json_response(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type=JSON_CONTENT_TYPE)


def _error(status: int, code: str, info: str, xxid: str | None) -> Response:
    head: dict[str, Any] = {}
    if xxid is not None:
        head["XXID"] = xxid
    head.update({"RESPONSECODE": code, "RESPONSEINFO": info, "FKSJ": _utc_now()})
    return _json_response(status, _encode({"Head": head}))


def _render_answer(inquiry: Inquiry, raw: bytes) -> bytes:
    return _encode({
        "Head": {
            "XXID": inquiry.xxid,
            "QQSHA256": hashlib.sha256(raw).hexdigest(),
            "RESPONSECODE": CODE_ANSWERED,
            "RESPONSEINFO": "成功",
            "FKSJ": _utc_now(),
        },
        "Data": describe_subject(inquiry.id_number, inquiry.name, inquiry.id_type, inquiry.categories),
    })


def _body_too_large() -> Response:
    # The contract has one refusal status: 400 + 3000, not 413. (Werkzeug's
    # server drains the unread rest of the body and closes every connection,
    # so the client reads this answer rather than a connection reset.)
    return _error(400, CODE_CONTRACT_VIOLATION, f"body: must be at most {MAX_BODY_BYTES} bytes", None)


def _answer_inquiry(state: PublicSecuritySandboxState) -> Response:
    state.count_call()
    must_fail = state.faults.apply()  # latency and failure come before any processing
    try:
        raw = request.get_data(cache=True)
        too_large = len(raw) > MAX_BODY_BYTES  # in case no limit was applied upstream
    except RequestEntityTooLarge:
        raw, too_large = b"", True
    if must_fail:
        state.count_failure()
        return _error(503, CODE_UNAVAILABLE, "temporarily unable to answer (injected failure)",
                      _readable_xxid(raw))
    if too_large:
        state.count_rejection()
        return _body_too_large()
    try:
        inquiry = _validate_inquiry(raw)
    except ContractViolation as violation:
        state.count_rejection()
        return _error(400, CODE_CONTRACT_VIOLATION, violation.info, _readable_xxid(raw))
    return _json_response(200, state.answer_once(inquiry.xxid, lambda: _render_answer(inquiry, raw)))


def create_app(knobs: FaultKnobs | None = None, *, prefix: str = DEFAULT_PREFIX) -> Flask:
    """A fresh sandbox (its own counters and duplicate memory) as a Flask app."""
    if not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/', got {prefix!r}")
    prefix = prefix.rstrip("/")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    state = PublicSecuritySandboxState(faults=FaultInjector(knobs))
    app.extensions[EXTENSION_KEY] = state

    @app.post(f"{prefix}/inquiries")
    def inquiries() -> Response:
        return _answer_inquiry(state)

    @app.get(f"{prefix}/healthz")
    def healthz() -> Response:
        # Not subject to fault knobs: readiness checks must not flap.
        return _json_response(200, _encode({"status": "ok"}))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error: RequestEntityTooLarge) -> Response:
        return _body_too_large()

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18083)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this many extra seconds")
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    knobs = FaultKnobs(args.latency, args.jitter, args.failure_rate, args.seed)
    server = SandboxServer(create_app(knobs, prefix=args.prefix), port=args.port, log_requests=True).start()
    print(f"public security sandbox on {server.url}{args.prefix.rstrip('/')}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
