"""What a successful verification returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Verified"]


class Verified(NamedTuple):
    """tee: the TEE name; claims: the JSON claims of docs/evidence.md (made by each TEE's one to-JSON function);
    report_data: the binding field as the evidence carries it (REPORT_DATA, extraData).

    Immutable and typed as a NamedTuple rather than a frozen dataclass: one is made per verification, and a
    NamedTuple is made in a third of the time."""

    tee: str
    claims: Mapping[str, object]
    report_data: bytes

    def to_json(self) -> dict[str, object]:
        return {"tee": self.tee, "claims": dict(self.claims)}
