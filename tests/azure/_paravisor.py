"""A stand-in for Azure's paravisor and IMDS around a real software TPM (swtpm), for the attester's tests.

`provision(tpm, ...)` does what the paravisor does before the guest boots: it makes the vTPM's attestation key
(RSA-2048, restricted, RSASSA-SHA256) persistent at 0x81000003, and writes an HCL report (tests/azure/
make_evidence.py, signed by test roots) holding that key's JWK into NV index 0x01400001 (owner read/write).
swtpm limits an NV index to 2048 bytes, so the runtime data carries only the AK and the report is not padded to
Azure's 2600 bytes. Nothing refreshes the report when the guest writes NV 0x01400002: the attester then sends
version-1 evidence, unless the report was made with `user_data` equal to the report data it is asked for.

`FakeImds` serves the two IMDS routes the attesters use on a loopback port: the VCEK (SNP) and a TD quote for
the TDREPORT that the provisioned report holds (TDX).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import tpm2_pytss as tss
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests._swtpm import Swtpm
from tests.azure.make_evidence import (
    hcl_report,
    jwk,
    report_data_for,
    td_report,
)
from tests.snp.make_test_chain import Chain, ReportFields, Vek, make_report
from tests.tdx.make_test_chain import DcapPki, make_quote

AK_HANDLE = 0x81000003
HCL_INDEX = 0x01400001
NV_CHUNK = 1024


def _runtime(ak: rsa.RSAPublicKey, user_data: bytes) -> bytes:
    document = {
        "keys": [jwk(ak, "HCLAkPub")],
        "vm-configuration": {"secure-boot": True, "tpm-enabled": True, "vmUniqueId": "swtpm"},
        "user-data": user_data.ljust(64, b"\0").hex().upper(),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _make_ak(esapi: Any) -> rsa.RSAPublicKey:
    attributes = (
        tss.TPMA_OBJECT.RESTRICTED
        | tss.TPMA_OBJECT.SIGN_ENCRYPT
        | tss.TPMA_OBJECT.FIXEDTPM
        | tss.TPMA_OBJECT.FIXEDPARENT
        | tss.TPMA_OBJECT.SENSITIVEDATAORIGIN
        | tss.TPMA_OBJECT.USERWITHAUTH
    )
    template = tss.TPM2B_PUBLIC.parse("rsa2048:rsassa-sha256:null", objectAttributes=attributes)
    handle, public, *_ = esapi.create_primary(None, template, tss.ESYS_TR.OWNER)
    esapi.evict_control(tss.ESYS_TR.OWNER, handle, AK_HANDLE)
    esapi.flush_context(handle)
    key = serialization.load_der_public_key(public.publicArea.to_der())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _write_index(esapi: Any, index: int, data: bytes) -> None:
    public = tss.TPM2B_NV_PUBLIC(
        nvPublic=tss.TPMS_NV_PUBLIC(
            nvIndex=index,
            nameAlg=tss.TPM2_ALG.SHA256,
            attributes=tss.TPMA_NV.OWNERWRITE | tss.TPMA_NV.OWNERREAD,
            dataSize=len(data),
        )
    )
    handle = esapi.nv_define_space(b"", public, auth_handle=tss.ESYS_TR.OWNER)
    for offset in range(0, len(data), NV_CHUNK):
        esapi.nv_write(handle, data[offset : offset + NV_CHUNK], offset, auth_handle=tss.ESYS_TR.OWNER)


@dataclass
class Provisioned:
    kind: str  # "snp" | "tdx"
    ak: rsa.RSAPublicKey
    hcl: bytes
    hardware: bytes  # the VCEK (DER) or the TD quote IMDS will serve


def provision(
    tpm: Swtpm,
    kind: str,
    *,
    chain: Chain | None = None,
    vek: Vek | None = None,
    pki: DcapPki | None = None,
    user_data: bytes = b"",
) -> Provisioned:
    """Make swtpm an Azure vTPM of an SNP (chain and vek) or TDX (pki) CVM."""
    esapi = tss.ESAPI(tpm.tcti)
    try:
        ak = _make_ak(esapi)
        runtime = _runtime(ak, user_data)
        if kind == "snp":
            assert chain is not None
            assert vek is not None
            hw = make_report(vek, chain.product, ReportFields(report_data=report_data_for(runtime)))
            hardware = vek.der
        else:
            assert pki is not None
            hardware = make_quote(pki, report_data_for(runtime))
            hw = td_report(hardware)
        report = hcl_report(kind, hw, runtime)
        report = report[: 0x4D4 + len(runtime)]  # no NV padding: swtpm's indices hold at most 2048 bytes
        _write_index(esapi, HCL_INDEX, report)
    finally:
        esapi.close()
    return Provisioned(kind, ak, report, hardware)


class FakeImds:
    """Azure IMDS on 127.0.0.1: `GET /metadata/THIM/amd/certification` and `POST /acc/tdquote`, both refusing
    a request without the `Metadata: true` header as Azure does."""

    def __init__(self, provisioned: Provisioned) -> None:
        self.provisioned = provisioned
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                owner.requests.append(f"GET {self.path}")
                if self.headers.get("Metadata") != "true":
                    self._reply(400, {"error": "Required metadata header not specified"})
                elif self.path == "/metadata/THIM/amd/certification" and owner.provisioned.kind == "snp":
                    pem = base64.encodebytes(owner.provisioned.hardware).decode()
                    cert = f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n"
                    self._reply(200, {"vcekCert": cert, "certificateChain": ""})
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                owner.requests.append(f"POST {self.path}")
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.headers.get("Metadata") != "true":
                    self._reply(400, {"error": "Required metadata header not specified"})
                    return
                if self.path != "/acc/tdquote" or owner.provisioned.kind != "tdx":
                    self._reply(404, {"error": "not found"})
                    return
                encoded = str(body.get("report", ""))
                report = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                if report != owner.provisioned.hcl[0x20 : 0x20 + 0x400]:
                    self._reply(400, {"error": "not the TDREPORT of this TD"})
                    return
                quote = base64.urlsafe_b64encode(owner.provisioned.hardware).decode().rstrip("=")
                self._reply(200, {"quote": quote})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeImds:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
