"""Start the agency sandboxes on the ports the default registry points at
(config/agencies.toml), or on free ports for the demo and tests.

Seven agencies over three protocols, as in the default registry:

    bank-a, bank-b   SOAP   a bank each (own accounts, ledger, duplicate memory)
    tax              SOAP   the tax bureau (tax records, valuations)
    psb              REST   public security (household register, vehicles, whereabouts)
    samr             REST   market regulation (company register, equity)
    bank-national    SFTP   a national bank batch channel   } one SFTP server, a folder
    land             SFTP   the real-estate registry        } and a batch agency each

and one that is not a server but a client of the gateway (``mode = "pull"``):

    bank-c           SOAP   a bank polling the gateway's pull service (start_polling_bank)

The SFTP server uses the published demo host key and accepts the published demo
client key (config/demo/, clearly marked, not secrets).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sandboxes import market_regulation, public_security, soap_bank, soap_tax
from sandboxes.bank import BankAgency
from sandboxes.batch_agency import BatchAgencyProcessor
from sandboxes.polling_bank import DEMO_PASSWORD, DEMO_USERNAME, PollingBank
from sandboxes.real_estate import RealEstateRegistry
from sandboxes.server import FaultKnobs, SandboxServer
from sandboxes.sftp_server import SftpSandbox

DEMO_KEYS = Path(__file__).resolve().parents[1] / "config" / "demo"
SFTP_HOST_KEY = DEMO_KEYS / "sftp-sandbox-host-ed25519"
SFTP_CLIENT_PUBLIC_KEY = DEMO_KEYS / "gateway-sftp-client-ed25519.pub"
SFTP_USER = "gateway"

# agency id -> (default port, path prefix, app factory); each HTTP agency its own server.
HTTP_SANDBOXES: dict[str, tuple[int, str, Callable[..., Any]]] = {
    "bank-a": (18081, "/bank-a/soap", lambda knobs, prefix: soap_bank.create_app(knobs, prefix=prefix, seed=1, name="Bank A")),
    "bank-b": (18082, "/bank-b/soap", lambda knobs, prefix: soap_bank.create_app(knobs, prefix=prefix, seed=2, name="Bank B")),
    "psb": (18083, "/psb/v1", lambda knobs, prefix: public_security.create_app(knobs, prefix=prefix)),
    "tax": (18084, "/tax/soap", lambda knobs, prefix: soap_tax.create_app(knobs, prefix=prefix)),
    "samr": (18085, "/samr/v1", lambda knobs, prefix: market_regulation.create_app(knobs, prefix=prefix)),
}
# agency id -> folder on the one SFTP server, and the agency answering its batch files.
SFTP_SANDBOXES: dict[str, tuple[str, Callable[[], Any]]] = {
    "bank-national": ("bank-national", lambda: BankAgency("National bank", 3)),
    "land": ("real-estate", lambda: RealEstateRegistry(seed=0)),
}
SFTP_PORT = 18022
ALL = tuple(HTTP_SANDBOXES) + tuple(SFTP_SANDBOXES)
# agency id -> the bank behind a polling sandbox; it needs a running gateway to poll.
POLLING_SANDBOXES: dict[str, Callable[[], BankAgency]] = {
    "bank-c": lambda: BankAgency("Bank C", 18),
}
PULL_SERVICE_PATH = "/api/v1/agency/soap"


@dataclass
class RunningSandbox:
    name: str  # the agency id in the default registry
    url: str  # the agency endpoint, as a registry entry names it
    agency: Any  # the agency's side (counters, balances, registers) for tests and the demo
    app: Any = None  # the Flask app of an HTTP sandbox
    stop: Callable[[], None] = field(default=lambda: None, repr=False)


@dataclass
class Sandboxes:
    running: list[RunningSandbox]
    _stops: list[Callable[[], None]]

    def __iter__(self):
        return iter(self.running)

    def __getitem__(self, name: str) -> RunningSandbox:
        return next(s for s in self.running if s.name == name)

    @property
    def endpoints(self) -> dict[str, str]:
        return {s.name: s.url for s in self.running}

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()


def _http_agency(app: Any) -> Any:
    for key in ("bank_agency", "tax_agency", "psb_sandbox", "samr_sandbox"):
        if key in app.extensions:
            return app.extensions[key]
    return None


def start_sandboxes(
    only: Iterable[str] | None = None,
    *,
    latency: float = 0.0,
    failure_rate: float = 0.0,
    seed: int | None = None,
    ports: dict[str, int] | None = None,
    sftp_root: Path | None = None,
) -> Sandboxes:
    """Start the sandboxes named in ``only`` (default: all).

    ``ports`` maps an agency id (or "sftp" for the SFTP server) to a port; 0 takes
    any free port; a name left out gets its fixed default port.
    """
    wanted = list(only) if only is not None else list(ALL)
    unknown = [name for name in wanted if name not in ALL]
    if unknown:
        raise ValueError(f"no sandbox for {unknown} (known: {', '.join(ALL)})")
    knobs = FaultKnobs(latency_seconds=latency, failure_rate=failure_rate, seed=seed)
    ports = ports or {}
    running: list[RunningSandbox] = []
    stops: list[Callable[[], None]] = []
    try:
        for name in wanted:
            if name in HTTP_SANDBOXES:
                default_port, prefix, factory = HTTP_SANDBOXES[name]
                server = SandboxServer(factory(knobs, prefix), port=ports.get(name, default_port)).start()
                stops.append(server.stop)
                running.append(RunningSandbox(name, server.url + prefix, _http_agency(server.app), server.app, server.stop))
        batch = [name for name in wanted if name in SFTP_SANDBOXES]
        if batch:
            running.extend(_start_sftp(batch, knobs, ports.get("sftp", SFTP_PORT), sftp_root, stops))
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise
    return Sandboxes(running, stops)


def _start_sftp(names: list[str], knobs: FaultKnobs, port: int, root: Path | None,
                stops: list[Callable[[], None]]) -> list[RunningSandbox]:
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="gateway-sftp-sandbox-"))
        stops.append(lambda: shutil.rmtree(root, ignore_errors=True))
    authorized = SFTP_CLIENT_PUBLIC_KEY.read_text(encoding="utf-8").strip()
    server = SftpSandbox(root, SFTP_HOST_KEY, [authorized], port=port).start()
    stops.append(server.stop)
    running = []
    for name in names:
        folder, make_agency = SFTP_SANDBOXES[name]
        agency = make_agency()
        processor = BatchAgencyProcessor(root / folder, agency.handle, knobs=knobs).start()
        stops.append(processor.stop)
        running.append(RunningSandbox(name, f"sftp://{SFTP_USER}@127.0.0.1:{server.port}/{folder}", agency,
                                      stop=processor.stop))
    return running


def start_polling_bank(gateway_url: str, *, verify: bool | str = True, interval_seconds: float = 1.0,
                       name: str = "bank-c", username: str = DEMO_USERNAME, password: str = DEMO_PASSWORD,
                       **options: Any) -> PollingBank:
    """The polling sandbox ``name`` started against the gateway at ``gateway_url``
    (``https://host:port``), verifying its TLS certificate against ``verify`` (a CA
    file). ``options`` go to ``PollingBank`` (timeout, batch size, fault knob, seed)."""
    if name not in POLLING_SANDBOXES:
        raise ValueError(f"no polling sandbox {name!r} (known: {', '.join(POLLING_SANDBOXES)})")
    wsdl_url = gateway_url.rstrip("/") + PULL_SERVICE_PATH + "?wsdl"
    return PollingBank(wsdl_url, username=username, password=password, verify=verify,
                       bank=POLLING_SANDBOXES[name](), interval_seconds=interval_seconds, **options).start()
