"""Synthetic Azure CVM evidence signed by test-only roots: an HCL report (header, hardware report, IGVM request
data, runtime data JSON with the AK as a JWK), a vTPM quote signed by that AK, and the evidence JSON of
guest-components' az-snp-vtpm / az-tdx-vtpm attesters (versions 0, 1, 2).

The HCL layout is written out here from Azure's headers (ATTESTATION_HEADER, IGVM_REQUEST_DATA) independently of
the verifier's constants, so the two check each other. The SNP report comes from tests/snp/make_test_chain.py
(trusted through Options.trust["snp"]), the TD quote from tests/tdx/make_test_chain.py (Options.trust["tdx"]).

    python tests/azure/make_evidence.py OUT_DIR [--tee az-snp-vtpm|az-tdx-vtpm] [--report-data HEX]

writes evidence.json, the trust anchors (snp-trust.pem or tdx-root.pem) and, for TDX, collateral/.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.snp.make_test_chain import Chain, ReportFields, Vek, make_chain, make_report, make_vek
from tests.tdx.make_test_chain import DcapPki, make_pki, make_quote
from tests.tpm._quotes import attest, sign

HCL_HEADER = struct.Struct("<4sIIII12x")  # signature "HCLA", version, report_size, request_type, status
IGVM_REQUEST = struct.Struct("<IIIII")  # data_size, version, report_type, report_data_hash_type, variable size
HW_AREA = 0x4A0
REPORT_TYPES = {"snp": 2, "tdx": 4}
HASH_TYPES = {"sha256": 1, "sha384": 2, "sha512": 3}
NV_SIZE = 2600  # the vTPM NV index holding the report is this large; the report is zero-padded to it


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def jwk(key: rsa.RSAPublicKey, kid: str) -> dict[str, object]:
    numbers = key.public_numbers()

    def encode(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode().rstrip("=")

    ops = ["sign"] if kid == "HCLAkPub" else ["encrypt"]
    return {"kid": kid, "key_ops": ops, "kty": "RSA", "e": encode(numbers.e), "n": encode(numbers.n)}


def runtime_data(ak: rsa.RSAPublicKey, user_data: bytes = bytes(64), ek: rsa.RSAPublicKey | None = None) -> bytes:
    """The runtime data JSON as the paravisor writes it (compact, keys in its order)."""
    keys = [jwk(ak, "HCLAkPub"), jwk(ek or ak, "HCLEkPub")]
    document = {
        "keys": keys,
        "vm-configuration": {"console-enabled": True, "secure-boot": True, "tpm-enabled": True, "vmUniqueId": "T"},
        "user-data": user_data.hex().upper(),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def report_data_for(runtime: bytes, hash_name: str = "sha256") -> bytes:
    digest = hashlib.new(hash_name, runtime).digest()
    return digest + bytes(64 - len(digest))


def hcl_report(
    kind: str, hw_report: bytes, runtime: bytes, *, hash_name: str = "sha256", report_type: int | None = None
) -> bytes:
    """ATTESTATION_HEADER + hardware report (padded to 0x4A0) + IGVM_REQUEST_DATA + runtime data, padded to the
    NV index size."""
    request = IGVM_REQUEST.pack(
        IGVM_REQUEST.size + len(runtime),
        1,
        REPORT_TYPES[kind] if report_type is None else report_type,
        HASH_TYPES[hash_name],
        len(runtime),
    )
    size = HCL_HEADER.size + HW_AREA + len(request) + len(runtime)
    body = HCL_HEADER.pack(b"HCLA", 2, size, 2, 0) + hw_report.ljust(HW_AREA, b"\0") + request + runtime
    return body.ljust(NV_SIZE, b"\0")


def td_report(quote: bytes) -> bytes:
    """The TDREPORT_STRUCT a TD quote v4 was made from (Intel TDX Module ABI): fields copied from the quote's
    TD report body (header 48 bytes, then TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, SEAMATTRIBUTES, TDATTRIBUTES,
    XFAM, MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0-3, REPORTDATA), with the two SHA-384 hashes."""
    body = quote[48 : 48 + 584]
    take = iter((16, 48, 48, 8, 8, 8, 48, 48, 48, 48, 48, 48, 48, 48, 64))
    fields, pos = [], 0
    for size in take:
        fields.append(body[pos : pos + size])
        pos += size
    svn, mrseam, mrsignerseam, seam_attr, td_attr, xfam, mrtd, cfg, owner, owner_cfg, *rest = fields
    rtmrs, report_data = rest[:4], rest[4]
    tee_tcb_info = (b"\xff" * 8 + svn + mrseam + mrsignerseam + seam_attr).ljust(239, b"\0")
    tdinfo = (td_attr + xfam + mrtd + cfg + owner + owner_cfg + b"".join(rtmrs)).ljust(512, b"\0")
    mac = (
        bytes([0x81, 0, 0, 0]) + bytes(12) + bytes(16)
        + hashlib.sha384(tee_tcb_info).digest() + hashlib.sha384(tdinfo).digest()
        + report_data + bytes(32) + bytes(32)
    )  # fmt: skip
    return mac + tee_tcb_info + bytes(17) + tdinfo


def pcr_bank(seed: bytes = b"pcr") -> dict[int, bytes]:
    return {i: hashlib.sha256(seed + bytes([i])).digest() for i in range(24)}


def vtpm_quote(ak: rsa.RSAPrivateKey, extra_data: bytes, pcrs: dict[int, bytes]) -> dict[str, object]:
    """tpm_quote of the evidence: TPMS_ATTEST over all 24 SHA-256 PCRs and the bare RSASSA signature (the
    TPMT_SIGNATURE without sigAlg, hash and size, as guest-components sends it)."""
    message = attest({"sha256": pcrs}, extra_data)
    signature = sign(ak, message)[6:]
    return {"signature": signature.hex(), "message": message.hex(), "pcrs": [pcrs[i].hex() for i in range(24)]}


@dataclass
class Synthetic:
    """One synthetic CVM: its keys, the pieces of its evidence, and what a verifier needs to trust it."""

    tee: str
    ak: rsa.RSAPrivateKey
    runtime: bytes
    hcl: bytes
    hardware: bytes  # VCEK DER (SNP) or TD quote (TDX)
    tpm_quote: dict[str, object]
    trust: dict[str, tuple[bytes, ...]]
    collateral: tuple[bytes, ...] = ()
    extras: dict[str, object] = field(default_factory=dict)

    def evidence(self, version: int = 2) -> dict[str, object]:
        key = "vcek" if self.tee == "az-snp-vtpm" else "td_quote"
        if version == 0:
            quote = {
                "signature": list(bytes.fromhex(str(self.tpm_quote["signature"]))),
                "message": list(bytes.fromhex(str(self.tpm_quote["message"]))),
                "pcrs": [list(bytes.fromhex(p)) for p in self.tpm_quote["pcrs"]],  # type: ignore[attr-defined]
            }
            if self.tee == "az-snp-vtpm":
                pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(self.hardware).decode()
                return {"quote": quote, "report": list(self.hcl), "vcek": pem + "-----END CERTIFICATE-----\n"}
            return {"tpm_quote": quote, "hcl_report": list(self.hcl), "td_quote": list(self.hardware)}
        return {
            "version": version,
            "tpm_quote": self.tpm_quote,
            "hcl_report": b64url(self.hcl),
            key: b64url(self.hardware),
        }


def make_snp(
    report_data: bytes,
    *,
    chain: Chain | None = None,
    vek: Vek | None = None,
    vmpl: int = 0,
    user_data: bytes | None = None,
    pcrs: dict[int, bytes] | None = None,
    signing_ak: rsa.RSAPrivateKey | None = None,
) -> Synthetic:
    """An az-snp-vtpm CVM: `report_data` in the quote's extraData and (v2) at the start of user-data."""
    chain = chain or make_chain("Milan")
    vek = vek or make_vek(chain)
    ak = rsa.generate_private_key(65537, 2048)
    runtime = runtime_data(ak.public_key(), report_data.ljust(64, b"\0") if user_data is None else user_data)
    report = make_report(vek, chain.product, ReportFields(report_data=report_data_for(runtime), vmpl=vmpl))
    quote = vtpm_quote(signing_ak or ak, report_data, pcrs or pcr_bank())
    return Synthetic(
        "az-snp-vtpm", ak, runtime, hcl_report("snp", report, runtime), vek.der, quote, {"snp": (chain.trust_pem(),)}
    )


def make_tdx(
    report_data: bytes, *, pki: DcapPki | None = None, user_data: bytes | None = None, tamper_td_report: int = -1
) -> Synthetic:
    """An az-tdx-vtpm CVM; `tamper_td_report`: an offset of the TDREPORT to flip after the quote is made."""
    pki = pki or make_pki()
    ak = rsa.generate_private_key(65537, 2048)
    runtime = runtime_data(ak.public_key(), report_data.ljust(64, b"\0") if user_data is None else user_data)
    quote = make_quote(pki, report_data_for(runtime))
    report = bytearray(td_report(quote))
    if tamper_td_report >= 0:
        report[tamper_td_report] ^= 0x01
    return Synthetic(
        "az-tdx-vtpm",
        ak,
        runtime,
        hcl_report("tdx", bytes(report), runtime),
        quote,
        vtpm_quote(ak, report_data, pcr_bank()),
        {"tdx": (pki.root_pem,)},
        pki.collateral(),
        {"at": pki.at},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tee", default="az-snp-vtpm", choices=["az-snp-vtpm", "az-tdx-vtpm"])
    parser.add_argument("--report-data", default="")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report_data = bytes.fromhex(args.report_data)
    made = make_snp(report_data) if args.tee == "az-snp-vtpm" else make_tdx(report_data)
    (args.out / "evidence.json").write_text(json.dumps(made.evidence()))
    for tee, anchors in made.trust.items():
        (args.out / f"{tee}-trust.pem").write_bytes(b"".join(anchors))
    if made.collateral:
        (args.out / "collateral").mkdir(exist_ok=True)
        for i, doc in enumerate(made.collateral):
            (args.out / "collateral" / f"doc{i}").write_bytes(doc)
    (args.out / "ak.pem").write_bytes(
        made.ak.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


if __name__ == "__main__":
    main()
