"""Errors raised by transports and codecs; nothing else leaves ``adapters/``.

Each transport translates its library's exceptions (requests, zeep, paramiko) at
its edge into this tree, so the worker decides retry or give up from
``retryable`` alone and never sees a library exception.

    AdapterError
    ├── TransportError        retryable: the exchange did not complete
    │   ├── ConnectFailed     could not reach the agency
    │   ├── HostKeyRejected   final: the server is not the one pinned (SFTP host key)
    │   └── TransportTimeout  no answer within the timeout
    ├── AgencyUnavailable     retryable: the agency answered "try later" (5xx, busy)
    ├── AgencyRefused         final: the agency refused this message (4xx, refusal code)
    └── MessageInvalid        final: a message broke its schema
        ├── OutgoingInvalid   ours: never sent
        └── IncomingInvalid   theirs: quarantined, the delivery says why
            └── AnswerNotBound  the answer names another message or request hash
"""

from __future__ import annotations


class AdapterError(Exception):
    code = "adapter_error"
    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TransportError(AdapterError):
    code = "transport_error"
    retryable = True


class ConnectFailed(TransportError):
    code = "connect_failed"


class TransportTimeout(TransportError):
    code = "timeout"


class HostKeyRejected(TransportError):
    """The server offered a host key other than the pinned one: never accepted, and
    retrying will not help until an operator looks (a new key, or someone in between)."""

    code = "host_key_rejected"
    retryable = False


class AgencyUnavailable(AdapterError):
    code = "agency_unavailable"
    retryable = True


class AgencyRefused(AdapterError):
    code = "agency_refused"


class MessageInvalid(AdapterError):
    code = "message_invalid"


class OutgoingInvalid(MessageInvalid):
    code = "outgoing_invalid"


class IncomingInvalid(MessageInvalid):
    code = "incoming_invalid"

    def __init__(self, message: str, *, raw: bytes = b""):
        super().__init__(message)
        self.raw = raw  # kept for the quarantine record


class AnswerNotBound(IncomingInvalid):
    code = "answer_not_bound"
