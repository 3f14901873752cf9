"""Certificate chains, CRLs and ECDSA P-256 signatures for DCAP, with results cached by their exact bytes.

[PCK] "Intel SGX PCK Certificate and CRL Profile": PCK leaf <- PCK Platform/Processor CA <- Intel SGX Root CA;
TCB info and QE identity are signed by "Intel SGX TCB Signing" <- Intel SGX Root CA. All ECDSA P-256 SHA-256.

Signature and chain-link results are pure functions of the bytes involved, so they are memoised (bounded LRU):
a verifier that sees the same PCK chain and collateral again pays only the checks that depend on the quote and
the evaluation time. Time checks are never cached.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .. import _x509
from .._x509 import Window
from ..errors import Reason, VerificationError

__all__ = [
    "Window",
    "check_chain",
    "check_revocation",
    "ecdsa_p256_verify",
    "load_certificate",
    "p256_key",
    "pinned_roots",
    "trust_anchors",
]

_CACHE = 4096
P256_COORD = 32


def load_certificate(der: bytes) -> x509.Certificate:
    """A certificate of the quote's PCK chain; certificate_invalid when any part of it is malformed (the quote
    itself parsed: what is wrong is a certificate it carries)."""
    try:
        return _x509.load_der(der)
    except _x509.CertificateError as exc:
        raise VerificationError(Reason.CERTIFICATE_INVALID, f"certificate does not parse: {exc}") from exc


_der = _x509.der_of


@lru_cache(maxsize=1)
def pinned_roots() -> tuple[x509.Certificate, ...]:
    """The Intel SGX Root CA shipped as package data (see roots/README.md for provenance)."""
    return tuple(cert for pem in _x509.pinned_pem(__package__) for cert in _x509.load_certificates(pem))


@lru_cache(maxsize=64)
def trust_anchors(extra: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """Pinned roots plus Options.trust["tdx"] (PEM or DER; tests use test-only roots)."""
    certs = list(pinned_roots())
    for blob in extra:
        try:
            certs.extend(_x509.load_certificates(blob))
        except _x509.CertificateError as exc:
            raise VerificationError(Reason.CERTIFICATE_INVALID, f"a tdx trust anchor does not parse ({exc})") from exc
    return tuple(certs)


def p256_key(raw: bytes, what: str) -> ec.EllipticCurvePublicKey:
    """A P-256 key from the 64-byte x || y of [QGL] (attestation key)."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError as exc:
        raise VerificationError(Reason.SIGNATURE_INVALID, f"{what} is not a P-256 point ({exc})") from exc


def ecdsa_p256_verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, what: str) -> None:
    """[QGL] signatures are r || s, 32 bytes each, over SHA-256 of data."""
    r = int.from_bytes(signature[:P256_COORD], "big")
    s = int.from_bytes(signature[P256_COORD:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise VerificationError(Reason.SIGNATURE_INVALID, f"{what} does not verify") from exc


@lru_cache(maxsize=_CACHE)
def _link_ok(child_der: bytes, parent_der: bytes) -> str | None:
    """None when parent (a CA: [PCK] requires basicConstraints cA on the root and PCK CAs) signed child, else why
    not. Cached: bytes in, verdict out."""
    child, parent = load_certificate(child_der), load_certificate(parent_der)
    try:
        constraints = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"issuer {parent.subject.rfc4514_string()} has no basicConstraints"
    if not constraints.ca:
        return f"issuer {parent.subject.rfc4514_string()} is not a CA"
    problem = _x509.issued_by(child, parent)
    return None if problem is None else f"{child.subject.rfc4514_string()} {problem}"


def _anchor(top: x509.Certificate, anchors: Sequence[x509.Certificate]) -> x509.Certificate | None:
    top_der = _der(top)
    for anchor in anchors:
        if _der(anchor) == top_der:
            return None
    for anchor in anchors:
        if top.issuer == anchor.subject and _link_ok(top_der, _der(anchor)) is None:
            return anchor
    raise VerificationError(
        Reason.UNTRUSTED_KEY,
        f"{top.subject.rfc4514_string()} does not chain to a trusted root (Intel SGX Root CA)",
    )


def check_chain(
    chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], what: str
) -> tuple[tuple[x509.Certificate, ...], tuple[Window, ...]]:
    """Check chain (leaf first) up to a trust anchor. Returns the full chain (anchor appended when the chain
    stops below it) and each certificate's validity, for the caller to judge at its evaluation time (an
    expired PCK chain is certificate_expired; an expired TCB signing certificate is expired collateral)."""
    extra = _anchor(chain[-1], anchors)
    full = (*chain, extra) if extra is not None else tuple(chain)
    for child, parent in itertools.pairwise(full):
        problem = _link_ok(_der(child), _der(parent))
        if problem is not None:
            raise VerificationError(Reason.CERTIFICATE_INVALID, f"{what}: {problem}")
    return full, _x509.chain_windows(full, what)


def check_revocation(
    chain: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList], what: str
) -> tuple[Window, ...]:
    """Each certificate against its issuer's CRL ([PCK] PCK CRL for the leaf, root CA CRL for the CA).
    Raises certificate_revoked or collateral_missing; returns the CRLs' validity (thisUpdate to nextUpdate)."""
    windows = []
    crl_ders = [_x509.crl_der(c) for c in crls]
    for cert, issuer in itertools.pairwise(chain):
        issuer_der = _der(issuer)
        crl = next((c for c, d in zip(crls, crl_ders, strict=True) if _x509.crl_signed_by(d, issuer_der)), None)
        name = issuer.subject.rfc4514_string()
        if crl is None:
            raise VerificationError(Reason.COLLATERAL_MISSING, f"{what}: no valid CRL issued by {name}")
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise VerificationError(
                Reason.CERTIFICATE_REVOKED,
                f"{what}: {cert.subject.rfc4514_string()} serial {cert.serial_number:#x} is revoked by {name}'s CRL",
            )
        windows.append(Window(f"CRL of {name}", crl.last_update_utc, crl.next_update_utc))
    return tuple(windows)
