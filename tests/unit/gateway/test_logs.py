"""gateway.logs: identity numbers are masked in every log line."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from gateway.logs import configure_logging, redact
from schemas.identifiers import resident_id_check_digit, uscc_check_char

RESIDENT_ID = "11010519491231002X"
USCC = "91350100M000100Y43"
UUID = "0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_fixture_identifiers_are_real() -> None:
    assert resident_id_check_digit(RESIDENT_ID[:17]) == RESIDENT_ID[17]
    assert uscc_check_char(USCC[:17]) == USCC[17]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RESIDENT_ID, "1101**********002X"),
        (RESIDENT_ID.lower(), "1101**********002x"),
        ("110105194912310021", "1101**********0021"),
        (USCC, "9135**********0Y43"),
        (f"subject {RESIDENT_ID} not found", "subject 1101**********002X not found"),
        (f"id={RESIDENT_ID},org={USCC}.", "id=1101**********002X,org=9135**********0Y43."),
        (f"身份证号{RESIDENT_ID}的被执行人", "身份证号1101**********002X的被执行人"),
        (f'{{"ZJHM":"{RESIDENT_ID}"}}', '{"ZJHM":"1101**********002X"}'),
        (f"{RESIDENT_ID}\n{RESIDENT_ID}", "1101**********002X\n1101**********002X"),
    ],
)
def test_identity_numbers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert "**********" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        UUID,
        UUID.upper(),
        f"delivery {UUID} answered",
        SHA256,
        SHA256.upper(),
        f"sha256={SHA256}",
        "12345678901234567",  # 17 digits
        "1234567890123456789",  # 19 digits
        "order 1234567890123456789 shipped",
        "A" + RESIDENT_ID,  # part of a longer token
        RESIDENT_ID + "9",
        "plain text with no numbers",
        "",
    ],
)
def test_other_values_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_lower_case_uscc_is_masked() -> None:
    assert redact(f"org {USCC.lower()}") == "org 9135**********0y43"


@pytest.fixture
def captured_log():
    """configure_logging, with the root handler writing to a StringIO; everything restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    noisy = ("zeep.transports", "paramiko.transport", "sqlalchemy.engine", "urllib3")
    saved_noisy = {name: logging.getLogger(name).level for name in noisy}
    saved_structlog = structlog.get_config()
    buffer = io.StringIO()
    try:
        configure_logging("INFO")
        assert len(root.handlers) == 1
        root.handlers[0].setStream(buffer)
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in saved_noisy.items():
            logging.getLogger(name).setLevel(level)
        structlog.reset_defaults()
        structlog.configure(**saved_structlog)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_stdlib_record_is_emitted_masked_as_json(captured_log: io.StringIO) -> None:
    logging.getLogger("gateway.test").warning("subject %s has no vehicle (org %s)", RESIDENT_ID, USCC)
    [record] = lines(captured_log)
    assert record["event"] == "subject 1101**********002X has no vehicle (org 9135**********0Y43)"
    assert record["level"] == "warning"
    assert record["logger"] == "gateway.test"
    assert record["timestamp"].endswith("Z")
    assert RESIDENT_ID not in captured_log.getvalue()
    assert USCC not in captured_log.getvalue()


def test_exception_text_is_masked(captured_log: io.StringIO) -> None:
    try:
        raise ValueError(f"bad subject {RESIDENT_ID}")
    except ValueError:
        logging.getLogger("gateway.test").exception("lookup failed")
    [record] = lines(captured_log)
    assert record["event"] == "lookup failed"
    assert "ValueError: bad subject 1101**********002X" in record["exception"]
    assert RESIDENT_ID not in captured_log.getvalue()


def test_structlog_string_values_are_masked(captured_log: io.StringIO) -> None:
    structlog.get_logger("gateway.test").info(f"looked up {RESIDENT_ID}", subject=USCC, count=3)
    [record] = lines(captured_log)
    assert record["event"] == "looked up 1101**********002X"
    assert record["subject"] == "9135**********0Y43"
    assert record["count"] == 3


def test_level_filters_and_chinese_stays_readable(captured_log: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")
    log.debug("hidden %s", RESIDENT_ID)
    log.info("被执行人 %s", RESIDENT_ID)
    [record] = lines(captured_log)
    assert record["event"] == "被执行人 1101**********002X"
    assert "被执行人" in captured_log.getvalue()  # ensure_ascii=False


def test_noisy_library_loggers_are_quietened(captured_log: io.StringIO) -> None:
    logging.getLogger("sqlalchemy.engine").info("SELECT ... %s", RESIDENT_ID)
    logging.getLogger("urllib3").info("POST body %s", RESIDENT_ID)
    assert lines(captured_log) == []
    assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING


def test_structured_values_are_masked(captured_log: io.StringIO) -> None:
    structlog.get_logger("gateway.test").info("batch", subjects=[RESIDENT_ID], subject={"id_number": USCC})
    assert RESIDENT_ID not in captured_log.getvalue()
    assert USCC not in captured_log.getvalue()
