"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/NAME) from the real vectors and the
synthetic test builders. The committed seeds are its output; rerun it only to change them:

    python -m tests.fuzz.make_seeds [VECTORS_DIR]      (default: tests/vectors)

Each seed is small (the fuzzer's -max_len is 16 KiB): real evidence where it fits, trimmed where it does not
(the padding after a CC event log; the first events of the RHEL UEFI log).
"""

from __future__ import annotations

import argparse
import base64
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import VECTORS
from tests.eventlog._build import EV_IPL, EV_SEPARATOR, SHA256, SHA384, measured, tcg2_log
from tests.fuzz.targets import _SPLIT, TARGETS
from tests.snp._sev_json import cert_entry, sev_json, sev_json_legacy
from tests.tdx.make_test_chain import make_pki, make_quote
from tests.tpm import _quotes
from tests.tpm._gotpm import decode

HERE = Path(__file__).resolve().parent / "corpus"
MAX = 16 * 1024


def _tdx(v: Path) -> dict[str, bytes]:
    pki = make_pki()
    return {
        "quote4-real": (v / "tdx/trustee/tdx_quote_4.dat").read_bytes(),
        "quote5-real": (v / "tdx/trustee/tdx_quote_5.dat").read_bytes(),
        "quote6-real-trailing": (v / "tdx/trustee/tdx_quote_6.dat").read_bytes(),
        "quote4-synthetic": make_quote(pki, b"\x01" * 64, rtmrs=(b"\x02" * 48,)),
    }


def _evidence(v: Path) -> dict[str, bytes]:
    quote = (v / "tdx/trustee/tdx_quote_4.dat").read_bytes()
    tdx = {"quote": base64.b64encode(quote).decode(), "cc_eventlog": None}
    sample = {"svn": "1", "report_data": base64.b64encode(b"nonce").decode()}
    return {
        "sample-json": b"\x00" + json.dumps(sample).encode(),
        "tpm-json-trustee": b"\x01" + (v / "tpm/trustee/tpm_evidence.json").read_bytes(),
        "snp-raw-report": b"\x02" + (v / "snp/go-sev-guest/attestation.bin").read_bytes(),
        "tdx-json-quote4": b"\x03" + json.dumps(tdx).encode(),
        "tdx-raw-quote4": b"\x03" + quote,
    }


def _snp(v: Path) -> dict[str, bytes]:
    report = (v / "snp/trustee/test-report.bin").read_bytes()
    vcek = (v / "snp/trustee/test-vcek.der").read_bytes()
    evidence = {
        "attestation_report": base64.b64encode(report).decode(),
        "certificates": {"vcek": base64.b64encode(vcek).decode(), "ask": None},
    }
    sev = {"attestation_report": sev_json(report), "cert_chain": [cert_entry("VCEK", vcek)]}
    legacy = {"attestation_report": sev_json_legacy(report), "cert_chain": None}
    return {
        "evidence-sev-serde": json.dumps(sev, separators=(",", ":")).encode(),
        "evidence-sev-serde-legacy": json.dumps(legacy, separators=(",", ":")).encode(),
        "report-v2-vcek": (v / "snp/go-sev-guest/attestation.bin").read_bytes(),
        "report-v2-trustee": report,
        "report-v3-vlek": (v / "snp/trustee/test-vlek-report.bin").read_bytes(),
        "evidence-json": json.dumps(evidence).encode(),
    }


def _tpm(v: Path) -> dict[str, bytes]:
    trustee = json.loads((v / "tpm/trustee/tpm_evidence.json").read_bytes())
    google = decode((v / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    synthetic = _quotes.evidence(key, {"sha256": {0: bytes(32), 7: b"\x07" * 32}}, b"nonce", scheme="ecdsa")
    message = base64.b64decode(trustee["tpm_quote"]["message"])
    signature = base64.b64decode(trustee["tpm_quote"]["signature"])
    return {
        "attest-trustee": b"\x00" + message,
        "signature-rsassa-trustee": b"\x01" + signature,
        "public-rsa-google-ak": b"\x02" + google.ak_tpmt_public,
        "evidence-json-trustee": b"\x03" + json.dumps(trustee).encode(),
        "evidence-json-ecdsa": b"\x03" + json.dumps(synthetic).encode(),
        "signature-ecdsa": b"\x01" + base64.b64decode(str(synthetic["tpm_quote"]["signature"])),
    }


def _tcg2(v: Path) -> dict[str, bytes]:
    real = (v / "tpm/go-tpm-tools/rhel8-uefi.bin").read_bytes()
    small = tcg2_log(
        measured(0, EV_IPL, b"kernel", [SHA256, SHA384]),
        measured(7, EV_SEPARATOR, bytes(4), [SHA256, SHA384]),
        algorithms=(SHA256, SHA384),
    )
    return {"rhel8-uefi-first-16k": _whole_events(real, MAX), "synthetic": small}


def _whole_events(log: bytes, limit: int) -> bytes:
    """The longest prefix of a crypto-agile log (PFP 10.2.2 TCG_PCR_EVENT2) made of whole events, at most limit."""
    (header_size,) = struct.unpack_from("<I", log, 28)
    pos = end = 32 + header_size
    sizes = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64, 0x0012: 32}
    while pos + 12 <= len(log):
        (count,) = struct.unpack_from("<I", log, pos + 8)
        p = pos + 12
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", log, p)
            p += 2 + sizes[alg]
        (size,) = struct.unpack_from("<I", log, p)
        p += 4 + size
        if p > limit:
            break
        pos = end = p
    return log[:end]


def _ccel(v: Path) -> dict[str, bytes]:
    data = (v / "tdx/trustee/CCEL_data_ovmf").read_bytes().rstrip(b"\xff").rstrip(b"\x00")
    return {"ovmf": data[:MAX]}


def _collateral(v: Path) -> dict[str, bytes]:
    g = v / "tdx/go-tdx-guest"
    return {
        "tcbinfo-v3": (v / "tdx/trustee/tcbInfo.json").read_bytes(),
        "tcbinfo-v3-tdx15": (g / "sample_tcbinfo_response_v5").read_bytes(),
        "qe-identity": (v / "tdx/trustee/enclaveIdentity.json").read_bytes(),
        "root-crl-der": (g / "rootcrl.der").read_bytes(),
        "issuer-chain-pem": (g / "tcbInfoIssuerChain.pem").read_bytes(),
    }


def _oci() -> dict[str, bytes]:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "@DIGEST@",
                "size": "@SIZE@",
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    layer = "sha256:" + "ab" * 32
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "@CONFIG@",
            "size": "@CONFIGSIZE@",
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                "digest": layer,
                "size": 1234,
                "annotations": {"org.opencontainers.image.enc.keys.provider.attestation-agent": "e30="},
            }
        ],
    }
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "cd" * 32]}}
    text = [
        json.dumps(doc).replace('"@SIZE@"', "@SIZE@").replace('"@CONFIGSIZE@"', "@CONFIGSIZE@")
        for doc in (index, manifest)
    ]
    return {"index-manifest-config": _SPLIT.join([*(t.encode() for t in text), json.dumps(config).encode()])}


def _azure(v: Path) -> dict[str, bytes]:
    """Every Azure vector: the version 0 files (serde byte arrays) are the largest seeds, 36 KiB."""
    seeds = {}
    for selector, tee in ((b"\x00", "az-snp-vtpm"), (b"\x01", "az-tdx-vtpm")):
        for path in sorted((v / "azure" / tee).glob("*.json")):
            seeds[f"{tee}-{path.stem}"] = selector + path.read_bytes()
    return seeds


def _keyprovider() -> dict[str, bytes]:
    annotation = json.dumps(
        {
            "kid": "kbs:///default/key/1",
            "wrapped_data": base64.b64encode(bytes(48)).decode(),
            "iv": base64.b64encode(bytes(12)).decode(),
            "wrap_type": "A256GCM",
        }
    ).encode()
    wrap = {
        "op": "keywrap",
        "keywrapparams": {
            "ec": {"Parameters": {"attestation-agent": [base64.b64encode(b"kbs:///default/key/1").decode()]}},
            "optsdata": base64.b64encode(b'{"symkey":"AAAA"}').decode(),
        },
    }
    unwrap = {"op": "keyunwrap", "keyunwrapparams": {"dc": {}, "annotation": base64.b64encode(annotation).decode()}}
    unwrap_rust = {"op": "keyunwrap", "keyunwrapparams": {"annotation": list(annotation)}}
    return {
        "keywrap": json.dumps(wrap).encode(),
        "keyunwrap": json.dumps(unwrap).encode(),
        "keyunwrap-serde-bytes": json.dumps(unwrap_rust).encode(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vectors", type=Path, nargs="?", default=VECTORS)
    v = parser.parse_args().vectors
    corpora = {
        "evidence": _evidence(v),
        "tdx_quote": _tdx(v),
        "snp_report": _snp(v),
        "tpm_structures": _tpm(v),
        "tcg2_eventlog": _tcg2(v),
        "cc_eventlog": _ccel(v),
        "collateral": _collateral(v),
        "oci_layout": _oci(),
        "azure_evidence": _azure(v),
        "keyprovider": _keyprovider(),
    }
    for target, seeds in corpora.items():
        folder = HERE / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            assert len(data) <= TARGETS[target].max_len, f"{target}/{name} is {len(data)} bytes"
            if not (folder / name).exists():  # synthetic seeds differ on every run: keep the committed ones
                (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
