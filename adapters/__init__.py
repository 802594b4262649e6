"""Adapters: transports (how bytes reach an agency) and codecs (what they say).

The registry names a transport and a codec kind per agency; the gateway pairs
them with ``TRANSPORTS`` and ``CODECS`` below. Adapters import ``schemas`` only.
"""

from adapters.codecs.market_regulation import MarketRegulationCodec
from adapters.codecs.public_security import PublicSecurityCodec
from adapters.transports.rest import RestTransport

CODECS = {PublicSecurityCodec.kind: PublicSecurityCodec, MarketRegulationCodec.kind: MarketRegulationCodec}

# Each codec says which transports it can be carried over (JSON over REST here;
# XML codecs will add SOAP and SFTP batch files).
TRANSPORTS = {"rest": RestTransport}

__all__ = ["CODECS", "TRANSPORTS"]
