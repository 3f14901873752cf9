"""The TPM claims (docs/evidence.md), typed, and their one conversion to the JSON / Rego input document."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from ..eventlog import aael_claims
from ._evidence import PcrBank
from ._structures import Attest, Signature

__all__ = ["AkTrust", "TpmClaims"]


class AkTrust(StrEnum):
    """How the attestation key is known to belong to a genuine TPM (docs/evidence.md, claim `ak_trust`)."""

    CERTIFICATE = "certificate"  # an AK certificate chains to a pinned or configured root
    ENROLLED = "enrolled"  # the AK was bound to an EK by credential activation (the broker's enrolment)
    NONE = "none"  # nothing vouches for it: only a policy listing ak_sha256 may trust it


class TpmClaims(NamedTuple):
    """The claims of a verified quote, made of the parsed pieces they come from (a NamedTuple, like them: one is
    made per verification). Only the quoted PCRs are claimed; `eventlog` is the replayed log's events (a log
    that does not replay is an error, never a claim)."""

    attest: Attest  # firmwareVersion, clockInfo, qualifiedSigner, extraData (the report data)
    signature: Signature  # its scheme and hash
    pcrs: Mapping[str, PcrBank]  # only the quoted PCRs, by bank
    ak_sha256: bytes  # SHA-256 of the AK's DER SubjectPublicKeyInfo
    ak_trust: AkTrust
    eventlog: tuple[Mapping[str, object], ...] | None = None

    def to_json(self) -> dict[str, object]:
        """Hex is lowercase; firmware_version is 16 hex digits (a u64 is beyond a JSON number's exact range)."""
        attest = self.attest
        pcrs = {}  # a loop, not a comprehension: usually one bank, and a comprehension costs a call
        for bank, registers in self.pcrs.items():
            pcrs[bank] = registers.hex_values()
        document: dict[str, object] = {
            "pcrs": pcrs,
            "report_data": attest.extra_data.hex(),
            "ak_sha256": self.ak_sha256.hex(),
            "ak_trust": str(self.ak_trust),  # the plain string (StrEnum's str() is its value)
            "firmware_version": f"{attest.firmware_version:016x}",
            "reset_count": attest.reset_count,
            "restart_count": attest.restart_count,
            "clock": attest.clock,
            "safe": attest.safe,
            "qualified_signer": attest.qualified_signer.hex(),
            "signature_scheme": self.signature.scheme,
            "signature_hash": self.signature.hash,
        }
        if self.eventlog is not None:
            document["eventlog"] = [dict(event) for event in self.eventlog]
            document["pcr_replay_ok"] = True  # verification raises eventlog_mismatch before claims exist
            document["aael"] = aael_claims(self.eventlog)  # runtime events (CoCo AAEL) of the replayed log
        return document
