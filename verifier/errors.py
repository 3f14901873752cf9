"""The verifier's one error hierarchy.

    Error                        every error the verifier raises
    ├── VerifierError            evidence rejected, carrying a Reason (docs/evidence.md; the values are API)
    │   ├── FormatError          bytes that do not parse: malformed_evidence, unsupported_format
    │   └── VerificationError    evidence that parses but fails a check (signature, chain, binding, ...)
    │       └── SourceError      a collateral source is missing or of the wrong type: collateral_missing
    ├── PolicyError              a Rego policy that does not compile, or a query that fails at evaluation
    └── TokenError               an EAR token that is malformed, badly signed or expired
        └── UnknownKeyError      its `kid` is not among the keys given (a caller may reload keys and retry)

Messages name the spec field, what was found and what was expected, and never carry secrets.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Error",
    "FormatError",
    "PolicyError",
    "Reason",
    "SourceError",
    "TokenError",
    "UnknownKeyError",
    "VerificationError",
    "VerifierError",
]


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


class Error(Exception):
    """Base of every error the verifier raises."""


class VerifierError(Error):
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


class SourceError(VerificationError, TypeError):
    """A collateral source the verification needs is not in Options, or is not of the protocol its field names
    (always collateral_missing, the same for every TEE). Also a TypeError: a source of the wrong type is the
    caller's programming error."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.COLLATERAL_MISSING, detail)


class PolicyError(Error):
    """A policy that does not compile, or a query that fails at evaluation."""


class TokenError(Error):
    """A token that is malformed, badly signed, from an unknown key, or expired."""


class UnknownKeyError(TokenError):
    """The token's `kid` is not among the keys given (a caller may reload its keys once and retry)."""
