"""Every mapped class, imported once so the metadata is complete (migrations, tests)."""

from gateway.attachments.models import Document, OfficerCredential, RequestDocument
from gateway.auth.models import LoginFailure
from gateway.cases.models import Case, Party, Subject
from gateway.controls.models import Control, RepeatFreeze
from gateway.db import Base
from gateway.deliveries.models import Asset, Delivery, DeliveryResult, QuarantinedMessage
from gateway.requests.models import Request

__all__ = ["Asset", "Base", "Case", "Control", "Delivery", "DeliveryResult", "Document", "LoginFailure", "OfficerCredential", "RequestDocument", "Party", "QuarantinedMessage", "RepeatFreeze", "Request", "Subject"]
