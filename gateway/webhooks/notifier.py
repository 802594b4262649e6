"""The webhook notifier: on the housekeeper (gateway/background), find new events and send what is due.

Sending happens outside any transaction (a court's slow server holds no database
lock): claim (one short transaction), POST, record the outcome (another). A
notification whose process dies mid-send is claimed again when its lease ends.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Callable

import requests

from audit.store import AuditLog, SystemActor
from gateway.db import Database
from gateway.deliveries.retry import backoff_seconds
from gateway.settings import WebhooksSection
from gateway.timeutil import court_date
from gateway.webhooks import services
from gateway.webhooks.signing import SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)
NOTIFIER = SystemActor(sub="gateway:webhooks")


def post_notification(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """One POST; (status, error). requests' errors become a short text here, at the edge."""
    try:
        reply = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= reply.status_code < 300:
        return reply.status_code, None
    return reply.status_code, f"HTTP {reply.status_code}: {reply.text[:200]}"


class WebhookNotifier:
    def __init__(self, db: Database, audit: AuditLog, settings: WebhooksSection, *, warning_days: int,
                 clock: Callable, send: Callable = post_notification):
        self.db, self.audit, self.settings, self.clock, self.send = db, audit, settings, clock, send
        self.warning_days = warning_days
        self._last = time.monotonic()  # the first pass one interval after start, like every other

    def maybe_run(self) -> None:
        if time.monotonic() - self._last < self.settings.interval_seconds:
            return
        self._last = time.monotonic()
        self.run_once()

    def run_once(self) -> int:
        """One scan and one round of sends; returns how many were sent (delivered or not)."""
        self.scan()
        return self.send_due()

    def scan(self) -> int:
        now = self.clock()
        made = 0
        with self.db.transaction() as session:
            for subscription in services.active_subscriptions(session):
                events = services.find_events(session, subscription, now=now, today=court_date(now),
                                              warning_days=self.warning_days)
                made += services.enqueue(session, subscription, events, now=now)
        return made

    def send_due(self) -> int:
        now = self.clock()
        with self.db.transaction() as session:
            claimed = services.claim_due(session, now=now, lease_seconds=self.settings.timeout_seconds + 30,
                                         limit=self.settings.batch_size)
            outgoing = [services.outgoing(session, i) for i in claimed]
        for item in outgoing:
            body = json.dumps(item.payload, ensure_ascii=False, sort_keys=True).encode()
            sent_at = int(self.clock().timestamp())
            headers = {"Content-Type": "application/json", "User-Agent": "enforcement-gateway-webhooks",
                       "X-Gateway-Event": item.event, "X-Gateway-Notification": item.id,
                       SIGNATURE_HEADER: signature(item.secret, sent_at, body)}
            status, error = self.send(item.url, body, headers, self.settings.timeout_seconds)
            now = self.clock()
            retry_at = None
            if item.attempt < self.settings.max_attempts:
                retry_at = now + timedelta(seconds=backoff_seconds(
                    item.attempt, base=self.settings.backoff_base_seconds, cap=self.settings.backoff_cap_seconds))
            with self.db.transaction() as session:
                outcome = services.record_outcome(session, item.id, status=status, error=error, now=now,
                                                  retry_at=retry_at, audit=self.audit, actor=NOTIFIER)
            if outcome != "delivered":
                log.warning("webhook %s to %s: %s (attempt %d)", item.event, item.url, error, item.attempt)
        return len(outgoing)
