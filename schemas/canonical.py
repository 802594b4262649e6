"""The canonical model (DESIGN.md, "Payloads"): what a court sends and what the
gateway answers, whatever agency sits behind it.

Every schema refuses unknown fields (marshmallow 4's default ``RAISE``), and every
rule broken is reported against the field that broke it, so a 400 names each bad
field and the rule.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from schemas.fields import MONEY_PATTERN, Base64Bytes, Money, Sha256Hex, UtcDateTime, unique_items
from schemas.identifiers import IdentifierError, check_case_number, check_resident_id, check_uscc
from schemas.vocabulary import (
    ACTIONS, API_DELIVERY_STATES, CATEGORIES, PARTY_ROLES, REQUEST_STATES, SUBJECT_KINDS, WEBHOOK_EVENTS,
)

LEGAL_BASIS_KINDS = ("assistance_notice", "ruling", "decision", "enforcement_notice")
COURT_CODE = re.compile(r"^[0-9A-Za-z]{2,32}$")
# Files the gateway stores (gateway/attachments/): legal documents are PDFs, card images JPEG or PNG.
LEGAL_DOCUMENT_TYPE = "application/pdf"
CARD_IMAGE_TYPES = ("image/jpeg", "image/png")
DOCUMENT_MEDIA_TYPES = (LEGAL_DOCUMENT_TYPE, *CARD_IMAGE_TYPES)
MAX_REQUEST_DOCUMENTS = 20
# The name an agency shows for a document (WSINFO.WJMC): a file name, no folders or control characters.
_DOCUMENT_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,124}\.[pP][dD][fF]$")
_CARD_NUMBER = re.compile(r"^[0-9A-Za-z-]{1,32}$")


def _one_of(choices: tuple[str, ...]) -> validate.OneOf:
    return validate.OneOf(choices, error="must be one of: {choices}")


def _court_code(value: str) -> None:
    if not COURT_CODE.match(value):
        raise ValidationError("must be 2 to 32 letters or digits")


class SubjectSchema(Schema):
    """A person (resident ID number) or an organisation (unified social credit code)."""

    kind = fields.Str(required=True, validate=_one_of(SUBJECT_KINDS))
    name = fields.Str(required=True, validate=validate.Length(min=1, max=100))
    id_number = fields.Str(required=True)

    @validates_schema
    def _check_id_number(self, data: dict[str, Any], **kwargs: Any) -> None:
        check = {"person": check_resident_id, "organization": check_uscc}.get(data.get("kind", ""))
        if check is None or "id_number" not in data:
            return
        try:
            data["id_number"] = check(data["id_number"])
        except IdentifierError as exc:
            raise ValidationError(str(exc), field_name="id_number") from None


class PartySchema(Schema):
    role = fields.Str(required=True, validate=_one_of(PARTY_ROLES))
    subject = fields.Nested(SubjectSchema, required=True)


class CaseNumberField(fields.Str):
    """A case number such as (2024)浙0102执1234号, normalised to ASCII parentheses."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return check_case_number(text)
        except IdentifierError as exc:
            raise ValidationError(str(exc)) from None


class CaseSchema(Schema):
    case_number = CaseNumberField(required=True)
    court_code = fields.Str(required=True, validate=_court_code)
    amount_owed = Money(required=True)
    parties = fields.List(fields.Nested(PartySchema), required=True, validate=validate.Length(min=1, max=50))

    @validates("parties")
    def _one_debtor_at_least(self, parties: list[dict[str, Any]], **kwargs: Any) -> None:
        if not any(p.get("role") == "debtor" for p in parties):
            raise ValidationError("a case needs at least one party with role debtor")
        keys = [(p.get("role"), p.get("subject", {}).get("kind"), p.get("subject", {}).get("id_number")) for p in parties]
        if len(set(keys)) != len(keys):
            raise ValidationError("the same subject is listed twice in the same role")


class LegalBasisSchema(Schema):
    kind = fields.Str(required=True, validate=_one_of(LEGAL_BASIS_KINDS))
    number = fields.Str(required=True, validate=validate.Length(min=1, max=64))


class RepeatSchema(Schema):
    days = fields.Int(load_default=None, validate=validate.Range(min=1, max=366),
                      metadata={"description": "try again daily for at most this many days (default: settings)"})


def _one_source(data: dict[str, Any], what: str) -> None:
    """A file is named by an earlier upload's SHA-256 or sent inline, exactly one of the two."""
    if "sha256" in data and "content_base64" in data:
        raise ValidationError("give sha256 or content_base64, not both", field_name="content_base64")
    if "sha256" not in data and "content_base64" not in data:
        raise ValidationError(f"required: the sha256 of {what} uploaded earlier (POST /api/v1/documents), "
                              f"or content_base64", field_name="sha256")


class RequestDocumentSchema(Schema):
    """A legal document a request carries (PDF): an earlier upload or the file inline."""

    name = fields.Str(required=True, validate=validate.Regexp(
        _DOCUMENT_NAME, error="must be a file name ending in .pdf (no folders), at most 128 characters"),
        metadata={"description": "the name the agency shows (WSINFO.WJMC)"})
    sha256 = Sha256Hex(metadata={"description": "a document uploaded earlier with POST /api/v1/documents"})
    content_base64 = Base64Bytes(metadata={"description": "the PDF itself, base64; stored by its SHA-256"})

    @validates_schema
    def _check_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        _one_source(data, "a PDF")


class CardImageSchema(Schema):
    """A work-card or duty-card image: an earlier upload or the image inline."""

    sha256 = Sha256Hex(metadata={"description": "an image uploaded earlier with POST /api/v1/documents"})
    content_base64 = Base64Bytes(metadata={"description": "the image itself, base64"})
    media_type = fields.Str(validate=_one_of(CARD_IMAGE_TYPES), metadata={"description": "with content_base64"})

    @validates_schema
    def _check_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        _one_source(data, "an image")
        if "content_base64" in data and "media_type" not in data:
            raise ValidationError("required with content_base64: image/jpeg or image/png", field_name="media_type")
        if "sha256" in data and "media_type" in data:
            raise ValidationError("only with content_base64 (an upload keeps the type it was sent with)",
                                  field_name="media_type")


class CredentialsSchema(Schema):
    """PUT /api/v1/officers/me/credentials: the officer's work card and official-duty card."""

    name = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    work_card_number = fields.Str(required=True, validate=validate.Regexp(
        _CARD_NUMBER, error="must be 1-32 letters, digits or '-'"), metadata={"description": "工作证号"})
    duty_card_number = fields.Str(required=True, validate=validate.Regexp(
        _CARD_NUMBER, error="must be 1-32 letters, digits or '-'"), metadata={"description": "执行公务证号"})
    work_card_image = fields.Nested(CardImageSchema, required=True)
    duty_card_image = fields.Nested(CardImageSchema, required=True)


class RequestSubmissionSchema(Schema):
    """POST /api/v1/requests. Domain rules (legal basis for controls, amounts) are
    checked by the request service and answered with 422, not here."""

    case_number = CaseNumberField(required=True)
    subject = fields.Nested(SubjectSchema, required=True)
    action = fields.Str(required=True, validate=_one_of(ACTIONS))
    categories = fields.List(
        fields.Str(validate=_one_of(CATEGORIES)),
        validate=[validate.Length(min=1), unique_items],
        load_default=None,
    )
    legal_basis = fields.Nested(LegalBasisSchema, load_default=None)
    amount = Money(load_default=None)
    targets = fields.List(fields.Str(validate=validate.Length(min=1, max=64)), load_default=list)
    court_account = fields.Str(
        load_default=None,
        validate=validate.Regexp(r"^[0-9A-Za-z-]{6,34}$", error="must be 6-34 letters, digits or '-'"),
        metadata={"description": "deducts: the court's receiving account"},
    )
    repeat = fields.Nested(RepeatSchema, load_default=None, metadata={
        "description": "freezes: when the accounts held less than the amount, try again daily for the shortfall"})
    documents = fields.List(
        fields.Nested(RequestDocumentSchema), load_default=list,
        validate=validate.Length(max=MAX_REQUEST_DOCUMENTS, error="at most {max} documents"),
        metadata={"description": "legal documents (PDF), in order; required for controls"},
    )


class AssetRecordSchema(Schema):
    """One asset as a codec reports it, before the gateway gives it an id."""

    category = fields.Str(required=True, validate=_one_of(CATEGORIES))
    identifier = fields.Str(required=True, validate=validate.Length(min=1, max=128))
    description = fields.Str(required=True, validate=validate.Length(max=500))
    balance = Money(load_default=None, allow_none=True)
    value = Money(load_default=None, allow_none=True)
    encumbrances = fields.List(fields.Str(), load_default=list)
    details = fields.Dict(keys=fields.Str(), load_default=dict)


_ASSET_RECORD = AssetRecordSchema()
_ASSET_FIELDS = frozenset(_ASSET_RECORD.fields)
_CATEGORY_SET = frozenset(CATEGORIES)
_MISSING = object()


def _plain_money(value: Any) -> tuple[bool, Decimal | None]:
    """(True, amount) when ``Money(allow_none=True)`` would surely take ``value``; (False, None) otherwise."""
    if value is None:
        return True, None
    if type(value) is str and MONEY_PATTERN.match(value):
        return True, Decimal(value)
    return False, None


def _plain_asset(data: Any) -> dict[str, Any] | None:
    """What ``AssetRecordSchema().load(data)`` returns, for the plain shape every codec
    writes (exact ``str``, ``list`` and ``dict`` types, valid values); None for anything
    else, which is then left to the schema itself. Never accepts what the schema refuses
    (tests/unit/schemas/test_asset_records.py runs both over good and bad assets)."""
    if type(data) is not dict or not _ASSET_FIELDS.issuperset(data):
        return None
    category, identifier, description = data.get("category"), data.get("identifier"), data.get("description")
    if type(category) is not str or category not in _CATEGORY_SET:
        return None
    if type(identifier) is not str or not 1 <= len(identifier) <= 128:
        return None
    if type(description) is not str or len(description) > 500:
        return None
    balance_ok, balance = _plain_money(data.get("balance"))
    value_ok, value = _plain_money(data.get("value"))
    if not (balance_ok and value_ok):
        return None
    encumbrances = data.get("encumbrances", _MISSING)
    if encumbrances is _MISSING:
        encumbrances = []
    elif type(encumbrances) is not list or not all(type(e) is str for e in encumbrances):
        return None
    details = data.get("details", _MISSING)
    if details is _MISSING:
        details = {}
    elif type(details) is not dict or not all(type(k) is str for k in details):
        return None
    return {"category": category, "identifier": identifier, "description": description, "balance": balance,
            "value": value, "encumbrances": list(encumbrances), "details": dict(details)}


def load_asset_record(data: Any) -> dict[str, Any]:
    """``AssetRecordSchema().load(data)``, without marshmallow's per-field machinery for
    the plain assets codecs write (~25 us each under marshmallow, a few us here: the
    largest single cost of recording an answer, bench/RESULTS.md "pull"). Anything
    not plainly valid goes through the schema, so a refusal is the schema's own
    ValidationError, field by field. Raises ValidationError."""
    plain = _plain_asset(data)
    return plain if plain is not None else _ASSET_RECORD.load(data)


CONTROL_OUTCOMES = (
    "controlled",          # in force for the whole amount or asset asked
    "partly_controlled",   # in force for less than asked (the account held less)
    "queued",              # another court holds it; waiting at queue_position (轮候)
    "not_controlled",      # the agency did not place it; reason says why
    "released",            # an unfreeze/release took effect
    "deducted",            # a deduct was carried out (transfer reported, not yet confirmed)
    "watching",            # a watch is registered; sightings come later as events
)


class ControlOutcomeSchema(Schema):
    """What an agency reports it did to one asset for a control action."""

    category = fields.Str(required=True, validate=_one_of(CATEGORIES))
    identifier = fields.Str(required=True, validate=validate.Length(min=1, max=128))
    outcome = fields.Str(required=True, validate=_one_of(CONTROL_OUTCOMES))
    amount_requested = Money(load_default=None, allow_none=True)
    amount_controlled = Money(load_default=None, allow_none=True)
    effective_from = fields.Date(load_default=None, allow_none=True)
    until = fields.Date(load_default=None, allow_none=True)
    queue_position = fields.Int(load_default=None, allow_none=True, validate=validate.Range(min=1))
    ahead = fields.List(fields.Str(), load_default=list)  # who holds it before us (courts, rulings)
    reason = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=500))
    agency_reference = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=128))


# --- What the gateway answers (dump only) ---------------------------------------


class ErrorBodySchema(Schema):
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    fields_ = fields.Dict(data_key="fields")


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


class CaseOutSchema(Schema):
    case_number = fields.Str()
    court_code = fields.Str()
    amount_owed = Money()
    parties = fields.List(fields.Dict())
    created = fields.Bool(metadata={"description": "true when this call registered the case"})
    bankruptcy = fields.Dict(allow_none=True, metadata={
        "description": "a debtor of the case is in bankruptcy (Enterprise Bankruptcy Law art. 19): who accepted it, when"})


class DeliveryOutSchema(Schema):
    id = fields.Str()
    agency = fields.Str()
    transport = fields.Str()
    state = fields.Str(validate=_one_of(API_DELIVERY_STATES))
    attempts = fields.Int()
    deadline = UtcDateTime()
    error = fields.Str(allow_none=True)
    result = fields.Dict(allow_none=True, metadata={"description": "late: true when it came after the deadline"})
    reused = fields.Bool(metadata={"description": "served from another case's recent answer (reuse window)"})
    reused_from = fields.Str(metadata={"description": "the delivery whose answer was reused"})
    age_seconds = fields.Int(metadata={"description": "how old that answer was when reused"})


class DocumentOutSchema(Schema):
    """A stored file (POST /api/v1/documents)."""

    sha256 = fields.Str()
    md5 = fields.Str(metadata={"description": "agencies check documents by it (WSINFO.MD5)"})
    size_bytes = fields.Int()
    media_type = fields.Str()


class RequestDocumentOutSchema(Schema):
    position = fields.Int(metadata={"description": "1, 2, ... (WSINFO.XH)"})
    name = fields.Str()
    sha256 = fields.Str()
    md5 = fields.Str()
    size_bytes = fields.Int()


class CredentialsOutSchema(Schema):
    officer_sub = fields.Str()
    court_code = fields.Str()
    name = fields.Str()
    work_card_number = fields.Str()
    duty_card_number = fields.Str()
    work_card_image = fields.Nested(DocumentOutSchema)
    duty_card_image = fields.Nested(DocumentOutSchema)
    filed_at = UtcDateTime()


class RequestStateSchema(Schema):
    id = fields.Str()
    case_number = fields.Str()
    action = fields.Str()
    categories = fields.List(fields.Str())
    state = fields.Str(validate=_one_of(REQUEST_STATES))
    created_at = UtcDateTime()
    deliveries = fields.List(fields.Nested(DeliveryOutSchema))
    documents = fields.List(fields.Nested(RequestDocumentOutSchema),
                            metadata={"description": "the legal documents the request carries, in order"})


class DebtorOutSchema(Schema):
    kind = fields.Str()
    id_number_masked = fields.Str(metadata={"description": "first 4 and last 4 characters; the number itself never"})
    name = fields.Str()


class RequestTargetSchema(Schema):
    """An asset a control names, as its agency last reported it."""

    asset_id = fields.Str()
    agency = fields.Str()
    category = fields.Str()
    identifier = fields.Str()
    description = fields.Str()
    balance = Money(allow_none=True)
    value = Money(allow_none=True)
    reported_at = UtcDateTime()


class DecisionOutSchema(Schema):
    outcome = fields.Str(validate=_one_of(("approved", "rejected")))
    by = fields.Str(metadata={"description": "the approver's token subject"})
    at = UtcDateTime()
    reason = fields.Str(allow_none=True)


class ProgressOutSchema(Schema):
    answered = fields.Int(metadata={"description": "agencies that answered (\"6 of 8 agencies answered\")"})
    finished = fields.Int(metadata={"description": "agencies done, answered or not"})
    agencies = fields.Int()


class RequestDetailSchema(RequestStateSchema):
    """A request in full: what it asks, who proposed and decided it, how far its agencies are."""

    debtor = fields.Nested(DebtorOutSchema)
    amount = Money(allow_none=True)
    court_account = fields.Str(allow_none=True)
    targets = fields.List(fields.Nested(RequestTargetSchema))
    legal_basis = fields.Nested(LegalBasisSchema, allow_none=True)
    proposer = fields.Str(metadata={"description": "the officer who submitted it (token subject)"})
    court = fields.Str()
    decision = fields.Nested(DecisionOutSchema, allow_none=True,
                             metadata={"description": "a control's approval or rejection; null until decided"})
    source_request_id = fields.Str(allow_none=True,
                                   metadata={"description": "a control the gateway made itself: the officer's request it carries out"})
    updated_at = UtcDateTime()
    progress = fields.Nested(ProgressOutSchema)


class RequestPageSchema(Schema):
    requests = fields.List(fields.Nested(RequestDetailSchema), metadata={"description": "newest first"})
    next_cursor = fields.Str(allow_none=True, metadata={"description": "pass as cursor for the next page; null at the end"})


class RequestListArgsSchema(Schema):
    state = fields.Str(validate=_one_of(REQUEST_STATES))
    action = fields.Str(validate=_one_of(ACTIONS))
    case_number = fields.Str(validate=validate.Length(min=1, max=64))
    awaiting_approval = fields.Bool(metadata={"description": "true: the approval queue"})
    proposer = fields.Str(validate=validate.Length(min=1, max=128))
    cursor = fields.Str(validate=validate.Length(min=1, max=200))
    limit = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


class ControlInForceSchema(Schema):
    id = fields.Str(allow_none=True, metadata={"description": "the control ledger entry"})
    action = fields.Str()
    state = fields.Str(metadata={"description": "in_force, partly, queued, watching or lapsed"})
    outcome = fields.Str(metadata={"description": "controlled, partly_controlled, queued or watching"})
    amount = Money(allow_none=True)
    amount_requested = Money(allow_none=True)
    until = fields.Date(allow_none=True)
    renewals = fields.Int()
    queue_position = fields.Int(allow_none=True)
    ahead = fields.List(fields.Str(), metadata={"description": "who holds the asset before this control"})
    agency_reference = fields.Str(allow_none=True)
    request_id = fields.Str()
    deducted = Money(allow_none=True)


class LedgerEntrySchema(ControlInForceSchema):
    """One control of a case as the ledger holds it (GET /cases/{case}/controls)."""

    agency = fields.Str()
    identifier = fields.Str()
    category = fields.Str()
    asset_id = fields.Str(allow_none=True)
    subject_id = fields.Str()
    legal_basis = fields.Dict(allow_none=True)
    placed_at = UtcDateTime()
    days_left = fields.Int(allow_none=True, metadata={"description": "days until it lapses (negative: lapsed)"})
    received = Money(allow_none=True, metadata={"description": "deducts: money the court confirmed arriving"})
    order = fields.Dict(allow_none=True, metadata={
        "description": "freezes: place among every case's freezes on the account (position, of, ahead: first in force, "
                       "then the queue)"})


class CaseControlsSchema(Schema):
    case_number = fields.Str()
    amount_owed = Money()
    cash_frozen = Money()
    controls = fields.List(fields.Nested(LedgerEntrySchema))
    bankruptcy = fields.Dict(allow_none=True, metadata={"description": "a debtor of the case is in bankruptcy"})


class AssetSchema(Schema):
    id = fields.Str()
    category = fields.Str()
    agency = fields.Str()
    identifier = fields.Str()
    description = fields.Str()
    balance = Money(allow_none=True)
    value = Money(allow_none=True)
    encumbrances = fields.List(fields.Str())
    exempt = fields.Bool(metadata={"description": "an exempt account the debtor keeps (never frozen); not in cash_found"})
    controls = fields.List(fields.Nested(ControlInForceSchema))
    details = fields.Dict()
    found_at = UtcDateTime()
    reused = fields.Bool(metadata={"description": "from another case's recent answer (reuse window)"})
    age_seconds = fields.Int(metadata={"description": "how old that answer was when reused"})


class AssetReportSchema(Schema):
    case_number = fields.Str()
    subject = fields.Dict()
    amount_owed = Money()
    as_of = UtcDateTime()
    assets = fields.List(fields.Nested(AssetSchema))
    cash_found = Money(metadata={"description": "cash that may be frozen: deposits and wealth products, exempt "
                                                "accounts (social security, minimum living allowance) left out"})
    cash_exempt = Money(metadata={"description": "cash in exempt accounts: found, never frozen or counted"})
    cash_frozen = Money()
    bankruptcy = fields.Dict(allow_none=True, metadata={
        "description": "the debtor is in bankruptcy (Enterprise Bankruptcy Law art. 19): no new controls"})
    cash_recoverable_ratio = fields.Str(metadata={"description": "cash_found over amount owed, 4 places; 1.0000 "
                                                             "means the cash found covers the debt, above 1 more than covers it"})
    gaps = fields.List(fields.Dict())


class WebhookInSchema(Schema):
    url = fields.Str(required=True, validate=validate.Length(min=1, max=500),
                     metadata={"description": "where notifications are POSTed (https unless [webhooks] allowed_schemes)"})
    events = fields.List(fields.Str(validate=_one_of(WEBHOOK_EVENTS)), load_default=list(WEBHOOK_EVENTS),
                         validate=[validate.Length(min=1), unique_items],
                         metadata={"description": "default: every event"})


class WebhookOutSchema(Schema):
    id = fields.Str()
    court = fields.Str()
    url = fields.Str()
    events = fields.List(fields.Str())
    created_by = fields.Str()
    created_at = UtcDateTime()
    secret = fields.Str(metadata={"description": "the HMAC-SHA256 key of X-Gateway-Signature; shown only when registered"})


class WebhookListSchema(Schema):
    webhooks = fields.List(fields.Nested(WebhookOutSchema))


class WebhookNotificationOutSchema(Schema):
    id = fields.Str()
    event = fields.Str(validate=_one_of(WEBHOOK_EVENTS))
    state = fields.Str(validate=_one_of(("pending", "delivered", "failed")))
    attempts = fields.Int()
    next_attempt_at = UtcDateTime()
    last_status = fields.Int(allow_none=True, metadata={"description": "the court server's HTTP status"})
    last_error = fields.Str(allow_none=True)
    created_at = UtcDateTime()
    delivered_at = UtcDateTime(allow_none=True)
    payload = fields.Dict(metadata={"description": "the JSON body as sent"})


class WebhookNotificationListSchema(Schema):
    notifications = fields.List(fields.Nested(WebhookNotificationOutSchema), metadata={"description": "newest first"})


MAX_BATCH_LINES = 1000


class BatchLineSchema(Schema):
    """One debtor of one of the court's cases, to be asked about (an inquiry)."""

    case_number = CaseNumberField(required=True)
    subject = fields.Nested(SubjectSchema, required=True)
    categories = fields.List(fields.Str(validate=_one_of(CATEGORIES)), validate=[validate.Length(min=1), unique_items],
                             load_default=None, metadata={"description": "default: every category some agency serves"})


class BatchSubmissionSchema(Schema):
    """POST /api/v1/batches as JSON; as CSV, the header is case_number,kind,name,id_number[,categories]
    (categories separated by spaces) and lines are numbered as in JSON, from 0."""

    lines = fields.List(fields.Nested(BatchLineSchema), required=True, validate=validate.Length(
        min=1, max=MAX_BATCH_LINES, error="a batch has 1 to {max} lines"))


class BatchProgressSchema(Schema):
    lines = fields.Int(metadata={"description": "N: lines in the batch"})
    accepted = fields.Int(metadata={"description": "lines whose inquiry was made (n of N)"})
    refused = fields.Int(metadata={"description": "lines refused when their inquiry was made (see lines[].error)"})
    pending = fields.Int(metadata={"description": "lines whose inquiry is still to be made"})
    answered = fields.Int(metadata={"description": "inquiries answered by every agency, or some (completed, partially_completed)"})
    failed = fields.Int(metadata={"description": "inquiries no agency answered, and refused lines"})
    in_progress = fields.Int()


class BatchLineOutSchema(Schema):
    line = fields.Int()
    case_number = fields.Str()
    debtor = fields.Nested(DebtorOutSchema)
    state = fields.Str(validate=_one_of(("pending", "accepted", "refused")))
    request_id = fields.Str(allow_none=True)
    request_state = fields.Str(allow_none=True, validate=_one_of(REQUEST_STATES))
    error = fields.Str(allow_none=True)


class BatchOutSchema(Schema):
    id = fields.Str()
    court = fields.Str()
    submitted_by = fields.Str()
    created_at = UtcDateTime()
    state = fields.Str(validate=_one_of(("accepting", "in_progress", "finished")))
    progress = fields.Nested(BatchProgressSchema)
    lines = fields.List(fields.Nested(BatchLineOutSchema), metadata={"description": "only with ?lines=true"})


# The auditor API (gateway/auditing/views.py). The bodies are the hashed fields as the
# chain holds them, so an auditor can recompute each hash from what they were given.


def _text(description: str | None = None, **kwargs: Any) -> fields.Str:
    return fields.Str(allow_none=True, metadata={"description": description} if description else {}, **kwargs)


class AuditEventOutSchema(Schema):
    """An audit event: every hashed field, its predecessor's hash and its own."""

    seq = fields.Int(required=True, metadata={"description": "position in the chain, from 1"})
    at = fields.Str(required=True, metadata={"description": "UTC, as hashed: YYYY-MM-DDTHH:MM:SS.ffffffZ"})
    actor_sub = _text("token subject of the actor; null for the gateway itself")
    actor_role = _text()
    actor_court = _text()
    actor_agency = _text()
    action = fields.Str(required=True)
    outcome = fields.Str(required=True)
    case_number = _text()
    subject_hash = _text("the identity number hashed with the audit subject key")
    subject_masked = _text("the identity number masked; never in full")
    request_id = _text()
    delivery_id = _text()
    details = fields.Dict(allow_none=True, metadata={"description": "what the action was about, per action"})
    prev_hash = fields.Str(required=True)
    hash = fields.Str(required=True)


class AuditEventPageSchema(Schema):
    events = fields.List(fields.Nested(AuditEventOutSchema), required=True)
    next_cursor = _text("pass as `cursor` for the next page; null on the last page")


class AuditVerifySchema(Schema):
    """The integrity check: the chain walk, the signed checkpoints and sealing."""

    ok = fields.Bool(required=True, metadata={"description": "the chain and every checkpoint hold"})
    events_checked = fields.Int(required=True)
    head_seq = fields.Int(required=True)
    head_hash = fields.Str(required=True)
    first_bad_seq = fields.Int(allow_none=True, metadata={"description": "the first event that does not hold"})
    kind = _text("missing, out_of_order, unlinked, altered, truncated, rewritten, bad_signature, foreign_key, "
                 "no_public_key, forged or unkeyed")
    problem = _text()
    checkpoints_checked = fields.Int(required=True)
    last_checkpoint_seq = fields.Int(allow_none=True)
    macs_checked = fields.Bool(required=True)
    outside_checkpoints = fields.Int(required=True, metadata={"description": "checkpoints from the outside copy"})
    sealed = fields.Bool(required=True, metadata={"description": "every event older than the bound is checkpointed"})
    unsealed_events = fields.Int(required=True)
    unsealed_since = _text()


class AuditCheckpointOutSchema(Schema):
    seq = fields.Int(required=True)
    head_hash = fields.Str(required=True)
    event_count = fields.Int(required=True)
    signed_at = fields.Str(required=True)
    key_id = _text()
    signature = fields.Str(required=True)
    number = fields.Int(allow_none=True, metadata={"description": "place among the checkpoints; null before chaining"})
    prev_checkpoint_hash = _text()
    tree_size = fields.Int(allow_none=True, metadata={"description": "events in the signed Merkle tree (= seq); "
                                                                     "null before the sequencer"})
    root_hash = _text("the signed Merkle tree's root (RFC 9162), hex")
    checkpoint_hash = fields.Str(required=True)


class AuditCheckpointListSchema(Schema):
    checkpoints = fields.List(fields.Nested(AuditCheckpointOutSchema), required=True)


class AuditInclusionProofSchema(Schema):
    """RFC 9162 inclusion proof of one event in the tree of ``tree_size`` events.
    Check offline: `gateway audit verify --inclusion-proof FILE`."""

    event = fields.Nested(AuditEventOutSchema, required=True)
    leaf_index = fields.Int(required=True, metadata={"description": "seq - 1"})
    leaf_hash = fields.Str(required=True, metadata={"description": "SHA-256(0x00 || leaf bytes), hex"})
    tree_size = fields.Int(required=True)
    root_hash = fields.Str(required=True)
    audit_path = fields.List(fields.Str(), required=True, metadata={"description": "hex hashes, leaf side first"})
    checkpoint = fields.Nested(AuditCheckpointOutSchema, allow_none=True,
                               metadata={"description": "the checkpoint that signs this tree; null if none does"})


class AuditConsistencyProofSchema(Schema):
    """RFC 9162 consistency proof: the tree of ``to`` events extends the one of ``from``.
    Check offline: `gateway audit verify --consistency-proof FILE`."""

    from_size = fields.Int(required=True, data_key="from")
    to_size = fields.Int(required=True, data_key="to")
    from_root = fields.Str(required=True)
    to_root = fields.Str(required=True)
    consistency_path = fields.List(fields.Str(), required=True, metadata={"description": "hex hashes"})
    from_checkpoint = fields.Nested(AuditCheckpointOutSchema, allow_none=True)
    to_checkpoint = fields.Nested(AuditCheckpointOutSchema, allow_none=True)


class AnomalyOutSchema(Schema):
    rule = fields.Str(required=True)
    actor = _text()
    subject = _text("masked")
    message = fields.Str(required=True)
    facts = fields.Dict(keys=fields.Str(), metadata={"description": "the figures the message states, by name"})
    seqs = fields.List(fields.Int(), required=True, metadata={"description": "the events that raised it"})
    first_at = fields.Str(required=True)
    last_at = fields.Str(required=True)


class AnomalyListSchema(Schema):
    anomalies = fields.List(fields.Nested(AnomalyOutSchema), required=True)
    since = fields.Str(required=True)
    until = fields.Str(required=True)
