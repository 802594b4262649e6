"""The words of the domain (DESIGN.md, "Vocabulary"), as closed sets.

Kept as plain tuples so that schemas, the registry check and the database agree
on one spelling.
"""

ACTIONS = ("inquiry", "freeze", "renew", "unfreeze", "deduct", "seal", "release", "watch", "valuation")

# Actions that place, change or lift a control: they need a legal basis and a
# second person's approval before dispatch.
CONTROL_ACTIONS = ("freeze", "renew", "unfreeze", "deduct", "seal", "release", "watch")

# Controls that act on assets found earlier: the request names them in ``targets``.
TARGETED_ACTIONS = ("freeze", "renew", "unfreeze", "deduct", "seal", "release", "valuation")

CATEGORIES = (
    "deposit",
    "wealth_product",
    "securities",
    "real_estate",
    "vehicle",
    "equity",
    "enterprise",
    "tax",
    "identity",
    "whereabouts",
    "social_security",
    "provident_fund",
    "internet_payment",
)

# Categories whose assets count as cash for the cash-recoverable ratio.
CASH_CATEGORIES = ("deposit", "wealth_product", "internet_payment")

SUBJECT_KINDS = ("person", "organization")
PARTY_ROLES = ("debtor", "creditor")
ROLES = ("court_officer", "approver", "agency", "auditor", "admin")
TRANSPORTS = ("rest", "soap", "sftp")

REQUEST_STATES = (
    "accepted",
    "awaiting_approval",
    "in_progress",
    "completed",
    "partially_completed",
    "failed",
    "rejected",
)

# Internal states the API shows under DESIGN's names: "sending" (a worker holds the
# lease) and "awaiting" (in a batch file, result not back) as "sent"; "held" (a
# control waiting for approval) as "queued". "sent" is the API's word only: no row
# holds it (gateway/deliveries/states.py, the CHECK constraint of 0017_state_checks).
DELIVERY_STATES = ("held", "queued", "sending", "awaiting", "answered", "failed", "expired", "rejected")
API_DELIVERY_STATES = ("queued", "sent", "answered", "failed", "expired", "rejected")
FINAL_DELIVERY_STATES = ("answered", "failed", "expired", "rejected")

# What a court's webhook can be told (gateway/webhooks/services.py).
WEBHOOK_EVENTS = ("request.finished", "asset.found", "control.lapsing", "case.resumable")
