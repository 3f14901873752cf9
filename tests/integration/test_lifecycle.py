"""Broker lifecycle: expiry, restarts, key rotation, replicas sharing one database, a database outage, limits."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration._guest import Guest
from tests.integration._helpers import DEMO_POLICY, SECRET, assert_error, provision
from tests.integration._kbs_server import UNLIMITED, KbsServer
from tests.integration._postgres import PrivatePostgres
from tests.integration.conftest import new_database_url


def test_expired_session_and_token(tmp_path: Path) -> None:
    config = {"sessions": {"ttl_seconds": 1}, "tokens": {"ttl_seconds": 2}}
    with KbsServer(tmp_path / "kbs", config=config) as server:
        provision(server)
        late = Guest(server.url)
        nonce = late.auth().json()["nonce"]
        session = late.http.cookies["kbs-session-id"]
        guest = Guest(server.url)
        token = guest.handshake()
        time.sleep(1.2)
        # The client's cookie jar drops the expired cookie; send it anyway, as a stale or hostile client would.
        stale = httpx.post(
            server.url + "/kbs/v0/attest",
            json=late.attest_body(nonce),
            headers={"Cookie": f"kbs-session-id={session}"},
        )
        assert_error(stale, 401, "UnAuthorized", "expired")
        time.sleep(1.0)
        assert_error(guest.resource("default/key/1", token, cookies=False), 401, "JWTVerificationFailed", "expired")


def test_restart_keeps_state_and_tokens(tmp_path: Path, database_url: str) -> None:
    with KbsServer(tmp_path / "kbs", database_url=database_url) as server:
        provision(server)
        guest = Guest(server.url)
        token = guest.handshake()
        jwks_before = httpx.get(server.url + "/.well-known/jwks.json").json()
        server.restart()
        assert httpx.get(server.url + "/.well-known/jwks.json").json() == jwks_before
        response = guest.resource("default/key/1", token, cookies=False)
        assert response.status_code == 200, response.text
        assert guest.decrypt(response.json()) == SECRET
        assert server.admin.get_policy("resource") == DEMO_POLICY
        assert [r["name"] for r in server.admin.list_reference_values()] == ["sample_svn"]


def test_signing_key_rotation_overlaps(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        provision(server)
        guest = Guest(server.url)
        old_token = guest.handshake()
        new_kid = server.admin.rotate_signing_key()
        kids = [k["kid"] for k in httpx.get(server.url + "/.well-known/jwks.json").json()["keys"]]
        assert new_kid in kids
        assert len(kids) == 2
        assert guest.resource("default/key/1", old_token, cookies=False).status_code == 200
        new_token = Guest(server.url).handshake()
        assert new_token.split(".")[0] != old_token.split(".")[0]


def test_two_replicas_share_one_postgres(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = new_database_url(request, "postgres", tmp_path)
    first = KbsServer(tmp_path / "a", database_url=url)
    # The second replica shares the first one's configuration folder (same KEK and admin key).
    with first:
        provision(first)
        second = KbsServer(tmp_path / "a", database_url=url, init=False)
        with second:
            guest = Guest(first.url)
            nonce = guest.auth().json()["nonce"]
            cookie = guest.http.cookies.get("kbs-session-id")
            other = httpx.Client(base_url=second.url + "/kbs/v0", cookies={"kbs-session-id": cookie or ""})
            try:
                attested = other.post("/attest", json=guest.attest_body(nonce))
                assert attested.status_code == 200, attested.text
                token = attested.json()["token"]
                by_cookie = other.get("/resource/default/key/1")
                assert guest.decrypt(by_cookie.json()) == SECRET
                # the token from replica 2 is honoured by replica 1
                assert guest.decrypt(guest.resource("default/key/1", token, cookies=False).json()) == SECRET
                # and the nonce cannot be replayed on either replica
                assert_error(guest.attest(nonce), 401, "UnAuthorized", "already used")
                # a key rotated on replica 1 signs a token that replica 2 honours at once (it reloads its keys)
                first.admin.rotate_signing_key()
                fresh = Guest(first.url)
                new_token = fresh.handshake()
                on_second = httpx.get(
                    second.url + "/kbs/v0/resource/default/key/1", headers={"Authorization": f"Bearer {new_token}"}
                )
                assert fresh.decrypt(on_second.json()) == SECRET
            finally:
                other.close()


class _Proxy:
    """A TCP proxy between the broker and PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        for s in self.connections:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.connections.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    p = _Proxy(("127.0.0.1", 5432))
    yield p
    p.close()


def test_database_outage_is_503_and_recovers(tmp_path: Path, request: pytest.FixtureRequest, proxy: _Proxy) -> None:
    url = new_database_url(request, "postgres", tmp_path).replace(":5432/", f":{proxy.port}/")
    with KbsServer(tmp_path / "kbs", database_url=url) as server:
        provision(server)
        proxy.cut()
        assert_error(Guest(server.url).auth(), 503, "ServiceUnavailable", "database")
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert httpx.get(server.url + "/healthz").status_code == 200
        proxy.restore()
        guest = Guest(server.url)
        token = guest.handshake()
        assert guest.decrypt(guest.resource("default/key/1", token).json()) == SECRET


def _handshakes_until(url: str, stop: threading.Event, outcomes: list[tuple[float, str]]) -> None:
    """Guests handshaking (auth, attest, fetch) until `stop`: each outcome, "ok" or the first failing status (or
    transport error), with the time it came."""
    while not stop.is_set():
        guest = Guest(url)
        try:
            challenge = guest.auth()
            outcome = str(challenge.status_code)
            if challenge.status_code == 200:
                attested = guest.attest(challenge.json()["nonce"])
                outcome = str(attested.status_code)
                if attested.status_code == 200:
                    released = guest.resource("default/key/1")
                    ok = released.status_code == 200 and guest.decrypt(released.json()) == SECRET
                    outcome = "ok" if ok else str(released.status_code)
        except httpx.TransportError as exc:
            outcome = type(exc).__name__
        finally:
            guest.close()
        outcomes.append((time.monotonic(), outcome))


def test_postgres_restart_under_load_is_503_then_recovers(tmp_path: Path) -> None:
    """A real PostgreSQL server (the test's own) stopped and started while guests handshake: every request in the
    outage is a clean 503, none a 500 or a dropped connection, and the same broker process serves again after."""
    with PrivatePostgres() as pg, KbsServer(tmp_path / "kbs", database_url=pg.url, config=UNLIMITED) as server:
        provision(server)
        pid = server.pid
        outcomes: list[tuple[float, str]] = []
        stop = threading.Event()
        guests = [threading.Thread(target=_handshakes_until, args=(server.url, stop, outcomes)) for _ in range(4)]
        for thread in guests:
            thread.start()
        try:
            time.sleep(2)
            stopping = time.monotonic()
            pg.stop()
            down = time.monotonic()
            time.sleep(2)
            assert_error(httpx.get(server.url + "/readyz"), 503, "ServiceUnavailable", "database")
            assert httpx.get(server.url + "/healthz").status_code == 200
            starting = time.monotonic()
            pg.start()
            up = time.monotonic()
            deadline = up + 30
            while time.monotonic() < deadline and httpx.get(server.url + "/readyz").status_code != 200:
                time.sleep(0.1)
            time.sleep(2)
        finally:
            stop.set()
            for thread in guests:
                thread.join(timeout=60)
        assert server.pid == pid  # the same process throughout: no restart of the broker
        before = [o for t, o in outcomes if t < stopping]
        during = [o for t, o in outcomes if down + 0.5 <= t < starting]
        after = [o for t, o in outcomes if t >= up]
        assert before, outcomes
        assert set(before) == {"ok"}, before
        # In the outage every answer is 503 (a handshake caught by the stop may still finish, or fail, the same way).
        assert during, outcomes
        assert set(during) == {"503"}, during
        assert {o for t, o in outcomes if stopping <= t} <= {"ok", "503"}, outcomes
        # Once the database is back the broker serves again, with no restart: the last handshakes all succeed.
        assert after[-8:] == ["ok"] * 8, after
        metrics = httpx.get(server.url + "/metrics").text
        assert "kbs_database_errors_total" in metrics


def test_auth_rate_limit(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs", config={"rate_limit": {"auth_per_minute": 60}}) as server:
        guest = Guest(server.url)
        statuses = [guest.auth().status_code for _ in range(15)]
        assert statuses[:10] == [200] * 10
        assert 429 in statuses
        assert_error(guest.auth(), 429, "RateLimited")


def test_legacy_401_switch(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs", config={"server": {"legacy_401": True}}) as server:
        assert_error(Guest(server.url).auth(version="0.1.0"), 401, "ProtocolVersion")


def test_admin_disabled_without_keys(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs", config={"admin": {"public_keys": []}}) as server:
        response = httpx.post(
            server.url + "/kbs/v0/resource/default/key/1",
            content=b"x",
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert_error(response, 403, "AdminDenied", "disabled")


def test_expired_reference_values_are_not_offered(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    with KbsServer(tmp_path / "kbs") as server:
        provision(server)
        server.admin.put_reference_value("sample_svn", ["1"], expires=datetime.now(UTC) - timedelta(seconds=1))
        assert [v["name"] for v in server.admin.list_reference_values()] == ["sample_svn"]  # listed, but expired
        guest = Guest(server.url)
        token = guest.handshake()
        assert_error(guest.resource("default/key/1", token), 403, "PolicyDeny")
        server.admin.put_reference_value("sample_svn", ["1"], expires=datetime.now(UTC) + timedelta(hours=1))
        fresh = Guest(server.url)
        assert fresh.resource("default/key/1", fresh.handshake()).status_code == 200


def self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_and_secure_cookie(tmp_path: Path) -> None:
    from attestation_agent.attesters.sample import SampleAttester
    from attestation_agent.kbs_client import KbsClient

    from kbs.admin_client import tls_verify

    tmp_path.joinpath("tls").mkdir()
    cert, key = self_signed(tmp_path / "tls")
    with KbsServer(tmp_path / "kbs", tls=(cert, key)) as server:
        provision(server)
        response = httpx.post(
            server.url + "/kbs/v0/auth", json={"version": "0.4.0", "tee": "sample"}, verify=tls_verify(str(cert))
        )
        assert response.status_code == 200
        assert "Secure" in response.headers["set-cookie"]
        with KbsClient(server.url, SampleAttester(), verify=str(cert)) as client:
            assert client.get_resource("kbs:///default/key/1") == SECRET
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/healthz")  # an unverified certificate is refused by default
