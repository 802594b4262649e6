"""The sandbox tax bureau over SOAP: ``schemas/wsdl/tax-v1.wsdl`` served by
``sandboxes.soap_service`` and answered by a ``TaxAgency``.

Run one by hand: ``python -m sandboxes.soap_tax --port 18085``.
"""

from __future__ import annotations

import argparse
import threading

from flask import Flask

from sandboxes.tax import TaxAgency
from sandboxes.server import FaultKnobs, SandboxServer
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18085)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    knobs = FaultKnobs(latency_seconds=args.latency, failure_rate=args.failure_rate, seed=args.seed)
    server = SandboxServer(create_app(knobs, prefix=args.prefix, seed=args.seed), port=args.port, log_requests=True).start()
    print(f"tax sandbox (SOAP) on {server.url}{args.prefix}?wsdl", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
