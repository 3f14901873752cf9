"""The Intel PCS / PCCS client over httpx.MockTransport serving go-tdx-guest's recorded PCS responses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote as urlquote

import httpx
import pytest

import verifier
from kbs.collateral.pcs import INTEL_ROOT_CRL, PcsClient
from verifier import Options, Reason, VerificationError
from verifier.sources import TdxCollateralSource

from ._vectors import AT_GO_TDX_GUEST, quote


def pcs_handler(vectors: Path, seen: list[str], *, pccs: bool = False) -> httpx.MockTransport:
    folder = vectors / "tdx" / "go-tdx-guest"

    def chain(name: str) -> str:
        return urlquote((folder / name).read_text())

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        path, params = request.url.path, request.url.params
        if path == "/tdx/certification/v4/tcb" and params.get("fmspc") == "50806f000000":
            headers = {"TCB-Info-Issuer-Chain": chain("tcbInfoIssuerChain.pem")}
            return httpx.Response(200, content=(folder / "sample_tcbInfo_response").read_bytes(), headers=headers)
        if path == "/tdx/certification/v4/qe/identity":
            headers = {"SGX-Enclave-Identity-Issuer-Chain": chain("qeIdentityIssuerChain.pem")}
            return httpx.Response(200, content=(folder / "sample_qeIdentity_response").read_bytes(), headers=headers)
        if path == "/sgx/certification/v4/pckcrl" and params.get("ca") == "platform":
            headers = {"SGX-PCK-CRL-Issuer-Chain": chain("pckCrlIssuerChain.pem")}
            return httpx.Response(200, content=(folder / "pckcrl").read_bytes(), headers=headers)
        if str(request.url) == INTEL_ROOT_CRL or (pccs and path == "/sgx/certification/v4/rootcacrl"):
            der = (folder / "rootcrl.der").read_bytes()
            return httpx.Response(200, content=der.hex().encode() if pccs else der)
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def test_pcs_client_supplies_all_collateral(vectors: Path, tmp_path: Path) -> None:
    seen: list[str] = []
    client = PcsClient(cache_dir=tmp_path, transport=pcs_handler(vectors, seen))
    assert isinstance(client, TdxCollateralSource)
    opts = Options(at=AT_GO_TDX_GUEST, tdx_collateral=client)
    assert verifier.verify("tdx", quote(vectors, 4), opts).claims["tcb_status"] == "UpToDate"
    assert len(seen) == 4
    assert "fmspc=50806f000000" in seen[0]
    # A second client on the same cache and a dead network is served from the cache.
    offline = PcsClient(cache_dir=tmp_path, transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    assert verifier.verify("tdx", quote(vectors, 4), Options(at=AT_GO_TDX_GUEST, tdx_collateral=offline))
    client.close()
    offline.close()


def test_pccs_hex_root_crl(vectors: Path) -> None:
    seen: list[str] = []
    client = PcsClient("https://pccs.test:8081/", transport=pcs_handler(vectors, seen, pccs=True))
    opts = Options(at=AT_GO_TDX_GUEST, tdx_collateral=client)
    assert verifier.verify("tdx", quote(vectors, 4), opts).claims["tcb_status"] == "UpToDate"
    assert seen[-1] == "https://pccs.test:8081/sgx/certification/v4/rootcacrl"


def test_unreachable_service_is_collateral_missing(vectors: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = PcsClient(transport=httpx.MockTransport(refuse))
    with pytest.raises(VerificationError) as info:
        verifier.verify("tdx", quote(vectors, 4), Options(at=AT_GO_TDX_GUEST, tdx_collateral=client))
    assert info.value.reason is Reason.COLLATERAL_MISSING
    assert "refused" in info.value.detail


def test_http_error_status_is_collateral_missing(vectors: Path) -> None:
    client = PcsClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    with pytest.raises(VerificationError) as info:
        client.tdx_collateral(bytes(6), "platform")
    assert info.value.reason is Reason.COLLATERAL_MISSING
    assert "HTTP 404" in info.value.detail


class LoopbackPccs:
    """A real PCCS-shaped HTTP server on loopback serving go-tdx-guest's recorded responses (same routes as
    pcs_handler, which it reuses), so the client is also exercised over a real socket."""

    def __init__(self, vectors: Path) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        self.seen: list[str] = []
        transport = pcs_handler(vectors, self.seen, pccs=True)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers["Host"]
                answer = transport.handle_request(httpx.Request("GET", f"http://{host}{self.path}"))
                body = answer.read()
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pccs(vectors: Path) -> Iterator[LoopbackPccs]:
    server = LoopbackPccs(vectors)
    yield server
    server.close()


def test_pccs_over_a_real_socket(vectors: Path, pccs: LoopbackPccs, tmp_path: Path) -> None:
    client = PcsClient(pccs.url, cache_dir=tmp_path)
    opts = Options(at=AT_GO_TDX_GUEST, tdx_collateral=client)
    assert verifier.verify("tdx", quote(vectors, 4), opts).claims["tcb_status"] == "UpToDate"
    assert any(url.endswith("/sgx/certification/v4/rootcacrl") for url in pccs.seen)
    client.close()


def test_broker_sources_use_the_configured_pccs(vectors: Path, pccs: LoopbackPccs, tmp_path: Path) -> None:
    """kbs.toml `[verifier] offline = false` + `tdx_pcs_url` gives the verifier a PCCS client (what `kbs serve`
    builds); collateral then comes over the network and lands in cache_dir."""
    from kbs.settings import VerifierSettings
    from kbs.verification import build_sources

    settings = VerifierSettings(offline=False, tdx_pcs_url=pccs.url, cache_dir=tmp_path / "cache")
    sources = build_sources(settings)
    opts = Options(at=AT_GO_TDX_GUEST, tdx_collateral=sources["tdx"])
    assert verifier.verify("tdx", quote(vectors, 4), opts).claims["tcb_status"] == "UpToDate"
    assert list((tmp_path / "cache" / "tdx").iterdir())
    offline = build_sources(VerifierSettings())
    assert "tdx" not in offline
