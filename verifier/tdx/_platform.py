"""The time-independent part of DCAP verification, memoised by the exact bytes it depends on.

A platform (its PCK chain) and a set of collateral documents are checked once: chain links to a trust anchor,
the PCK SGX extensions, CRL signatures and revocation, the TCB info / QE identity signatures and their signing
chains. What remains per quote is cheap: the two quote signatures, the validity windows at the evaluation time,
the TCB level match and the bindings. Failures are never cached (lru_cache does not keep exceptions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import FormatError, Reason, VerificationError
from ._chain import Window, check_chain, check_revocation, ecdsa_p256_verify, load_certificate, trust_anchors
from ._collateral import Collateral, EnclaveIdentity, TcbInfo, parse_qe_identity, parse_tcb_info, recognise
from ._pck import SGX_EXTENSIONS_OID, PckExtensions, parse_pck_chain_pem, parse_sgx_extensions

__all__ = ["CheckedCollateral", "Platform", "check_collateral", "platform", "recognised"]

_SGX_OID = x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
_CACHE = 1024


@dataclass(frozen=True, eq=False)
class Platform:
    """A verified PCK chain (leaf first, ending in a trust anchor) and the leaf's SGX extensions."""

    chain: tuple[x509.Certificate, ...]
    pck: PckExtensions
    pck_key: ec.EllipticCurvePublicKey
    windows: tuple[Window, ...]
    ca: str  # "platform" or "processor": which PCK CA issued the leaf (PCS pckcrl?ca=)


@dataclass(frozen=True, eq=False)
class CheckedCollateral:
    """TCB info for the platform's FMSPC and the TD_QE identity, both signed by a chain to a trust anchor,
    and the platform's chain checked against the CRLs. windows: every validity period of the collateral."""

    tcb_info: TcbInfo
    qe_identity: EnclaveIdentity
    windows: tuple[Window, ...]


def _pck_extensions(leaf: x509.Certificate) -> PckExtensions:
    try:
        value = leaf.extensions.get_extension_for_oid(_SGX_OID).value
    except x509.ExtensionNotFound as exc:
        raise VerificationError(
            Reason.CERTIFICATE_INVALID, f"PCK certificate has no SGX extensions ({SGX_EXTENSIONS_OID})"
        ) from exc
    if not isinstance(value, x509.UnrecognizedExtension):
        raise VerificationError(Reason.CERTIFICATE_INVALID, "PCK SGX extensions are not an opaque extension")
    try:
        return parse_sgx_extensions(value.value)
    except FormatError as exc:
        raise VerificationError(Reason.CERTIFICATE_INVALID, exc.detail) from exc


@lru_cache(maxsize=_CACHE)
def platform(chain_pem: bytes, extra_anchors: tuple[bytes, ...]) -> Platform:
    """[QGL] steps 3 and 5: the PCK chain of certification data type 5 up to a trust anchor."""
    certs = tuple(load_certificate(der) for der in parse_pck_chain_pem(chain_pem))
    chain, windows = check_chain(certs, trust_anchors(extra_anchors), "PCK chain")
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VerificationError(Reason.CERTIFICATE_INVALID, "PCK certificate key is not ECDSA P-256")
    ca = "processor" if "Processor" in chain[0].issuer.rfc4514_string() else "platform"
    return Platform(chain=chain, pck=_pck_extensions(chain[0]), pck_key=key, windows=windows, ca=ca)


@lru_cache(maxsize=_CACHE)
def recognised(documents: tuple[bytes, ...]) -> Collateral:
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


def has_tcb_info_for(collateral: Collateral, fmspc: bytes) -> bool:
    return any(_tcb_info(t).fmspc == fmspc for t in collateral.tcb_infos)


def _pick_tcb_info(collateral: Collateral, fmspc: bytes) -> TcbInfo:
    infos = [_tcb_info(data) for data in collateral.tcb_infos]
    if not infos:
        raise VerificationError(Reason.COLLATERAL_MISSING, "no TDX TCB info (tcbInfo) in the collateral")
    for info in infos:
        if info.fmspc == fmspc:
            return info
    found = ", ".join(sorted({i.fmspc.hex() for i in infos}))
    raise VerificationError(Reason.FMSPC_MISMATCH, f"tcbInfo.fmspc is {found}, expected the PCK FMSPC {fmspc.hex()}")


def _pick_qe_identity(collateral: Collateral) -> EnclaveIdentity:
    identities = [_qe_identity(data) for data in collateral.qe_identities]
    for identity in identities:
        if identity.id == "TD_QE":
            return identity
    raise VerificationError(
        Reason.COLLATERAL_MISSING, f"no TD_QE enclave identity in the collateral (found {[i.id for i in identities]})"
    )


def _signer(name: str, signed: bytes, signature: bytes, candidates: Sequence[x509.Certificate]) -> x509.Certificate:
    """The certificate among candidates whose key verifies the document."""
    for cert in candidates:
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            continue
        try:
            ecdsa_p256_verify(key, signature, signed, name)
        except VerificationError:
            continue
        return cert
    raise VerificationError(
        Reason.SIGNATURE_INVALID,
        f"{name} signature does not verify with any of {len(candidates)} collateral certificates "
        "(expected the Intel SGX TCB Signing certificate)",
    )


def _check_signed(
    doc: TcbInfo | EnclaveIdentity, collateral: Collateral, anchors: Sequence[x509.Certificate]
) -> tuple[Window, ...]:
    """[QGL] step 7 for one document: signature over its exact bytes, signing chain, revocation."""
    name = doc.document.key
    candidates = [c for c in collateral.certificates if c.subject != c.issuer]
    signer = _signer(name, doc.document.signed_bytes, doc.document.signature, candidates)
    issuers = [c for c in collateral.certificates if c.subject == signer.issuer and c.subject != signer.subject]
    chain, windows = check_chain([signer, *issuers[:1]], anchors, f"{name} signing chain")
    crl_windows = check_revocation(chain, collateral.crls, f"{name} signing chain")
    return (*windows, *crl_windows, Window(name, doc.issue_date, doc.next_update))


@lru_cache(maxsize=_CACHE)
def check_collateral(
    documents: tuple[bytes, ...], chain_pem: bytes, extra_anchors: tuple[bytes, ...]
) -> CheckedCollateral:
    """[QGL] steps 6 and 7 for a platform and a set of collateral documents."""
    plat = platform(chain_pem, extra_anchors)
    collateral = recognised(documents)
    windows = check_revocation(plat.chain, collateral.crls, "PCK chain")
    tcb_info = _pick_tcb_info(collateral, plat.pck.fmspc)
    qe_identity = _pick_qe_identity(collateral)
    anchors = trust_anchors(extra_anchors)
    for doc in (tcb_info, qe_identity):
        windows += _check_signed(doc, collateral, anchors)
    return CheckedCollateral(tcb_info=tcb_info, qe_identity=qe_identity, windows=windows)
