"""Intel TDX: quote v4/v5 parsing and full DCAP verification in Python (PCK chain, CRLs, TCB info, QE id).

Pipeline: `_quote` (bytes -> Quote) -> `_verify` (signatures, chains, collateral, TCB status via `_tcb`) ->
`_claims` (the JSON of docs/evidence.md, in one function). Collateral is recognised by content from Options.collateral
and, when missing, fetched through Options.sources["tdx"], a `CollateralSource` (`verifier.tdx.pcs` is the
Intel PCS / PCCS client).

>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> import verifier
>>> v = Path(__file__).parents[2] / "tests/vectors/tdx"
>>> docs = tuple(p.read_bytes() for p in sorted((v / "go-tdx-guest").iterdir()))
>>> quote = (v / "trustee" / "tdx_quote_4.dat").read_bytes()
>>> options = verifier.Options(at=datetime(2023, 6, 20, tzinfo=UTC), collateral=docs)
>>> claims = verifier.verify("tdx", quote, options).claims
>>> claims["tcb_status"], claims["debug"], claims["fmspc"]
('UpToDate', True, '50806f000000')
"""

from __future__ import annotations

from collections.abc import Mapping

from .._common import b64field, optional_b64field
from ..errors import FormatError
from ..options import Options
from ..result import Verified
from ._claims import TdxClaims, claims_from, to_json
from ._collateral import CollateralSource
from ._eventlog import replay_ccel
from ._quote import Quote, parse_quote
from ._verify import verify_quote

__all__ = ["CollateralSource", "Quote", "TdxClaims", "parse_quote", "verify"]


def _evidence(evidence: Mapping[str, object] | bytes) -> tuple[bytes, bytes | None]:
    """docs/evidence.md: `{"quote": b64, "cc_eventlog": b64 | null}`, or the raw quote bytes."""
    if isinstance(evidence, bytes | bytearray):
        return bytes(evidence), None
    if not isinstance(evidence, Mapping):
        raise FormatError("TDX evidence is neither a JSON object nor raw quote bytes")
    return b64field(evidence, "quote", "TDX evidence"), optional_b64field(evidence, "cc_eventlog", "TDX evidence")


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Parse and verify TDX evidence; VerifierError with a reason code on failure."""
    raw_quote, ccel = _evidence(evidence)
    quote = parse_quote(raw_quote)
    verified = verify_quote(quote, options)
    eventlog = None if ccel is None else replay_ccel(ccel, quote.body)
    claims = claims_from(
        quote, verified.pck, verified.tcb, collateral_expired=verified.collateral_expired, eventlog=eventlog
    )
    return Verified(tee="tdx", claims=to_json(claims), report_data=quote.body.report_data)
