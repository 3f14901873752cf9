"""What the broker acts on of a verified EAR: the typed `verifier.ear.Ear` and its claims digest for the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifier.ear import Ear, TokenError, claims_digest

__all__ = ["EarView"]


@dataclass(frozen=True)
class EarView:
    # The whole verified payload: the resource policy's input, as trustee's policies expect it.
    claims: Mapping[str, Any]
    # SHA-256 of the canonical claims: what the audit log records of the token.
    digest: str
    # The guest's ephemeral key from runtime_data_claims, or None when the token carries none.
    tee_pubkey: Mapping[str, Any] | None

    @classmethod
    def of(cls, ear: Ear) -> EarView:
        try:
            pubkey = ear.submod.runtime_data.get("tee-pubkey")
        except TokenError:  # no cpu0 appraisal
            pubkey = None
        return cls(
            claims=ear,
            digest=claims_digest(ear),
            tee_pubkey=pubkey if isinstance(pubkey, Mapping) else None,
        )
