"""The agent's HTTP/1.1 client: JSON requests to one broker over one kept-alive connection, on the standard library.

Why not httpx: importing it costs the agent more than all its real work (about 100 ms and 6 MB RSS, with
click, http.cookiejar, urllib.request and its compression decoders), and the agent needs four things only: JSON
bodies, a session cookie, TLS with a given CA or the system store, and the proxy variables.

- TLS: `verify` True checks the broker's certificate against the system trust store (honouring SSL_CERT_FILE and
  SSL_CERT_DIR), a path against that CA file only, False not at all.
- Cookies: those the broker sets are sent back on later requests (the KBS session cookie); `cookies.clear()`.
- Proxies: `https_proxy`/`http_proxy`/`all_proxy` (either case) unless `no_proxy` names the host; an HTTPS broker
  is reached through a CONNECT tunnel.
- Failures to connect, send or read raise TransportError; any HTTP status is a Response.

>>> HttpClient("https://kbs.example:8443/").origin
'https://kbs.example:8443'
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["HttpClient", "Response", "TransportError"]

USER_AGENT = "veritee-attestation-agent"
# What a kept-alive connection the broker closed meanwhile raises on the next request.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TransportError(Exception):
    """The broker could not be reached, or the connection failed mid-exchange. `unsent` when the connection was
    refused: the request never reached a broker, so even a step that must not run twice may be sent elsewhere."""

    def __init__(self, message: str, *, unsent: bool = False) -> None:
        super().__init__(message)
        self.unsent = unsent


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None = None  # the Retry-After header, in seconds (an HTTP date is not honoured)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment names for this broker, as httpx (trust_env) and curl read it."""

    def env(name: str) -> str:
        return os.environ.get(name) or os.environ.get(name.upper()) or ""

    for listed in env("no_proxy").split(","):
        entry = listed.strip().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return env(f"{scheme}_proxy") or env("all_proxy") or None


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _seconds(value: str | None) -> float | None:
    return float(value) if value is not None and value.strip().isdigit() else None


class HttpClient:
    def __init__(self, url: str, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        parts = urlsplit(url)
        self._url_error = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self._url_error = f"the URL {url!r} is not http(s)://HOST[:PORT]"  # raised by request(), as httpx did
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError:  # a port that is not a number
            self._port = 0
            self._url_error = f"the URL {url!r} has an invalid port"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._verify = verify
        self._proxy = _proxy_for(parts.scheme, self._host)
        self._connection: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def _connect(self) -> http.client.HTTPConnection:
        proxy = urlsplit(self._proxy) if self._proxy else None
        host, port = (proxy.hostname or "", proxy.port or 80) if proxy else (self._host, self._port)
        if self._https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self._timeout, context=_tls_context(self._verify)
            )
            if proxy:
                connection.set_tunnel(self._host, self._port)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
        return connection

    def request(
        self, method: str, path: str, *, json_body: object = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One request to `prefix + path`; the connection is reused while the broker keeps it open."""
        if self._url_error:
            raise TransportError(self._url_error)
        target = self.prefix + path
        if self._proxy and not self._https:
            target = self.origin + target  # a plain-HTTP proxy takes the absolute URI
        send = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send["Content-Type"] = "application/json"
        if self.cookies and "Cookie" not in send:  # a cookie the caller names (another replica's session) wins
            send["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        tried = False  # the request went out on a kept-alive connection that then failed: it may have arrived
        for fresh in (self._connection is None, True):
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request(method, target, body=body, headers=send)
                reply = self._connection.getresponse()
                data = reply.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # A kept-alive connection the broker closed meanwhile: retry once on a new one.
                if fresh or not isinstance(
                    exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError
                ):
                    unsent = isinstance(exc, ConnectionRefusedError) and not tried
                    raise TransportError(str(exc) or type(exc).__name__, unsent=unsent) from exc
                tried = True
                continue
            for cookie in reply.headers.get_all("Set-Cookie") or ():
                name, _, value = cookie.split(";", 1)[0].partition("=")
                self.cookies[name.strip()] = value.strip()
            if reply.will_close:
                self.close()
            return Response(reply.status, data, _seconds(reply.headers.get("Retry-After")))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
