"""The ATTESTATION_REPORT parser: named offsets, sizes, must-be-zero areas, tampering, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import struct
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verifier
from tests.conftest import VECTORS
from tests.snp.conftest import TODAY, trusting
from tests.snp.make_test_chain import Chain, ReportFields, Vek, make_report, make_vek, sign_report
from verifier import FormatError, Options, Reason, VerifierError
from verifier.snp import _abi
from verifier.snp._abi import decode_tcb, parse_report
from verifier.snp._evidence import parse_evidence

GO_SEV_GUEST = "go-sev-guest/attestation.bin"
VCEK = "go-sev-guest/vcek.testcer"


@pytest.fixture(scope="module")
def real(snp_vectors: Path) -> tuple[bytes, bytes]:
    return (snp_vectors / GO_SEV_GUEST).read_bytes(), (snp_vectors / VCEK).read_bytes()


def test_offsets_follow_the_abi_table() -> None:
    """Each named offset is where the previous field ends (ABI Table 23)."""
    assert _abi.OFF_IMAGE_ID == _abi.OFF_FAMILY_ID + _abi.FAMILY_ID_SIZE == 0x20
    assert _abi.OFF_REPORT_DATA == 0x50
    assert _abi.OFF_MEASUREMENT == _abi.OFF_REPORT_DATA + _abi.REPORT_DATA_SIZE
    assert _abi.OFF_HOST_DATA == _abi.OFF_MEASUREMENT + _abi.MEASUREMENT_SIZE
    assert _abi.OFF_ID_KEY_DIGEST == _abi.OFF_HOST_DATA + _abi.HOST_DATA_SIZE
    assert _abi.OFF_AUTHOR_KEY_DIGEST == _abi.OFF_ID_KEY_DIGEST + _abi.KEY_DIGEST_SIZE
    assert _abi.OFF_REPORT_ID == _abi.OFF_AUTHOR_KEY_DIGEST + _abi.KEY_DIGEST_SIZE
    assert _abi.OFF_REPORTED_TCB == _abi.OFF_REPORT_ID_MA + _abi.REPORT_ID_SIZE
    assert _abi.OFF_COMMITTED_TCB == _abi.OFF_CHIP_ID + _abi.CHIP_ID_SIZE
    assert _abi.OFF_SIGNATURE + _abi.SIGNATURE_AREA_SIZE == _abi.REPORT_SIZE == 1184
    assert _abi.SIGNED_SIZE == _abi.OFF_SIGNATURE == 0x2A0


def test_fields_land_at_their_offsets(milan_chain: Chain, milan_vcek: Vek) -> None:
    """A report written with distinct values by the independent generator parses back field by field."""
    fields = ReportFields(
        version=5,
        guest_svn=0x01020304,
        policy=0x1B0000,
        family_id=b"F" * 16,
        image_id=b"I" * 16,
        vmpl=2,
        report_data=bytes(range(64)),
        host_data=b"H" * 32,
        id_key_digest=b"K" * 48,
        author_key_digest=b"A" * 48,
    )
    report = parse_report(make_report(milan_vcek, "Milan", fields))
    assert (report.version, report.guest_svn, report.vmpl) == (5, 0x01020304, 2)
    assert (report.policy.debug, report.policy.smt_allowed, report.policy.single_socket) == (True, True, True)
    assert (report.family_id, report.image_id, report.host_data) == (b"F" * 16, b"I" * 16, b"H" * 32)
    assert report.report_data == bytes(range(64))
    assert (report.id_key_digest, report.author_key_digest) == (b"K" * 48, b"A" * 48)
    assert report.cpuid is not None
    assert (report.cpuid.family, report.cpuid.model) == (0x19, 0x01)
    assert (report.launch_mit_vector, report.current_mit_vector) == (3, 7)
    assert str(report.current_version) == "1.55.4"
    assert report.chip_id == milan_vcek.chip_id


def test_tcb_layouts() -> None:
    # EXPECTED.log S1 raw 0x4405000000000002: BL 2, TEE 0, SNP 5, UCODE 68 (Milan/Genoa layout)
    milan = decode_tcb(0x4405000000000002, turin=False)
    assert (milan.bootloader, milan.tee, milan.snp, milan.microcode, milan.fmc) == (2, 0, 5, 68, None)
    turin = decode_tcb(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 5]), "little"), turin=True)
    assert (turin.fmc, turin.bootloader, turin.tee, turin.snp, turin.microcode) == (1, 2, 3, 4, 5)


def test_every_single_byte_flip_in_the_signed_area_is_signature_invalid(real: tuple[bytes, bytes]) -> None:
    """All 0x2A0 offsets of the go-sev-guest report, each flipped: only the signature decides."""
    report, vcek = real
    options = Options(at=TODAY, certificates=(vcek,))
    for offset in range(_abi.SIGNED_SIZE):
        tampered = bytearray(report)
        tampered[offset] ^= 0x01 if offset % 2 else 0x80
        with pytest.raises(VerifierError) as caught:
            verifier.verify("snp", bytes(tampered), options)
        assert caught.value.reason is Reason.SIGNATURE_INVALID, f"offset {offset:#x}: {caught.value}"


@pytest.mark.parametrize("offset", [0x2A0, 0x2A0 + 47, 0x2E8, 0x2E8 + 47])
def test_flips_in_r_and_s_are_signature_invalid(real: tuple[bytes, bytes], offset: int) -> None:
    report, vcek = real
    tampered = bytearray(report)
    tampered[offset] ^= 0x01
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", bytes(tampered), Options(at=TODAY, certificates=(vcek,)))
    assert caught.value.reason is Reason.SIGNATURE_INVALID


# Structural negatives on raw bytes: (mutation of the real report, reason, detail fragment)
MALFORMED = {
    "truncated-by-one": (lambda r: r[:-1], Reason.MALFORMED_EVIDENCE, "1183 bytes, expected 1184"),
    "truncated-to-signed-area": (lambda r: r[:0x2A0], Reason.MALFORMED_EVIDENCE, "672 bytes"),
    "empty": (lambda r: b"", Reason.MALFORMED_EVIDENCE, "0 bytes"),
    "trailing-byte": (lambda r: r + b"\x00", Reason.MALFORMED_EVIDENCE, "1185 bytes"),
    "trailing-kib": (lambda r: r + bytes(1024), Reason.MALFORMED_EVIDENCE, "2208 bytes"),
    # outside the signed area, so only the parser can catch them
    "signature-reserved-nonzero": (
        lambda r: r[:0x400] + b"\x01" + r[0x401:],
        Reason.MALFORMED_EVIDENCE,
        "SIGNATURE reserved",
    ),
    "r-above-48-bytes": (lambda r: r[:0x2D0] + b"\x01" + r[0x2D1:], Reason.SIGNATURE_INVALID, "SIGNATURE"),
}


@pytest.mark.parametrize(("mutate", "reason", "detail"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_reports(real: tuple[bytes, bytes], mutate: object, reason: Reason, detail: str) -> None:
    report, vcek = real
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", mutate(report), Options(at=TODAY, certificates=(vcek,)))  # type: ignore[operator]
    assert caught.value.reason is reason
    assert detail in caught.value.detail


# Authentic (re-signed) reports that break a structural rule: the parser still refuses them.
RESIGNED = {
    "version-4": ({0x00: struct.pack("<I", 4)}, Reason.UNSUPPORTED_FORMAT, "VERSION is 4"),
    "version-1": ({0x00: struct.pack("<I", 1)}, Reason.UNSUPPORTED_FORMAT, "VERSION is 1"),
    "signature-algo-2": ({0x34: struct.pack("<I", 2)}, Reason.UNSUPPORTED_FORMAT, "SIGNATURE_ALGO is 2"),
    "reserved-0x4c": ({0x4C: b"\x01"}, Reason.MALFORMED_EVIDENCE, "reserved at 0x04C"),
    "reserved-0x18b": ({0x190: b"\x01"}, Reason.MALFORMED_EVIDENCE, "reserved at 0x18B"),
    "reserved-0x1eb": ({0x1EB: b"\x01"}, Reason.MALFORMED_EVIDENCE, "reserved after CURRENT_MAJOR"),
    "reserved-0x208": ({0x210: b"\x01"}, Reason.MALFORMED_EVIDENCE, "reserved at 0x1f8"),
    "policy-bit-17-clear": ({0x08: struct.pack("<Q", 0x10000)}, Reason.MALFORMED_EVIDENCE, "bit 17"),
    "signer-info-reserved": ({0x48: struct.pack("<I", 0x20)}, Reason.MALFORMED_EVIDENCE, "bits 31:5"),
}


@pytest.mark.parametrize(("extra", "reason", "detail"), RESIGNED.values(), ids=RESIGNED.keys())
def test_resigned_structural_negatives(
    milan_chain: Chain, milan_vcek: Vek, extra: dict[int, bytes], reason: Reason, detail: str
) -> None:
    report = make_report(milan_vcek, "Milan", ReportFields(extra=extra))
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", report, trusting(milan_chain, certificates=(milan_vcek.der,)))
    assert caught.value.reason is reason
    assert detail in caught.value.detail


def test_evidence_json_shape_errors(real: tuple[bytes, bytes]) -> None:
    report, _ = real
    good = base64.b64encode(report).decode()
    for evidence, fragment in [
        ({}, "attestation_report"),
        ({"attestation_report": 5}, "expected a base64 string"),
        ({"attestation_report": "!!"}, "not standard base64"),
        ({"attestation_report": good, "certificates": []}, "expected an object or null"),
        ({"attestation_report": good, "certificates": {"pck": "AA=="}}, "has key 'pck'"),
        ({"attestation_report": base64.b64encode(report[:100]).decode()}, "100 bytes"),
    ]:
        with pytest.raises(FormatError, match=fragment):
            parse_evidence(cast("dict[str, object]", evidence))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1300))
def test_fuzz_random_bytes_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_report(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_reports_raise_only_format_error(data: st.DataObject) -> None:
    report = bytearray((VECTORS / "snp" / GO_SEV_GUEST).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        offset = data.draw(st.integers(0, len(report) - 1))
        report[offset] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(report) + 8)))
    blob = bytes(report) if cut is None else (bytes(report) + bytes(8))[:cut]
    try:
        parsed = parse_report(blob)
    except FormatError:
        return
    assert parsed.version in (2, 3, 5)


def test_vlek_signed_resigned_report_without_chip_id(milan_chain: Chain) -> None:
    vlek = make_vek(milan_chain, kind="vlek", chip_id=bytes(64))
    report = sign_report(vlek.key, make_report(vlek, "Milan", ReportFields(signer_info=1 << 2)))
    parsed = parse_report(report)
    assert parsed.signing_key is _abi.SigningKey.VLEK
    assert parsed.chip_id == bytes(64)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner, max_size=3),
        max_leaves=8,
    ),
    st.sampled_from(["attestation_report", "certificates", "vcek"]),
)
def test_fuzz_evidence_json_raises_only_format_error(value: object, key: str) -> None:
    document = {"attestation_report": base64.b64encode(bytes(1184)).decode(), key: value}
    with contextlib.suppress(FormatError):
        parse_evidence(document)
