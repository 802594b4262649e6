"""Logging: JSON lines through structlog, with identity numbers masked.

Every record, ours or a library's (SQLAlchemy, requests, gunicorn), passes the
same redaction, so an identity number never reaches a log in clear.
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
from typing import Any, MutableMapping

import structlog

from schemas.identifiers import mask_id_number

# 18-character resident ID numbers and unified social credit codes standing alone.
# Case-insensitive: codes are accepted as typed, in either case.
_IDENTITY_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])([0-9]{17}[0-9X]|[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10})(?![0-9A-Za-z])",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _IDENTITY_NUMBER.sub(lambda m: mask_id_number(m.group(1)), text)


# Text a caller controls (a refused call's path, an error message echoing it) may
# hide a resident ID inside a longer token ("x110105194912310021/", 19 digits) or
# in full-width digits, which ``redact``'s word boundaries let through. What goes
# into the audit chain is permanent, so there every 18-character run is masked.
_EMBEDDED_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]", re.IGNORECASE)


def redact_for_audit(text: str | None, limit: int) -> str | None:
    """``text`` fit to be audited: NFKC-normalised, every identity number masked
    (embedded ones too), and at most ``limit`` characters (cut with a trailing …)."""
    if text is None:
        return None
    text = _EMBEDDED_RESIDENT_ID.sub(lambda m: mask_id_number(m.group(0)), redact(unicodedata.normalize("NFKC", text)))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_redact_value(v) for v in value]
    return value


def _redact_event(_logger: object, _name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    return {key: _redact_value(value) for key, value in event_dict.items()}


def configure_logging(level: str = "INFO") -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_event,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library loggers that would otherwise print message bodies or SQL parameters.
    for noisy in ("zeep.transports", "paramiko.transport", "sqlalchemy.engine", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
