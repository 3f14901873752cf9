"""Intel TDX: quote v4/v5 parsing and full DCAP verification in Python (PCK chain, CRLs, TCB info, QE id).

Pipeline: `_quote` (bytes -> Quote) -> `_verify` (signatures, chains, collateral, TCB status via `_tcb`) ->
`_claims` (the JSON of docs/evidence.md, in one function). Collateral is recognised by content from
Options.collateral and, when missing, fetched through Options.tdx_collateral, a `verifier.sources.TdxCollateralSource`
(`kbs.collateral.pcs` is the Intel PCS / PCCS client). Bindings (`_binding`): REPORTDATA carries the runtime
digest and 16 zero bytes, MRCONFIGID the init-data digest zero-padded to 48 bytes.

Intel's documents, cited in the modules of this package by these tags:
    [QGL]      "Intel TDX DCAP Quote Generation Library and Quote Verification Library" (rev. 0.9 and the 1.5
               addendum), appendix A: the quote's structures, and the verification flow of the QVL.
    [PCK]      "Intel SGX PCK Certificate and Certificate Revocation List Profile Specification" (rev. 1.5): the
               PCK chain, its CRLs and the SGX extensions (OID 1.2.840.113741.1.13.1) of the PCK certificate.
    [TCBINFO]  Intel PCS API v4, "Get TDX TCB Info" and its "TDX TCB Info" data model: the signed tcbInfo JSON
               (id "TDX", version 3) with the TCB levels, TDX module identities and their statuses.
    [QEID]     Intel PCS API v4, "Get TDX QE Identity" and its "Enclave Identity" data model: the signed
               enclaveIdentity JSON (version 2, id "TD_QE") with the QE's MRSIGNER, attributes and TCB levels.

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
from ..registry import Tee
from ..result import Verified
from . import _binding
from ._aa_eventlog import replay_aa_eventlog
from ._claims import TdxClaims, claims_from
from ._eventlog import replay_ccel
from ._quote import Quote, parse_quote
from ._verify import verify_quote

__all__ = ["TEE", "Quote", "TdxClaims", "parse_quote", "verify"]


def _evidence(evidence: Mapping[str, object] | bytes) -> tuple[bytes, bytes | None, str | None]:
    """docs/evidence.md: `{"quote": b64, "cc_eventlog": b64 | null}` (older guests add `aa_eventlog`, text or
    null), or the raw quote bytes."""
    if isinstance(evidence, bytes | bytearray):
        return bytes(evidence), None, None
    if not isinstance(evidence, Mapping):
        raise FormatError("TDX evidence is neither a JSON object nor raw quote bytes")
    aa_eventlog = evidence.get("aa_eventlog")
    if aa_eventlog is not None and not isinstance(aa_eventlog, str):
        raise FormatError(f"TDX evidence: field aa_eventlog is {type(aa_eventlog).__name__}, expected a string or null")
    return (
        b64field(evidence, "quote", "TDX evidence"),
        optional_b64field(evidence, "cc_eventlog", "TDX evidence"),
        aa_eventlog or None,
    )


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Parse and verify TDX evidence; VerifierError with a reason code on failure."""
    raw_quote, ccel, aa_eventlog = _evidence(evidence)
    quote = parse_quote(raw_quote)
    verified = verify_quote(quote, options)
    eventlog = None if ccel is None else replay_ccel(ccel, quote.body)
    aa_events = None if aa_eventlog is None else replay_aa_eventlog(aa_eventlog, quote.body.rtmr[3])
    claims = claims_from(
        quote,
        verified.pck,
        verified.tcb,
        collateral_expired=verified.collateral_expired,
        eventlog=eventlog,
        aa_eventlog=aa_events,
    )
    return Verified(tee="tdx", claims=claims.to_json(), report_data=quote.body.report_data)


TEE = Tee(
    name="tdx",
    verify=verify,
    report_data=_binding.report_data,
    init_data=_binding.init_data,
    sources=("collateral", "certificates", "tdx_collateral", "trust"),
    default_policy="tdx.rego",
)
