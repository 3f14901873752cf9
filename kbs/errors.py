"""Errors the broker answers with, in trustee's shape:
`{"type": "https://github.com/confidential-containers/kbs/errors/<Variant>", "detail": "..."}`."""

from __future__ import annotations

from .protocol import ERROR_TYPE_PREFIX

__all__ = ["KbsError"]


class KbsError(Exception):
    def __init__(self, status: int, variant: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.variant = variant
        self.detail = detail
        # Seconds a refused client should wait (429 answers carry it as Retry-After).
        self.retry_after: int | None = None
        # What the metrics may say of this failure (e.g. the TEE and the verifier's reason of a rejected attestation).
        self.labels: dict[str, str] = {}

    def labelled(self, **labels: str) -> KbsError:
        self.labels.update(labels)
        return self

    def body(self) -> dict[str, str]:
        return {"type": ERROR_TYPE_PREFIX + self.variant, "detail": self.detail}

    # The variants, with the status Veritee answers (trustee answers 401 for all; see legacy_401).
    @classmethod
    def invalid_request(cls, detail: str) -> KbsError:
        return cls(400, "InvalidRequest", detail)

    @classmethod
    def protocol_version(cls, detail: str) -> KbsError:
        return cls(400, "ProtocolVersion", detail)

    @classmethod
    def attestation_failed(cls, detail: str) -> KbsError:
        return cls(401, "AttestationFailed", detail)

    @classmethod
    def unauthorized(cls, detail: str) -> KbsError:
        return cls(401, "UnAuthorized", detail)

    @classmethod
    def token_invalid(cls, detail: str) -> KbsError:
        return cls(401, "JWTVerificationFailed", detail)

    @classmethod
    def policy_deny(cls, detail: str) -> KbsError:
        return cls(403, "PolicyDeny", detail)

    @classmethod
    def admin_denied(cls, detail: str) -> KbsError:
        return cls(403, "AdminDenied", detail)

    @classmethod
    def not_found(cls, detail: str) -> KbsError:
        return cls(404, "ResourceNotFound", detail)

    @classmethod
    def too_large(cls, detail: str) -> KbsError:
        return cls(413, "PayloadTooLarge", detail)

    @classmethod
    def rate_limited(cls, detail: str) -> KbsError:
        return cls(429, "RateLimited", detail)

    @classmethod
    def unavailable(cls, detail: str) -> KbsError:
        return cls(503, "ServiceUnavailable", detail)
