"""Every mapped class, imported once so the metadata is complete (migrations, tests)."""

from gateway.attachments.models import Document, OfficerCredential, RequestDocument
from gateway.auth.models import LoginFailure
from gateway.bankruptcy.models import Bankruptcy
from gateway.batches.models import Batch, BatchLine
from gateway.cases.models import Case, Party, Subject
from gateway.controls.models import Control, RepeatFreeze
from gateway.creditors.models import DistributionPlan, DistributionShare, FreezeConsent
from gateway.db import Base
from gateway.deliveries.models import AgencyBudget, Asset, Delivery, DeliveryResult, QuarantinedMessage
from gateway.requests.models import Request
from gateway.termination.models import CaseTermination, TerminationRequery
from gateway.transfers.models import CaseTransfer
from gateway.webhooks.models import WebhookNotification, WebhookSubscription

__all__ = ["AgencyBudget", "Asset", "Bankruptcy", "Base", "Batch", "BatchLine", "Case", "CaseTermination", "CaseTransfer",
           "Control", "Delivery", "DeliveryResult", "DistributionPlan", "DistributionShare", "Document",
           "FreezeConsent", "LoginFailure", "OfficerCredential", "RequestDocument", "Party", "QuarantinedMessage",
           "RepeatFreeze", "Request", "Subject", "TerminationRequery", "WebhookNotification", "WebhookSubscription"]
