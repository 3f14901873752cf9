"""AK enrolment by credential activation: TPM2_MakeCredential in software, EK certificates, AK attributes.

The broker makes a credential for the AK's name under the EK public key (TCG TPM 2.0 Part 1 §24 "Credential
Protection", Part 3 §12.6 TPM2_MakeCredential); only the TPM holding that EK, and holding an object of that
name, can recover the secret with TPM2_ActivateCredential. A guest that returns the secret proves the AK lives
in the same TPM as the EK, and the EK certificate proves the TPM is genuine.

    seed            RSA EK: random, encrypted with RSA-OAEP(nameAlg, label "IDENTITY\\0")  (Part 1 §B.10.3)
                    ECC EK: KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x) for an ephemeral ECDH key (§C.6.4)
    symKey          KDFa(nameAlg, seed, "STORAGE", AK name, "", EK symmetric keyBits)       (Part 1 §24.4)
    encIdentity     AES-CFB(symKey, IV = 0, TPM2B_DIGEST(secret))                            (Part 1 §24.4)
    HMACkey         KDFa(nameAlg, seed, "INTEGRITY", "", "", digest size)                    (Part 1 §24.5)
    integrityHMAC   HMAC(HMACkey, encIdentity || AK name)                                    (Part 1 §24.5)
    credentialBlob  TPMS_ID_OBJECT = TPM2B(integrityHMAC) || encIdentity                    (Part 2 §12.4.2)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from ..errors import Reason, VerificationError

try:  # AES-CFB is the TPM's parameter-encryption mode; cryptography 47+ files it under "decrepit".
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - cryptography < 47
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[assignment, unused-ignore]
from ._chain import load_certificates, pinned_intermediates, pinned_roots, verify_chain
from ._public import (
    TPMA_DECRYPT,
    TPMA_FIXED_PARENT,
    TPMA_FIXED_TPM,
    TPMA_RESTRICTED,
    TPMA_SENSITIVE_DATA_ORIGIN,
    TPMA_SIGN_ENCRYPT,
    TpmPublic,
)
from ._structures import HASH_SIZES

__all__ = ["Credential", "check_ak_public", "kdfa", "kdfe", "make_credential", "verify_ek_certificate"]

IDENTITY = b"IDENTITY"
STORAGE = b"STORAGE"
INTEGRITY = b"INTEGRITY"
# TCG EK Credential Profile 2.5 §2.1.5 templates L-1 (RSA 2048) and L-2 (ECC P-256): SHA-256, AES-128-CFB.
DEFAULT_NAME_ALG = "sha256"
DEFAULT_SYMMETRIC_BITS = 128
# Part 2 §10.4.2: a TPM2B_DIGEST holds at most sizeof(TPMU_HA).
MAX_SECRET = 64

AK_REQUIRED = TPMA_FIXED_TPM | TPMA_FIXED_PARENT | TPMA_SENSITIVE_DATA_ORIGIN | TPMA_RESTRICTED | TPMA_SIGN_ENCRYPT


@dataclass(frozen=True)
class Credential:
    """The two TPM2_ActivateCredential inputs, without their TPM2B size prefixes."""

    credential_blob: bytes  # TPMS_ID_OBJECT (TPM2B_ID_OBJECT.credential)
    encrypted_secret: bytes  # TPM2B_ENCRYPTED_SECRET.secret


def _label(label: bytes) -> bytes:
    # Part 1 §11.4.10.2: a label that is a string includes its terminating NUL.
    return label if label.endswith(b"\0") else label + b"\0"


def kdfa(hash_name: str, key: bytes, label: bytes, context_u: bytes, context_v: bytes, *, bits: int) -> bytes:
    """Part 1 §11.4.10.2 KDFa (SP 800-108 counter mode): K(i) = HMAC(key, [i] || label || u || v || [L])."""
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        data = struct.pack(">I", counter) + _label(label) + context_u + context_v + struct.pack(">I", bits)
        out += hmac.new(key, data, hash_name).digest()
    return out[: (bits + 7) // 8]


def kdfe(hash_name: str, z: bytes, label: bytes, party_u: bytes, party_v: bytes, *, bits: int) -> bytes:
    """Part 1 §11.4.10.3 KDFe: SP 800-56A concatenation KDF; K(i) = H([i] || Z || label || u || v)."""
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hashlib.new(hash_name, struct.pack(">I", counter) + z + _label(label) + party_u + party_v).digest()
    return out[: (bits + 7) // 8]


def _tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _seed(ek_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, name_alg: str) -> tuple[bytes, bytes]:
    """The seed and its encryption to the EK (TPM2B_ENCRYPTED_SECRET contents)."""
    size = HASH_SIZES[name_alg]
    if isinstance(ek_key, rsa.RSAPublicKey):
        seed = secrets.token_bytes(size)
        algorithm = _OAEP_HASHES[name_alg]()
        encrypted = ek_key.encrypt(seed, padding.OAEP(padding.MGF1(algorithm), algorithm, _label(IDENTITY)))
        return seed, encrypted
    ephemeral = ec.generate_private_key(ek_key.curve)
    coordinate = (ek_key.curve.key_size + 7) // 8
    z = ephemeral.exchange(ec.ECDH(), ek_key)  # the x coordinate of the shared point (Part 1 §C.6.1)
    eph = ephemeral.public_key().public_numbers()
    eph_x, eph_y = eph.x.to_bytes(coordinate, "big"), eph.y.to_bytes(coordinate, "big")
    ek_x = ek_key.public_numbers().x.to_bytes(coordinate, "big")
    seed = kdfe(name_alg, z, IDENTITY, eph_x, ek_x, bits=size * 8)
    # TPMS_ECC_POINT of the ephemeral key.
    return seed, _tpm2b(eph_x) + _tpm2b(eph_y)


def make_credential(
    ek: TpmPublic | rsa.RSAPublicKey | ec.EllipticCurvePublicKey, ak_name: bytes, secret: bytes
) -> Credential:
    """TPM2_MakeCredential(ek, secret, ak_name) in software.

    ek: the EK's TPMT_PUBLIC (its nameAlg and symmetric definition are used), or a bare public key from an EK
    certificate (then the EK Credential Profile's default template is assumed: SHA-256, AES-128-CFB)."""
    if not 0 < len(secret) <= MAX_SECRET:
        raise ValueError(f"credential secret is {len(secret)} bytes, expected 1..{MAX_SECRET}")
    if isinstance(ek, TpmPublic):
        name_alg = ek.name_alg
        if ek.symmetric is None or not ek.has(TPMA_RESTRICTED | TPMA_DECRYPT):
            raise ValueError("the EK must be a restricted decryption key with a symmetric algorithm (a storage key)")
        symmetric_bits = ek.symmetric[1]
        ek_key = ek.public_key
    else:
        name_alg, symmetric_bits, ek_key = DEFAULT_NAME_ALG, DEFAULT_SYMMETRIC_BITS, ek
    seed, encrypted_secret = _seed(ek_key, name_alg)
    sym_key = kdfa(name_alg, seed, STORAGE, ak_name, b"", bits=symmetric_bits)
    encryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = encryptor.update(_tpm2b(secret)) + encryptor.finalize()
    hmac_key = kdfa(name_alg, seed, INTEGRITY, b"", b"", bits=HASH_SIZES[name_alg] * 8)
    integrity = hmac.new(hmac_key, enc_identity + ak_name, name_alg).digest()
    return Credential(credential_blob=_tpm2b(integrity) + enc_identity, encrypted_secret=encrypted_secret)


def check_ak_public(ak: TpmPublic) -> None:
    """An AK worth enrolling: a restricted signing key generated in and bound to its TPM (Part 2 §8.3)."""
    missing = AK_REQUIRED & ~ak.attributes
    if missing or ak.has(TPMA_DECRYPT):
        raise VerificationError(
            Reason.UNTRUSTED_KEY,
            f"AK TPMT_PUBLIC.objectAttributes is {ak.attributes:#010x}, expected fixedTPM, fixedParent, "
            f"sensitiveDataOrigin, restricted and sign set ({AK_REQUIRED:#010x}) and decrypt clear",
        )


def verify_ek_certificate(
    certificate: bytes, anchors: Iterable[bytes], at: datetime, intermediates: Iterable[bytes] = ()
) -> x509.Certificate:
    """The EK certificate, checked to chain to the pinned TPM roots or the given anchors at `at`.

    EK certificates often carry critical extensions that generic path validators refuse (TCG EK Credential
    Profile §3.2: subjectAltName with the TPM manufacturer), hence the TPM-specific chain builder."""
    (cert,) = load_certificates(certificate, "EK certificate")
    extra = tuple(c for blob in intermediates for c in load_certificates(blob, "EK intermediate"))
    anchor_certs = tuple(c for blob in anchors for c in load_certificates(blob, "EK trust anchor"))
    verify_chain(cert, pinned_intermediates() + extra, anchor_certs + pinned_roots(), at, "EK certificate")
    return cert
