"""Real-estate registry sandbox: the AGENCY side of docs/agencies/real-estate.md.

``RealEstateRegistry.handle(message) -> answer`` takes one request message and
returns one answer, whatever carries them (``BatchAgencyProcessor`` does it line
by line for SFTP batch files). It reads the messages with ``schemas.xml`` and the
XSD on its own and never imports the gateway's codec, so a codec mistake fails
the exchange instead of being mirrored.

* A message that is not valid XML for the XSD gets a 2040 answer naming the
  problem and its line (never a crash).
* Holdings come from ``real_estate_data.holdings_of`` (deterministic per subject);
  the seals on them are state: a seal on a unit another court holds is queued at
  the next place; renew extends a seal in force; release lifts one and promotes
  the next in line.
* A key (``CXQQDH``) seen before gets the very bytes of its first answer and no
  second effect.
* Every answer echoes the key and ``QQSHA256`` = ``schemas.xml.digest`` of the
  request element as received. Thread-safe: one lock around the state.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from lxml import etree

from sandboxes.real_estate_data import Holdings, Seal, holdings_of
from schemas import xml
from sandboxes.clock import beijing_today

__all__ = ["RealEstateCounters", "RealEstateRegistry"]

NS = "urn:enforcement-gateway:real-estate:v1"
SCHEMA = "real-estate-v1"
_Q = "{%s}" % NS
_MAX_TERM = timedelta(days=3 * 365 + 1)  # real estate: a seal lasts at most 3 years
_UNKNOWN_KEY = "UNKNOWN"
_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")  # the XSD's Key


@dataclass
class RealEstateCounters:
    messages: int = 0
    answered: int = 0
    duplicates: int = 0
    invalid: int = 0
    sealed: int = 0
    queued: int = 0
    renewed: int = 0
    released: int = 0
    not_controlled: int = 0


def _add(parent: etree._Element, tag: str, text: object | None = None) -> etree._Element:
    child = etree.SubElement(parent, _Q + tag)
    if text is not None:
        child.text = str(text)
    return child


def _text(element: etree._Element | None, tag: str) -> str | None:
    child = None if element is None else element.find(_Q + tag)
    return child.text if child is not None else None


class _NotControlled(Exception):
    pass


class RealEstateRegistry:
    def __init__(self, seed: int = 0, *, today: date | None = None):
        self.seed = seed
        self.counters = RealEstateCounters()
        self._today = today
        self._lock = threading.RLock()  # a refusal counts under the lock handle() may hold
        self._answers: dict[str, bytes] = {}
        self._seals: dict[str, list[Seal]] = {}  # unit -> seals in place order, once a unit was touched
        self._holdings: dict[str, Holdings] = {}

    def today(self) -> date:
        return self._today or beijing_today()

    def holdings(self, id_number: str, name: str) -> Holdings:
        """The subject's titles, land rights and mortgages (seals: see ``seals_on``)."""
        with self._lock:
            return self._holdings_locked(id_number, name)

    def seals_on(self, unit: str) -> list[Seal]:
        with self._lock:
            return [Seal(**vars(s)) for s in self._seals.get(unit, [])]

    def _holdings_locked(self, id_number: str, name: str) -> Holdings:
        held = self._holdings.get(id_number)
        if held is None:
            held = self._holdings[id_number] = holdings_of(id_number, name, self.seed)
            for unit in held.units:
                self._seals.setdefault(unit, [])
            for seal in held.seals:
                self._seals[seal.unit].append(Seal(**vars(seal)))
        return held

    # --- one message ----------------------------------------------------------------

    def handle(self, message: bytes) -> bytes:
        with self._lock:
            self.counters.messages += 1
        try:
            root = xml.parse(message)
        except xml.XmlRefused as exc:
            return self._refuse(_UNKNOWN_KEY, hashlib.sha256(message).hexdigest(), f"request refused: {exc}")
        request_digest = xml.digest(root)
        keys = root.findall(f".//{_Q}CXQQDH")
        key = keys[0].text if keys and keys[0].text and _KEY.match(keys[0].text) else _UNKNOWN_KEY
        try:
            xml.validate(root, SCHEMA)
        except xml.XmlInvalid as exc:
            return self._refuse(key, request_digest, f"request {exc}"[:200])
        head = root.find(_Q + "Head")
        if head is not None and head.find(_Q + "QQSHA256") is not None:
            return self._refuse(key, request_digest, "an answer was sent as a request")
        with self._lock:
            stored = self._answers.get(key)
            if stored is not None:
                self.counters.duplicates += 1
                return stored
            data = root.find(f"{_Q}Data/*")
            kind = etree.QName(data).localname if data is not None else ""
            if data is not None and kind == "CXQQ":
                request = data
                answer = self._answer(key, request_digest, lambda content: self._inquiry(request, content), "CXJG")
            elif data is not None and kind == "KZQQ":
                request = data
                answer = self._answer(key, request_digest, lambda content: self._control(request, content), "KZJG")
            else:
                return self._refuse(key, request_digest, "Data must hold a CXQQ or KZQQ request")
            self._answers[key] = answer
            self.counters.answered += 1
            return answer

    def _head(self, message: etree._Element, key: str, request_digest: str, code: str, info: str) -> etree._Element:
        head = _add(message, "Head")
        _add(head, "CXQQDH", key)
        _add(head, "CREATETIME", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        _add(head, "QQSHA256", request_digest)
        _add(head, "RESPONSECODE", code)
        _add(head, "RESPONSEINFO", info)
        return head

    def _refuse(self, key: str, request_digest: str, problem: str) -> bytes:
        with self._lock:
            self.counters.invalid += 1
        message = etree.Element(_Q + "Message", nsmap={None: NS})
        head = self._head(message, key if key else _UNKNOWN_KEY, request_digest, "2040", "请求异常")
        _add(head, "ErrorMSG", problem[:200])
        return self._checked(message)

    def _answer(self, key: str, request_digest: str, fill, content_tag: str) -> bytes:
        message = etree.Element(_Q + "Message", nsmap={None: NS})
        self._head(message, key, request_digest, "0000", "成功")
        fill(_add(_add(message, "Data"), content_tag))
        return self._checked(message)

    @staticmethod
    def _checked(message: etree._Element) -> bytes:
        xml.validate(message, SCHEMA)  # the registry never sends what its own XSD refuses
        return xml.serialize(message)

    # --- inquiry ---------------------------------------------------------------------

    def _inquiry(self, request: etree._Element, content: etree._Element) -> None:
        held = self._holdings_locked(_text(request, "ZJHM") or "", _text(request, "XM") or "")
        for title in held.titles:
            fw = _add(content, "FW")
            for tag, value in (("BDCDYH", title.unit), ("ZL", title.address), ("JZMJ", title.floor_area),
                               ("GHYT", title.use), ("BDCQZH", title.certificate), ("GYFS", title.co_ownership)):
                _add(fw, tag, value)
            for holder, share in title.holders:
                qlr = _add(fw, "QLR")
                _add(qlr, "QLRMC", holder)
                _add(qlr, "FE", share)
        for land in held.land:
            td = _add(content, "TD")
            for tag, value in (("BDCDYH", land.unit), ("ZL", land.address), ("SYQMJ", land.area), ("YT", land.use),
                               ("QLXZ", land.nature), ("ZZRQ", land.until.isoformat())):
                _add(td, tag, value)
        for mortgage in held.mortgages:
            dy = _add(content, "DY")
            for tag, value in (("BDCDYH", mortgage.unit), ("DYQR", mortgage.mortgagee), ("BDBZZQSE", f"{mortgage.amount:.2f}"),
                               ("QSRQ", mortgage.start.isoformat()), ("JSRQ", mortgage.end.isoformat()),
                               ("DJZMH", mortgage.certificate)):
                _add(dy, tag, value)
        for unit in held.units:
            for seal in self._seals.get(unit, []):
                cf = _add(content, "CF")
                _add(cf, "BDCDYH", unit)
                _add(cf, "CFJG", seal.court)
                _add(cf, "CFLX", seal.kind)
                _add(cf, "CFWH", seal.ruling)
                if seal.start is not None:
                    _add(cf, "QSRQ", seal.start.isoformat())
                _add(cf, "JSRQ", seal.end.isoformat())
                _add(cf, "CFSX", seal.place)
                _add(cf, "DJBH", seal.reference)

    # --- controls ---------------------------------------------------------------------

    def _control(self, request: etree._Element, content: etree._Element) -> None:
        held = self._holdings_locked(_text(request, "ZJHM") or "", _text(request, "XM") or "")
        court = _text(request, "FYDM") or ""
        key = _text(request.getroottree().getroot().find(_Q + "Head"), "CXQQDH") or ""  # the Message's Head
        for line in request.findall(_Q + "KZ"):
            unit = _text(line, "BDCDYH") or ""
            result = _add(content, "KZ")
            _add(result, "BDCDYH", unit)
            try:
                if unit not in held.units:
                    raise _NotControlled(f"unit {unit} is not held by the subject")
                measure = _text(line, "KZCS")
                end = _text(line, "JSRQ")
                original = _text(line, "YCFH")
                ruling = _text(line, "CDWH") or ""
                if measure in ("11", "13"):
                    self._seal(result, unit, court, ruling, end, key)
                elif measure == "12":
                    self._renew(result, unit, court, end, original)
                else:
                    self._release(result, unit, court, original)
            except _NotControlled as refusal:
                self.counters.not_controlled += 1
                _add(result, "KZZT", "4")
                _add(result, "WNKZYY", str(refusal)[:200])

    def _term_end(self, end: str | None) -> date:
        if end is None:
            raise _NotControlled("a seal needs the end of its term (JSRQ)")
        until = date.fromisoformat(end)
        if until <= self.today():
            raise _NotControlled(f"end of term {until} is not in the future")
        if until - self.today() > _MAX_TERM:
            raise _NotControlled("a real-estate seal lasts at most 3 years")
        return until

    def _seal(self, result: etree._Element, unit: str, court: str, ruling: str, end: str | None, key: str) -> None:
        until = self._term_end(end)
        seals = self._seals[unit]
        if any(s.court == court and s.ruling == ruling for s in seals):
            raise _NotControlled(f"already sealed or queued by this court under ruling {ruling}")
        reference = "CF" + hashlib.sha256(f"{key}:{unit}".encode()).hexdigest()[:12].upper()
        if not seals:
            start = self.today()
            seal = Seal(unit, court, "1", ruling, start, until, 1, reference)
            self.counters.sealed += 1
            _add(result, "KZZT", "1")
            _add(result, "KSRQ", start.isoformat())
            _add(result, "JSRQ", until.isoformat())
            _add(result, "DJBH", reference)
        else:
            seal = Seal(unit, court, "2", ruling, None, until, len(seals) + 1, reference)
            self.counters.queued += 1
            _add(result, "KZZT", "2")
            _add(result, "JSRQ", until.isoformat())
            _add(result, "DJBH", reference)
            _add(result, "CFSX", seal.place)
            for ahead in seals:
                zx = _add(result, "ZXCF")
                _add(zx, "CFJG", ahead.court)
                _add(zx, "CFWH", ahead.ruling)
        seals.append(seal)

    def _own_seal(self, unit: str, court: str, original: str | None) -> Seal:
        if not original:
            raise _NotControlled("the original seal (YCFH) must be named")
        for seal in self._seals[unit]:
            if seal.reference == original:
                if seal.court != court:
                    raise _NotControlled(f"seal {original} was placed by another court")
                return seal
        raise _NotControlled(f"no seal {original} on unit {unit}")

    def _renew(self, result: etree._Element, unit: str, court: str, end: str | None, original: str | None) -> None:
        seal = self._own_seal(unit, court, original)
        if seal.place != 1:
            raise _NotControlled(f"seal {seal.reference} is queued at place {seal.place}, not in force")
        until = self._term_end(end)
        if until <= seal.end:
            raise _NotControlled(f"a renewal must end after the current end {seal.end}")
        seal.kind, seal.end = "5", until
        self.counters.renewed += 1
        _add(result, "KZZT", "1")
        _add(result, "KSRQ", self.today().isoformat())
        _add(result, "JSRQ", until.isoformat())
        _add(result, "DJBH", seal.reference)

    def _release(self, result: etree._Element, unit: str, court: str, original: str | None) -> None:
        seal = self._own_seal(unit, court, original)
        seals = self._seals[unit]
        seals.remove(seal)
        for later in seals:
            if later.place > seal.place:
                later.place -= 1
        if seals and seals[0].place == 1 and seals[0].start is None:
            # The next in line takes effect now: a queued seal becomes a seal (2 -> 1).
            seals[0].kind, seals[0].start = "1", self.today()
        self.counters.released += 1
        _add(result, "KZZT", "3")
        _add(result, "KSRQ", self.today().isoformat())
        _add(result, "DJBH", seal.reference)
