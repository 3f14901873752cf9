"""What the evidence binds: the runtime digest (nonce and ephemeral key) and the init-data digest.

runtime digest = SHA-384(JCS({"additional-evidence", "nonce", "tee-pubkey"})) (or the hash negotiated in
extra-params, `_hash`), JCS being RFC 8785 (trustee's
kbs_protocol `RuntimeData` hashed by attestation-service). Each TEE carries it in its own report-data field;
those per-TEE rules belong to the verifier's TEE packages, not to the wire format.

init-data digest: the TOML document's hash with the algorithm its `algorithm` key names (CoCo's initdata
specification; sha384 when absent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from ._errors import ProtocolError
from ._hash import hash_runtime_data

__all__ = ["INIT_DATA_ALGORITHMS", "device_runtime_digest", "init_data_digest", "runtime_digest"]

INIT_DATA_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
DEFAULT_INIT_DATA_ALGORITHM = "sha384"


def runtime_digest(
    nonce: str, tee_pubkey: Mapping[str, object], additional_evidence: str = "", algorithm: str = "sha384"
) -> bytes:
    """The hash of the JCS-canonical runtime data: SHA-384 (48 bytes) unless another was negotiated (`_hash`)."""
    document: dict[str, Any] = {
        "additional-evidence": additional_evidence,
        "nonce": nonce,
        "tee-pubkey": dict(tee_pubkey),
    }
    return hash_runtime_data(algorithm, rfc8785.dumps(document))


def device_runtime_digest(nonce: str, tee_pubkey: Mapping[str, object]) -> bytes:
    """SHA-384 of the JCS-canonical runtime data without `additional-evidence`: what each device in
    `additional_evidence` is bound to (trustee's attestation service; the primary evidence binds the whole string)."""
    document: dict[str, Any] = {"nonce": nonce, "tee-pubkey": dict(tee_pubkey)}
    return hashlib.sha384(rfc8785.dumps(document)).digest()


def init_data_digest(body: str) -> bytes:
    """Digest of an init-data TOML body with the algorithm its `algorithm` key names (default sha384).

    ProtocolError (a ValueError) when the body is not TOML or names another algorithm.
    """
    import tomllib  # noqa: PLC0415 (only init-data needs a TOML parser: the agent's start-up does without)

    try:
        document = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError("init-data", f"body is not TOML ({exc})") from exc
    algorithm = document.get("algorithm", DEFAULT_INIT_DATA_ALGORITHM)
    hasher = INIT_DATA_ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if hasher is None:
        raise ProtocolError("init-data", f"algorithm is {algorithm!r}, expected one of {sorted(INIT_DATA_ALGORITHMS)}")
    return hasher(body.encode()).digest()
