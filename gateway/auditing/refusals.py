"""Aggregation of refused calls that carry no valid token.

Every refused call is audited, but a 401 costs an attacker nothing, and each
audit event is a serialised append: a flood of bad tokens would fill the chain
and queue every real writer behind it. So per source address and window
(``audit.unauthenticated_audit_window_seconds``, 60 s by default) only the first
401 (or 429: a login refused while its user name or address is locked out) is
written as its own event; the rest are counted, and one summary event
(``api.unauthenticated``, outcome ``refused_aggregated``, with the count, the
source and the window) is written when the window is over: on the next refusal
or on the housekeeper's next look, whichever comes first. Counts are per
process. Refusals by a caller with a valid token (403, 400, 404...) are never
aggregated: they name an officer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class _Window:
    started: datetime
    suppressed: int = 0
    last_path: str = ""


@dataclass(frozen=True)
class RefusalSummary:
    source: str
    started: datetime
    ended: datetime
    count: int
    last_path: str


class UnauthenticatedRefusals:
    def __init__(self, window_seconds: int):
        self._window = timedelta(seconds=window_seconds)
        self._open: dict[str, _Window] = {}
        self._closed: list[tuple[str, _Window]] = []
        self._lock = threading.Lock()

    def admit(self, source: str, path: str, now: datetime) -> bool:
        """True if this refusal is to be audited on its own (the first of its window)."""
        with self._lock:
            window = self._open.get(source)
            if window is None or now - window.started >= self._window:
                if window is not None:
                    self._closed.append((source, window))  # its summary goes out with the next ``ended``
                self._open[source] = _Window(now)
                return True
            window.suppressed += 1
            window.last_path = path
            return False

    def ended(self, now: datetime) -> list[RefusalSummary]:
        """Summaries of the windows that are over (with refusals left to record); forgets them."""
        with self._lock:
            done = self._closed + [(s, w) for s, w in self._open.items() if now - w.started >= self._window]
            self._closed = []
            for source, window in done:
                if self._open.get(source) is window:
                    del self._open[source]
        return [RefusalSummary(s, w.started, w.started + self._window, w.suppressed, w.last_path)
                for s, w in done if w.suppressed]
