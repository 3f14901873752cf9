"""What a successful verification returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Verified"]


@dataclass(frozen=True)
class Verified:
    """tee: the TEE name; claims: the JSON claims of SPEC section 5 (made by each TEE's one to-JSON function);
    report_data: the binding field as the evidence carries it (REPORT_DATA, extraData)."""

    tee: str
    claims: Mapping[str, object]
    report_data: bytes

    def to_json(self) -> dict[str, object]:
        return {"tee": self.tee, "claims": dict(self.claims)}
