"""The TPM claims of SPEC section 5, typed, and their one conversion to the JSON / Rego input document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from ._evidence import PcrBank

__all__ = ["AkTrust", "TpmClaims", "claims_to_json"]


class AkTrust(StrEnum):
    """How the attestation key is known to belong to a genuine TPM (SPEC section 5, claim `ak_trust`)."""

    CERTIFICATE = "certificate"  # an AK certificate chains to a pinned or configured root
    ENROLLED = "enrolled"  # the AK was bound to an EK by credential activation (the broker's enrolment)
    NONE = "none"  # nothing vouches for it: only a policy listing ak_sha256 may trust it


@dataclass(frozen=True)
class TpmClaims:
    pcrs: Mapping[str, PcrBank]  # only the quoted PCRs, by bank
    report_data: bytes  # TPMS_ATTEST.extraData
    ak_sha256: bytes  # SHA-256 of the AK's DER SubjectPublicKeyInfo
    ak_trust: AkTrust
    firmware_version: int
    reset_count: int
    restart_count: int
    clock: int
    safe: bool
    qualified_signer: bytes
    signature_scheme: str
    signature_hash: str
    eventlog: tuple[Mapping[str, object], ...] | None = None
    pcr_replay_ok: bool | None = None


def claims_to_json(claims: TpmClaims) -> dict[str, object]:
    """Hex is lowercase; firmware_version is 16 hex digits (a u64 is beyond a JSON number's exact range)."""
    document: dict[str, object] = {
        "pcrs": {bank: registers.hex_values() for bank, registers in claims.pcrs.items()},
        "report_data": claims.report_data.hex(),
        "ak_sha256": claims.ak_sha256.hex(),
        "ak_trust": str(claims.ak_trust),  # the plain string (StrEnum's str() is its value)
        "firmware_version": f"{claims.firmware_version:016x}",
        "reset_count": claims.reset_count,
        "restart_count": claims.restart_count,
        "clock": claims.clock,
        "safe": claims.safe,
        "qualified_signer": claims.qualified_signer.hex(),
        "signature_scheme": claims.signature_scheme,
        "signature_hash": claims.signature_hash,
    }
    if claims.eventlog is not None:
        document["eventlog"] = [dict(event) for event in claims.eventlog]
        document["pcr_replay_ok"] = claims.pcr_replay_ok
    return document
