"""Start the agency sandboxes on the ports the default registry points at
(config/agencies.toml), or on free ports for the demo and tests."""

from __future__ import annotations

from dataclasses import dataclass

from sandboxes import public_security
from sandboxes.server import FaultKnobs, SandboxServer

# name -> (default port, path prefix, app factory)
DEFAULT_SANDBOXES = {
    "psb": (18083, public_security.DEFAULT_PREFIX, public_security.create_app),
}


@dataclass
class RunningSandbox:
    name: str
    server: SandboxServer
    prefix: str

    @property
    def url(self) -> str:
        """The agency endpoint, as an agency registry entry names it."""
        return self.server.url + self.prefix

    @property
    def app(self):
        return self.server.app

    def stop(self) -> None:
        self.server.stop()


def start_default_sandboxes(
    latency: float = 0.0,
    failure_rate: float = 0.0,
    seed: int | None = None,
    *,
    ports: dict[str, int] | None = None,
) -> list[RunningSandbox]:
    """Start every sandbox; ``ports`` maps a name to a port (0: any free port)."""
    knobs = FaultKnobs(latency_seconds=latency, failure_rate=failure_rate, seed=seed)
    running = []
    for name, (default_port, prefix, factory) in DEFAULT_SANDBOXES.items():
        port = (ports or {}).get(name, default_port)
        server = SandboxServer(factory(knobs, prefix=prefix), port=port).start()
        running.append(RunningSandbox(name, server, prefix))
    return running
