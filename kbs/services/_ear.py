"""A typed view of a verified EAR: the fields the broker acts on, so no service digs through the claims dict.

Local until `verifier.ear.verify_token` returns a typed EAR (issue 16, item 2); then this view gives way to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifier.ear import claims_digest

__all__ = ["EarView"]

SUBMOD = "cpu0"
ANNOTATED_EVIDENCE = "ear.veraison.annotated-evidence"


@dataclass(frozen=True)
class EarView:
    # The whole verified payload: the resource policy's input, as trustee's policies expect it.
    claims: Mapping[str, Any]
    # SHA-256 of the canonical claims: what the audit log records of the token.
    digest: str
    # The guest's ephemeral key from runtime_data_claims, or None when the token carries none.
    tee_pubkey: Mapping[str, Any] | None

    @classmethod
    def of(cls, claims: Mapping[str, Any]) -> EarView:
        try:
            pubkey = claims["submods"][SUBMOD][ANNOTATED_EVIDENCE]["runtime_data_claims"]["tee-pubkey"]
        except (KeyError, TypeError):
            pubkey = None
        return cls(
            claims=claims,
            digest=claims_digest(claims),
            tee_pubkey=pubkey if isinstance(pubkey, Mapping) else None,
        )
