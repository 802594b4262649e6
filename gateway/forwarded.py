"""Which peers may say what the client's address and scheme were (X-Forwarded-*).

A UsernameToken is accepted over TLS only (gateway/agency/soap_views.py), and
request.is_secure believes whatever the WSGI environ says the scheme was. A
client that may set ``X-Forwarded-Proto: https`` (or ``X-Forwarded-Ssl: on``)
over plain HTTP would pass that rule, so forwarded headers are trusted only from
the proxies ``[server] forwarded_allow_ips`` names, and from no one by default:
gunicorn is told the same list (gateway/server.py), and the app applies werkzeug's
ProxyFix only to requests whose peer is one of them. From any other peer the
forwarded headers are dropped before the app sees them.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(addresses: Iterable[str], setting: str = "server.forwarded_allow_ips") -> list[Network]:
    """The configured proxies as networks (an address is a network of one).

    ``*`` is refused: trusting every peer's forwarded headers is the hole this closes."""
    networks = []
    for address in addresses:
        if address.strip() == "*":
            raise ConfigError(f"setting {setting}: '*' would let any client claim https; name the proxies' addresses")
        try:
            networks.append(ipaddress.ip_network(address.strip()))
        except ValueError as error:
            raise ConfigError(f"setting {setting}: {address!r} is not an IP address or network ({error})") from None
    return networks


def peer_is_proxy(peer: str | None, networks: list[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:  # a Unix socket, or no peer: not a configured proxy
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class TrustedProxies:
    """WSGI middleware: ProxyFix (one proxy hop: client address, scheme, host) for
    requests from a configured proxy; forwarded headers stripped from the rest."""

    def __init__(self, app: Callable[..., Any], networks: list[Network]):
        self._app, self._networks = app, networks
        self._fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if peer_is_proxy(environ.get("REMOTE_ADDR"), self._networks):
            return self._fixed(environ, start_response)
        for key in [k for k in environ if k.startswith("HTTP_X_FORWARDED_") or k == "HTTP_FORWARDED"]:
            del environ[key]
        return self._app(environ, start_response)
