"""What the officers' and judges' pages show, worked out from the services' views
(pure logic, no I/O): which accounts of a report may be ticked for a freeze, the cap
a freeze may reach, a request's progress, and the freeze a submitted form asks for.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from schemas.vocabulary import CASH_CATEGORIES

FOLLOW_UP_KINDS = ("lapsing", "uncontrolled", "partly_covered", "deduct_unconfirmed", "deduct_mismatch")


def freeze_cap(owed: Decimal, deducted: Decimal, frozen: Decimal, reserved: Decimal) -> Decimal:
    """What a new freeze may still reach: the amount owed, less what deducts took, what is
    frozen in force and what freezes not yet answered asked for (the intake's own rule,
    gateway/requests/control_lines.py, which has the last word)."""
    return max(owed - deducted - frozen - reserved, Decimal("0"))


def freezable(asset: Mapping[str, Any], accepts: Callable[[str, str, str], bool]) -> bool:
    """Whether an account of the report may be ticked: money, not exempt, with a balance,
    at an agency that takes freezes of its category."""
    return (asset["category"] in CASH_CATEGORIES and not asset["exempt"] and (asset.get("balance") or 0) > 0
            and accepts(asset["agency"], "freeze", asset["category"]))


def ratio_percent(ratio: str) -> str:
    """The report's cash-recoverable ratio (``"0.8334"``) as a percentage (``"83.34%"``)."""
    return f"{(Decimal(ratio) * 100).quantize(Decimal('0.01'))}%"


@dataclass(frozen=True)
class FreezeForm:
    """A freeze as the officer's form asks it, before the intake checks it."""

    subject_id: str
    targets: list[str]
    amount: str
    basis_kind: str
    basis_number: str
    document_name: str
    document: bytes
    idempotency_key: str


class FormProblem(ValueError):
    """A field of the form is missing or unreadable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def read_freeze_form(form: Mapping[str, Any], targets: list[str], upload: Any) -> FreezeForm:
    """The form's fields; raises FormProblem for one that is missing (the intake checks the rest)."""
    if not targets:
        raise FormProblem("targets", "tick at least one account")
    amount = (form.get("amount") or "").strip().replace(",", "")
    try:
        if Decimal(amount) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        raise FormProblem("amount", "the amount must be a positive number of yuan") from None
    if upload is None or not getattr(upload, "filename", ""):
        raise FormProblem("document", "attach the legal document (PDF)")
    name = upload.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return FreezeForm(subject_id=form.get("subject_id", ""), targets=targets, amount=amount,
                      basis_kind=form.get("basis_kind", ""), basis_number=(form.get("basis_number") or "").strip(),
                      document_name=name, document=upload.read(), idempotency_key=form.get("idempotency_key", ""))


def freeze_submission(freeze: FreezeForm, case_number: str, subject: Mapping[str, str]) -> dict[str, Any]:
    """The body POST /api/v1/requests would carry for this freeze (checked by the same schema)."""
    return {
        "case_number": case_number,
        "subject": {"kind": subject["kind"], "name": subject["name"], "id_number": subject["id_number"]},
        "action": "freeze", "amount": freeze.amount, "targets": freeze.targets,
        "legal_basis": {"kind": freeze.basis_kind, "number": freeze.basis_number},
        "documents": [{"name": freeze.document_name, "content_base64": base64.b64encode(freeze.document).decode()}],
    }


def problems_text(fields: Mapping[str, Any]) -> str:
    """A service error's fields in one line: ``amount: at most 10.00 ...; targets[0]: ...``."""
    parts = []
    for name, messages in fields.items():
        if isinstance(messages, Mapping):
            parts.append(f"{name}: {problems_text(messages)}")
        else:
            parts.append(f"{name}: {' '.join(map(str, messages if isinstance(messages, list) else [messages]))}")
    return "; ".join(parts)
