"""The KDS client against a real loopback HTTP server standing in for kdsintf.amd.com, and MockTransport."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import verifier
from kbs.collateral.kds import KdsClient
from tests.snp.conftest import TODAY, trusting
from tests.snp.make_test_chain import Chain, make_crl, make_report, make_vek
from verifier import Reason, VerifierError
from verifier.snp import decode_tcb
from verifier.sources import SnpCertificateSource


class FakeKds:
    """Documents by request path+query, served over HTTP on 127.0.0.1; every request is recorded."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.requests: list[str] = []
        kds = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kds.requests.append(self.path)
                body = kds.documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def kds() -> Iterator[FakeKds]:
    fake = FakeKds()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    thread.join()


def test_vcek_is_fetched_once_then_cached_on_disk(kds: FakeKds, milan_chain: Chain, tmp_path: Path) -> None:
    vcek = make_vek(milan_chain, tcb=(3, 0, 8, 115))
    client = KdsClient(base_url=kds.url, cache_dir=tmp_path)
    tcb = decode_tcb(vcek.tcb, turin=False)
    path = urlsplit(client.vcek_url("Milan", vcek.chip_id, tcb))
    assert path.query == "blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115"
    kds.documents[f"{path.path}?{path.query}"] = vcek.der
    assert isinstance(client, SnpCertificateSource)
    report = make_report(vcek, "Milan")
    for _ in range(3):
        result = verifier.verify("snp", report, trusting(milan_chain, snp_certificates=client))
        assert result.claims["chip_id"] == vcek.chip_id.hex()
    assert [r for r in kds.requests if "/crl" not in r] == [f"{path.path}?{path.query}"]
    # a new process with the same cache directory does not ask again, even offline
    offline = KdsClient(base_url=kds.url, cache_dir=tmp_path, offline=True)
    assert offline.vcek("Milan", vcek.chip_id, tcb) == vcek.der
    assert offline.requests == 0


def test_turin_url_has_fmc_and_8_byte_hwid() -> None:
    tcb = decode_tcb(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 5]), "little"), turin=True)
    url = KdsClient(base_url="https://kds.invalid").vcek_url("Turin", bytes(range(8)), tcb)
    assert url == (
        "https://kds.invalid/vcek/v1/Turin/0001020304050607?blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=05&fmcSPL=01"
    )


def test_offline_and_http_failures_are_collateral_missing(kds: FakeKds, tmp_path: Path) -> None:
    tcb = decode_tcb(0x7308000000000003, turin=False)
    for client, detail in [
        (
            KdsClient(base_url=kds.url, cache_dir=tmp_path, offline=True),
            "not cached and the KDS client is offline",
        ),
        (KdsClient(base_url=kds.url), "HTTP 404"),
        (KdsClient(base_url="http://127.0.0.1:9"), "ConnectError"),
    ]:
        with pytest.raises(VerifierError) as caught:
            client.vcek("Milan", bytes(64), tcb)
        assert caught.value.reason is Reason.COLLATERAL_MISSING
        assert detail in caught.value.detail


def test_crl_from_the_kds_revokes(milan_chain: Chain, tmp_path: Path) -> None:
    """Unlike trustee, the broker checks SNP revocation; the CRL comes from the KDS (a MockTransport)."""
    vcek = make_vek(milan_chain)
    crl = make_crl(milan_chain, [milan_chain.ask.serial_number], next_update=TODAY + timedelta(days=30))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/vcek/v1/Milan/crl":
            return httpx.Response(200, content=crl)
        return httpx.Response(200, content=vcek.der)

    client = KdsClient(base_url="https://kds.test", client=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", make_report(vcek, "Milan"), trusting(milan_chain, snp_certificates=client))
    assert caught.value.reason is Reason.CERTIFICATE_REVOKED
    assert seen == [f"/vcek/v1/Milan/{vcek.chip_id.hex()}", "/vcek/v1/Milan/crl"]


def test_crl_is_refetched_only_when_stale(tmp_path: Path, milan_chain: Chain) -> None:
    calls = []
    fresh = make_crl(milan_chain, [], next_update=TODAY + timedelta(days=3650))

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, content=fresh)

    client = KdsClient(base_url="https://kds.test", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert client.crl("Milan") == fresh
    assert client.crl("Milan") == fresh
    assert calls == ["/vcek/v1/Milan/crl"]
    assert client.crl("Naples") is None
