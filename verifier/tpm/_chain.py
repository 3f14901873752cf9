"""X.509 for TPM keys: load certificates by content, build and check a chain to pinned or configured roots.

Used for AK certificates (Google's vTPM issues one per instance) and EK certificates (the TPM vendor's, or the
swtpm local CA's in tests). Parsed certificates and issuer-signature results are cached per DER pair, so a
broker that sees the same AK many times pays for its chain once; validity dates are judged on every call
at the caller's `at` (no clock read here).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import _x509
from ..errors import Reason, VerificationError

__all__ = [
    "Path",
    "certification_path",
    "check_validity",
    "describe",
    "is_self_signed",
    "load_certificates",
    "pinned_certificates",
    "pinned_intermediates",
    "pinned_roots",
    "spki_der",
    "verify_chain",
]

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
MAX_CHAIN_DEPTH = 8


def load_certificates(blob: bytes, what: str) -> tuple[x509.Certificate, ...]:
    """One DER certificate, or any number of PEM certificates (parsed once per distinct blob);
    certificate_invalid when one is malformed."""
    try:
        return _x509.load_certificates(bytes(blob))
    except _x509.CertificateError as exc:
        raise VerificationError(Reason.CERTIFICATE_INVALID, f"{what} is not an X.509 certificate ({exc})") from exc


@functools.lru_cache(maxsize=64)
def pinned_certificates() -> tuple[x509.Certificate, ...]:
    """The vendor certificates shipped in verifier/tpm/roots (see the README there for provenance)."""
    return tuple(c for pem in _x509.pinned_pem("verifier.tpm") for c in load_certificates(pem, "pinned certificate"))


@functools.lru_cache(maxsize=1)
def pinned_roots() -> tuple[x509.Certificate, ...]:
    return tuple(c for c in pinned_certificates() if is_self_signed(c))


@functools.lru_cache(maxsize=1)
def pinned_intermediates() -> tuple[x509.Certificate, ...]:
    return tuple(c for c in pinned_certificates() if not is_self_signed(c))


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=4096)
def _der_cached(cert: x509.Certificate) -> bytes:
    return _der(cert)


def spki_der(cert: x509.Certificate) -> bytes:
    return _spki_cached(cert)


@functools.lru_cache(maxsize=4096)
def _spki_cached(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    return _x509.issued_by(child, parent) is None


def is_self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


describe = _x509.describe
_is_ca = _x509.is_ca


def _can_issue(child: x509.Certificate, parent: x509.Certificate, anchor_ders: set[bytes]) -> bool:
    """Anchors are trusted as configured; an intermediate must be a CA (BasicConstraints cA)."""
    return (_der_cached(parent) in anchor_ders or _is_ca(parent)) and _issued_by(child, parent)


# A certification path with each certificate's validity period, as (not_before, not_after, certificate).
Path = tuple[tuple[datetime, datetime, x509.Certificate], ...]


def certification_path(
    leaf: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    anchors: Iterable[x509.Certificate],
    what: str,
) -> Path:
    """The path leaf -> ... -> anchor by signatures (cached per leaf, pool and anchors); untrusted_key if none.
    Dates are not judged here: `check_validity` does that at the caller's time."""
    anchor_list = tuple(anchors)
    path = _path(leaf, tuple(intermediates), anchor_list)
    if isinstance(path, str):
        raise VerificationError(Reason.UNTRUSTED_KEY, f"{what}: {path} ({len(anchor_list)} anchors configured)")
    return tuple((cert.not_valid_before_utc, cert.not_valid_after_utc, cert) for cert in path)


def check_validity(path: Path, at: datetime, what: str) -> None:
    """certificate_expired when a certificate of the path is outside its validity period at `at`."""
    for n, (not_before, not_after, cert) in enumerate(path):
        if not not_before <= at <= not_after:
            who = f"{what if n == 0 else f'issuer of {what}'} ({describe(cert)})"
            _x509.check_window(_x509.Window(who, not_before, not_after), at)


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    anchors: Iterable[x509.Certificate],
    at: datetime,
    what: str,
) -> Path:
    """The chain leaf -> ... -> anchor, every link's signature and dates checked at `at`.

    Raises VerificationError: untrusted_key when no path reaches an anchor, certificate_expired when a
    certificate on the path is outside its validity period at `at`."""
    path = certification_path(leaf, intermediates, anchors, what)
    check_validity(path, at, what)
    return path


@functools.lru_cache(maxsize=1024)
def _path(
    leaf: x509.Certificate, intermediates: tuple[x509.Certificate, ...], anchors: tuple[x509.Certificate, ...]
) -> tuple[x509.Certificate, ...] | str:
    """The issuer path from leaf to an anchor by signatures, or why there is none."""
    anchor_ders = {_der_cached(a) for a in anchors}
    pool = anchors + tuple(c for c in intermediates if _der_cached(c) not in anchor_ders)
    chain = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if _der_cached(current) in anchor_ders:
            return tuple(chain)
        parent = next((c for c in pool if c is not current and _can_issue(current, c, anchor_ders)), None)
        if parent is None:
            return f"{describe(current)}, issued by {describe(current, 'issuer')}, does not chain to a trusted root"
        chain.append(parent)
        current = parent
    return f"chain longer than {MAX_CHAIN_DEPTH} certificates"
