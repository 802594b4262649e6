"""The pull service's messages (schemas/xsd/pull-v1.xsd): reading its inputs and
writing its answers. Pure: elements and plain values in, elements out; every
answer written here is checked against the XSD before it leaves (soap_views).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Iterable

from lxml import etree

from gateway.timeutil import as_utc

NS = "urn:enforcement-gateway:pull:v1"
SCHEMA = "pull-v1"
KIND_CODE = {"query": "1", "control": "2"}
# What each operation is, by its input element's local name.
LISTS = {"getXzcxList": "query", "getXzkzList": "control"}
DOCUMENTS = {"cxwsInfo": "query", "kzwsInfo": "control"}
FEEDS = {"shfeedXzcxInfo": "query", "shfeedXzkzInfo": "control"}
DEFAULT_BATCH = 100
_IMAGE_TYPES = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


def _q(local: str) -> str:
    return f"{{{NS}}}{local}"


def _text(parent: etree._Element, local: str, value: str) -> etree._Element:
    child = etree.SubElement(parent, _q(local))
    child.text = value
    return child


def utc_text(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- reading inputs (already valid against the XSD) ---------------------------------------------------


def operation_of(payload: etree._Element) -> str:
    return etree.QName(payload).localname


def batch_size(payload: etree._Element) -> int:
    value = payload.findtext(_q("MAX"))
    return int(value) if value else DEFAULT_BATCH


def request_key(payload: etree._Element) -> str:
    return payload.findtext(_q("BDHM")) or ""


def send_back_reason(payload: etree._Element) -> str:
    return payload.findtext(_q("HTYY")) or ""


def feed_rows(payload: etree._Element) -> list[tuple[str, bytes | None]]:
    """Each row's key and answer bytes (None where FKNR is not base64: refused alone)."""
    rows = []
    for row in payload.iterfind(f"{_q('Data')}/{_q('FK')}"):
        try:
            body = base64.b64decode("".join((row.findtext(_q("FKNR")) or "").split()), validate=True)
        except (binascii.Error, ValueError):
            body = None
        rows.append((row.findtext(_q("BDHM")) or "", body))
    return rows


# --- writing answers -----------------------------------------------------------------------------------


def answer(operation: str, now: datetime, info: str = "ok") -> tuple[etree._Element, etree._Element]:
    """``<operation>Response`` with its Head (0000) and an empty Data; returns (root, Data)."""
    root = etree.Element(_q(f"{operation}Response"), nsmap={"p": NS})
    head = etree.SubElement(root, _q("Head"))
    _text(head, "CREATETIME", utc_text(now))
    _text(head, "RESPONSECODE", "0000")
    _text(head, "RESPONSEINFO", info[:500])
    return root, etree.SubElement(root, _q("Data"))


def add_pending(data: etree._Element, *, key: str, kind: str, action: str, accepted_at: datetime,
                deadline: datetime, documents: int, sha256: str, body: bytes) -> None:
    row = etree.SubElement(data, _q("QQ"))
    _text(row, "BDHM", key)
    _text(row, "XZ", KIND_CODE[kind])
    _text(row, "CZLX", action)
    _text(row, "CJSJ", utc_text(accepted_at))
    _text(row, "JZSJ", utc_text(deadline))
    _text(row, "WSSL", str(documents))
    _text(row, "SHA256", sha256)
    _text(row, "QQNR", base64.b64encode(body).decode("ascii"))


def add_document(data: etree._Element, *, position: int, name: str, media_type: str, content: bytes, md5: str,
                 sha256: str) -> None:
    row = etree.SubElement(data, _q("WSINFO"))
    _text(row, "XH", str(position))
    _text(row, "WJMC", name[:128])
    _text(row, "WJLX", _IMAGE_TYPES.get(media_type, media_type.rpartition("/")[2] or "bin"))
    _text(row, "WSNR", base64.b64encode(content).decode("ascii"))
    _text(row, "MD5", md5)
    _text(row, "SHA256", sha256)


def _card(parent: etree._Element, local: str, media_type: str, content: bytes, md5: str) -> None:
    card = etree.SubElement(parent, _q(local))
    _text(card, "WJLX", _IMAGE_TYPES.get(media_type, media_type.rpartition("/")[2] or "bin"))
    _text(card, "TPNR", base64.b64encode(content).decode("ascii"))
    _text(card, "MD5", md5)


def add_credential(data: etree._Element, *, name: str, court_code: str, work_card_number: str,
                   duty_card_number: str, work_card: tuple[str, bytes, str], duty_card: tuple[str, bytes, str]) -> None:
    row = etree.SubElement(data, _q("ZJINFO"))
    _text(row, "XM", name)
    _text(row, "FYDM", court_code)
    _text(row, "GZZBH", work_card_number)
    _text(row, "GWZBH", duty_card_number)
    _card(row, "GZZ", *work_card)
    _card(row, "GWZ", *duty_card)


def add_acks(data: etree._Element, acks: Iterable[tuple[str, bool, str]]) -> None:
    for key, accepted, info in acks:
        row = etree.SubElement(data, _q("HZ"))
        _text(row, "BDHM", key[:64] or "-")
        _text(row, "CLJG", "1" if accepted else "0")
        _text(row, "CLXX", (info or "-")[:500])
