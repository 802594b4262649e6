"""Adapters: transports (how bytes reach an agency) and codecs (what they say).

The registry names a transport and a codec kind per agency; the gateway pairs
them with ``TRANSPORTS`` and ``CODECS`` below. Adapters import ``schemas`` only.
"""

from adapters.codecs.bank import BankCodec
from adapters.codecs.market_regulation import MarketRegulationCodec
from adapters.codecs.public_security import PublicSecurityCodec
from adapters.codecs.real_estate import RealEstateCodec
from adapters.codecs.tax import TaxCodec
from adapters.interfaces import Codec
from adapters.transports.rest import RestTransport
from adapters.transports.sftp import SftpTransport
from adapters.transports.soap import SoapTransport

CODECS: dict[str, type[Codec]] = {
    codec.kind: codec
    for codec in (BankCodec, TaxCodec, PublicSecurityCodec, RealEstateCodec, MarketRegulationCodec)
}

# Each codec says which transports it can be carried over (``Codec.transports``);
# the registry refuses an agency whose codec cannot travel over its transport.
TRANSPORTS = {"rest": RestTransport, "soap": SoapTransport, "sftp": SftpTransport}

__all__ = ["CODECS", "TRANSPORTS"]
