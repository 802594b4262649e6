"""REST transport: POST an envelope to ``{endpoint}/{operation}`` over HTTP(S).

It knows nothing of agencies. ``requests`` exceptions are translated in
``_translated_errors`` and go no further. Retries are left to the worker, whose
schedule lives in the database; this transport makes exactly one attempt.
"""

from __future__ import annotations

import threading

import requests

from adapters.interfaces import Envelope, Reply
from adapters.transports.http_errors import translated_http_errors


class RestTransport:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 3.0,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
    ):
        """``verify``: True, False or a CA bundle file; ``client_cert``/``client_key``:
        PEM files for mutual TLS (the key may sit in the certificate file)."""
        if client_key and not client_cert:
            raise ValueError("client_key needs client_cert")
        self.endpoint = endpoint.rstrip("/")
        self._timeout = (connect_timeout_seconds, timeout_seconds)
        self._verify = verify
        self._client_cert: str | tuple[str, str] | None = (
            (client_cert, client_key) if client_cert and client_key else client_cert)
        # requests.Session is not thread-safe: one per worker thread.
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.verify = self._verify
            session.cert = self._client_cert
            session.trust_env = False  # never route agency traffic through a proxy from the environment
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def send(self, envelope: Envelope) -> Reply:
        url = f"{self.endpoint}/{envelope.operation}"
        headers = {"Content-Type": envelope.media_type, "X-Message-Id": envelope.message_id, **envelope.headers}
        with translated_http_errors(url):
            response = self._session().post(url, data=envelope.body, headers=headers, timeout=self._timeout)
            body = response.content
        return Reply(status=response.status_code, body=body, media_type=response.headers.get("Content-Type", ""))

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
