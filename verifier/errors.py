"""The verifier's one error hierarchy.

    VerifierError            every failure, carrying a Reason (docs/evidence.md; the values are API)
    ├── FormatError          bytes that do not parse: malformed_evidence, unsupported_format
    └── VerificationError    evidence that parses but fails a check (signature, chain, binding, ...)

Messages name the spec field, what was found and what was expected, and never carry secrets.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FormatError", "Reason", "VerificationError", "VerifierError"]


class Reason(StrEnum):
    """Reason codes (docs/evidence.md). Their values are part of the API: never rename one."""

    MALFORMED_EVIDENCE = "malformed_evidence"
    UNSUPPORTED_FORMAT = "unsupported_format"
    SIGNATURE_INVALID = "signature_invalid"
    CERTIFICATE_INVALID = "certificate_invalid"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_REVOKED = "certificate_revoked"
    COLLATERAL_MISSING = "collateral_missing"
    COLLATERAL_INVALID = "collateral_invalid"
    COLLATERAL_EXPIRED = "collateral_expired"
    TCB_NOT_SUPPORTED = "tcb_not_supported"
    FMSPC_MISMATCH = "fmspc_mismatch"
    REPORT_DATA_MISMATCH = "report_data_mismatch"
    INIT_DATA_MISMATCH = "init_data_mismatch"
    PCR_DIGEST_MISMATCH = "pcr_digest_mismatch"
    EVENTLOG_MISMATCH = "eventlog_mismatch"
    UNTRUSTED_KEY = "untrusted_key"


class VerifierError(Exception):
    """A failure with a machine-readable reason and a human detail."""

    reason: Reason

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    def to_json(self) -> dict[str, object]:
        return {"error": {"reason": self.reason.value, "detail": self.detail}}


class FormatError(VerifierError):
    """The input does not parse. Only malformed_evidence and unsupported_format."""

    def __init__(self, detail: str, reason: Reason = Reason.MALFORMED_EVIDENCE) -> None:
        if reason not in (Reason.MALFORMED_EVIDENCE, Reason.UNSUPPORTED_FORMAT):
            raise ValueError(f"FormatError cannot carry {reason}")
        super().__init__(reason, detail)


class VerificationError(VerifierError):
    """The input parses but a check fails."""
