"""AMD's SEV-SNP certificates: VCEK/VLEK extensions, the ARK/ASK/ASVK trust store, chain checks and CRLs.

References: AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface Specification"
(publication 57230): section 3.1 "VCEK certificate extensions" (OIDs 1.3.6.1.4.1.3704.1.*), the chain
ARK (self-signed) -> ASK -> VCEK and ARK -> ASVK -> VLEK, every signature RSASSA-PSS with SHA-384.

Parsed certificates and checked signatures are cached by certificate bytes, so the steady-state cost of a
verification is the report's one P-384 check plus dictionary look-ups.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from .. import _x509
from ..errors import Reason, VerificationError

__all__ = [
    "PRODUCTS",
    "Anchor",
    "Vek",
    "find_crls",
    "load_certificates",
    "load_ders",
    "parse_vek",
    "pinned_anchors",
    "trust_anchors",
    "vek_ders",
    "verify_issued_by",
]

PRODUCTS = ("Milan", "Genoa", "Turin")

# VCEK certificate extensions (57230 section 3.1).
_AMD = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = x509.ObjectIdentifier(f"{_AMD}.1")
OID_PRODUCT_NAME = x509.ObjectIdentifier(f"{_AMD}.2")
OID_BL_SPL = x509.ObjectIdentifier(f"{_AMD}.3.1")
OID_TEE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.2")
OID_SNP_SPL = x509.ObjectIdentifier(f"{_AMD}.3.3")
OID_UCODE_SPL = x509.ObjectIdentifier(f"{_AMD}.3.8")
OID_FMC_SPL = x509.ObjectIdentifier(f"{_AMD}.3.9")  # Turin and later
OID_HWID = x509.ObjectIdentifier(f"{_AMD}.4")  # VCEK only: 64 bytes (8 on Turin)
OID_CSP_ID = x509.ObjectIdentifier(f"{_AMD}.5")  # VLEK only: the cloud provider it was issued to

VCEK_SUBJECT_CN = "SEV-VCEK"
VLEK_SUBJECT_CN = "SEV-VLEK"
_DER_INTEGER = 0x02
_DER_OCTET_STRING = 0x04
_DER_IA5_STRING = 0x16


def _invalid(detail: str) -> VerificationError:
    return VerificationError(Reason.CERTIFICATE_INVALID, detail)


def _der_content(raw: bytes, tag: int, field: str) -> bytes:
    """The content of one DER TLV of the expected tag that spans all of raw."""
    if len(raw) < 2 or raw[0] != tag:
        raise _invalid(f"VEK extension {field} is {raw[:4].hex()}..., expected DER tag {tag:#04x}")
    length, start = raw[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 2 or len(raw) < 2 + n:
            raise _invalid(f"VEK extension {field}: unsupported DER length form {raw[1]:#04x}")
        length, start = int.from_bytes(raw[2 : 2 + n], "big"), 2 + n
    if start + length != len(raw):
        raise _invalid(f"VEK extension {field}: DER length {length} does not span its {len(raw)} bytes")
    return raw[start:]


@functools.lru_cache(maxsize=1024)
def load_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """Certificates in PEM (one or more) or DER; () when data is neither, and a PEM block that is not a
    well-formed certificate is skipped (documents are recognised by content). AMD's serial-0 VCEKs load under
    verifier._x509's warning filter in either encoding."""
    marker = _x509.PEM_CERTIFICATE
    if marker in data:
        out: list[x509.Certificate] = []
        for part in data.split(marker)[1:]:
            try:
                out.extend(_x509.load_certificates(marker + part))
            except _x509.CertificateError:
                continue
        return tuple(out)
    try:
        return (_x509.load_der(data),)
    except _x509.CertificateError:
        return ()


@functools.lru_cache(maxsize=1024)
def load_ders(data: bytes) -> tuple[bytes, ...]:
    """The DER encodings of the certificates in data (cached: re-encoding costs more than a P-384 verify)."""
    return tuple(cert.public_bytes(Encoding.DER) for cert in load_certificates(data))


@functools.lru_cache(maxsize=1024)
def vek_ders(data: bytes) -> tuple[bytes, ...]:
    """The DER encodings of the VCEK/VLEK certificates (subject CN SEV-VCEK/SEV-VLEK) in data."""
    pairs = zip(load_certificates(data), load_ders(data), strict=True)
    return tuple(der for cert, der in pairs if common_name(cert.subject) in (VCEK_SUBJECT_CN, VLEK_SUBJECT_CN))


def common_name(name: x509.Name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attributes[0].value if attributes else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """RSASSA-PSS with SHA-384 (57230 section 2): cert's signature under issuer's key, names chained."""
    if cert.issuer != issuer.subject:
        raise _invalid(f"{what} issuer is {cert.issuer.rfc4514_string()}, expected {issuer.subject.rfc4514_string()}")
    _check_signature(cert, issuer, what)


def _check_signature(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    problem = _signature_problem(cert.public_bytes(Encoding.DER), issuer.public_bytes(Encoding.DER))
    if problem is not None:
        raise _invalid(f"{what} {problem}")


@functools.lru_cache(maxsize=1024)
def _signature_problem(cert_der: bytes, issuer_der: bytes) -> str | None:
    """None when cert carries a valid RSASSA-PSS SHA-384 signature by issuer's key; else what is wrong.
    Cached by the two certificates' bytes: RSA-4096 checks dominate a cold verification."""
    (cert,) = load_certificates(cert_der)
    (issuer,) = load_certificates(issuer_der)
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS:
        return f"signature algorithm is {cert.signature_algorithm_oid.dotted_string}, expected RSASSA-PSS"
    algorithm = cert.signature_hash_algorithm
    pss = cert.signature_algorithm_parameters
    if not isinstance(algorithm, hashes.SHA384) or not isinstance(pss, padding.PSS):
        return f"signature hash is {getattr(algorithm, 'name', None)}, expected sha384 with RSASSA-PSS"
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return f"issuer {common_name(issuer.subject)} has no RSA key"
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, pss, algorithm)
    except InvalidSignature:
        return f"signature does not verify under {common_name(issuer.subject)}'s key"
    return None


def _product_from_text(text: str) -> str | None:
    for product in PRODUCTS:
        if text == product or text.startswith(f"{product}-") or text.endswith(f"-{product}"):
            return product
    return None


@dataclass(frozen=True)
class Vek:
    """A VCEK or VLEK certificate with AMD's extensions decoded."""

    der: bytes
    cert: x509.Certificate
    kind: str  # "vcek" | "vlek"
    product: str
    product_name: str | None
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None
    hwid: bytes | None
    csp_id: str | None
    public_key: ec.EllipticCurvePublicKey


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _spl(cert: x509.Certificate, oid: x509.ObjectIdentifier, field: str, *, required: bool = True) -> int | None:
    raw = _extension(cert, oid)
    if raw is None:
        if required:
            raise _invalid(f"VEK certificate has no {field} extension ({oid.dotted_string})")
        return None
    value = int.from_bytes(_der_content(raw, _DER_INTEGER, field), "big", signed=True)
    if not 0 <= value <= 0xFF:
        raise _invalid(f"VEK extension {field} is {value}, expected 0..255")
    return value


@functools.lru_cache(maxsize=256)
def parse_vek(der: bytes) -> Vek:
    """Decode a VCEK/VLEK. The product comes from productName and the issuer's name; both must agree."""
    certs = load_certificates(der)
    if len(certs) != 1:
        raise _invalid("VEK certificate is not one DER or PEM certificate")
    cert = certs[0]
    subject = common_name(cert.subject)
    if subject not in (VCEK_SUBJECT_CN, VLEK_SUBJECT_CN):
        raise _invalid(f"VEK subject CN is {subject!r}, expected {VCEK_SUBJECT_CN!r} or {VLEK_SUBJECT_CN!r}")
    kind = "vcek" if subject == VCEK_SUBJECT_CN else "vlek"
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise _invalid(f"{kind.upper()} public key is not EC P-384")
    raw_name = _extension(cert, OID_PRODUCT_NAME)
    product_name = (
        _der_content(raw_name, _DER_IA5_STRING, "productName").decode("ascii", "replace") if raw_name else None
    )
    issuer = common_name(cert.issuer)
    by_issuer = _product_from_text(issuer)
    by_name = _product_from_text(product_name) if product_name is not None else None
    if product_name is not None and by_name is None:
        raise _invalid(f"{kind.upper()} productName is {product_name!r}, expected one of {PRODUCTS} (with stepping)")
    if by_issuer is not None and by_name is not None and by_issuer != by_name:
        raise _invalid(
            f"{kind.upper()} productName is {product_name!r} but its issuer is {issuer!r}: ambiguous product"
        )
    product = by_name or by_issuer
    if product is None:
        raise _invalid(f"{kind.upper()} names no product (issuer {issuer!r}, no productName): ambiguous product")
    hwid: bytes | None = None
    raw_hwid = _extension(cert, OID_HWID)
    if kind == "vcek":
        if raw_hwid is None:
            raise _invalid("VCEK has no hwID extension")
        size = 8 if product == "Turin" else 64
        # KDS VCEKs carry the raw bytes; some tooling wraps them in an OCTET STRING.
        hwid = raw_hwid if len(raw_hwid) == size else _der_content(raw_hwid, _DER_OCTET_STRING, "hwID")
        if len(hwid) != size:
            raise _invalid(f"VCEK hwID is {len(hwid)} bytes, expected {size} for {product}")
    elif raw_hwid is not None:
        raise _invalid("VLEK carries a hwID extension, expected none")
    raw_csp = _extension(cert, OID_CSP_ID)
    csp_id = _der_content(raw_csp, _DER_IA5_STRING, "cspID").decode("ascii", "replace") if raw_csp else None
    return Vek(
        der=der,
        cert=cert,
        kind=kind,
        product=product,
        product_name=product_name,
        bootloader=_spl(cert, OID_BL_SPL, "blSPL") or 0,
        tee=_spl(cert, OID_TEE_SPL, "teeSPL") or 0,
        snp=_spl(cert, OID_SNP_SPL, "snpSPL") or 0,
        microcode=_spl(cert, OID_UCODE_SPL, "ucodeSPL") or 0,
        fmc=_spl(cert, OID_FMC_SPL, "fmcSPL", required=product == "Turin"),
        hwid=hwid,
        csp_id=csp_id,
        public_key=key,
    )


@dataclass(frozen=True)
class Anchor:
    """One product's trusted ARK with the intermediates it signed: ASK (signs VCEKs), ASVK (signs VLEKs)."""

    product: str
    ark: x509.Certificate
    ask: x509.Certificate | None
    asvk: x509.Certificate | None
    pinned: bool
    ders: frozenset[bytes]  # DER of ark, ask and asvk: what evidence-supplied chain certificates must equal

    def intermediate(self, kind: str) -> x509.Certificate | None:
        return self.ask if kind == "vcek" else self.asvk


@functools.lru_cache(maxsize=64)
def trust_anchors(bundles: tuple[bytes, ...], *, pinned: bool = False) -> tuple[Anchor, ...]:
    """ARKs (self-signed, CN ARK-<product>) with the ASK/ASVK each signed, from PEM or DER bundles."""
    certs = [c for data in bundles for c in load_certificates(data)]
    anchors = []
    for ark in certs:
        cn = common_name(ark.subject)
        product = _product_from_text(cn) if cn.startswith("ARK-") else None
        if product is None or ark.issuer != ark.subject:
            continue
        verify_issued_by(ark, ark, f"{cn} (self-signed)")
        ask = asvk = None
        for cert in certs:
            name = common_name(cert.subject)
            if cert.issuer != ark.subject or cert is ark:
                continue
            verify_issued_by(cert, ark, name)
            if name == f"SEV-{product}":
                ask = cert
            elif name == f"SEV-VLEK-{product}":
                asvk = cert
        ders = frozenset(c.public_bytes(Encoding.DER) for c in (ark, ask, asvk) if c is not None)
        anchors.append(Anchor(product=product, ark=ark, ask=ask, asvk=asvk, pinned=pinned, ders=ders))
    return tuple(anchors)


@functools.lru_cache(maxsize=1)
def pinned_anchors() -> tuple[Anchor, ...]:
    """AMD's ARK/ASK/ASVK for Milan, Genoa and Turin, pinned as package data (see roots/README.md)."""
    return trust_anchors(_x509.pinned_pem(__package__), pinned=True)


def find_crls(items: Iterable[bytes], ark: x509.Certificate) -> list[x509.CertificateRevocationList]:
    """The CRLs among items (recognised by content) that the ARK issued; their signature checked."""
    out = []
    for data in items:
        crl = _x509.load_crl(data)
        if crl is None or crl.issuer != ark.subject:
            continue
        if not _x509.crl_signed_by(data, _x509.der_of(ark)):
            raise VerificationError(
                Reason.COLLATERAL_INVALID,
                f"CRL issued by {common_name(ark.subject)} has an invalid signature",
            )
        out.append(crl)
    return out


def check_validity(cert: x509.Certificate, at: datetime, what: str) -> None:
    _x509.check_window(_x509.Window.of(cert, what), at)
