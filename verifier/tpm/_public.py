"""TPMT_PUBLIC (TCG TPM 2.0 Part 2 §12.2.4): an RSA or ECC key's public area, its TPM name, and its SPKI.

A key's name (Part 1 §16) is nameAlg || H_nameAlg(TPMT_PUBLIC); TPM2_MakeCredential binds a credential to the
AK's name, and the broker learns the name only from the AK's public area, so it parses that area here.

    TPMT_PUBLIC      type, nameAlg, objectAttributes, authPolicy, parameters, unique
    TPMS_RSA_PARMS   symmetric, scheme, keyBits, exponent          (Part 2 §12.2.3.5)
    TPMS_ECC_PARMS   symmetric, scheme, curveID, kdf               (Part 2 §12.2.3.6)
    TPMT_SYM_DEF_OBJECT  algorithm [, keyBits, mode]               (Part 2 §11.1.7)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .._reader import Reader
from ..errors import FormatError, Reason
from ._structures import HASH_ALGS, HASH_IDS

__all__ = ["TpmPublic", "parse_public"]

# TCG Algorithm Registry, Table 3.
TPM_ALG_RSA = 0x0001
TPM_ALG_ECC = 0x0023
TPM_ALG_NULL = 0x0010
TPM_ALG_AES = 0x0006
TPM_ALG_CFB = 0x0043
TPM_ALG_ECDAA = 0x001A
# Part 2 §11.2.5.1 TPM_ECC_CURVE.
CURVES: dict[int, ec.EllipticCurve] = {0x0003: ec.SECP256R1(), 0x0004: ec.SECP384R1(), 0x0005: ec.SECP521R1()}
# Part 2 §12.2.3.5: an exponent of zero means the default 2^16 + 1.
DEFAULT_RSA_EXPONENT = 65537
MAX_KEY_BYTES = 512

# Part 2 §8.3 TPMA_OBJECT bits.
TPMA_FIXED_TPM = 1 << 1
TPMA_FIXED_PARENT = 1 << 4
TPMA_SENSITIVE_DATA_ORIGIN = 1 << 5
TPMA_RESTRICTED = 1 << 16
TPMA_DECRYPT = 1 << 17
TPMA_SIGN_ENCRYPT = 1 << 18


@dataclass(frozen=True)
class TpmPublic:
    """A parsed TPMT_PUBLIC. `raw` is the exact marshalled area (the input of the name)."""

    raw: bytes
    key_type: str  # "rsa" | "ecc"
    name_alg: str
    attributes: int
    symmetric: tuple[str, int] | None  # ("aes", keyBits) in CFB mode, or None for TPM_ALG_NULL
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    @property
    def name(self) -> bytes:
        """Part 1 §16: nameAlg (u16) || H_nameAlg(TPMT_PUBLIC)."""
        return HASH_IDS[self.name_alg].to_bytes(2, "big") + hashlib.new(self.name_alg, self.raw).digest()

    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def has(self, bits: int) -> bool:
        return self.attributes & bits == bits


def _symmetric(reader: Reader) -> tuple[str, int] | None:
    alg = reader.u16be("parameters.symmetric.algorithm")
    if alg == TPM_ALG_NULL:
        return None
    bits = reader.u16be("parameters.symmetric.keyBits")
    mode = reader.u16be("parameters.symmetric.mode")
    if alg != TPM_ALG_AES or mode != TPM_ALG_CFB:
        raise FormatError(
            f"TPMT_PUBLIC: parameters.symmetric is algorithm {alg:#06x} mode {mode:#06x}, expected "
            f"TPM_ALG_AES {TPM_ALG_AES:#06x} in TPM_ALG_CFB {TPM_ALG_CFB:#06x} or TPM_ALG_NULL",
            Reason.UNSUPPORTED_FORMAT,
        )
    return ("aes", bits)


def _scheme(reader: Reader, field: str) -> None:
    """TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME: scheme, then its details unless TPM_ALG_NULL."""
    scheme = reader.u16be(f"{field}.scheme")
    if scheme == TPM_ALG_NULL:
        return
    reader.u16be(f"{field}.details.hashAlg")
    if scheme == TPM_ALG_ECDAA:
        reader.u16be(f"{field}.details.count")


def parse_public(data: bytes) -> TpmPublic:
    """Parse a marshalled TPMT_PUBLIC of an RSA or ECC key (no TPM2B size prefix)."""
    reader = Reader(data, "TPMT_PUBLIC")
    key_type = reader.u16be("type")
    name_alg_id = reader.u16be("nameAlg")
    name_alg = HASH_ALGS.get(name_alg_id)
    if name_alg is None:
        raise FormatError(f"TPMT_PUBLIC: nameAlg is {name_alg_id:#06x}, expected a SHA hash", Reason.UNSUPPORTED_FORMAT)
    attributes = reader.u32be("objectAttributes")
    policy = reader.sized_be16("authPolicy")
    if len(policy) > max(len(hashlib.new(n).digest()) for n in HASH_ALGS.values()):
        raise FormatError(f"TPMT_PUBLIC: authPolicy is {len(policy)} bytes, at most 64 allowed")
    symmetric = _symmetric(reader)
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    if key_type == TPM_ALG_RSA:
        _scheme(reader, "parameters.rsaDetail.scheme")
        key_bits = reader.u16be("parameters.rsaDetail.keyBits")
        exponent = reader.u32be("parameters.rsaDetail.exponent") or DEFAULT_RSA_EXPONENT
        modulus = reader.sized_be16("unique.rsa")
        if len(modulus) > MAX_KEY_BYTES or len(modulus) * 8 != key_bits:
            raise FormatError(f"TPMT_PUBLIC: unique.rsa is {len(modulus)} bytes, expected keyBits {key_bits} / 8")
        try:
            public_key = rsa.RSAPublicNumbers(exponent, int.from_bytes(modulus, "big")).public_key()
        except ValueError as exc:
            raise FormatError(f"TPMT_PUBLIC: unique.rsa is not a valid RSA public key ({exc})") from exc
        kind = "rsa"
    elif key_type == TPM_ALG_ECC:
        _scheme(reader, "parameters.eccDetail.scheme")
        curve_id = reader.u16be("parameters.eccDetail.curveID")
        curve = CURVES.get(curve_id)
        if curve is None:
            raise FormatError(
                f"TPMT_PUBLIC: parameters.eccDetail.curveID is {curve_id:#06x}, expected NIST P-256/384/521",
                Reason.UNSUPPORTED_FORMAT,
            )
        _scheme(reader, "parameters.eccDetail.kdf")
        x = reader.sized_be16("unique.ecc.x")
        y = reader.sized_be16("unique.ecc.y")
        try:
            public_key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            ).public_key()
        except ValueError as exc:
            raise FormatError(f"TPMT_PUBLIC: unique.ecc is not a point on the curve ({exc})") from exc
        kind = "ecc"
    else:
        raise FormatError(
            f"TPMT_PUBLIC: type is {key_type:#06x}, expected TPM_ALG_RSA {TPM_ALG_RSA:#06x} "
            f"or TPM_ALG_ECC {TPM_ALG_ECC:#06x}",
            Reason.UNSUPPORTED_FORMAT,
        )
    reader.finish()
    return TpmPublic(
        raw=bytes(data),
        key_type=kind,
        name_alg=name_alg,
        attributes=attributes,
        symmetric=symmetric,
        public_key=public_key,
    )
