"""What the durability tests share: two REST agencies (public security and market
regulation) on loopback with fault knobs, a registry pointing at them, and
`gateway worker` / `gateway serve` processes on the test's database."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests
import sqlalchemy as sa
from conftest import toml_value

from gateway.deliveries.models import Delivery
from gateway.registry import Registry, parse_agency
from sandboxes import market_regulation, public_security
from sandboxes.server import FaultKnobs, SandboxServer

GATEWAY = str(Path(sys.executable).parent / "gateway")


@dataclass
class Agency:
    id: str
    server: SandboxServer
    state: Any  # the sandbox's counters (calls, answered_count, duplicate_count, failures_injected)
    url: str


class Spikes:
    """WSGI middleware: a share of calls waits ``seconds`` before the agency sees them
    (a latency spike past the gateway's timeout: the call is lost to the gateway, but
    the agency still answers it, so the retry is a duplicate at the agency)."""

    def __init__(self, app: Any, share: float, seconds: float, seed: int):
        self.app, self.share, self.seconds = app, share, seconds
        self._rng, self._lock, self.spiked = random.Random(seed), threading.Lock(), 0
        self.extensions = app.extensions

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        with self._lock:
            spike = self._rng.random() < self.share
            self.spiked += spike
        if spike:
            time.sleep(self.seconds)
        return self.app(environ, start_response)


def start_agencies(knobs: FaultKnobs | None = None, *, spike_share: float = 0.0, spike_seconds: float = 0.0,
                   ) -> dict[str, Agency]:
    agencies = {}
    for n, (agency_id, module, key) in enumerate((("psb", public_security, "psb_sandbox"),
                                                  ("samr", market_regulation, "samr_sandbox"))):
        app = module.create_app(knobs or FaultKnobs(), prefix=module.DEFAULT_PREFIX)
        served = Spikes(app, spike_share, spike_seconds, seed=n) if spike_share else app
        server = SandboxServer(served).start()
        agencies[agency_id] = Agency(agency_id, server, app.extensions[key], server.url + module.DEFAULT_PREFIX)
    return agencies


def stop_agencies(agencies: dict[str, Agency]) -> None:
    for agency in agencies.values():
        agency.server.stop()


KINDS = {"psb": ("public_security", ["identity", "vehicle", "whereabouts"], ["inquiry", "seal"]),
         "samr": ("market_regulation", ["enterprise", "equity"], ["inquiry"])}


def registry_toml(agencies: dict[str, Agency], *, concurrency: int = 16, rate: int = 5000, timeout: float = 2.0,
                  deadline: int = 86400) -> str:
    """The agencies as config/agencies.toml entries, pointed at the sandboxes."""
    entries = []
    for agency_id, agency in agencies.items():
        kind, categories, actions = KINDS[agency_id]
        deadlines = ", ".join(f"{a} = {deadline}" for a in actions)
        entries.append(
            f'[[agency]]\nid = "{agency_id}"\nkind = "{kind}"\nname = "{agency_id} (sandbox)"\ntransport = "rest"\n'
            f'endpoint = "{agency.url}"\ncategories = {categories!r}\nactions = {actions!r}\n'
            f'concurrency = {concurrency}\nrate_limit_per_second = {rate}\ntimeout_seconds = {timeout}\n'
            f'deadlines = {{ {deadlines} }}\n'.replace("'", '"'))
    return "\n".join(entries)


def registry_of(agencies: dict[str, Agency], **limits: Any) -> Registry:
    import tomllib

    document = tomllib.loads(registry_toml(agencies, **limits))
    return Registry([parse_agency(entry, "test", i) for i, entry in enumerate(document["agency"])], "test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, keys_dir: Path, agencies: dict[str, Agency], *, workers: str = "",
                 registry_limits: dict | None = None, name: str = "gateway") -> Path:
    """A settings file (and its registry) for gateway processes started by a test."""
    return _write_settings(tmp_path, keys_dir, registry_toml(agencies, **(registry_limits or {})), workers, name)


def _write_settings(tmp_path: Path, keys_dir: Path, registry_text: str, workers: str, name: str) -> Path:
    """``{name}.toml`` naming ``{name}-agencies.toml`` (``registry_text``), the test keys and ``workers``."""
    registry = tmp_path / f"{name}-agencies.toml"
    registry.write_text(registry_text, encoding="utf-8")
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[gateway]\ninstance_dir = "{tmp_path / "instance"}"\nagencies_file = "{registry}"\nlog_level = "WARNING"\n'
        f'[auth]\njwks_file = "{keys_dir / "jwks.json"}"\nsigning_key_file = "{keys_dir / "signing-key.pem"}"\n'
        f'[audit]\nsubject_key_file = "{keys_dir / "subject-hash.key"}"\n'
        f'[workers]\n{workers}\n')
    return config


def gateway_process(args: list[str], config: Path, database_url: str, log: Path) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "PROMETHEUS_"))},
           "GATEWAY_CONFIG": str(config), "GATEWAY_DATABASE_URL": database_url}
    return subprocess.Popen([GATEWAY, *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    give_up = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < give_up, "the gateway process did not become ready"
        time.sleep(0.1)


def stop(process: subprocess.Popen, log: Path) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return log.read_text()


# --- the default registry's agencies, on sandboxes started by sandboxes.run ----------------


def default_registry_toml(endpoints: dict[str, str], **changes: Any) -> str:
    """config/agencies.toml cut down to the agencies in ``endpoints``, pointed there
    (relative option paths made absolute: the file is written elsewhere)."""
    import tomllib

    from gateway.settings import CONFIG_DIR

    document = tomllib.loads((CONFIG_DIR / "agencies.toml").read_text(encoding="utf-8"))
    entries = []
    for entry in document["agency"]:
        if entry["id"] not in endpoints:
            continue
        entry = {**entry, "endpoint": endpoints[entry["id"]], **changes}
        entries.append("[[agency]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in entry.items()))
    return "\n".join(entries)


def write_default_config(tmp_path: Path, keys_dir: Path, endpoints: dict[str, str], *, workers: str = "",
                         **changes: Any) -> Path:
    return _write_settings(tmp_path, keys_dir, default_registry_toml(endpoints, **changes), workers, "gateway")


def wait_until_all_answered(db: Any, processes: list[subprocess.Popen], timeout: float) -> None:
    """Until every delivery is answered, the processes all still running (a crash fails at once)."""
    give_up = time.monotonic() + timeout
    while True:
        with db.reading() as session:
            states = Counter(session.scalars(sa.select(Delivery.state)))
        if set(states) == {"answered"}:
            return
        assert time.monotonic() < give_up, states
        assert all(p.poll() is None for p in processes)
        time.sleep(0.1)
