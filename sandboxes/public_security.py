"""Public security bureau sandbox: the AGENCY side of the REST contract.

Contract: ``docs/agencies/public-security.md``. This module reads and writes the
agency format on its own — it must not import ``gateway``, ``adapters``,
``schemas`` or ``audit`` — so that a mistake in the gateway's codec shows up as
a failing exchange instead of being mirrored here.

Per call to ``POST {prefix}/inquiries`` or ``POST {prefix}/controls``
(``json_contract.serve_call``):

1. fault injection (latency on every call, then ``503``/``1000`` with
   probability ``failure_rate``) before any processing;
2. strict validation: anything outside the contract is ``400``/``3000`` with
   ``RESPONSEINFO`` naming the field and the rule;
3. a repeated ``XXID`` gets the very bytes of its first answer and no new effect;
4. otherwise an inquiry is answered with the deterministic records of
   ``public_security_data`` for the lists asked in ``CXLB``, each vehicle with
   its state as the seals placed here left it; a control (seal, release,
   watch) is carried out by ``public_security_controls``.

Run it with the others: ``gateway sandbox`` (the registry's ports) or ``sandboxes.run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from flask import Flask

from sandboxes.json_contract import (
    ContractViolation,
    SandboxState,
    answer,
    check_fields,
    check_head,
    check_message_id_header,
    create_contract_app,
    parse_json,
    text,
    unique_choices,
)
from sandboxes.public_security_controls import VehicleRegister, read_control
from sandboxes.public_security_data import CATEGORIES, ID_TYPES, describe_subject
from sandboxes.server import FaultInjector, FaultKnobs

__all__ = ["MAX_BODY_BYTES", "PublicSecuritySandboxState", "create_app", "describe_subject"]

DEFAULT_PREFIX = "/psb/v1"
EXTENSION_KEY = "psb_sandbox"
MAX_BODY_BYTES = 64 * 1024

_QUERY_REQUIRED = ("XM", "ZJZL", "ZJHM", "CXLB")


class PublicSecuritySandboxState(SandboxState):
    """Counters, duplicate memory (``SandboxState``) and the seal and watch
    registers (``vehicles``); ``app.extensions["psb_sandbox"]``."""

    def __init__(self, faults: FaultInjector):
        super().__init__(faults)
        self.vehicles = VehicleRegister()


@dataclass(frozen=True)
class Inquiry:
    xxid: str
    name: str
    id_type: str
    id_number: str
    categories: tuple[str, ...]


def _validate_inquiry(raw: bytes) -> Inquiry:
    document = check_fields(parse_json(raw), "body", ("Head", "Query"))
    xxid = check_head(document)["XXID"]

    query = check_fields(document["Query"], "Query", _QUERY_REQUIRED)
    name = text(query, "Query", "XM")
    id_type = text(query, "Query", "ZJZL")
    if id_type not in ID_TYPES:
        raise ContractViolation("Query.ZJZL", f"must be '1' (resident ID) or '8' (social credit code), got {id_type!r}")
    id_number = text(query, "Query", "ZJHM")
    if len(id_number) != 18:
        raise ContractViolation("Query.ZJHM", f"must be 18 characters, got {len(id_number)}")
    categories = unique_choices(query, "Query", "CXLB", CATEGORIES)
    check_message_id_header(xxid)
    return Inquiry(xxid, name, id_type, id_number, categories)


def _read_inquiry(state: PublicSecuritySandboxState, raw: bytes) -> tuple[str, Callable[[], bytes]]:
    inquiry = _validate_inquiry(raw)

    def render() -> bytes:
        data = describe_subject(inquiry.id_number, inquiry.name, inquiry.id_type, inquiry.categories)
        for vehicle in data.get("CL", []):
            vehicle["ZT"] = state.vehicles.current_state(vehicle)
        return answer(inquiry.xxid, raw, data)

    return inquiry.xxid, render


def _read_control(state: PublicSecuritySandboxState, raw: bytes) -> tuple[str, Callable[[], bytes]]:
    document = check_fields(parse_json(raw), "body", ("Head", "Control"))
    head = check_head(document, basis_required=True)
    order = read_control(document, head, state.vehicles.today())
    check_message_id_header(order.xxid)

    def render() -> bytes:
        data = state.vehicles.carry_out(order)
        return answer(order.xxid, raw, data)

    return order.xxid, render


def create_app(knobs: FaultKnobs | None = None, *, prefix: str = DEFAULT_PREFIX) -> Flask:
    """A fresh sandbox (its own counters, duplicate memory and registers) as a Flask app."""
    state = PublicSecuritySandboxState(faults=FaultInjector(knobs))
    return create_contract_app(__name__, prefix=prefix, state=state, extension_key=EXTENSION_KEY,
                               max_body_bytes=MAX_BODY_BYTES, routes={
                                   "inquiries": lambda raw: _read_inquiry(state, raw),
                                   "controls": lambda raw: _read_control(state, raw),
                               })
