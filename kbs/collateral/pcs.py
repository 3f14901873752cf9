"""A `TdxCollateralSource` over Intel's Provisioning Certification Service (PCS API v4) or a PCCS, with a cache.

The verifier never does I/O; the broker constructs this client and passes it as Options.tdx_collateral. It
returns raw documents exactly as served (the verifier checks every signature), so a compromised cache or
network can make verification fail, never pass.

    GET {base}/tdx/certification/v4/tcb?fmspc=HEX   TDX TCB info, chain in header TCB-Info-Issuer-Chain
    GET {base}/tdx/certification/v4/qe/identity     TD_QE identity, SGX-Enclave-Identity-Issuer-Chain
    GET {base}/sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der
                                                    PCK CRL, SGX-PCK-CRL-Issuer-Chain
    GET {root_crl_url}                              Intel SGX Root CA CRL (DER; a PCCS serves it
                                                    hex-encoded at {base}/sgx/certification/v4/rootcacrl)

>>> import httpx
>>> client = PcsClient("https://pccs.example", transport=httpx.MockTransport(lambda r: httpx.Response(404)))
>>> client.base_url
'https://pccs.example'
"""

from __future__ import annotations

import hashlib
import json
import string
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import httpx

from verifier.errors import Reason, VerificationError

__all__ = ["INTEL_PCS", "INTEL_ROOT_CRL", "PcsClient"]

INTEL_PCS = "https://api.trustedservices.intel.com"
INTEL_ROOT_CRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
# Response size cap: TCB info documents are a few KiB; CRLs of Intel's CAs well under 100 KiB.
MAX_RESPONSE = 1024 * 1024
DEFAULT_TTL = 6 * 3600
_HEX = frozenset(string.hexdigits.encode() + b"\r\n")


class PcsClient:
    """Fetch TDX collateral from Intel PCS v4 (default) or a PCCS at base_url.

    cache_dir: responses are kept there (one JSON file per URL) and served for ttl seconds, and past it when
        the service is unreachable (the verifier still judges their nextUpdate at its evaluation time).
    root_crl_url: where the root CA CRL lives; defaults to Intel's for PCS and the PCCS path otherwise.
    """

    def __init__(
        self,
        base_url: str = INTEL_PCS,
        *,
        cache_dir: Path | None = None,
        ttl: float = DEFAULT_TTL,
        timeout: float = 10.0,
        root_crl_url: str | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir
        self.ttl = ttl
        if root_crl_url is None:
            pcs = self.base_url == INTEL_PCS
            root_crl_url = INTEL_ROOT_CRL if pcs else f"{self.base_url}/sgx/certification/v4/rootcacrl"
        self.root_crl_url = root_crl_url
        headers = {"Ocp-Apim-Subscription-Key": api_key} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def tdx_collateral(self, fmspc: bytes, ca: str) -> Sequence[bytes]:
        """The TdxCollateralSource protocol: every document needed for a quote of this FMSPC and PCK CA."""
        if ca not in ("platform", "processor"):
            raise VerificationError(Reason.COLLATERAL_MISSING, f"PCK CA is {ca!r}, expected platform or processor")
        base = self.base_url
        docs: list[bytes] = []
        for url, chain_header in (
            (f"{base}/tdx/certification/v4/tcb?fmspc={fmspc.hex()}", "TCB-Info-Issuer-Chain"),
            (f"{base}/tdx/certification/v4/qe/identity", "SGX-Enclave-Identity-Issuer-Chain"),
            (f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der", "SGX-PCK-CRL-Issuer-Chain"),
            (self.root_crl_url, None),
        ):
            body, chain = self._get(url, chain_header)
            docs.append(_crl_der(body))
            if chain:
                docs.append(chain)
        return docs

    def _cache_file(self, url: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    def _cached(self, path: Path | None, *, fresh_only: bool) -> tuple[bytes, bytes] | None:
        if path is None or not path.is_file():
            return None
        if fresh_only and time.time() - path.stat().st_mtime > self.ttl:
            return None
        try:
            entry = json.loads(path.read_text())
            return bytes.fromhex(entry["body"]), bytes.fromhex(entry["chain"])
        except (ValueError, KeyError, TypeError):
            return None

    def _get(self, url: str, chain_header: str | None) -> tuple[bytes, bytes]:
        path = self._cache_file(url)
        hit = self._cached(path, fresh_only=True)
        if hit is not None:
            return hit
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            stale = self._cached(path, fresh_only=False)
            if stale is not None:
                return stale
            raise VerificationError(Reason.COLLATERAL_MISSING, f"GET {url} failed: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise VerificationError(Reason.COLLATERAL_MISSING, f"GET {url} returned HTTP {response.status_code}")
        if len(response.content) > MAX_RESPONSE:
            raise VerificationError(Reason.COLLATERAL_MISSING, f"GET {url} returned over {MAX_RESPONSE} bytes")
        chain = unquote(response.headers.get(chain_header, "")).encode() if chain_header else b""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"url": url, "body": response.content.hex(), "chain": chain.hex()}))
            tmp.replace(path)
        return response.content, chain


def _crl_der(body: bytes) -> bytes:
    """A PCCS serves CRLs hex-encoded; everything else passes through unchanged."""
    stripped = body.strip()
    if stripped and len(stripped) % 2 == 0 and set(stripped) <= _HEX and stripped[:2].lower() == b"30":
        return bytes.fromhex(stripped.decode())
    return body
