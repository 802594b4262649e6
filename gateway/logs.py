"""Logging: JSON lines through structlog, with identity numbers masked.

Every record, ours or a library's (SQLAlchemy, requests, gunicorn), passes the
same redaction, so an identity number never reaches a log in clear.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

from schemas.identifiers import mask_id_number

# 18-character resident ID numbers and unified social credit codes standing alone.
_IDENTITY_NUMBER = re.compile(r"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx]|[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10})(?![0-9A-Za-z])")


def redact(text: str) -> str:
    return _IDENTITY_NUMBER.sub(lambda m: mask_id_number(m.group(1)), text)


def _redact_event(_logger: object, _name: str, event_dict: dict) -> dict:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    shared = [
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
