"""The runtime-data and init-data bindings of the KBS protocol (SPEC section 3).

    runtime_digest = SHA-384(JCS({"additional-evidence": str, "nonce": str, "tee-pubkey": JWK}))

JCS is RFC 8785. TDX and SNP carry the digest zero-padded to 64 bytes in REPORT_DATA, the TPM the first 32 bytes
in extraData, the sample TEE the 48-byte digest.

>>> runtime_digest("n", {"kty": "EC"}).hex()[:16]
'b4a6e1c1c22b2e8b'
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping

import rfc8785

from .errors import FormatError, Reason

__all__ = ["expected_report_data", "init_data_digest", "runtime_digest"]

REPORT_DATA_SIZE = 64
TPM_EXTRA_DATA_SIZE = 32


def runtime_digest(nonce: str, tee_pubkey: Mapping[str, object], additional_evidence: str = "") -> bytes:
    document = {"additional-evidence": additional_evidence, "nonce": nonce, "tee-pubkey": dict(tee_pubkey)}
    return hashlib.sha384(rfc8785.dumps(document)).digest()


def expected_report_data(tee: str, digest: bytes) -> bytes:
    """The exact report-data field a TEE must carry for this runtime digest."""
    if tee in ("tdx", "snp", "az-tdx-vtpm", "az-snp-vtpm"):
        return digest + bytes(REPORT_DATA_SIZE - len(digest))
    if tee == "tpm":
        return digest[:TPM_EXTRA_DATA_SIZE]
    return digest


_INIT_DATA_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def init_data_digest(body: str) -> bytes:
    """Digest of an init-data TOML body with the algorithm its `algorithm` key names (default sha384)."""
    try:
        document = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"init-data: body is not TOML ({exc})") from exc
    algorithm = document.get("algorithm", "sha384")
    hasher = _INIT_DATA_HASHES.get(algorithm) if isinstance(algorithm, str) else None
    if hasher is None:
        raise FormatError(
            f"init-data: algorithm is {algorithm!r}, expected one of {sorted(_INIT_DATA_HASHES)}",
            Reason.UNSUPPORTED_FORMAT,
        )
    return hasher(body.encode()).digest()
