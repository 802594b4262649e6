"""Market regulation sandbox (company register, equity): the AGENCY side of the
REST contract in ``docs/agencies/market-regulation.md``.

Like the public security sandbox it reads and writes the agency format on its
own — it must not import ``gateway``, ``adapters``, ``schemas`` or ``audit`` —
so that a mistake in the gateway's codec shows up as a failing exchange.

Per call to ``POST {prefix}/inquiries`` or ``POST {prefix}/controls``
(``json_contract.serve_call``): fault injection first; strict validation
(``400``/``3000`` naming the field); a repeated ``XXID`` gets the very bytes of
its first answer and no new effect; otherwise an inquiry is answered with the
deterministic records of ``market_regulation_data`` and the freezes the
register holds on each holding, and an execute order (freeze, renew, release)
is carried out by ``market_regulation_controls``.

Run it with the others: ``gateway sandbox`` (the registry's ports) or ``sandboxes.run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

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
from sandboxes.market_regulation_controls import EquityRegister, read_execute
from sandboxes.market_regulation_data import CATEGORIES, ID_TYPES, describe_subject
from sandboxes.server import FaultInjector, FaultKnobs

__all__ = ["MAX_BODY_BYTES", "MarketRegulationSandboxState", "create_app", "describe_subject"]

DEFAULT_PREFIX = "/samr/v1"
EXTENSION_KEY = "samr_sandbox"
MAX_BODY_BYTES = 64 * 1024

_QUERY_REQUIRED = ("Inv", "CerType", "CerNo", "CXLB")


class MarketRegulationSandboxState(SandboxState):
    """Counters, duplicate memory (``SandboxState``) and the freeze register
    (``equity``); ``app.extensions["samr_sandbox"]``."""

    def __init__(self, faults: FaultInjector):
        super().__init__(faults)
        self.equity = EquityRegister()


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
    name = text(query, "Query", "Inv", 100)
    id_type = text(query, "Query", "CerType")
    if id_type not in ID_TYPES:
        raise ContractViolation("Query.CerType", f"must be '10' (resident ID card) or '20' (unified social credit code), got {id_type!r}")
    id_number = text(query, "Query", "CerNo")
    if len(id_number) != 18:
        raise ContractViolation("Query.CerNo", f"must be 18 characters, got {len(id_number)}")
    categories = unique_choices(query, "Query", "CXLB", CATEGORIES)
    check_message_id_header(xxid)
    return Inquiry(xxid, name, id_type, id_number, categories)


def _read_inquiry(state: MarketRegulationSandboxState, raw: bytes) -> tuple[str, Callable[[], bytes]]:
    inquiry = _validate_inquiry(raw)

    def render() -> bytes:
        data: dict[str, Any] = describe_subject(inquiry.id_number, inquiry.name, inquiry.id_type, inquiry.categories)
        for holding in data.get("GQ", []):
            holding["FrozList"] = state.equity.holding(inquiry.id_number, holding).listed()
        return answer(inquiry.xxid, raw, data)

    return inquiry.xxid, render


def _read_execute(state: MarketRegulationSandboxState, raw: bytes) -> tuple[str, Callable[[], bytes]]:
    document = check_fields(parse_json(raw), "body", ("Head", "Execute"))
    head = check_head(document, basis_required=True)
    order = read_execute(document, head)
    check_message_id_header(order.xxid)

    def render() -> bytes:
        data = state.equity.carry_out(order)
        return answer(order.xxid, raw, data)

    return order.xxid, render


def create_app(knobs: FaultKnobs | None = None, *, prefix: str = DEFAULT_PREFIX) -> Flask:
    """A fresh sandbox (its own counters, duplicate memory and register) as a Flask app."""
    state = MarketRegulationSandboxState(faults=FaultInjector(knobs))
    return create_contract_app(__name__, prefix=prefix, state=state, extension_key=EXTENSION_KEY,
                               max_body_bytes=MAX_BODY_BYTES, routes={
                                   "inquiries": lambda raw: _read_inquiry(state, raw),
                                   "controls": lambda raw: _read_execute(state, raw),
                               })
