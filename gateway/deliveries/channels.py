"""Pair each agency's transport with its codec, from the registry, once per process."""

from __future__ import annotations

from dataclasses import dataclass

from adapters import CODECS, TRANSPORTS
from adapters.interfaces import AgencyAnswer, Codec, DeliveryOrder, Envelope, Transport
from gateway.registry import Agency, Registry


@dataclass
class AgencyChannel:
    agency: Agency
    codec: Codec
    transport: Transport

    def exchange(self, order: DeliveryOrder) -> tuple[Envelope, AgencyAnswer]:
        """Encode, send, decode. Raises adapters.errors.AdapterError subclasses only."""
        envelope = self.codec.encode(order)
        reply = self.transport.send(envelope)
        return envelope, self.codec.decode(reply, envelope)

    def close(self) -> None:
        self.transport.close()


def make_transport(agency: Agency) -> Transport:
    transport_class = TRANSPORTS[agency.transport]
    return transport_class(agency.endpoint, timeout_seconds=agency.timeout_seconds)


def build_channels(registry: Registry) -> dict[str, AgencyChannel]:
    return {a.id: AgencyChannel(a, CODECS[a.kind](), make_transport(a)) for a in registry}
