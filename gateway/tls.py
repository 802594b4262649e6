"""A throwaway self-signed TLS certificate for serving the gateway over https on
loopback (the demo, tests): made at run time, never kept in the repository.

A real deployment is given its certificate (``gateway serve --certfile --keyfile``)
or sits behind a TLS-terminating proxy.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateFiles:
    certfile: Path  # PEM certificate: also what a client trusts (``verify=certfile``)
    keyfile: Path  # PEM private key, readable by its owner only


def self_signed_certificate(directory: Path, host: str = "127.0.0.1", days: int = 2) -> CertificateFiles:
    """Write a new key and a certificate for ``host`` (and localhost) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = CertificateFiles(directory / "gateway-tls.crt", directory / "gateway-tls.key")
    files.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.keyfile.touch(mode=0o600)
    files.keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return files


def server_ssl_context(files: CertificateFiles) -> ssl.SSLContext:
    """A server-side TLS context serving ``files`` (for ``SandboxServer(ssl_context=...)``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.certfile), str(files.keyfile))
    return context
