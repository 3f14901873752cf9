"""`attestation-agent serve`: the agent as a long-running service with guest-components' api-server-rest API.

Workloads in the pod reach it on 127.0.0.1:8006 (or a unix socket) instead of running a CLI per secret; one
attestation serves every request until the token nears its expiry (`_session`). The HTTP layer is the standard
library's asyncio streams (`_http`), so the guest install carries no web server; the routes are `_routes`.

    >>> listen = parse_listen("127.0.0.1:8006")
    >>> listen.host, listen.port, listen.unix
    ('127.0.0.1', 8006, None)
    >>> parse_listen("unix:/run/veritee/agent.sock").unix
    PosixPath('/run/veritee/agent.sock')
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..attesters import Attester, AttesterError, runtime_log
from ._http import HttpServer
from ._routes import Api, Measure
from ._session import KbsSession

__all__ = ["Listen", "ServiceConfig", "parse_listen", "run"]

DEFAULT_LISTEN = "127.0.0.1:8006"


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8006
    unix: Path | None = None

    def describe(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.unix is not None:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def parse_listen(text: str) -> Listen:
    """`HOST:PORT`, `[V6]:PORT` or `unix:PATH`; ValueError naming what is wrong."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError(f"--listen {text!r}: a unix socket path must be absolute")
        return Listen(unix=Path(path))
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"--listen {text!r} is not HOST:PORT or unix:PATH")
    return Listen(host=host.removeprefix("[").removesuffix("]"), port=int(port))


@dataclass(frozen=True)
class ServiceConfig:
    kbs_url: str
    attester: Attester
    listen: Listen = Listen()
    init_data: str | None = None  # the init-data TOML, already checked against the TEE's binding
    verify: bool | str = True
    allow_remote: bool = False  # answer peers off loopback (only with an explicit operator switch)
    refresh_margin: float = 10.0


def _version() -> str:
    try:
        return metadata.version("veritee")
    except metadata.PackageNotFoundError:
        return "unknown"


def _measure(attester: Attester, session: KbsSession, device: ThreadPoolExecutor) -> Measure | None:
    """POST /aa/aael: measure on the device thread, then drop the cached token, whose claims predate the event
    (the next request re-attests with the event in the log). None when the TEE has no runtime register."""
    try:
        log = runtime_log(attester)
    except AttesterError:
        return None

    async def measure(domain: str, operation: str, content: str) -> None:
        await asyncio.get_running_loop().run_in_executor(device, log.measure, domain, operation, content)
        session.forget_current()

    return measure


async def serve(config: ServiceConfig, device: ThreadPoolExecutor) -> None:
    session = KbsSession(
        config.kbs_url,
        config.attester,
        device,
        init_data=config.init_data,
        verify=config.verify,
        refresh_margin=config.refresh_margin,
    )
    api = Api(session, config.attester, device, version=_version(), measure=_measure(config.attester, session, device))
    server = HttpServer(api, allow_remote=config.allow_remote)
    if config.listen.unix is not None:
        await server.listen_unix(config.listen.unix)
        where = config.listen.describe()
    else:
        host, port = await server.listen_tcp(config.listen.host, config.listen.port)
        where = Listen(host=host, port=port).describe()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.close)
    print(
        f"attestation-agent: serving api-server-rest on {where} (tee {config.attester.tee}, kbs {config.kbs_url})",
        file=sys.stderr,
        flush=True,
    )
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()
    finally:
        await session.aclose()
        if config.listen.unix is not None:
            with contextlib.suppress(OSError):
                config.listen.unix.unlink()


def run(config: ServiceConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tee-device") as device:
        asyncio.run(serve(config, device))
