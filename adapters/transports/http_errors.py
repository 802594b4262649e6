"""requests' exceptions turned into the adapter error tree, for every transport that
speaks HTTP through requests (REST, and SOAP through zeep's requests session)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import requests
import urllib3

from adapters.errors import ConnectFailed, TransportError, TransportTimeout


@contextmanager
def translated_http_errors(url: str, exchange: str = "HTTP exchange") -> Iterator[None]:
    try:
        yield
    except requests.exceptions.ConnectTimeout:
        raise TransportTimeout(f"connect to {url} timed out") from None
    except requests.exceptions.Timeout:
        raise TransportTimeout(f"no answer from {url} within the timeout") from None
    except requests.exceptions.ConnectionError as exc:
        # requests reports a read timeout in the middle of the body as a ConnectionError.
        if exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError):
            raise TransportTimeout(f"{url} stopped sending its answer within the timeout") from None
        raise ConnectFailed(f"could not reach {url}: {type(exc).__name__}") from None
    except requests.exceptions.RequestException as exc:
        raise TransportError(f"{exchange} with {url} failed: {type(exc).__name__}") from None
