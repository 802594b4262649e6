"""The sandbox bank over SOAP: ``schemas/wsdl/bank-v1.wsdl`` served by
``sandboxes.soap_service`` and answered by a ``BankAgency``.

Run it with the others: ``gateway sandbox`` (the registry's ports) or ``sandboxes.run``.
"""

from __future__ import annotations


from flask import Flask

from sandboxes.bank import BankAgency
from sandboxes.server import FaultKnobs
from sandboxes.soap_service import create_soap_app
from schemas.xml import WSDL_DIR

DEFAULT_PREFIX = "/soap/bank/v1"
AGENCY_KEY = "bank_agency"
WSDL_PATH = WSDL_DIR / "bank-v1.wsdl"


def create_app(
    knobs: FaultKnobs | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    seed: int = 0,
    name: str = "sandbox bank",
    credentials: tuple[str, str] | None = None,
) -> Flask:
    """A fresh bank (its own ledger and duplicate memory) behind a SOAP service.

    The agency is ``app.extensions["bank_agency"]``; the SOAP counters are
    ``app.extensions["soap_service"]``. ``credentials`` (username, password)
    makes the service require that WS-Security UsernameToken.
    """
    agency = BankAgency(name, seed)
    app = create_soap_app(wsdl_path=WSDL_PATH, prefix=prefix, handle=agency.handle, knobs=knobs,
                          credentials=credentials)
    app.extensions[AGENCY_KEY] = agency
    return app
