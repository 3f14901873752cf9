"""A test-only AMD-like SEV-SNP chain: ARK and ASK (RSA, RSASSA-PSS SHA-384), VCEK/VLEK (P-384) with AMD's
VCEK extensions, CRLs, and ATTESTATION_REPORTs signed by the VCEK.

Nothing here is AMD's: the keys are generated fresh (at test time, into a temporary directory), and only
`Options.trust["snp"]` makes a verifier accept them. Offsets are written out from the SEV-SNP ABI table
"ATTESTATION_REPORT Structure" independently of the verifier's constants, so the two check each other.

    python tests/snp/make_test_chain.py OUT_DIR [--product Milan|Genoa|Turin]

writes ark.pem, ask.pem (trust anchors), vcek.der, vcek-key.pem and report.bin (a version 3 report).
"""

from __future__ import annotations

import argparse
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

AMD_OID = "1.3.6.1.4.1.3704.1"
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Only, Not Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _der_int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def _der_ia5(text: str) -> bytes:
    body = text.encode()
    return bytes([0x16, len(body)]) + body


def _ext(oid: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)


def encode_tcb(bootloader: int, tee: int, snp: int, microcode: int, fmc: int | None = None) -> int:
    """A TCB_VERSION: Milan/Genoa BL byte 0, TEE 1, SNP 6, UCODE 7; Turin (fmc) FMC 0, BL 1, TEE 2, SNP 3."""
    if fmc is None:
        raw = bytes([bootloader, tee, 0, 0, 0, 0, snp, microcode])
    else:
        raw = bytes([fmc, bootloader, tee, snp, 0, 0, 0, microcode])
    return int.from_bytes(raw, "little")


@dataclass
class Chain:
    product: str
    ark_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask_key: rsa.RSAPrivateKey
    ask: x509.Certificate
    asvk_key: rsa.RSAPrivateKey
    asvk: x509.Certificate

    def trust_pem(self) -> bytes:
        """What Options.trust["snp"] takes: the ARK with the ASK and ASVK it signed."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.ask, self.ark, self.asvk))


def _ca(cn: str, issuer_cn: str, key: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey, serial: int) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer_cn))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(EPOCH)
        .not_valid_after(EPOCH + timedelta(days=25 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)


def make_chain(product: str = "Milan", key_size: int = 2048) -> Chain:
    ark_key = rsa.generate_private_key(65537, key_size)
    ask_key = rsa.generate_private_key(65537, key_size)
    asvk_key = rsa.generate_private_key(65537, key_size)
    ark = _ca(f"ARK-{product}", f"ARK-{product}", ark_key, ark_key, 0x10000)
    ask = _ca(f"SEV-{product}", f"ARK-{product}", ask_key, ark_key, 0x10001)
    asvk = _ca(f"SEV-VLEK-{product}", f"ARK-{product}", asvk_key, ark_key, 0x10101)
    return Chain(product, ark_key, ark, ask_key, ask, asvk_key, asvk)


@dataclass
class Vek:
    key: ec.EllipticCurvePrivateKey
    der: bytes
    chip_id: bytes
    tcb: int


def make_vek(
    chain: Chain,
    *,
    kind: str = "vcek",
    chip_id: bytes = bytes(range(64)),
    tcb: tuple[int, int, int, int] | tuple[int, int, int, int, int] = (3, 0, 8, 115),
    product_name: str | None = None,
    not_before: datetime = EPOCH,
    days: int = 7 * 365,
) -> Vek:
    """A VCEK (hwID = chip_id; 8 bytes on Turin) or a VLEK (cspID, no hwID), serial 0 as AMD issues them."""
    key = ec.generate_private_key(ec.SECP384R1())
    turin = chain.product == "Turin"
    bl, tee, snp, ucode, *rest = tcb
    fmc = rest[0] if rest else (0 if turin else None)
    name = product_name if product_name is not None else (f"{chain.product}-B0" if kind == "vcek" else chain.product)
    issuer, signer = (chain.ask, chain.ask_key) if kind == "vcek" else (chain.asvk, chain.asvk_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("SEV-VCEK" if kind == "vcek" else "SEV-VLEK"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(1)  # AMD uses 0; the builder refuses it, and the verifier must not care
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(_ext(f"{AMD_OID}.1", _der_int(0)), critical=False)
        .add_extension(_ext(f"{AMD_OID}.2", _der_ia5(name)), critical=False)
        .add_extension(_ext(f"{AMD_OID}.3.1", _der_int(bl)), critical=False)
        .add_extension(_ext(f"{AMD_OID}.3.2", _der_int(tee)), critical=False)
        .add_extension(_ext(f"{AMD_OID}.3.3", _der_int(snp)), critical=False)
        .add_extension(_ext(f"{AMD_OID}.3.8", _der_int(ucode)), critical=False)
    )
    if fmc is not None:
        builder = builder.add_extension(_ext(f"{AMD_OID}.3.9", _der_int(fmc)), critical=False)
    if kind == "vcek":
        builder = builder.add_extension(_ext(f"{AMD_OID}.4", chip_id[:8] if turin else chip_id), critical=False)
    else:
        builder = builder.add_extension(_ext(f"{AMD_OID}.5", _der_ia5("CN=test-csp.invalid")), critical=False)
    cert = builder.sign(signer, hashes.SHA384(), rsa_padding=PSS)
    return Vek(key, cert.public_bytes(serialization.Encoding.DER), chip_id, encode_tcb(bl, tee, snp, ucode, fmc))


def make_crl(chain: Chain, revoked: list[int], *, next_update: datetime | None = None) -> bytes:
    now = EPOCH + timedelta(days=365)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(chain.ark.subject)
        .last_update(now)
        .next_update(next_update or now + timedelta(days=20 * 365))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(chain.ark_key, hashes.SHA384(), rsa_padding=PSS).public_bytes(serialization.Encoding.DER)


@dataclass
class ReportFields:
    """The ATTESTATION_REPORT fields a test sets; everything else is zero."""

    version: int = 3
    guest_svn: int = 1
    policy: int = 0x30000  # SMT allowed, reserved bit 17 set
    family_id: bytes = bytes(16)
    image_id: bytes = bytes(16)
    vmpl: int = 0
    current_tcb: int | None = None
    platform_info: int = 0x1
    signer_info: int = 0  # SIGNING_KEY 0 = VCEK, 1 << 2 = VLEK
    report_data: bytes = bytes(64)
    measurement: bytes = bytes(range(48))
    host_data: bytes = bytes(32)
    id_key_digest: bytes = bytes(48)
    author_key_digest: bytes = bytes(48)
    report_id: bytes = bytes([0xAB]) * 32
    report_id_ma: bytes = bytes([0xFF]) * 32
    cpuid: tuple[int, int, int] | None = None  # default: the chain's product
    extra: dict[int, bytes] = field(default_factory=dict)  # raw overrides at offsets (before signing)


def make_report(vek: Vek, product: str, fields: ReportFields | None = None) -> bytes:
    """A 0x4A0-byte ATTESTATION_REPORT signed with the VEK's key (R and S little-endian, 72 bytes each)."""
    f = fields or ReportFields()
    body = bytearray(0x4A0)
    struct.pack_into("<IIQ", body, 0x000, f.version, f.guest_svn, f.policy)
    body[0x010:0x020] = f.family_id
    body[0x020:0x030] = f.image_id
    struct.pack_into("<IIQQI", body, 0x030, f.vmpl, 1, f.current_tcb or vek.tcb, f.platform_info, f.signer_info)
    body[0x050:0x090] = f.report_data
    body[0x090:0x0C0] = f.measurement
    body[0x0C0:0x0E0] = f.host_data
    body[0x0E0:0x110] = f.id_key_digest
    body[0x110:0x140] = f.author_key_digest
    body[0x140:0x160] = f.report_id
    body[0x160:0x180] = f.report_id_ma
    struct.pack_into("<Q", body, 0x180, vek.tcb)  # REPORTED_TCB
    if f.version >= 3:
        body[0x188:0x18B] = bytes(f.cpuid or CPUID[product])
    body[0x1A0:0x1E0] = bytes(64) if f.signer_info & 0b11100 else vek.chip_id
    struct.pack_into("<Q", body, 0x1E0, vek.tcb)  # COMMITTED_TCB
    body[0x1E8:0x1EB] = bytes([4, 55, 1])  # CURRENT_BUILD, MINOR, MAJOR
    body[0x1EC:0x1EF] = bytes([4, 55, 1])  # COMMITTED_*
    struct.pack_into("<Q", body, 0x1F0, vek.tcb)  # LAUNCH_TCB
    if f.version >= 5:
        struct.pack_into("<QQ", body, 0x1F8, 0x3, 0x7)  # LAUNCH_MIT_VECTOR, CURRENT_MIT_VECTOR
    for offset, raw in f.extra.items():
        body[offset : offset + len(raw)] = raw
    return sign_report(vek.key, bytes(body))


def sign_report(key: ec.EllipticCurvePrivateKey, report: bytes) -> bytes:
    body = bytearray(report)
    r, s = decode_dss_signature(key.sign(bytes(body[:0x2A0]), ec.ECDSA(hashes.SHA384())))
    body[0x2A0:0x2E8] = r.to_bytes(72, "little")
    body[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--product", default="Milan", choices=sorted(CPUID))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chain = make_chain(args.product)
    vek = make_vek(chain)
    pem = serialization.Encoding.PEM
    (args.out / "ark.pem").write_bytes(chain.ark.public_bytes(pem))
    (args.out / "ask.pem").write_bytes(chain.ask.public_bytes(pem) + chain.asvk.public_bytes(pem))
    (args.out / "vcek.der").write_bytes(vek.der)
    (args.out / "vcek-key.pem").write_bytes(
        vek.key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (args.out / "report.bin").write_bytes(make_report(vek, args.product))


if __name__ == "__main__":
    main()
