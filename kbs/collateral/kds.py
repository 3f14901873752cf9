"""AMD Key Distribution Service client: an `SnpCertificateSource` for `Options.snp_certificates`.

The verifier does no I/O; it calls this client through the protocol and judges what it returns. Endpoints (AMD
publication 57230, "KDS Interface"):

    GET {base}/vcek/v1/{product}/{hwid hex}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..[&fmcSPL=..]   DER VCEK
    GET {base}/vcek/v1/{product}/crl                                                               DER CRL

A VCEK is immutable for its (product, chip, TCB): it is cached in memory and on disk, never asked for twice.
The CRL is refreshed once the cached one is past its nextUpdate. `offline=True` serves only the cache.

>>> import httpx
>>> client = KdsClient(offline=True)
>>> client.crl("Milan") is None
True
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509

from verifier.errors import Reason, VerificationError
from verifier.snp import PRODUCTS, Tcb, load_certificates

__all__ = ["DEFAULT_KDS_URL", "KdsClient"]

DEFAULT_KDS_URL = "https://kdsintf.amd.com"
MAX_RESPONSE_BYTES = 64 * 1024


class KdsClient:
    """Fetch VCEKs and CRLs from AMD's KDS (or a mirror at base_url), with an on-disk cache.

    cache_dir: where fetched documents are kept across processes (None: memory only).
    offline: never touch the network; missing VCEKs are `collateral_missing`.
    client: the httpx client to use (tests pass one with a MockTransport or a loopback server's URL).
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_KDS_URL,
        cache_dir: Path | None = None,
        offline: bool = False,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache_dir = cache_dir
        self.offline = offline
        self._client = client
        self._timeout = timeout
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.requests = 0  # network requests made (the broker's "never twice" is observable)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    def _cached(self, key: str) -> bytes | None:
        if key in self._memory:
            return self._memory[key]
        if self.cache_dir is not None:
            path = self.cache_dir / key
            if path.is_file():
                data = path.read_bytes()
                self._memory[key] = data
                return data
        return None

    def _store(self, key: str, data: bytes) -> None:
        self._memory[key] = data
        if self.cache_dir is not None:
            path = self.cache_dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

    def _get(self, url: str, what: str) -> bytes:
        self.requests += 1
        try:
            response = self._http().get(url, headers={"Accept": "application/octet-stream"})
        except httpx.HTTPError as exc:
            raise VerificationError(Reason.COLLATERAL_MISSING, f"KDS {what}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise VerificationError(
                Reason.COLLATERAL_MISSING, f"KDS {what}: HTTP {response.status_code} from {url}, expected 200"
            )
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise VerificationError(
                Reason.COLLATERAL_MISSING,
                f"KDS {what}: {len(response.content)} bytes, at most {MAX_RESPONSE_BYTES}",
            )
        return response.content

    def vcek_url(self, product: str, hwid: bytes, tcb: Tcb) -> str:
        spl = {"blSPL": tcb.bootloader, "teeSPL": tcb.tee, "snpSPL": tcb.snp, "ucodeSPL": tcb.microcode}
        params = "&".join(f"{name}={value:02d}" for name, value in spl.items())
        if tcb.fmc is not None:
            params += f"&fmcSPL={tcb.fmc:02d}"
        return f"{self.base_url}/vcek/v1/{product}/{hwid.hex()}?{params}"

    def vcek(self, product: str, hwid: bytes, tcb: Tcb) -> bytes:
        if product not in PRODUCTS:
            raise VerificationError(Reason.COLLATERAL_MISSING, f"KDS: product {product!r} is not one of {PRODUCTS}")
        key = f"vcek/{product}/{hwid.hex()}-{tcb.raw:016x}.der"
        with self._lock:
            cached = self._cached(key)
            if cached is not None:
                return cached
            if self.offline:
                raise VerificationError(
                    Reason.COLLATERAL_MISSING,
                    f"VCEK for {product} chip {hwid.hex()[:16]}... TCB {tcb.raw:#018x} is not cached and "
                    "the KDS client is offline",
                )
            data = self._get(self.vcek_url(product, hwid, tcb), "VCEK")
            if len(load_certificates(data)) != 1:
                raise VerificationError(Reason.COLLATERAL_MISSING, "KDS VCEK response is not one certificate")
            self._store(key, data)
            return data

    def crl(self, product: str) -> bytes | None:
        """The product's CRL; a fresh one is fetched when the cached one is past nextUpdate (the verifier
        still judges the CRL at Options.at). None when offline with nothing cached or the KDS fails."""
        if product not in PRODUCTS:
            return None
        key = f"crl/{product}.crl"
        with self._lock:
            cached = self._cached(key)
            if cached is not None and (self.offline or _fresh(cached)):
                return cached
            if self.offline:
                return None
            try:
                data = self._get(f"{self.base_url}/vcek/v1/{product}/crl", "CRL")
            except VerificationError:
                return cached
            self._store(key, data)
            return data


def _fresh(data: bytes) -> bool:
    try:
        crl = x509.load_der_x509_crl(data)
    except ValueError:
        return False
    # The client's own refresh decision (not a verification): the I/O edge may read the clock.
    return crl.next_update_utc is not None and crl.next_update_utc > datetime.now(UTC)
