"""A sandbox bank that polls the gateway (``mode = "pull"``), as banks do in the
national online inquiry system (docs/agencies/pull.md).

The bank's logic is ``sandboxes.bank.BankAgency`` (the same ledger, the same
duplicate memory by ``BDHM``); only the way requests reach it differs. Every
``interval_seconds`` a thread runs one round:

* queries: ``getXzcxList`` → for each row with documents (``WSSL`` > 0)
  ``cxwsInfo`` → each document's MD5 checked against ``md5(WSNR)`` → the bank
  answers ``QQNR`` → one ``shfeedXzcxInfo`` with every row answered;
* controls: ``getXzkzList`` → ``kzwsInfo`` and ``zjInfo`` → the same checks,
  and a control without documents or credentials is sent back.

A request the bank will not answer goes back with ``htInfo`` and the reason
(业务审核未通过: a document whose stated MD5 is not the MD5 of its bytes, names
the file and both digests), so the delivery ends rejected and says why.

The client is zeep, built once from the gateway's ``?wsdl`` URL, with a
WS-Security UsernameToken, TLS verified against the given CA file, an
operation timeout, and zeep's envelope logging off (the envelopes carry names
and identity numbers). One thread uses it at a time (``poll_once`` holds a lock).

``feedback_drop_rate`` is a fault knob: that share of answer rows is computed
and then not fed back, as if the feed call had been lost, so the gateway's
refetch rule must offer the request again (the bank then answers from its
duplicate memory).

Like every sandbox it imports only ``schemas`` and ``sandboxes``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from sandboxes.bank import BankAgency

# zeep.transports logs every envelope at DEBUG: they carry names and identity numbers.
logging.getLogger("zeep.transports").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

# PUBLISHED DEMO CREDENTIAL, not a secret: the sandbox bank "bank-c" logs in to the
# gateway's pull service with it; config/agencies.toml holds its hash and
# config/demo/README.md says it is published. A real agency's password never sits here.
DEMO_USERNAME = "bank-c"
DEMO_PASSWORD = "bank-c-demo-password-published"

# External references stay allowed: the served WSDL imports its XSD from the same
# service (``?xsd=pull-v1``). DTDs and entities are refused.
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=False,
                              xml_huge_tree=False)
REVIEW_FAILED = "业务审核未通过"


@dataclass
class PollCounters:
    """What the poller did; read by tests and the demo."""

    rounds: int = 0
    listed: int = 0  # rows listed (a request offered again counts again)
    answered: int = 0  # answer rows the gateway acknowledged (CLJG 1)
    sent_back: int = 0  # requests sent back with htInfo and acknowledged
    acks_refused: int = 0  # rows the gateway refused (CLJG 0)
    feedback_dropped: int = 0  # answers computed and then not fed back (fault knob)
    errors: int = 0  # rounds cut short by a fault, a timeout or a refused login
    refusals: list[tuple[str, str]] = field(default_factory=list)  # (BDHM, CLXX) of each refused row
    sent_back_reasons: dict[str, str] = field(default_factory=dict)  # BDHM -> HTYY
    last_error: str | None = None


@dataclass(frozen=True)
class _Kind:
    list_operation: str
    documents_operation: str
    feed_operation: str
    is_control: bool


QUERIES = _Kind("getXzcxList", "cxwsInfo", "shfeedXzcxInfo", is_control=False)
CONTROLS = _Kind("getXzkzList", "kzwsInfo", "shfeedXzkzInfo", is_control=True)


def md5_hex(content: bytes) -> str:
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


class PollingBank:
    """A bank polling the gateway's SOAP service at ``wsdl_url`` (``https://…/api/v1/agency/soap?wsdl``)."""

    def __init__(
        self,
        wsdl_url: str,
        *,
        username: str = DEMO_USERNAME,
        password: str = DEMO_PASSWORD,
        bearer_token: str | None = None,
        verify: bool | str = True,
        bank: BankAgency | None = None,
        interval_seconds: float = 1.0,
        timeout_seconds: float = 10.0,
        batch_size: int = 100,
        feedback_drop_rate: float = 0.0,
        seed: int | None = None,
    ):
        if not interval_seconds > 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        if not 1 <= batch_size <= 500:
            raise ValueError(f"batch_size must be within [1, 500], got {batch_size!r}")
        if not 0.0 <= feedback_drop_rate < 1.0:
            raise ValueError(f"feedback_drop_rate must be within [0, 1), got {feedback_drop_rate!r}")
        self.bank = bank or BankAgency("Bank C", 18)
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.feedback_drop_rate = feedback_drop_rate
        self.counters = PollCounters()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # never through a proxy from the environment
        self._session.verify = verify
        # The bank's agency token instead of its password: the gateway takes a token over
        # plain HTTP too (a UsernameToken only over TLS), as `gateway serve --with-sandboxes` runs.
        wsse: UsernameToken | None = UsernameToken(username, password)
        if bearer_token is not None:
            self._session.headers["Authorization"] = f"Bearer {bearer_token}"
            wsse = None
        transport = Transport(session=self._session, timeout=timeout_seconds, operation_timeout=timeout_seconds)
        # Built once: the WSDL (and the XSD it imports) is read from the gateway here, not per call.
        self._client = zeep.Client(wsdl_url, transport=transport, wsse=wsse, settings=ZEEP_SETTINGS)
        self._service = self._client.service

    # --- running --------------------------------------------------------------------

    def start(self) -> PollingBank:
        if self._thread is not None:
            raise RuntimeError("a PollingBank can be started once")
        self._thread = threading.Thread(target=self._run, name="polling-bank", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._session.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = self.poll_once()
            if not busy:  # a full batch: more may be waiting, poll again at once
                self._stop.wait(self.interval_seconds)

    def poll_once(self) -> bool:
        """One round, queries then controls; whether a list came back full. Never raises:
        a fault, a timeout or a refused login is counted and the next round tries again."""
        with self._lock:
            self.counters.rounds += 1
            full = False
            for kind in (QUERIES, CONTROLS):
                try:
                    full |= self._round(kind)
                except Exception as exc:  # noqa: BLE001 - zeep faults, requests errors, timeouts: the next round retries
                    self.counters.errors += 1
                    self.counters.last_error = f"{kind.list_operation}: {type(exc).__name__}: {exc}"[:500]
                    log.warning("polling bank round failed: %s", self.counters.last_error)
            return full

    def log_in(self) -> None:
        """One round of controls alone, so the first log-in (the server's password hash,
        once per process) is paid before the rounds a caller times. Anything it lists is
        reviewed and answered as in any round; unlike ``poll_once`` a failure raises."""
        with self._lock:
            self._round(CONTROLS)

    # --- one round --------------------------------------------------------------------

    def _round(self, kind: _Kind) -> bool:
        listing = getattr(self._service, kind.list_operation)(MAX=self.batch_size)
        _check_head(listing, kind.list_operation)
        rows = list(listing.Data.QQ or []) if listing.Data is not None else []
        self.counters.listed += len(rows)
        feed = []
        for row in rows:
            reason = self._review(kind, row)
            if reason is not None:
                self._send_back(row.BDHM, reason)
                continue
            answer = self.bank.handle(row.QQNR)
            if self.feedback_drop_rate and self._rng.random() < self.feedback_drop_rate:
                self.counters.feedback_dropped += 1
                continue
            feed.append({"BDHM": row.BDHM, "FKNR": answer})
        if feed:
            acks = getattr(self._service, kind.feed_operation)(Data={"FK": feed})
            _check_head(acks, kind.feed_operation)
            for ack in acks.Data.HZ or []:
                if ack.CLJG == "1":
                    self.counters.answered += 1
                else:
                    self.counters.acks_refused += 1
                    self.counters.refusals.append((ack.BDHM, ack.CLXX))
        return len(rows) >= self.batch_size

    def _review(self, kind: _Kind, row: Any) -> str | None:
        """Why this request cannot be answered (None: it can): its documents and, for a
        control, its officers' credentials, fetched by key and checked by MD5."""
        key, stated = row.BDHM, int(row.WSSL)
        if stated == 0:
            return f"{REVIEW_FAILED}: a control needs its legal documents (WSSL 0)" if kind.is_control else None
        documents = getattr(self._service, kind.documents_operation)(BDHM=key)
        _check_head(documents, kind.documents_operation)
        rows = list(documents.Data.WSINFO or []) if documents.Data is not None else []
        if len(rows) != stated:
            return f"{REVIEW_FAILED}: {stated} documents listed (WSSL), {len(rows)} fetched"
        for document in rows:
            computed = md5_hex(document.WSNR)
            if computed != document.MD5:
                return (f"{REVIEW_FAILED}: document {document.XH} {document.WJMC} fails its MD5 check "
                        f"(stated {document.MD5}, computed {computed})")
        if not kind.is_control:
            return None
        credentials = self._service.zjInfo(BDHM=key)
        _check_head(credentials, "zjInfo")
        officers = list(credentials.Data.ZJINFO or []) if credentials.Data is not None else []
        if not officers:
            return f"{REVIEW_FAILED}: no officer credentials (ZJINFO) on file for this control"
        for officer in officers:
            for card in ("GZZ", "GWZ"):
                image = getattr(officer, card)
                if md5_hex(image.TPNR) != image.MD5:
                    return f"{REVIEW_FAILED}: credential image {card} of officer {officer.XM} fails its MD5 check"
        return None

    def _send_back(self, key: str, reason: str) -> None:
        acks = self._service.htInfo(BDHM=key, HTYY=reason[:500])
        _check_head(acks, "htInfo")
        for ack in acks.Data.HZ or []:
            if ack.CLJG == "1":
                self.counters.sent_back += 1
                self.counters.sent_back_reasons[ack.BDHM] = reason
            else:
                self.counters.acks_refused += 1
                self.counters.refusals.append((ack.BDHM, ack.CLXX))


class PullServiceError(RuntimeError):
    """The gateway answered an operation with a RESPONSECODE other than 0000."""


def _check_head(answer: Any, operation: str) -> None:
    head = answer.Head
    if head.RESPONSECODE != "0000":
        raise PullServiceError(f"{operation} answered {head.RESPONSECODE}: {head.RESPONSEINFO}")
