"""The broker's CPU time per RCAR handshake against a bare FastAPI app's, both in this process: a figure that holds on
a loaded machine, where bench/kbs_handshake.py's live rates swing.

    .venv/bin/python bench/kbs_handshake_cpu.py [--seconds 1] [--rounds 5] [--concurrency 1] [--json]

Both ASGI apps are called directly, with no server, socket or HTTP parser in between: what is measured is the app's
own path (middleware, routing, validation, the services on their threads, SQLite, the cryptography), which is what
the broker's code decides, and not uvicorn's, which both apps share when served. The broker is the whole app of
`kbs serve` (kbs.app.create_app over a fresh `kbs init` folder and SQLite database, sample evidence allowed, rate
limits off) with its lifespan running; the bare app is bench/_bare_app.py, the baseline of bench/kbs_handshake.py.

One handshake = POST /auth, POST /attest with sample evidence bound to the nonce and the client's P-256 key (made
once), GET /resource answered with a JWE. The released JWE is decrypted once, before the rounds, to check the
broker answers the provisioned secret; the rounds measure the server side only. Each round runs both apps for
`--seconds`, alternating which goes first, and the process CPU time (time.process_time: every thread) over the
handshakes is the figure; the ratio is the broker's over the bare app's in the same round. Printed: the median
over the rounds with its range, and the load average beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "attestation-agent")]

from fastapi import FastAPI  # noqa: E402
from joserfc import jwe  # noqa: E402
from joserfc.jwk import ECKey  # noqa: E402

from bench._bare_app import app as bare_app  # noqa: E402
from kbs.app import create_app  # noqa: E402
from kbs.protocol import BASE_PATH, SESSION_COOKIE  # noqa: E402
from kbs.settings import load  # noqa: E402
from tests.integration._kbs_server import UNLIMITED, KbsServer  # noqa: E402
from tests.integration._load import AUTH_BODY, JWE_FIELDS, RESOURCE, attest_body  # noqa: E402

SECRET = os.urandom(32)

Message = MutableMapping[str, Any]
Asgi = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        if self.status != 200:
            raise RuntimeError(f"HTTP {self.status}: {self.body[:200]!r}")
        return json.loads(self.body)

    def cookie(self, name: str) -> str:
        for key, value in self.headers:
            if key == b"set-cookie" and value.startswith(f"{name}=".encode()):
                return value.split(b";", 1)[0].decode()
        raise RuntimeError(f"no {name} cookie set")


async def call(app: Asgi, method: str, path: str, body: bytes = b"", cookie: str | None = None) -> Answer:
    """One request straight into an ASGI app, as a server would hand it over (raw path, client address, headers)."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    headers += [(b"content-length", str(len(body)).encode())] if method == "POST" else []
    headers += [(b"cookie", cookie.encode())] if cookie else []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    sent = False
    answer = Answer(0, [], b"")

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # no disconnect while the app answers
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer


class Guest:
    """A client of one app: its P-256 key, made once, and sample evidence bound to each fresh nonce."""

    def __init__(self, app: Asgi, real: bool) -> None:
        self.app = app
        self.real = real
        self.key = ECKey.generate_key("P-256")
        self.pubkey = self.key.as_dict(private=False)

    async def handshake(self) -> dict[str, str]:
        challenge = await call(self.app, "POST", f"{BASE_PATH}/auth", AUTH_BODY)
        nonce = challenge.json()["nonce"]
        cookie = challenge.cookie(SESSION_COOKIE)
        body = attest_body(nonce, self.pubkey, self.real)
        (await call(self.app, "POST", f"{BASE_PATH}/attest", body, cookie)).json()
        released: dict[str, str] = (
            await call(self.app, "GET", f"{BASE_PATH}/resource/{RESOURCE}", cookie=cookie)
        ).json()
        return released


async def cpu_per_handshake(guests: list[Guest], seconds: float) -> tuple[float, int]:
    """Handshakes by every guest at once for `seconds`: (process CPU seconds per handshake, handshakes)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(guest: Guest) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await guest.handshake()
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(client(guest) for guest in guests))
    return (time.process_time() - cpu) / done, done


def broker(folder: Path) -> FastAPI:
    """The app `kbs serve` would serve from a fresh `kbs init` folder, with the benchmark's resource, reference
    value and the demo resource policy that admits the sample TEE, provisioned through the admin service."""
    server = KbsServer(folder, config=UNLIMITED)  # only its `kbs init` and config: never started
    server.admin.close()
    app = create_app(load(server.config_file))
    admin = app.state.context.services.admin
    now = time.time()
    admin.put_resource("bench", RESOURCE, SECRET, now)
    admin.put_reference_values("bench", "sample_svn", ["1"], None, now)
    policy = (ROOT / "policies" / "demo_resource_allow_sample.rego").read_bytes()
    admin.set_resource_policy("bench", base64.urlsafe_b64encode(policy).decode().rstrip("="), None, now)
    return app


async def measure(args: argparse.Namespace, folder: Path) -> list[tuple[float, float]]:
    """(broker, bare) CPU seconds per handshake, one pair per round."""
    app = broker(folder)
    async with app.router.lifespan_context(app):
        kbs = [Guest(app, real=True) for _ in range(args.concurrency)]
        bare = [Guest(bare_app, real=False) for _ in range(args.concurrency)]
        released = await kbs[0].handshake()
        compact = ".".join(released[k] for k in JWE_FIELDS)
        if jwe.decrypt_compact(compact, kbs[0].key).plaintext != SECRET:
            raise SystemExit("the broker did not release the provisioned secret")
        for guests in (kbs, bare):  # warm both paths (imports, compiled policies, prepared statements)
            await cpu_per_handshake(guests, min(args.seconds, 0.5))
        rounds = []
        for index in range(args.rounds):
            order = [("kbs", kbs), ("bare", bare)][:: 1 if index % 2 == 0 else -1]
            cpu = {name: (await cpu_per_handshake(guests, args.seconds))[0] for name, guests in order}
            rounds.append((cpu["kbs"], cpu["bare"]))
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="each app's time in a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1, help="guests handshaking at once, per app")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = asyncio.run(measure(args, Path(folder)))
    kbs = [k * 1e3 for k, _ in rounds]
    bare = [b * 1e3 for _, b in rounds]
    ratios = [k / b for k, b in rounds]
    out = {
        "concurrency": args.concurrency,
        "rounds": len(rounds),
        "kbs_cpu_ms": round(statistics.median(kbs), 3),
        "kbs_cpu_ms_range": [round(min(kbs), 3), round(max(kbs), 3)],
        "bare_cpu_ms": round(statistics.median(bare), 3),
        "bare_cpu_ms_range": [round(min(bare), 3), round(max(bare), 3)],
        "cpu_ratio": round(statistics.median(ratios), 2),
        "cpu_ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"c={args.concurrency}, {len(rounds)} rounds of {args.seconds:g} s, load average "
            f"{' '.join(str(x) for x in out['load_average'])}\n"
            f"  CPU per handshake: kbs {out['kbs_cpu_ms']} ms ({'-'.join(map(str, out['kbs_cpu_ms_range']))}), "
            f"bare {out['bare_cpu_ms']} ms ({'-'.join(map(str, out['bare_cpu_ms_range']))})\n"
            f"  ratio {out['cpu_ratio']} ({'-'.join(map(str, out['cpu_ratio_range']))})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
