"""Pair each agency's transport with its codec, from the registry, once per process.

Two kinds of channel, by how the agency's transport works:

* ``AgencyChannel``: a call that answers (REST, SOAP). Encode, send, decode.
* ``BatchChannel``: a file drop (SFTP). Many encoded requests leave in one batch
  file; answers come back later in result files, each line decoded against the
  request it names, whose bytes the outbox kept.
* ``PullChannel``: the agency fetches its requests (``GET /api/v1/agency/deliveries``)
  and posts results back; nothing leaves the gateway on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, cast

from adapters import CODECS, TRANSPORTS
from adapters.errors import ConnectFailed
from adapters.interfaces import (
    AgencyAnswer,
    BatchRecord,
    BatchTransport,
    Codec,
    DeliveryOrder,
    Envelope,
    InboundBatch,
    Reply,
    Transport,
)
from gateway.errors import ConfigError
from gateway.registry import PATH_OPTIONS, Agency, Registry
from gateway.settings import read_secret
from schemas.xml import WSDL_DIR


@dataclass
class AgencyChannel:
    agency: Agency
    codec: Codec
    transport: Transport

    def encode(self, order: DeliveryOrder) -> Envelope:
        """Raises OutgoingInvalid: then nothing is sent."""
        return self.codec.encode(order)

    def exchange(self, envelope: Envelope) -> AgencyAnswer:
        """Send, decode. Raises adapters.errors.AdapterError subclasses only."""
        reply = self.transport.send(envelope)
        return self.codec.decode(reply, envelope)

    def close(self) -> None:
        self.transport.close()


@dataclass
class BatchChannel:
    agency: Agency
    codec: Codec
    transport: BatchTransport

    def encode(self, order: DeliveryOrder) -> Envelope:
        """Raises OutgoingInvalid: that one request is never sent, the rest of the batch is."""
        return self.codec.encode(order)

    def send(self, envelopes: Sequence[Envelope]) -> str:
        """Upload one batch file of the envelopes' bodies; return its name. Raises AdapterError."""
        operations = {e.operation for e in envelopes}
        # One file holds one kind of message, as agencies' batch channels expect.
        if len(operations) != 1:
            raise ValueError(f"a batch file holds one operation, got {sorted(operations)}")
        return self.transport.send_batch(operations.pop(), [BatchRecord(e.message_id, e.body) for e in envelopes])

    def receive(self, limit: int = 20) -> list[InboundBatch]:
        return self.transport.receive(limit)

    def decode(self, record: BatchRecord, envelope: Envelope) -> AgencyAnswer:
        """Decode one result line against the request it names (same checks as a call's reply)."""
        return self.codec.decode(Reply(status=200, body=record.body, media_type=envelope.media_type), envelope)

    def settle(self, batch: InboundBatch) -> None:
        self.transport.settle(batch)

    def missing(self, batch_files: Sequence[str]) -> list[str]:
        """The batch files sent earlier that the agency has lost (neither waiting nor answered)."""
        return self.transport.missing(batch_files)

    def close(self) -> None:
        self.transport.close()


@dataclass
class PullChannel:
    """An agency that fetches its requests from the gateway (``mode = "pull"``) and
    posts results back: the worker only encodes and keeps each request."""

    agency: Agency
    codec: Codec

    def encode(self, order: DeliveryOrder) -> Envelope:
        return self.codec.encode(order)

    def close(self) -> None:
        pass


Channel = AgencyChannel | BatchChannel | PullChannel


def transport_options(agency: Agency, config_dir: Path) -> dict[str, Any]:
    """The agency's [agency.options] as its transport's constructor takes them:
    paths made absolute against the registry's folder, WSDL names looked up in
    ``schemas/wsdl/``, secrets read from the environment variable named."""
    options = dict(agency.options)
    if "wsdl" in options:
        name = str(options["wsdl"])
        path = WSDL_DIR / f"{name}.wsdl" if "/" not in name and not name.endswith(".wsdl") else config_dir / name
        if not path.is_file():
            raise ConfigError(f"agency {agency.id!r}: options.wsdl: no WSDL file at {path}")
        options["wsdl"] = str(path)
    for key in PATH_OPTIONS:
        if key in options:
            path = config_dir / str(options[key])
            if not path.is_file():
                raise ConfigError(f"agency {agency.id!r}: options.{key}: no file at {path}")
            options[key] = str(path)
    if isinstance(options.get("verify"), str):
        options["verify"] = str(config_dir / options["verify"])
    if "password_env" in options:
        options["password"] = read_secret(str(options.pop("password_env")))
    return options


def make_transport(agency: Agency, config_dir: Path) -> Transport | BatchTransport:
    transport_class = TRANSPORTS[agency.transport]
    options = transport_options(agency, config_dir)
    try:
        return transport_class(agency.endpoint, timeout_seconds=agency.timeout_seconds, **options)
    except (TypeError, ValueError, ConnectFailed) as exc:
        raise ConfigError(f"agency {agency.id!r}: its {agency.transport} transport refused its settings: {exc}") from None


def build_codecs(registry: Registry) -> dict[str, Any]:
    """One codec per agency (by its id): what the worker encodes with and what the
    result views (REST and SOAP) decode with; the app keeps them in app.extensions."""
    return {agency.id: CODECS[agency.kind]() for agency in registry}


def build_channels(registry: Registry, codecs: dict[str, Any] | None = None) -> dict[str, Channel]:
    config_dir = Path(registry.source).parent if registry.source else Path.cwd()
    codecs = codecs if codecs is not None else build_codecs(registry)
    channels: dict[str, Channel] = {}
    for agency in registry:
        codec = codecs[agency.id]
        if agency.mode == "pull":
            channels[agency.id] = PullChannel(agency, codec)
            continue
        transport = make_transport(agency, config_dir)
        # The registry lets an agency batch only over a transport that drops files (sftp).
        channels[agency.id] = (BatchChannel(agency, codec, cast(BatchTransport, transport)) if agency.is_batch
                               else AgencyChannel(agency, codec, cast(Transport, transport)))
    return channels
