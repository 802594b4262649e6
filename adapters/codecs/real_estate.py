"""Real-estate registry codec: titles, land use rights, mortgages and seals; seal,
renew and release. XML against ``schemas/xsd/real-estate-v1.xsd``, one message per
line of an SFTP batch file (format: docs/agencies/real-estate.md).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

from lxml import etree

from adapters.codecs.xml_codec import XML_MEDIA_TYPE, dump_checked, load_checked
from adapters.errors import (
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    IncomingInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import AgencyAnswer, DeliveryOrder, Envelope, Reply
from schemas import xml

NS = "urn:enforcement-gateway:real-estate:v1"
SCHEMA = "real-estate-v1"
_Q = "{%s}" % NS

ID_TYPES = {"person": "1", "organization": "8"}
MEASURES = {"seal": "11", "renew": "12", "release": "14"}
LEGAL_BASIS_NAMES = {
    "assistance_notice": "协助执行通知书",
    "ruling": "执行裁定书",
    "decision": "决定书",
    "enforcement_notice": "执行通知书",
}
SEAL_TYPES = {"1": "seal", "2": "queued seal", "3": "pre-seal", "4": "queued pre-seal", "5": "renewed seal"}
_IN_FORCE = {"1", "3", "5"}
_CODE_UNAVAILABLE = "1000"
_CODE_OK = "0000"


def _add(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    child = etree.SubElement(parent, _Q + tag)
    if text is not None:
        child.text = str(text)
    return child


def _text(element: etree._Element, tag: str) -> str | None:
    child = element.find(_Q + tag)
    return child.text if child is not None else None


class RealEstateCodec:
    kind = "real_estate"
    action_categories: dict[str, tuple[str, ...]] = {
        "inquiry": ("real_estate",),
        "seal": ("real_estate",),
        "renew": ("real_estate",),
        "release": ("real_estate",),
    }
    categories: tuple[str, ...] = ("real_estate",)
    actions: tuple[str, ...] = tuple(action_categories)
    transports: tuple[str, ...] = ("sftp",)

    # --- outgoing ---------------------------------------------------------------------

    def encode(self, order: DeliveryOrder) -> Envelope:
        if order.action not in self.action_categories:
            raise OutgoingInvalid(f"action {order.action!r} is not one the real-estate registry takes")
        message = etree.Element(_Q + "Message", nsmap={None: NS})
        head = _add(message, "Head")
        _add(head, "CXQQDH", order.message_id)  # the delivery id: the same on every attempt
        _add(head, "CREATETIME", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        data = _add(message, "Data")
        request = _add(data, "CXQQ" if order.action == "inquiry" else "KZQQ")
        _add(request, "XM", order.subject.name)
        _add(request, "ZJZL", ID_TYPES.get(order.subject.kind, "99"))
        _add(request, "ZJHM", order.subject.id_number)
        _add(request, "FYDM", order.court_code)
        _add(request, "CBR", order.officer)
        _add(request, "AH", order.case_number)
        if order.legal_basis_kind and order.legal_basis_number:
            _add(request, "WSLX", LEGAL_BASIS_NAMES.get(order.legal_basis_kind, order.legal_basis_kind))
            _add(request, "WSH", order.legal_basis_number)
        if order.action != "inquiry":
            self._add_control_lines(request, order)
        body = dump_checked(message, SCHEMA, f"{order.action} message")
        return Envelope(message_id=order.message_id, operation=order.action, body=body, media_type=XML_MEDIA_TYPE)

    @staticmethod
    def _add_control_lines(request: etree._Element, order: DeliveryOrder) -> None:
        if not order.lines:
            raise OutgoingInvalid(f"a {order.action} order needs at least one unit (lines is empty)")
        for index, line in enumerate(order.lines):
            if order.action in ("seal", "renew") and line.until is None:
                raise OutgoingInvalid(f"lines[{index}].until: a {order.action} needs the end of its term")
            if order.action in ("renew", "release") and not line.original_reference:
                raise OutgoingInvalid(f"lines[{index}].original_reference: a {order.action} must name the seal it acts on")
            unit = _add(request, "KZ")
            _add(unit, "BDCDYH", line.identifier)
            _add(unit, "KZCS", MEASURES[order.action])
            _add(unit, "CDWH", order.legal_basis_number or "")
            if line.until is not None and order.action != "release":
                _add(unit, "JSRQ", line.until.isoformat())
            if line.original_reference:
                _add(unit, "YCFH", line.original_reference)

    # --- incoming ---------------------------------------------------------------------

    def decode(self, reply: Reply, envelope: Envelope) -> AgencyAnswer:
        if reply.status >= 500:
            raise AgencyUnavailable(f"registry answered status {reply.status}")
        if reply.status >= 400:
            raise AgencyRefused(f"registry refused the message with status {reply.status}")
        root = load_checked(reply.body, SCHEMA)
        head = root.find(_Q + "Head")
        assert head is not None  # the XSD requires it
        key, request_sha256, code = _text(head, "CXQQDH"), _text(head, "QQSHA256"), _text(head, "RESPONSECODE")
        if request_sha256 is None or code is None:
            raise IncomingInvalid("answer has no QQSHA256/RESPONSECODE in its Head (a request, not an answer)", raw=reply.body)
        if key != envelope.message_id:
            raise AnswerNotBound(f"answer is for request key {key!r}, not {envelope.message_id!r}", raw=reply.body)
        if request_sha256 != xml.digest(xml.parse(envelope.body)):
            raise AnswerNotBound("answer's QQSHA256 does not match the digest of the request sent", raw=reply.body)
        info = f"code {code}: {_text(head, 'RESPONSEINFO')}" + (f" ({_text(head, 'ErrorMSG')})" if _text(head, "ErrorMSG") else "")
        if code == _CODE_UNAVAILABLE:
            raise AgencyUnavailable(f"registry could not answer now: {info}")
        if code != _CODE_OK:
            raise AgencyRefused(f"registry refused: {info}")
        answered_at = _text(head, "CREATETIME") or ""
        expected = "CXJG" if envelope.operation == "inquiry" else "KZJG"
        content = root.find(f"{_Q}Data/{_Q}{expected}")
        if content is None:
            raise IncomingInvalid(f"answer to a {envelope.operation} must carry Data/{expected}", raw=reply.body)
        common: dict[str, Any] = dict(message_id=key, request_sha256=request_sha256, answered_at=answered_at,
                                      raw=reply.body)
        if expected == "CXJG":
            return AgencyAnswer(assets=_assets(content, reply.body), **common)
        return AgencyAnswer(assets=[], controls=_controls(content, envelope, reply.body), **common)


# --- answer to dicts ----------------------------------------------------------------------


def _rows(parent: etree._Element, tag: str) -> list[dict[str, Any]]:
    """Each child ``tag`` as {field: text}, nested lists for repeated children."""
    rows = []
    for element in parent.findall(_Q + tag):
        row: dict[str, Any] = {}
        for child in element:
            # A parsed element's tag is text (the stubs allow the bytes or QName it may be set
            # to); rpartition is faster than etree.QName on 10,000-answer files.
            name = cast(str, child.tag).rpartition("}")[2]
            if len(child):
                row.setdefault(name, []).append({cast(str, c.tag).rpartition("}")[2]: c.text for c in child})
            else:
                row[name] = child.text
        rows.append(row)
    return rows


def _assets(content: etree._Element, raw: bytes) -> list[dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    for title in _rows(content, "FW"):
        holders = [{"name": h["QLRMC"], "share": h["FE"]} for h in title["QLR"]]
        assets[title["BDCDYH"]] = {
            "category": "real_estate",
            "identifier": title["BDCDYH"],
            "description": (
                f"building title {title['BDCQZH']}: {title['ZL']}, {title['JZMJ']} m², {title['GHYT']}, "
                f"{title['GYFS']} by " + ", ".join(f"{h['name']} ({h['share']})" for h in holders)
            )[:500],
            "encumbrances": [],
            "details": {"kind": "building", "address": title["ZL"], "floor_area": title["JZMJ"], "use": title["GHYT"],
                        "certificate": title["BDCQZH"], "co_ownership": title["GYFS"], "holders": holders,
                        "mortgages": [], "seals": []},
        }
    for land in _rows(content, "TD"):
        assets[land["BDCDYH"]] = {
            "category": "real_estate",
            "identifier": land["BDCDYH"],
            "description": f"land use right: {land['ZL']}, {land['SYQMJ']} m², {land['YT']}, {land['QLXZ']}"
                           + (f", until {land['ZZRQ']}" if land.get("ZZRQ") else ""),
            "encumbrances": [],
            "details": {"kind": "land", "address": land["ZL"], "area": land["SYQMJ"], "use": land["YT"],
                        "nature": land["QLXZ"], "until": land.get("ZZRQ"), "mortgages": [], "seals": []},
        }
    for mortgage in _rows(content, "DY"):
        asset = _asset_for(assets, mortgage["BDCDYH"], "mortgage", raw)
        asset["encumbrances"].append(
            f"mortgage to {mortgage['DYQR']} securing {mortgage['BDBZZQSE']} until {mortgage['JSRQ']} ({mortgage['DJZMH']})"
        )
        asset["details"]["mortgages"].append({
            "mortgagee": mortgage["DYQR"], "amount_secured": mortgage["BDBZZQSE"], "from": mortgage["QSRQ"],
            "until": mortgage["JSRQ"], "certificate": mortgage["DJZMH"],
        })
    seals = sorted(_rows(content, "CF"), key=lambda s: (s["BDCDYH"], int(s["CFSX"])))
    for seal in seals:
        asset = _asset_for(assets, seal["BDCDYH"], "seal", raw)
        ahead = [f"{s['court']} {s['ruling']}" for s in asset["details"]["seals"]]
        kind = SEAL_TYPES[seal["CFLX"]]
        asset["encumbrances"].append(
            f"{kind} place {seal['CFSX']} by {seal['CFJG']}, ruling {seal['CFWH']}, until {seal['JSRQ']}"
            + (f", behind {'; '.join(ahead)}" if ahead else "")
        )
        asset["details"]["seals"].append({
            "court": seal["CFJG"], "type": kind, "in_force": seal["CFLX"] in _IN_FORCE, "ruling": seal["CFWH"],
            "from": seal.get("QSRQ"), "until": seal["JSRQ"], "place": int(seal["CFSX"]), "reference": seal["DJBH"],
            "ahead": ahead,
        })
    return list(assets.values())


def _asset_for(assets: dict[str, dict[str, Any]], unit: str, what: str, raw: bytes) -> dict[str, Any]:
    asset = assets.get(unit)
    if asset is None:
        raise IncomingInvalid(f"answer lists a {what} on unit {unit} but no title or land right for it", raw=raw)
    return asset


_OUTCOMES = {"1": "controlled", "2": "queued", "3": "released", "4": "not_controlled"}


def _controls(content: etree._Element, envelope: Envelope, raw: bytes) -> list[dict[str, Any]]:
    asked = [e.text or "" for e in xml.parse(envelope.body).iter(_Q + "BDCDYH")]
    results = _rows(content, "KZ")
    answered = [r["BDCDYH"] for r in results]
    if sorted(answered) != sorted(asked):
        raise IncomingInvalid(f"answer covers units {sorted(answered)} but the request asked for {sorted(asked)}", raw=raw)
    controls = []
    for result in results:
        outcome = _OUTCOMES[result["KZZT"]]
        if outcome == "queued" and not result.get("CFSX"):
            raise IncomingInvalid(f"unit {result['BDCDYH']}: a queued seal must give its place (CFSX)", raw=raw)
        if outcome == "not_controlled" and not result.get("WNKZYY"):
            raise IncomingInvalid(f"unit {result['BDCDYH']}: not controlled without a reason (WNKZYY)", raw=raw)
        controls.append({
            "category": "real_estate",
            "identifier": result["BDCDYH"],
            "outcome": outcome,
            "effective_from": result.get("KSRQ"),
            "until": result.get("JSRQ"),
            "queue_position": int(result["CFSX"]) if outcome == "queued" else None,
            "ahead": [f"{s['CFJG']} {s['CFWH']}" for s in result.get("ZXCF", [])],
            "reason": result.get("WNKZYY"),
            "agency_reference": result.get("DJBH"),
        })
    return controls
