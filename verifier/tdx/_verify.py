"""DCAP verification of a parsed TDX quote, step by step as Intel's Quote Verification Library does it.

[QGL] appendix A / Intel "Quote Verification Library" flow, numbered as the comments below:
  1. quote signature: ECDSA P-256 by the attestation key over header [+ body descriptor] + TD report body;
     then header.qe_vendor_id must be Intel's QE vendor ID (the PCK chain and QE identity only speak for
     Intel's quoting enclave);
  2. QE report binding: REPORTDATA[0:32] == SHA-256(attestation key || QE auth data), REPORTDATA[32:64] zero;
  3. PCK chain: leaf <- PCK CA <- Intel SGX Root CA (pinned, plus Options.trust["tdx"]), valid at Options.at;
  4. QE report signature by the PCK leaf key;
  5. PCK SGX extensions (FMSPC, PCE-ID, TCB) from the leaf;
  6. CRLs: the PCK CA's CRL for the leaf, the root CA's CRL for the PCK CA and the TCB signing certificate;
  7. TCB info (FMSPC of the PCK) and QE identity: signature over the exact inner JSON bytes by the TCB signing
     certificate chaining to the root; issueDate/nextUpdate at Options.at;
  8. TCB status: QE identity, TCB levels, TDX module identity (see _tcb);
  9. bindings: REPORTDATA and MRCONFIGID against Options.
Collateral past its validity (including the TCB signing certificate, trap 1 of the vectors, and CRLs) is
collateral_expired unless Options.allow_expired_collateral, which yields the claim collateral_expired: true.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .. import sources
from .._common import check_init_data, check_report_data
from ..errors import Reason, VerificationError
from ..options import Options
from ._binding import REPORT_DATA_SIZE, init_data
from ._chain import ecdsa_p256_verify, p256_key
from ._pck import PckExtensions
from ._platform import CheckedCollateral, Platform, check_collateral, has_tcb_info_for, platform, recognised
from ._quote import QeReport, Quote
from ._tcb import TcbVerdict, TdTcb, evaluate_tcb

__all__ = ["VerifiedQuote", "verify_quote"]

QE_REPORT_DATA_HASHED = 32
# [QGL] "Quote Header": QE_VENDOR_ID of Intel's quoting enclave.
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


class VerifiedQuote:
    """What verification established about a quote, handed to the claims builder."""

    __slots__ = ("collateral_expired", "pck", "tcb")

    def __init__(self, pck: PckExtensions, tcb: TcbVerdict, collateral_expired: bool) -> None:
        self.pck = pck
        self.tcb = tcb
        self.collateral_expired = collateral_expired


def _documents(options: Options, plat: Platform) -> tuple[bytes, ...]:
    """Offline collateral first; Options.tdx_collateral fills what is missing."""
    documents = options.collateral + options.certificates
    have = recognised(documents)
    complete = has_tcb_info_for(have, plat.pck.fmspc) and have.qe_identities and len(have.crls) >= 2
    if complete or options.tdx_collateral is None:
        return documents  # what is missing is reported, by name, when the collateral is checked
    source = sources.tdx_collateral(options.tdx_collateral)
    return documents + tuple(source.tdx_collateral(plat.pck.fmspc, plat.ca))


@lru_cache(maxsize=1024)
def _tcb_verdict(checked: CheckedCollateral, plat: Platform, td: TdTcb, qe_report: QeReport) -> TcbVerdict:
    """[QGL] step 8, memoised: it depends on the collateral, the platform, the TD's TCB fields and the QE report,
    all stable across the quotes of one host (REPORTDATA, which changes with every quote, is not an input)."""
    return evaluate_tcb(checked.tcb_info, plat.pck, td, checked.qe_identity, qe_report)


def verify_quote(quote: Quote, options: Options) -> VerifiedQuote:
    """Steps 1-9 of the module docstring; raises VerificationError with its reason code on any failure."""
    at = options.at
    # 1. The attestation key signs header + body.
    att_key = p256_key(quote.attestation_key, "attestation key")
    ecdsa_p256_verify(att_key, quote.signature, quote.signed_bytes, "quote signature (attestation key)")
    if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise VerificationError(
            Reason.UNSUPPORTED_FORMAT,
            f"header.qe_vendor_id is {quote.header.qe_vendor_id.hex()}, expected Intel's QE vendor ID "
            f"{INTEL_QE_VENDOR_ID.hex()} (only quotes of Intel's quoting enclave are verified)",
        )
    # 2. The QE vouches for the attestation key through its report data.
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    carried = quote.qe_report.report_data
    if carried[:QE_REPORT_DATA_HASHED] != expected or any(carried[QE_REPORT_DATA_HASHED:]):
        raise VerificationError(
            Reason.SIGNATURE_INVALID,
            f"QE report REPORTDATA is {carried.hex()}, expected SHA-256(attestation key || QE auth data) "
            f"{expected.hex()} followed by 32 zero bytes",
        )
    # 3. The PCK chain to a pinned root (cached by its bytes), valid at `at`.
    anchors = tuple(options.trust.get("tdx", ()))
    plat = platform(quote.pck_chain_pem, anchors)
    for window in plat.windows:
        if not window.covers(at):
            raise VerificationError(Reason.CERTIFICATE_EXPIRED, window.describe(at))
    # 4. The PCK key signs the QE report.
    ecdsa_p256_verify(plat.pck_key, quote.qe_report_signature, quote.qe_report.raw, "QE report signature (PCK key)")
    # 5.-7. Revocation, TCB info and QE identity (cached by the documents' bytes), valid at `at`.
    checked = check_collateral(_documents(options, plat), quote.pck_chain_pem, anchors)
    stale = [window.describe(at) for window in checked.windows if not window.covers(at)]
    if stale and not options.allow_expired_collateral:
        raise VerificationError(Reason.COLLATERAL_EXPIRED, "; ".join(stale))
    # 8. Intel's TCB status.
    body = quote.body
    verdict = _tcb_verdict(
        checked, plat, TdTcb(body.tee_tcb_svn, body.mr_signer_seam, body.seam_attributes), quote.qe_report
    )
    # 9. Bindings.
    check_report_data("REPORTDATA", quote.body.report_data, options, pad_to=REPORT_DATA_SIZE)
    if options.init_data_digest is not None:
        check_init_data("MRCONFIGID", quote.body.mr_config_id, init_data(options.init_data_digest))
    return VerifiedQuote(plat.pck, verdict, collateral_expired=bool(stale))
