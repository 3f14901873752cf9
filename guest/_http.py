"""Streaming HTTP/1.1 GETs for registry pulls, on the standard library (http.client).

The guest installs without httpx (a slim guest: attestation_agent._http gives the reasons), and a blob read with
`readinto` straight into the decryption pipeline's buffer is also about twice as fast as an httpx stream. What a
registry pull needs, and only that: GET with headers, one kept-alive connection per origin (reused once the
previous response was read to its end), TLS against the system trust store (honouring SSL_CERT_FILE and
SSL_CERT_DIR), and the proxy variables (`https_proxy`, `http_proxy`, `all_proxy`, `no_proxy`; an HTTPS origin is
reached through a CONNECT tunnel). Redirects and authentication are the caller's (guest._registry).
"""

from __future__ import annotations

import http.client
import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

__all__ = ["HttpPool", "Url"]

USER_AGENT = "veritee-guest"
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Url:
    """An absolute http(s) URL, split the way a request needs it."""

    scheme: str
    host: str
    port: int
    target: str  # path and query

    @classmethod
    def parse(cls, text: str) -> Url:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{text!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)  # ValueError for a bad port
        return cls(parts.scheme, parts.hostname, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def join(self, reference: str) -> Url:
        return Url.parse(urljoin(str(self), reference))

    def with_query(self, params: dict[str, str]) -> Url:
        separator = "&" if "?" in self.target else "?"
        return Url(self.scheme, self.host, self.port, self.target + separator + urlencode(params))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_port}{self.target}"


def _proxy_for(url: Url) -> str | None:
    def env(name: str) -> str:
        return os.environ.get(name) or os.environ.get(name.upper()) or ""

    for listed in env("no_proxy").split(","):
        entry = listed.strip().lstrip(".")
        if entry == "*" or (entry and (url.host == entry or url.host.endswith("." + entry))):
            return None
    return env(f"{url.scheme}_proxy") or env("all_proxy") or None


class HttpPool:
    """Kept-alive connections by origin; `get` returns the response with its body unread (the caller reads it, or
    closes it: then its connection is not reused)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._connections: dict[tuple[str, str, int], tuple[http.client.HTTPConnection, http.client.HTTPResponse]] = {}

    def _connect(self, url: Url) -> http.client.HTTPConnection:
        proxy = _proxy_for(url)
        where = Url.parse(proxy) if proxy else url
        if url.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                where.host, where.port, timeout=self._timeout, context=self._tls
            )
            if proxy:
                connection.set_tunnel(url.host, url.port)
            return connection
        return http.client.HTTPConnection(where.host, where.port, timeout=self._timeout)

    def get(self, url: Url, headers: dict[str, str]) -> http.client.HTTPResponse:
        """GET `url`; OSError or http.client.HTTPException when the exchange fails."""
        target = str(url) if url.scheme == "http" and _proxy_for(url) else url.target
        send = {"User-Agent": USER_AGENT, **headers}
        for attempt in (1, 2):
            pooled = self._connections.pop(url.origin, None)
            reused = pooled is not None and pooled[1].isclosed()  # the previous body was read to its end
            if pooled is not None and not reused:
                pooled[0].close()
            connection = pooled[0] if pooled is not None and reused else self._connect(url)
            try:
                connection.request("GET", target, headers=send)
                response = connection.getresponse()
            except _STALE:
                connection.close()
                if reused and attempt == 1:
                    continue  # a kept-alive connection the server had closed: once more on a new one
                raise
            except BaseException:
                connection.close()
                raise
            if not response.will_close:
                self._connections[url.origin] = (connection, response)
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        for connection, _ in self._connections.values():
            connection.close()
        self._connections.clear()
