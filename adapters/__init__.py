"""Adapters: transports (how bytes reach an agency) and codecs (what they say).

The registry names a transport and a codec kind per agency; the gateway pairs
them with ``TRANSPORTS`` and ``CODECS`` below. Adapters import ``schemas`` only.
"""

from adapters.codecs.public_security import PublicSecurityCodec
from adapters.codecs.real_estate import RealEstateCodec
from adapters.transports.rest import RestTransport
from adapters.transports.sftp import SftpTransport

CODECS = {PublicSecurityCodec.kind: PublicSecurityCodec, RealEstateCodec.kind: RealEstateCodec}

# Each codec says which transports it can be carried over (JSON over REST here;
# XML codecs will add SOAP and SFTP batch files).
TRANSPORTS = {"rest": RestTransport, "sftp": SftpTransport}

__all__ = ["CODECS", "TRANSPORTS"]
