"""A small HTTP/1.1 server on asyncio streams, for the agent's loopback API.

Why not uvicorn (the broker's server): the agent is the slim guest install, and its API is six routes with
short bodies on loopback. The standard library's asyncio streams give exact control over what a hostile or
broken local client can make it do, with no dependency the guest must carry:
- request line at most MAX_REQUEST_LINE bytes (414), at most MAX_HEADERS header lines of at most
  MAX_HEADER_LINE bytes (431), a body only with Content-Length and at most MAX_BODY bytes (413; chunked 411);
- a client that sends nothing for HEADER_TIMEOUT seconds is dropped, idle keep-alive connections after
  IDLE_TIMEOUT; at most MAX_CONNECTIONS at once (others wait in the kernel's backlog);
- a malformed request line or header gets 400 and the connection is closed; the server keeps serving.

The handler gets a parsed `Request` and returns a `Response`; it never sees a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_HEADER_LINE",
    "MAX_REQUEST_LINE",
    "Handler",
    "HttpServer",
    "Request",
    "Response",
    "text_response",
]

log = logging.getLogger("attestation_agent.service")

MAX_REQUEST_LINE = 8192
MAX_HEADER_LINE = 8192
MAX_HEADERS = 64
MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 256
HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
BODY_TIMEOUT = 10.0

# RFC 9110 15's reason phrases where Python 3.11's HTTPStatus still has RFC 7231's.
_REASONS = {413: "Content Too Large", 414: "URI Too Long"}
# RFC 9110 5.6.2: a method is a token.
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(rb"HTTP/1\.[01]")


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the raw origin-form target: path and query, undecoded
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    loopback: bool  # the peer is on a loopback address or a unix socket

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, (message + "\n").encode(), headers=headers or {})


Handler = Callable[[Request], Awaitable[Response]]


class _Reject(Exception):  # noqa: N818 (a control-flow signal carrying the response, not an error type)
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = text_response(status, message)


def _encode(response: Response, keep_alive: bool) -> bytes:
    reason = _REASONS.get(response.status) or HTTPStatus(response.status).phrase
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class HttpServer:
    """Serve `handler` on a TCP address or a unix socket until `close()`.

    allow_remote: when False (the default), requests from peers that are not on a loopback address get 403,
    whatever address the server listens on.
    """

    def __init__(self, handler: Handler, *, allow_remote: bool = False) -> None:
        self._handler = handler
        self._allow_remote = allow_remote
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=MAX_REQUEST_LINE + 2, reuse_address=True
        )
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def listen_unix(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()  # a stale socket from a previous run; any other file is left alone (bind fails)
        self._server = await asyncio.start_unix_server(self._connection, str(path), limit=MAX_REQUEST_LINE + 2)
        path.chmod(0o660)

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    @staticmethod
    def _is_loopback(writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            return True
        peer = writer.get_extra_info("peername")
        try:
            return ipaddress.ip_address(peer[0]).is_loopback
        except (TypeError, ValueError, IndexError):
            return False

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loopback = self._is_loopback(writer)
        async with self._slots:
            try:
                await self._serve_connection(reader, writer, loopback)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                pass  # the client went away or stalled: nothing to answer
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, loopback: bool
    ) -> None:
        first = True
        while True:
            try:
                request, keep_alive = await self._read_request(reader, loopback, IDLE_TIMEOUT if not first else None)
            except _Reject as reject:
                writer.write(_encode(reject.response, keep_alive=False))
                await writer.drain()
                return
            if request is None:
                return
            first = False
            if not loopback and not self._allow_remote:
                response = text_response(403, "Forbidden: this API answers only local clients (loopback)")
            else:
                try:
                    response = await self._handler(request)
                except Exception:  # the edge: a bug in a route must not take the service down
                    log.exception("unexpected error serving %s %s", request.method, request.path)
                    response = text_response(500, "Internal Server Error: see the agent's log")
            writer.write(_encode(response, keep_alive))
            await writer.drain()
            if not keep_alive:
                return

    async def _read_request(
        self, reader: asyncio.StreamReader, loopback: bool, idle: float | None
    ) -> tuple[Request | None, bool]:
        """The next request on the connection, or (None, False) at a clean end of stream."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), idle or HEADER_TIMEOUT)
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _Reject(400, "Bad Request: incomplete request line") from None
            return None, False
        except asyncio.LimitOverrunError:
            raise _Reject(414, f"URI Too Long: the request line is over {MAX_REQUEST_LINE} bytes") from None
        except ValueError:  # the stream's limit was exceeded while looking for the separator
            raise _Reject(414, f"URI Too Long: the request line is over {MAX_REQUEST_LINE} bytes") from None
        parts = line[:-2].split(b" ")
        if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
            raise _Reject(400, "Bad Request: the request line is not METHOD TARGET HTTP/1.x")
        method, raw_target, version = parts
        if not raw_target.startswith(b"/") or any(b < 0x21 or b > 0x7E for b in raw_target):
            raise _Reject(400, "Bad Request: the target must be an absolute path of visible ASCII")
        headers = await asyncio.wait_for(self._read_headers(reader), HEADER_TIMEOUT)
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection
        if "transfer-encoding" in headers:
            raise _Reject(411, "Length Required: send the body with Content-Length, not a transfer coding")
        body = b""
        length_text = headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit() or len(length_text) > 12:
                raise _Reject(400, "Bad Request: Content-Length is not a non-negative integer")
            length = int(length_text)
            if length > MAX_BODY:
                raise _Reject(413, f"Content Too Large: the body is {length} bytes, at most {MAX_BODY}")
            body = await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT)
        request = Request(
            method=method.decode("ascii"),
            target=raw_target.decode("ascii"),
            headers=headers,
            body=body,
            loopback=loopback,
        )
        return request, keep_alive

    @staticmethod
    async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            try:
                line = await reader.readuntil(b"\r\n")
            except (asyncio.LimitOverrunError, ValueError):
                too_long = f"Request Header Fields Too Large: a header line is over {MAX_HEADER_LINE} bytes"
                raise _Reject(431, too_long) from None
            if line == b"\r\n":
                return headers
            name, sep, value = line[:-2].partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise _Reject(400, "Bad Request: a header line is not NAME: VALUE")
            try:
                headers[name.decode("ascii").lower()] = value.strip(b" \t").decode("latin-1")
            except UnicodeDecodeError:
                raise _Reject(400, "Bad Request: a header name is not ASCII") from None
        raise _Reject(431, f"Request Header Fields Too Large: more than {MAX_HEADERS} header lines")
