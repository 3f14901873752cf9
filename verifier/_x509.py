"""X.509 for every TEE: certificate loading, pinned roots, validity windows, issuer links and CRLs.

What is the same for Intel's PCK chains, AMD's ARK/ASK/VCEK chains and TPM EK/AK chains lives here; what each
vendor's profile adds (Intel's basicConstraints on the PCK CAs, AMD's RSASSA-PSS SHA-384 and product names, TPM
path building through a pool of intermediates) stays in the TEE's own chain module and calls these.

- Loading is strict and eager: `cryptography` parses a certificate's version, names and extensions lazily, on
  first access, so a malformed certificate would otherwise fail far from its loading, outside any handler. Here
  every one of them is read once, inside the loader, and any failure is a `CertificateError` (a ValueError) that
  each caller maps to its reason (certificate_invalid, malformed_evidence).
- AMD issues every VCEK and VLEK with serial number 0, which RFC 5280 forbids and on which `cryptography` warns;
  DER and PEM alike are loaded under one filter that silences exactly that warning, so `-W error` never turns an
  AMD certificate into a traceback.
- No clock: validity is judged at the caller's evaluation time (`Window.covers(at)`).
- No I/O: pinned roots are package data, read once through importlib.resources.

Results are cached by the exact bytes involved (bounded LRU): a broker sees the same chains again and again.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from .errors import Reason, VerificationError

__all__ = [
    "PEM_CERTIFICATE",
    "CertificateError",
    "Window",
    "check_window",
    "crl_der",
    "crl_signed_by",
    "der_of",
    "is_ca",
    "issued_by",
    "load_certificates",
    "load_crl",
    "load_der",
    "pinned_pem",
]

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
PEM_CRL = b"-----BEGIN X509 CRL-----"
_CACHE = 4096
# The lazily parsed parts of a certificate, and what cryptography raises when one of them is malformed.
# KeyError: a name attribute whose string type cryptography has no name for (found by fuzzing, issue 17).
_LAZY_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


class CertificateError(ValueError):
    """Bytes that are not one well-formed X.509 certificate (or CRL); the message says why."""


def _load_der_quietly(der: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        # Trap: AMD issues every VCEK and VLEK with serial number 0 (RFC 5280 4.1.2.2 wants it positive);
        # cryptography warns on load. Scoped to this call and this one message.
        warnings.filterwarnings(
            "ignore",
            message="Parsed a serial number which wasn't positive",
            category=CryptographyDeprecationWarning,
        )
        # Google's vTPM CAs have common names longer than X.520's 64-character bound; cryptography warns when
        # the name is decoded (below), which says nothing to act on here.
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        cert = x509.load_der_x509_certificate(der)
        # Read every lazily parsed part now, inside the handler of the caller (issue 17: a bad version field or
        # a malformed extension otherwise raises at first use, as a traceback).
        _ = (cert.version, cert.subject, cert.issuer, cert.extensions, cert.not_valid_before_utc)
        _ = (cert.not_valid_after_utc, cert.signature_algorithm_oid, cert.public_key())
        return cert


@functools.lru_cache(maxsize=_CACHE)
def load_der(der: bytes) -> x509.Certificate:
    """One DER certificate, every part parsed; CertificateError when any part is malformed."""
    try:
        return _load_der_quietly(der)
    except _LAZY_ERRORS as exc:
        raise CertificateError(f"not a well-formed DER X.509 certificate ({type(exc).__name__}: {exc})") from exc


@functools.lru_cache(maxsize=_CACHE)
def load_certificates(blob: bytes) -> tuple[x509.Certificate, ...]:
    """One DER certificate, or every PEM certificate in blob (through `load_der`: the same checks and the same
    warning filter for both encodings). CertificateError when one does not parse."""
    if PEM_CERTIFICATE not in blob:
        return (load_der(blob),)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="Parsed a serial number which wasn't positive",
                category=CryptographyDeprecationWarning,
            )
            pems = x509.load_pem_x509_certificates(blob)
            ders = tuple(cert.public_bytes(Encoding.DER) for cert in pems)
    except _LAZY_ERRORS as exc:
        raise CertificateError(f"not well-formed PEM X.509 certificates ({type(exc).__name__}: {exc})") from exc
    return tuple(load_der(der) for der in ders)


@functools.lru_cache(maxsize=_CACHE)
def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def pinned_pem(package: str, folder: str = "roots") -> tuple[bytes, ...]:
    """The `*.pem` files of a package-data folder, in name order: the vendor roots pinned in the verifier
    (their provenance is in each folder's README.md). The verifier's only file access, and not of the caller's
    files: of its own installed package."""
    entries = sorted(resources.files(package).joinpath(folder).iterdir(), key=lambda entry: entry.name)
    return tuple(entry.read_bytes() for entry in entries if entry.name.endswith(".pem"))


def is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints cA (RFC 5280 4.2.1.9); False when the extension is absent."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@functools.lru_cache(maxsize=_CACHE)
def issued_by(child: x509.Certificate, parent: x509.Certificate) -> str | None:
    """None when parent's key signed child and the names chain (RFC 5280 6.1.3 (a)(1), (a)(4)); else why not.
    Cached: certificates in, verdict out (no time involved)."""
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"is not signed by {describe(parent)} ({exc or type(exc).__name__})"
    return None


def describe(cert: x509.Certificate, which: str = "subject") -> str:
    """A certificate's subject (or issuer) for messages, RFC 4514."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        return (cert.subject if which == "subject" else cert.issuer).rfc4514_string()


@dataclass(frozen=True)
class Window:
    """A validity period to judge at the evaluation time (certificates, CRLs, signed collateral)."""

    what: str
    not_before: datetime
    not_after: datetime | None

    @classmethod
    def of(cls, cert: x509.Certificate, what: str) -> Window:
        return cls(what, cert.not_valid_before_utc, cert.not_valid_after_utc)

    def covers(self, at: datetime) -> bool:
        return self.not_before <= at and (self.not_after is not None and at <= self.not_after)

    def describe(self, at: datetime) -> str:
        end = "(no end)" if self.not_after is None else self.not_after.isoformat()
        return f"{self.what} is valid {self.not_before.isoformat()} to {end}, not at {at.isoformat()}"


def check_window(window: Window, at: datetime) -> None:
    """certificate_expired when `at` is outside the window."""
    if not window.covers(at):
        raise VerificationError(Reason.CERTIFICATE_EXPIRED, window.describe(at))


@functools.lru_cache(maxsize=_CACHE)
def load_crl(data: bytes) -> x509.CertificateRevocationList | None:
    """A CRL in PEM or DER, or None when data is not one (collateral is recognised by content)."""
    try:
        crl = x509.load_pem_x509_crl(data) if PEM_CRL in data else x509.load_der_x509_crl(data)
        _ = (crl.issuer, crl.extensions, crl.last_update_utc, crl.next_update_utc)
    except _LAZY_ERRORS:
        return None
    return crl


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=_CACHE)
def crl_signed_by(crl_der: bytes, issuer_der: bytes) -> bool:
    """The CRL names the issuer and carries a valid signature by its EC or RSA key (RFC 5280 6.3.3 (f), (g)).
    Cached by the two DER encodings."""
    crl, issuer = load_crl(crl_der), load_der(issuer_der)
    if crl is None:
        return False
    key = issuer.public_key()
    if crl.issuer != issuer.subject or not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return crl.is_signature_valid(key)


def chain_windows(chain: Sequence[x509.Certificate], what: str) -> tuple[Window, ...]:
    return tuple(Window.of(cert, f"{what} certificate {describe(cert)}") for cert in chain)
