"""A test-only Intel-shaped DCAP PKI and synthetic TDX quotes v4 signed by it (never Intel's keys).

    root CA -> PCK Platform CA -> PCK leaf (with SGX extensions 1.2.840.113741.1.13.1)
    root CA -> TCB signing certificate -> TCB info (TDX, v3) and QE identity (TD_QE, v2)
    root CA CRL, PCK CA CRL (optionally revoking the PCK leaf or the PCK CA)

Keys are generated on every run with `cryptography`; nothing private is committed. Used by the TDX unit
tests, the end-to-end tests (through a fake configfs-tsm device) and the benchmark. Run as a script to write
the root, the collateral and a quote into a folder:

    python tests/tdx/make_test_chain.py OUT_DIR [--report-data HEX]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

FMSPC = bytes.fromhex("00906ed50000")
PCE_ID = b"\x00\x00"
PCE_SVN = 11
SGX_SVNS = (3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0)
TEE_TCB_SVN = bytes([5, 1, 2]) + bytes(13)  # module SVN 5, module major version 1 (TDX_01), late microcode 2
QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
QE_ISVSVN = 8
QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")
MRTD = bytes.fromhex("a5" * 48)
SGX_OID = "1.2.840.113741.1.13.1"
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")  # [QGL] "Quote Header"
SGX_TYPE_SCALABLE = 1  # [PCK] 3.5: a platform-CA PCK certificate, with platform instance ID and configuration
PLATFORM_INSTANCE_ID = bytes(range(0x10, 0x20))


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        rest = arc
        chunk = [rest & 0x7F]
        rest >>= 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


def _int(value: int, tag: int = 0x02) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return _der(tag, raw)


def _entry(suffix: str, value: bytes) -> bytes:
    return _der(0x30, _oid(f"{SGX_OID}.{suffix}") + value)


def sgx_extension(fmspc: bytes = FMSPC, svns: tuple[int, ...] = SGX_SVNS, pce_svn: int = PCE_SVN) -> bytes:
    """[PCK] 3.5: the DER value of the SGX extensions of a platform-CA PCK certificate (dynamic platform, cached
    keys and SMT enabled, as Intel's real platform certificates say)."""
    tcb = b"".join(_entry(f"2.{i + 1}", _int(svn)) for i, svn in enumerate(svns))
    tcb += _entry("2.17", _int(pce_svn)) + _entry("2.18", _der(0x04, bytes(svns)))
    return _der(
        0x30,
        _entry("1", _der(0x04, bytes(range(16))))
        + _entry("2", _der(0x30, tcb))
        + _entry("3", _der(0x04, PCE_ID))
        + _entry("4", _der(0x04, fmspc))
        + _entry("5", _int(SGX_TYPE_SCALABLE, tag=0x0A))
        + _entry("6", _der(0x04, PLATFORM_INSTANCE_ID))
        + _entry("7", _der(0x30, b"".join(_entry(f"7.{i}", _der(0x01, b"\xff")) for i in (1, 2, 3)))),
    )


def _name(cn: str) -> x509.Name:
    """[PCK] 1.3: every DCAP certificate and CRL names its subject/issuer as Intel does (only the keys differ)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


# Test-only CRL distribution points (a reserved TLD: nothing is ever fetched from them).
ROOT_CRL_URI = "https://certificates.test.invalid/IntelSGXRootCA.der"
PCK_CRL_URI = "https://api.test.invalid/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
CA_USAGE = {"key_cert_sign": True, "crl_sign": True}
LEAF_USAGE = {"digital_signature": True, "content_commitment": True}


def _usage(key_cert_sign: bool = False, crl_sign: bool = False, **leaf: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=leaf.get("digital_signature", False),
        content_commitment=leaf.get("content_commitment", False),
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    extension: bytes | None = None,
    path_length: int | None = None,
    crl_uri: str = ROOT_CRL_URI,
) -> x509.Certificate:
    """A certificate with Intel's profile ([PCK] 1.3, 3.x): AKI, CRL distribution point, SKI, KeyUsage and
    BasicConstraints (both critical), in Intel's order; Intel's QVL refuses a root or CA without them."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_uri)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_usage(**(CA_USAGE if ca else LEAF_USAGE)), critical=True)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    if extension is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_OID), extension), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(
    issuer: str, key: ec.EllipticCurvePrivateKey, revoked: list[int], this: datetime, nxt: datetime
) -> x509.CertificateRevocationList:
    """A v2 CRL as Intel issues them: CRL number 1 and the issuer's AKI ([PCK] 4), each entry with a reason."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(issuer))
        .last_update(this)
        .next_update(nxt)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(key, hashes.SHA256())


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _signed_json(key: str, body: dict[str, object], signer: ec.EllipticCurvePrivateKey) -> bytes:
    inner = json.dumps(body, separators=(",", ":")).encode()
    return b'{"' + key.encode() + b'":' + inner + b',"signature":"' + _raw_sig(signer, inner).hex().encode() + b'"}'


def _comps(svns: tuple[int, ...] | bytes) -> list[dict[str, int]]:
    return [{"svn": svn} for svn in svns]


@dataclass
class DcapPki:
    """A generated PKI with its collateral. `at` is a time inside every validity window."""

    at: datetime
    root: x509.Certificate
    pck_ca: x509.Certificate
    pck: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    tcb_signer: x509.Certificate
    tcb_info: bytes
    qe_identity: bytes
    pck_crl: x509.CertificateRevocationList
    root_crl: x509.CertificateRevocationList
    extra: dict[str, bytes] = field(default_factory=dict)

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    def collateral(self) -> tuple[bytes, ...]:
        return (
            self.tcb_info,
            self.qe_identity,
            _pem(self.tcb_signer, self.root),
            self.pck_crl.public_bytes(Encoding.DER),
            self.root_crl.public_bytes(Encoding.PEM),
        )


def make_pki(
    at: datetime | None = None,
    *,
    revoke_pck: bool = False,
    revoke_pck_ca: bool = False,
    tcb_status: str = "UpToDate",
    module_status: str = "UpToDate",
    pck_not_after: datetime | None = None,
    tcb_info_next_update: datetime | None = None,
    fmspc: bytes = FMSPC,
) -> DcapPki:
    at = at or datetime.now(UTC).replace(microsecond=0)
    start, end = at - timedelta(days=30), at + timedelta(days=3650)
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("root", "ca", "pck", "tcb")}
    root = _cert(
        "Intel SGX Root CA",
        keys["root"],
        "Intel SGX Root CA",
        keys["root"],
        ca=True,
        not_before=start,
        not_after=end,
        path_length=1,
    )
    ca = _cert(
        "Intel SGX PCK Platform CA",
        keys["ca"],
        "Intel SGX Root CA",
        keys["root"],
        ca=True,
        not_before=start,
        not_after=end,
        path_length=0,
    )
    pck = _cert(
        "Intel SGX PCK Certificate",
        keys["pck"],
        "Intel SGX PCK Platform CA",
        keys["ca"],
        ca=False,
        not_before=start,
        not_after=pck_not_after or end,
        extension=sgx_extension(fmspc),
        crl_uri=PCK_CRL_URI,
    )
    signer = _cert(
        "Intel SGX TCB Signing",
        keys["tcb"],
        "Intel SGX Root CA",
        keys["root"],
        ca=False,
        not_before=start,
        not_after=end,
    )
    issue, nxt = at - timedelta(days=1), tcb_info_next_update or at + timedelta(days=29)
    dates = {
        "issueDate": issue.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nextUpdate": nxt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    module = {"mrsigner": "00" * 48, "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"}
    tcb_info = {
        "id": "TDX", "version": 3, **dates, "fmspc": FMSPC.hex(), "pceId": PCE_ID.hex(), "tcbType": 0,
        "tcbEvaluationDataNumber": 17, "tdxModule": module,
        "tdxModuleIdentities": [{"id": "TDX_01", **module, "tcbLevels": [
            {"tcb": {"isvsvn": TEE_TCB_SVN[0]}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": module_status,
             **({"advisoryIDs": ["INTEL-SA-TEST-2"]} if module_status != "UpToDate" else {})},
        ]}],
        "tcbLevels": [
            {"tcb": {"sgxtcbcomponents": _comps(SGX_SVNS), "pcesvn": PCE_SVN,
                     "tdxtcbcomponents": _comps(TEE_TCB_SVN)},
             "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": tcb_status,
             **({"advisoryIDs": ["INTEL-SA-TEST-1"]} if tcb_status != "UpToDate" else {})},
            {"tcb": {"sgxtcbcomponents": _comps(bytes(16)), "pcesvn": 0,
                     "tdxtcbcomponents": _comps(bytes(16))},
             "tcbDate": "2018-01-04T00:00:00Z", "tcbStatus": "OutOfDate", "advisoryIDs": ["INTEL-SA-00001"]},
        ],
    }  # fmt: skip
    qe_identity = {
        "id": "TD_QE", "version": 2, **dates, "tcbEvaluationDataNumber": 17, "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF", "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000", "mrsigner": QE_MRSIGNER.hex().upper(),
        "isvprodid": 2,
        "tcbLevels": [{"tcb": {"isvsvn": 4}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"}],
    }  # fmt: skip
    crl_next = at + timedelta(days=29)
    return DcapPki(
        at=at,
        root=root,
        pck_ca=ca,
        pck=pck,
        pck_key=keys["pck"],
        tcb_signer=signer,
        tcb_info=_signed_json("tcbInfo", tcb_info, keys["tcb"]),
        qe_identity=_signed_json("enclaveIdentity", qe_identity, keys["tcb"]),
        pck_crl=_crl(
            "Intel SGX PCK Platform CA", keys["ca"], [pck.serial_number] if revoke_pck else [], issue, crl_next
        ),
        root_crl=_crl("Intel SGX Root CA", keys["root"], [ca.serial_number] if revoke_pck_ca else [], issue, crl_next),
    )


def make_quote(
    pki: DcapPki,
    report_data: bytes = b"",
    *,
    mr_config_id: bytes = b"",
    rtmrs: tuple[bytes, ...] = (),
    debug: bool = False,
    tee_tcb_svn: bytes = TEE_TCB_SVN,
    qe_isvsvn: int = QE_ISVSVN,
    chain: tuple[x509.Certificate, ...] | None = None,
    chain_pem: bytes | None = None,
    qe_vendor_id: bytes = INTEL_QE_VENDOR_ID,
) -> bytes:
    """A quote v4 ([QGL] appendix A) signed by a fresh attestation key certified by pki's PCK leaf."""
    header = struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + qe_vendor_id + bytes(20)
    rtmr = b"".join(r.ljust(48, b"\x00") for r in rtmrs) + bytes(48 * (4 - len(rtmrs)))
    td_attributes = (b"\x01" if debug else b"\x00") + bytes([0, 0, 0x10, 0, 0, 0, 0])
    body = (
        tee_tcb_svn + bytes(48) * 2 + bytes(8) + td_attributes + bytes.fromhex("e742060000000000") + MRTD
        + mr_config_id.ljust(48, b"\x00") + bytes(96) + rtmr + report_data.ljust(64, b"\x00")
    )  # fmt: skip
    assert len(body) == 584
    att_key = ec.generate_private_key(ec.SECP256R1())
    att_pub = att_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
    auth = bytes(range(32))
    qe = bytearray(384)
    qe[16:20] = bytes(4)
    qe[48:64] = QE_ATTRIBUTES
    qe[128:160] = QE_MRSIGNER
    qe[256:260] = struct.pack("<HH", 2, qe_isvsvn)
    qe[320:352] = hashlib.sha256(att_pub + auth).digest()
    pem = chain_pem or _pem(*(chain or (pki.pck, pki.pck_ca, pki.root)))
    cert6 = bytes(qe) + _raw_sig(pki.pck_key, bytes(qe)) + struct.pack("<H", len(auth)) + auth
    cert6 += struct.pack("<HI", 5, len(pem)) + pem
    sig_data = _raw_sig(att_key, header + body) + att_pub + struct.pack("<HI", 6, len(cert6)) + cert6
    return header + body + struct.pack("<I", len(sig_data)) + sig_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--report-data", default="")
    args = parser.parse_args()
    pki = make_pki()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "test-root.pem").write_bytes(pki.root_pem)
    collateral = args.out / "collateral"
    collateral.mkdir(exist_ok=True)
    for i, doc in enumerate(pki.collateral()):
        (collateral / f"doc{i}").write_bytes(doc)
    (args.out / "quote.dat").write_bytes(make_quote(pki, bytes.fromhex(args.report_data)))


if __name__ == "__main__":
    main()
