"""The agent's broker-side error, apart from the client so the CLI can catch it without importing the client."""

from __future__ import annotations

__all__ = ["KbsClientError"]


class KbsClientError(Exception):
    """The broker refused (with its error detail) or could not be reached after the retries."""

    def __init__(self, message: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type

    @property
    def session_lost(self) -> bool:
        """A /attest (or /tpm/activate) answered 401 `UnAuthorized`: the session (or TPM challenge) is gone, expired
        or already used, so a fresh handshake (or enrolment) may pass; a 401 `AttestationFailed` is a judgement, and
        is not retried."""
        return self.status == 401 and (self.error_type or "").endswith("/UnAuthorized")
