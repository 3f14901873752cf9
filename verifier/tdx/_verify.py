"""DCAP verification of a parsed TDX quote, step by step as Intel's Quote Verification Library does it.

[QGL] appendix A / Intel "Quote Verification Library" flow, numbered as the comments below:
  1. quote signature: ECDSA P-256 by the attestation key over header [+ body descriptor] + TD report body;
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
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from .._common import check_init_data, check_report_data
from ..errors import FormatError, Reason, VerificationError
from ..options import Options
from ._chain import (
    check_chain,
    check_revocation,
    ecdsa_p256_verify,
    load_certificate,
    p256_key,
    trust_anchors,
)
from ._collateral import (
    Collateral,
    CollateralSource,
    EnclaveIdentity,
    SignedJson,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
    recognise,
)
from ._pck import SGX_EXTENSIONS_OID, PckExtensions, parse_pck_chain_pem, parse_sgx_extensions
from ._quote import MR_SIZE, Quote
from ._tcb import TcbVerdict, evaluate_tcb

__all__ = ["VerifiedQuote", "verify_quote"]

QE_REPORT_DATA_HASHED = 32
_SGX_OID = x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
_CACHE = 1024


class VerifiedQuote:
    """What verification established about a quote, handed to the claims builder."""

    __slots__ = ("collateral_expired", "pck", "tcb")

    def __init__(self, pck: PckExtensions, tcb: TcbVerdict, collateral_expired: bool) -> None:
        self.pck = pck
        self.tcb = tcb
        self.collateral_expired = collateral_expired


@lru_cache(maxsize=_CACHE)
def _pck_chain(pem: bytes) -> tuple[x509.Certificate, ...]:
    return tuple(load_certificate(der) for der in parse_pck_chain_pem(pem))


@lru_cache(maxsize=_CACHE)
def _pck_extensions(leaf: x509.Certificate) -> PckExtensions:
    try:
        ext = leaf.extensions.get_extension_for_oid(_SGX_OID)
    except x509.ExtensionNotFound as exc:
        raise VerificationError(
            Reason.CERTIFICATE_INVALID, f"PCK certificate has no SGX extensions ({SGX_EXTENSIONS_OID})"
        ) from exc
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise VerificationError(Reason.CERTIFICATE_INVALID, "PCK SGX extensions are not an opaque extension")
    try:
        return parse_sgx_extensions(value.value)
    except FormatError as exc:
        raise VerificationError(Reason.CERTIFICATE_INVALID, exc.detail) from exc


@lru_cache(maxsize=_CACHE)
def _recognised(documents: tuple[bytes, ...]) -> Collateral:
    return recognise(documents)


@lru_cache(maxsize=_CACHE)
def _tcb_info(data: bytes) -> TcbInfo:
    try:
        return parse_tcb_info(data)
    except FormatError as exc:
        raise VerificationError(Reason.COLLATERAL_INVALID, exc.detail) from exc


@lru_cache(maxsize=_CACHE)
def _qe_identity(data: bytes) -> EnclaveIdentity:
    try:
        return parse_qe_identity(data)
    except FormatError as exc:
        raise VerificationError(Reason.COLLATERAL_INVALID, exc.detail) from exc


def _json_signer(doc: SignedJson, candidates: tuple[x509.Certificate, ...]) -> x509.Certificate:
    return _signer_of(doc.key, doc.signed_bytes, doc.signature, candidates)


@lru_cache(maxsize=_CACHE)
def _signer_of(
    key_name: str, signed: bytes, signature: bytes, candidates: tuple[x509.Certificate, ...]
) -> x509.Certificate:
    """The certificate among candidates whose key verifies the document (cached by the document's bytes)."""
    for cert in candidates:
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            continue
        try:
            ecdsa_p256_verify(key, signature, signed, key_name)
        except VerificationError:
            continue
        return cert
    raise VerificationError(
        Reason.SIGNATURE_INVALID,
        f"{key_name} signature does not verify with any of {len(candidates)} collateral certificates "
        "(expected the Intel SGX TCB Signing certificate)",
    )


def _pck_ca(chain: Sequence[x509.Certificate]) -> str:
    issuer = chain[0].issuer.rfc4514_string()
    return "processor" if "Processor" in issuer else "platform"


def _gather(options: Options, pck: PckExtensions, chain: Sequence[x509.Certificate]) -> Collateral:
    """Offline collateral first; the source of Options.sources["tdx"] fills what is missing."""
    have = _recognised(options.collateral + options.certificates)
    complete = (
        any(_tcb_info(t).fmspc == pck.fmspc for t in have.tcb_infos) and have.qe_identities and len(have.crls) >= 2
    )
    source = options.sources.get("tdx")
    if complete or source is None:
        return have
    if not isinstance(source, CollateralSource):
        raise VerificationError(Reason.COLLATERAL_MISSING, "Options.sources['tdx'] is not a TDX CollateralSource")
    return have.merged(_recognised(tuple(source.tdx_collateral(pck.fmspc, _pck_ca(chain)))))


def _pick_tcb_info(collateral: Collateral, fmspc: bytes) -> TcbInfo:
    infos = [_tcb_info(data) for data in collateral.tcb_infos]
    if not infos:
        raise VerificationError(Reason.COLLATERAL_MISSING, "no TDX TCB info (tcbInfo) in the collateral")
    for info in infos:
        if info.fmspc == fmspc:
            return info
    raise VerificationError(
        Reason.FMSPC_MISMATCH,
        f"tcbInfo.fmspc is {', '.join(sorted({i.fmspc.hex() for i in infos}))}, expected the PCK FMSPC {fmspc.hex()}",
    )


def _pick_qe_identity(collateral: Collateral) -> EnclaveIdentity:
    identities = [_qe_identity(data) for data in collateral.qe_identities]
    for identity in identities:
        if identity.id == "TD_QE":
            return identity
    raise VerificationError(
        Reason.COLLATERAL_MISSING,
        f"no TD_QE enclave identity in the collateral (found {[i.id for i in identities]})",
    )


def _check_signed(
    doc: TcbInfo | EnclaveIdentity,
    collateral: Collateral,
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> list[str]:
    """Step 7 for one document; returns what is stale at `at`."""
    issue, next_update = doc.issue_date, doc.next_update
    candidates = tuple(c for c in collateral.certificates if c.subject != c.issuer)
    signer = _json_signer(doc.document, candidates)
    issuers = [c for c in collateral.certificates if c.subject == signer.issuer and c.subject != signer.subject]
    name = doc.document.key
    chain, stale = check_chain([signer, *issuers[:1]], anchors, at, f"{name} signing chain")
    stale += check_revocation(chain, collateral.crls, at, f"{name} signing chain")
    if not issue <= at <= next_update:
        stale.append(f"{name} is valid {issue.isoformat()} to {next_update.isoformat()}, not at {at.isoformat()}")
    return stale


def verify_quote(quote: Quote, options: Options) -> VerifiedQuote:
    """Steps 1-9 of the module docstring; raises VerificationError with the SPEC reason on any failure."""
    # 1. The attestation key signs header + body.
    att_key = p256_key(quote.attestation_key, "attestation key")
    ecdsa_p256_verify(att_key, quote.signature, quote.signed_bytes, "quote signature (attestation key)")
    # 2. The QE vouches for the attestation key through its report data.
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    carried = quote.qe_report.report_data
    if carried[:QE_REPORT_DATA_HASHED] != expected or any(carried[QE_REPORT_DATA_HASHED:]):
        raise VerificationError(
            Reason.SIGNATURE_INVALID,
            f"QE report REPORTDATA is {carried.hex()}, expected SHA-256(attestation key || QE auth data) "
            f"{expected.hex()} followed by 32 zero bytes",
        )
    # 3. The PCK chain to a pinned root, valid at `at`.
    anchors = trust_anchors(tuple(options.trust.get("tdx", ())))
    chain, stale_certs = check_chain(_pck_chain(quote.pck_chain_pem), anchors, options.at, "PCK chain")
    if stale_certs:
        raise VerificationError(Reason.CERTIFICATE_EXPIRED, stale_certs[0])
    # 4. The PCK key signs the QE report.
    pck_key = chain[0].public_key()
    if not isinstance(pck_key, ec.EllipticCurvePublicKey):
        raise VerificationError(Reason.CERTIFICATE_INVALID, "PCK certificate key is not ECDSA P-256")
    ecdsa_p256_verify(pck_key, quote.qe_report_signature, quote.qe_report.raw, "QE report signature (PCK key)")
    # 5. Platform identity and TCB from the PCK certificate.
    pck = _pck_extensions(chain[0])
    # 6. Revocation of the PCK chain.
    collateral = _gather(options, pck, chain)
    stale = check_revocation(chain, collateral.crls, options.at, "PCK chain")
    # 7. TCB info and QE identity, signed by the TCB signing chain.
    tcb_info = _pick_tcb_info(collateral, pck.fmspc)
    qe_identity = _pick_qe_identity(collateral)
    for doc in (tcb_info, qe_identity):
        stale += _check_signed(doc, collateral, anchors, options.at)
    if stale and not options.allow_expired_collateral:
        raise VerificationError(Reason.COLLATERAL_EXPIRED, "; ".join(stale))
    # 8. Intel's TCB status.
    verdict = evaluate_tcb(tcb_info, pck, quote.body, qe_identity, quote.qe_report)
    # 9. Bindings.
    check_report_data("REPORTDATA", quote.body.report_data, options, pad_to=64)
    if options.init_data_digest is not None:
        digest = options.init_data_digest
        if len(digest) > MR_SIZE:
            raise VerificationError(Reason.INIT_DATA_MISMATCH, f"init-data digest is {len(digest)} bytes, over 48")
        check_init_data("MRCONFIGID", quote.body.mr_config_id, digest + bytes(MR_SIZE - len(digest)))
    return VerifiedQuote(pck, verdict, collateral_expired=bool(stale))
