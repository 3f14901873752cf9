"""SNP evidence as guest-components sends it (the sev crate's serde JSON, docs/evidence.md), from every real
report in tests/vectors/snp: it verifies with the claims of the binary form, a changed field is
`signature_invalid`, and malformed JSON is `malformed_evidence` naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import verifier
from tests.conftest import run_cli
from tests.snp._sev_json import cert_entry, sev_json, sev_json_legacy
from tests.snp.conftest import TODAY, trusting
from tests.snp.make_test_chain import Chain, ReportFields, make_chain, make_report, make_vek
from verifier import Options, Reason, VerifierError
from verifier.snp._certs import load_certificates
from verifier.snp._sev_serde import report_bytes


@dataclass(frozen=True)
class Vector:
    report: str
    vek: str
    vek_type: str  # the cert_type of the endorsement key
    chain: str  # the ASK (or ASVK) and ARK of its product, PEM
    at: datetime


# Every real SNP report in tests/vectors/snp (PROVENANCE.md), with its endorsement key and its product's chain.
VECTORS = {
    "go-sev-guest-milan-v2-vcek": Vector(
        "go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", "VCEK", "go-sev-guest/ask_ark_milan.pem", TODAY
    ),
    "trustee-milan-v2-vcek": Vector(
        "trustee/test-report.bin", "trustee/test-vcek.der", "VCEK", "go-sev-guest/ask_ark_milan.pem", TODAY
    ),
    "trustee-milan-v3-vlek": Vector(
        "trustee/test-vlek-report.bin",
        "trustee/test-vlek.der",
        "VLEK",
        "go-sev-guest/ask_ark_milan_vlek.pem",
        datetime(2025, 6, 1, tzinfo=UTC),  # the VLEK expired on 2025-12-10
    ),
}
SHAPES: dict[str, Callable[[bytes], dict[str, Any]]] = {"sev6": sev_json, "sev5": sev_json_legacy}


def _ders(pem: bytes) -> list[bytes]:
    return [cert.public_bytes(Encoding.DER) for cert in load_certificates(pem)]


def coco_evidence(snp_vectors: Path, vector: Vector, shape: str = "sev6") -> dict[str, Any]:
    """What guest-components sends: the report object and the extended report's certificate table (VEK, then
    the ASK or ASVK as "ASK", then the ARK: the GHCB table's order)."""
    raw = (snp_vectors / vector.report).read_bytes()
    intermediate, ark = _ders((snp_vectors / vector.chain).read_bytes())
    return {
        "attestation_report": SHAPES[shape](raw),
        "cert_chain": [
            cert_entry(vector.vek_type, (snp_vectors / vector.vek).read_bytes()),
            cert_entry("ASK", intermediate),
            cert_entry("ARK", ark),
        ],
    }


def binary_claims(snp_vectors: Path, vector: Vector) -> Mapping[str, object]:
    options = Options(at=vector.at, certificates=((snp_vectors / vector.vek).read_bytes(),))
    return verifier.verify("snp", (snp_vectors / vector.report).read_bytes(), options).claims


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_the_sev_json_rebuilds_the_exact_report_bytes(snp_vectors: Path, vector: Vector, shape: str) -> None:
    raw = (snp_vectors / vector.report).read_bytes()
    assert report_bytes(json.loads(json.dumps(SHAPES[shape](raw)))) == raw


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_guest_components_evidence_verifies_with_the_claims_of_the_binary_form(
    snp_vectors: Path, vector: Vector, shape: str
) -> None:
    evidence = json.dumps(coco_evidence(snp_vectors, vector, shape)).encode()  # the bytes on the wire
    result = verifier.verify("snp", evidence, Options(at=vector.at))
    assert result.claims == binary_claims(snp_vectors, vector)
    assert result.claims["signing_key"] == vector.vek_type.lower()


def test_cert_chain_null_takes_the_certificate_from_options(snp_vectors: Path) -> None:
    vector = VECTORS["trustee-milan-v2-vcek"]
    evidence = {"attestation_report": sev_json((snp_vectors / vector.report).read_bytes()), "cert_chain": None}
    options = Options(at=vector.at, certificates=((snp_vectors / vector.vek).read_bytes(),))
    assert verifier.verify("snp", evidence, options).claims == binary_claims(snp_vectors, vector)


def test_crl_empty_and_other_entries_are_accepted_and_not_used(snp_vectors: Path) -> None:
    vector = VECTORS["go-sev-guest-milan-v2-vcek"]
    evidence = coco_evidence(snp_vectors, vector)
    evidence["cert_chain"] += [
        cert_entry("CRL", b"not a CRL"),
        cert_entry({"OTHER": "f0e8f2a8-0bd1-4f06-bb8a-a0f2c0b3f3a3"}, b"\x01\x02"),
        cert_entry("Empty", b""),
    ]
    assert verifier.verify("snp", evidence, Options(at=vector.at)).claims == binary_claims(snp_vectors, vector)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation of the evidence at a dotted path (integers index arrays)."""

    def apply(evidence: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = evidence
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _flip(path: str) -> Callable[[dict[str, Any]], None]:
    """Change one integer of the evidence (a byte, a TCB field, a version number) to another valid value."""

    def apply(evidence: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = evidence
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        node[key] = node[key] ^ 1

    return apply


CHANGED_FIELDS = {
    "measurement": _flip("attestation_report.measurement.0"),
    "report_data": _flip("attestation_report.report_data.63"),
    "host_data": _flip("attestation_report.host_data.5"),
    "policy": _set("attestation_report.policy", 0x30000),  # DEBUG cleared
    "guest_svn": _flip("attestation_report.guest_svn"),
    "vmpl": _flip("attestation_report.vmpl"),
    "reported_tcb.microcode": _flip("attestation_report.reported_tcb.microcode"),
    "current_tcb.snp": _flip("attestation_report.current_tcb.snp"),
    "launch_tcb.bootloader": _flip("attestation_report.launch_tcb.bootloader"),
    "current.build": _flip("attestation_report.current.build"),
    "committed.major": _flip("attestation_report.committed.major"),
    "plat_info": _flip("attestation_report.plat_info"),
    "key_info": _set("attestation_report.key_info", 0b10),  # MASK_CHIP_KEY
    "chip_id": _flip("attestation_report.chip_id.1"),
    "report_id": _flip("attestation_report.report_id.31"),
    "signature.r": _flip("attestation_report.signature.r.0"),
    "signature.s": _flip("attestation_report.signature.s.47"),
}


@pytest.mark.parametrize("change", CHANGED_FIELDS.values(), ids=CHANGED_FIELDS.keys())
@pytest.mark.parametrize("vector", VECTORS.values(), ids=VECTORS.keys())
def test_a_changed_field_is_signature_invalid(snp_vectors: Path, vector: Vector, change: Callable[..., None]) -> None:
    evidence = coco_evidence(snp_vectors, vector)
    if change is CHANGED_FIELDS["policy"] and evidence["attestation_report"]["policy"] == 0x30000:
        change = _set("attestation_report.policy", 0xB0000)
    change(evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", evidence, Options(at=vector.at))
    assert caught.value.reason is Reason.SIGNATURE_INVALID, caught.value.detail
    assert "SIGNATURE over bytes 0x000..0x29F does not verify" in caught.value.detail


@pytest.mark.parametrize("change", ["measurement", "reported_tcb.microcode", "signature.r"])
def test_a_changed_field_of_the_sev5_shape_is_signature_invalid(snp_vectors: Path, change: str) -> None:
    vector = VECTORS["trustee-milan-v2-vcek"]
    evidence = coco_evidence(snp_vectors, vector, "sev5")
    CHANGED_FIELDS[change](evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", evidence, Options(at=vector.at))
    assert caught.value.reason is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize(("product", "version"), [("Turin", 5), ("Turin", 3), ("Genoa", 3), ("Genoa", 5), ("Milan", 5)])
def test_synthetic_reports_of_every_product_and_version(product: str, version: int) -> None:
    """No real Genoa or Turin report is in the vectors: these come from a test chain, and cover FMC in the TCB
    objects (Turin) and the mitigation vectors (version 5)."""
    chain: Chain = make_chain(product)
    tcb = (3, 0, 8, 115, 2) if product == "Turin" else (3, 0, 8, 115)
    chip_id = bytes(range(1, 9)) + bytes(56) if product == "Turin" else bytes(range(64))
    vek = make_vek(chain, tcb=tcb, chip_id=chip_id)
    raw = make_report(vek, product, ReportFields(version=version, report_data=bytes(range(64))))
    document = sev_json(raw)
    assert (document["reported_tcb"]["fmc"] is not None) == (product == "Turin")
    assert (document["launch_mit_vector"] is not None) == (version == 5)
    evidence: dict[str, Any] = {
        "attestation_report": document,
        "cert_chain": [cert_entry("VCEK", vek.der), cert_entry("ASK", chain.ask.public_bytes(Encoding.DER))],
    }
    claims = verifier.verify("snp", json.dumps(evidence).encode(), trusting(chain)).claims
    assert claims == verifier.verify("snp", raw, trusting(chain, certificates=(vek.der,))).claims
    if product == "Turin":
        assert claims["reported_tcb"]["fmc"] == 2  # type: ignore[index]
    changed = copy.deepcopy(evidence)
    changed["attestation_report"]["reported_tcb"]["fmc" if product == "Turin" else "snp"] ^= 1
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", changed, trusting(chain))
    assert caught.value.reason is Reason.SIGNATURE_INVALID


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(evidence: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = evidence
        for part in parents:
            node = node[part]
        del node[last]

    return apply


def _append(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def apply(evidence: dict[str, Any]) -> None:
        node: Any = evidence
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node.append(value)

    return apply


# Named malformed inputs on the go-sev-guest evidence (Milan, version 2, VCEK): (mutation, reason, the detail
# must contain this text, which names the field).
MALFORMED = {
    "array-too-short": (
        _set("attestation_report.measurement", [0] * 47),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.measurement has 47 elements, expected 48",
    ),
    "array-too-long": (
        _append("attestation_report.signature.r", 0),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.signature.r has 73 elements, expected 72",
    ),
    "byte-out-of-range": (
        _set("attestation_report.report_data.3", 256),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.report_data[3] is 256, expected an integer 0..255",
    ),
    "negative-byte": (
        _set("attestation_report.chip_id.0", -1),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.chip_id[0] is -1",
    ),
    "byte-as-string": (
        _set("attestation_report.host_data.0", "0"),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.host_data[0] is '0'",
    ),
    "bytes-as-base64": (
        _set("attestation_report.measurement", "AAAA"),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.measurement is str, expected an array of 48 integers",
    ),
    "tcb-field-out-of-range": (
        _set("attestation_report.reported_tcb.microcode", 256),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.reported_tcb.microcode is 256, out of range 0..255",
    ),
    "u32-out-of-range": (
        _set("attestation_report.vmpl", 2**32),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.vmpl is 4294967296, out of range 0..4294967295",
    ),
    "u64-negative": (
        _set("attestation_report.policy", -1),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.policy is -1, out of range",
    ),
    "bool-for-integer": (
        _set("attestation_report.guest_svn", True),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.guest_svn is bool, expected an integer",
    ),
    "float-for-integer": (
        _set("attestation_report.key_info", 0.0),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.key_info is float",
    ),
    "version-byte-out-of-range": (
        _set("attestation_report.current.minor", 300),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.current.minor is 300",
    ),
    "fmc-on-milan": (
        _set("attestation_report.launch_tcb.fmc", 1),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.launch_tcb.fmc is 1, expected null (a Milan or Genoa TCB_VERSION has no FMC)",
    ),
    "cpuid-in-a-version-2-report": (
        _set("attestation_report.cpuid_fam_id", 0x19),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.cpuid_fam_id is 25, expected null: report version 2 has no CPUID",
    ),
    "mit-vector-before-version-5": (
        _set("attestation_report.current_mit_vector", 0),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.current_mit_vector is 0, expected null",
    ),
    "masked-chip-id-in-version-2": (
        _set("attestation_report.chip_id", [0] * 64),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.chip_id is all zero in a version 2 report",
    ),
    "version-1": (
        _set("attestation_report.version", 1),
        Reason.UNSUPPORTED_FORMAT,
        "attestation_report.version is 1",
    ),
    "missing-field": (
        _drop("attestation_report.signature"),
        Reason.MALFORMED_EVIDENCE,
        "SNP evidence: attestation_report lacks signature",
    ),
    "unknown-field": (
        _set("attestation_report.extra", 0),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report has unknown key(s) extra",
    ),
    "tcb-without-fmc-key": (
        _drop("attestation_report.reported_tcb.fmc"),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.reported_tcb lacks fmc",
    ),
    "signature-not-an-object": (
        _set("attestation_report.signature", [0] * 144),
        Reason.MALFORMED_EVIDENCE,
        "attestation_report.signature is list, expected an object with keys r, s",
    ),
    "unknown-cert-type": (
        _set("cert_chain.1.cert_type", "PEK"),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[1].cert_type is 'PEK', expected one of VCEK, VLEK, ASK, ARK, CRL, Empty",
    ),
    "cert-type-lower-case": (
        _set("cert_chain.0.cert_type", "vcek"),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[0].cert_type is 'vcek'",
    ),
    "other-without-uuid": (
        _set("cert_chain.2.cert_type", {"OTHER": "ARK"}),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[2].cert_type.OTHER is 'ARK', expected a UUID string",
    ),
    "two-vceks": (
        _append("cert_chain", {"cert_type": "VCEK", "data": [48, 0]}),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[3].cert_type is 'VCEK' again (also cert_chain[0]): at most one certificate of each type",
    ),
    "two-arks": (
        _append("cert_chain", {"cert_type": "ARK", "data": [48, 0]}),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[3].cert_type is 'ARK' again (also cert_chain[2])",
    ),
    "certificate-byte-out-of-range": (
        _set("cert_chain.0.data.5", 1000),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[0].data[5] is 1000, expected an integer 0..255",
    ),
    "certificate-as-base64": (
        _set("cert_chain.0.data", "MIIF"),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[0].data is str, expected an array of integers",
    ),
    "cert-entry-extra-key": (
        _set("cert_chain.0.guid", "63da758d-e664-4564-adc5-f4b93be8accd"),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[0] has unknown key(s) guid",
    ),
    "cert-chain-not-a-list": (
        _set("cert_chain", {"VCEK": [1]}),
        Reason.MALFORMED_EVIDENCE,
        "field cert_chain is dict, expected an array or null",
    ),
    "too-many-cert-entries": (
        _set("cert_chain", [{"cert_type": "Empty", "data": []}] * 17),
        Reason.MALFORMED_EVIDENCE,
        "field cert_chain has 17 entries, at most 16 accepted",
    ),
    "oversized-certificate": (
        _set("cert_chain.0.data", [0] * 20000),
        Reason.MALFORMED_EVIDENCE,
        "cert_chain[0].data has 20000 elements, at most 16384 accepted",
    ),
    "mixed-with-the-earlier-certificates-map": (
        _set("certificates", {"vcek": "AAAA"}),
        Reason.MALFORMED_EVIDENCE,
        "field certificates is Veritee's earlier shape",
    ),
    "cert-chain-beside-a-base64-report": (
        _set("attestation_report", "AAAA"),
        Reason.MALFORMED_EVIDENCE,
        "field cert_chain is guest-components' shape",
    ),
}


@pytest.mark.parametrize(("change", "reason", "text"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_sev_json_names_the_field(
    snp_vectors: Path, change: Callable[[dict[str, Any]], None], reason: Reason, text: str
) -> None:
    vector = VECTORS["go-sev-guest-milan-v2-vcek"]
    evidence = coco_evidence(snp_vectors, vector)
    change(evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", evidence, Options(at=vector.at))
    assert caught.value.reason is reason, caught.value.detail
    assert text in caught.value.detail


LEGACY_MALFORMED = {
    "reserved-array-too-short": (_set("attestation_report._reserved_4", [0] * 167), "_reserved_4 has 167 elements"),
    "signature-without-reserved": (_drop("attestation_report.signature._reserved"), "signature lacks _reserved"),
    "tcb-reserved-out-of-range": (
        _set("attestation_report.current_tcb._reserved.2", 256),
        "attestation_report.current_tcb._reserved[2] is 256",
    ),
    "firmware-version-out-of-range": (_set("attestation_report.current_major", 256), "current_major is 256"),
    "new-and-old-keys-mixed": (_set("attestation_report.key_info", 0), "has unknown key(s) key_info"),
}


@pytest.mark.parametrize(("change", "text"), LEGACY_MALFORMED.values(), ids=LEGACY_MALFORMED.keys())
def test_malformed_sev5_json_names_the_field(
    snp_vectors: Path, change: Callable[[dict[str, Any]], None], text: str
) -> None:
    vector = VECTORS["go-sev-guest-milan-v2-vcek"]
    evidence = coco_evidence(snp_vectors, vector, "sev5")
    change(evidence)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", evidence, Options(at=vector.at))
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE
    assert text in caught.value.detail


def test_turin_tcb_without_fmc_is_malformed() -> None:
    chain = make_chain("Turin")
    vek = make_vek(chain, tcb=(3, 0, 8, 115, 2), chip_id=bytes(range(1, 9)) + bytes(56))
    document = sev_json(make_report(vek, "Turin", ReportFields(version=3)))
    document["committed_tcb"]["fmc"] = None
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", {"attestation_report": document, "cert_chain": None}, trusting(chain))
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE
    assert "attestation_report.committed_tcb.fmc is null, expected an integer 0..255" in caught.value.detail


def test_verifier_cli_takes_guest_components_evidence(snp_vectors: Path, tmp_path: Path) -> None:
    vector = VECTORS["trustee-milan-v2-vcek"]
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(coco_evidence(snp_vectors, vector)))
    done = run_cli("verifier", "verify", "--tee", "snp", str(path), "--at", "2026-11-27T00:00:00Z")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert json.loads(done.stdout)["claims"] == binary_claims(snp_vectors, vector)
    evidence = coco_evidence(snp_vectors, vector)
    evidence["cert_chain"].append(evidence["cert_chain"][0])
    path.write_text(json.dumps(evidence))
    done = run_cli("verifier", "verify", "--tee", "snp", str(path), "--at", "2026-11-27T00:00:00Z")
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["reason"] == "malformed_evidence"
    assert "cert_chain[3].cert_type is 'VCEK' again" in error["detail"]
