"""The sandbox tax bureau over SOAP: ``schemas/wsdl/tax-v1.wsdl`` served by
``sandboxes.soap_service`` and answered by a ``TaxAgency``.

Run it with the others: ``gateway sandbox`` (the registry's ports) or ``sandboxes.run``.
"""

from __future__ import annotations


from flask import Flask

from sandboxes.tax import TaxAgency
from sandboxes.server import FaultKnobs
from sandboxes.soap_service import create_soap_app
from schemas.xml import WSDL_DIR

DEFAULT_PREFIX = "/soap/tax/v1"
AGENCY_KEY = "tax_agency"
WSDL_PATH = WSDL_DIR / "tax-v1.wsdl"


def create_app(
    knobs: FaultKnobs | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    seed: int = 0,
    name: str = "sandbox tax bureau",
    credentials: tuple[str, str] | None = None,
) -> Flask:
    """A fresh tax bureau (its own duplicate memory) behind a SOAP service.

    The agency is ``app.extensions["tax_agency"]``; the SOAP counters are
    ``app.extensions["soap_service"]``. ``credentials`` (username, password)
    makes the service require that WS-Security UsernameToken.
    """
    agency = TaxAgency(name, seed)
    app = create_soap_app(wsdl_path=WSDL_PATH, prefix=prefix, handle=agency.handle, knobs=knobs,
                          credentials=credentials)
    app.extensions[AGENCY_KEY] = agency
    return app
