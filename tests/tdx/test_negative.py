"""Tampered and truncated real quotes, and fuzzing of every TDX parser (only FormatError may escape)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import FormatError, Reason
from verifier.tdx import parse_quote
from verifier.tdx._collateral import parse_qe_identity, parse_tcb_info
from verifier.tdx._pck import parse_pck_chain_pem, parse_sgx_extensions

from ..conftest import VECTORS
from ._vectors import AT_GO_TDX_GUEST, go_tdx_guest, quote, reason_of

# Offsets in quote v4 ([QGL] appendix A): header 0..48, body 48..632, u32 sig length, then signature data
# (signature 64, attestation key 64, cert type 2 + size 4), QE report at 632 + 4 + 134 = 770.
QE_REPORT = 770
FLIPS = {
    "header.qe_vendor_id": 12,
    "header.user_data": 30,
    "body.TEE_TCB_SVN": 48,
    "body.MRTD": 48 + 136 + 5,
    "body.RTMR3": 48 + 472,
    "body.REPORTDATA": 48 + 520 + 63,
    "quote_signature": 636 + 3,
    "attestation_key": 636 + 64 + 10,
    "qe_report.CPUSVN": QE_REPORT,
    "qe_report.MRENCLAVE": QE_REPORT + 64,
    "qe_report.ISVSVN": QE_REPORT + 258,
    "qe_report.REPORTDATA": QE_REPORT + 320,
    "qe_report_signature": QE_REPORT + 384 + 7,
    "qe_auth_data": QE_REPORT + 384 + 64 + 2 + 1,
}


def test_flip_offsets_hit_the_named_fields(vectors: Path) -> None:
    good = parse_quote(quote(vectors, 4))
    assert good.qe_report.raw == quote(vectors, 4)[QE_REPORT : QE_REPORT + 384]


@pytest.mark.parametrize("offset", FLIPS.values(), ids=FLIPS.keys())
def test_single_byte_flip_is_signature_invalid(vectors: Path, offset: int) -> None:
    data = bytearray(quote(vectors, 4))
    data[offset] ^= 0x01
    reason = reason_of(bytes(data), at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors))
    assert reason is Reason.SIGNATURE_INVALID


UNSUPPORTED = {
    "version 3": (0, b"\x03\x00"),
    "att_key_type P-384": (2, b"\x03\x00"),
    "tee_type SGX": (4, b"\x00\x00\x00\x00"),
}


@pytest.mark.parametrize(("offset", "value"), UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_unsupported_header(vectors: Path, offset: int, value: bytes) -> None:
    data = bytearray(quote(vectors, 4))
    data[offset : offset + len(value)] = value
    with pytest.raises(FormatError) as info:
        parse_quote(bytes(data))
    assert info.value.reason is Reason.UNSUPPORTED_FORMAT


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.parametrize("keep", [0, 47, 48, 300, 632, 636, 700, 1200, -1])
def test_truncation_is_malformed(vectors: Path, n: int, keep: int) -> None:
    data = quote(vectors, n)
    end = len(data) - parse_quote(data).trailing + keep if keep < 0 else keep
    with pytest.raises(FormatError) as info:
        parse_quote(data[:end])
    assert info.value.reason is Reason.MALFORMED_EVIDENCE
    assert "TDX quote" in info.value.detail or "certification data" in info.value.detail


def test_trailing_bytes_after_signature_data_are_ignored(vectors: Path) -> None:
    data = quote(vectors, 4)
    assert parse_quote(data + bytes(100)).trailing == 100
    assert parse_quote(quote(vectors, 6)).trailing == 70


def test_nul_terminated_pck_chain(vectors: Path) -> None:
    chain = parse_quote(quote(vectors, 6)).pck_chain_pem
    assert chain.endswith(b"\x00")
    assert len(parse_pck_chain_pem(chain)) == 3


BAD_PEM = {
    "empty": b"",
    "garbage-between": b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\nxx",
    "not-base64": b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    "leading-garbage": b"hello-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
}


@pytest.mark.parametrize("pem", BAD_PEM.values(), ids=BAD_PEM.keys())
def test_bad_pck_chain_pem(pem: bytes) -> None:
    with pytest.raises(FormatError):
        parse_pck_chain_pem(pem)


FUZZ = settings(max_examples=200, deadline=None)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[: max(0, len(out) - cut)])


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_quote_random(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_quote(data)


# Module-level inputs for the hypothesis tests (which cannot take function-scoped fixtures).
TRUSTEE_VECTORS = VECTORS / "tdx" / "trustee"
REAL_QUOTE = (TRUSTEE_VECTORS / "tdx_quote_4.dat").read_bytes()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8), st.integers(0, 5000))
def test_fuzz_quote_mutated(edits: list[tuple[int, int]], cut: int) -> None:
    with contextlib.suppress(FormatError):
        parse_quote(_mutate(REAL_QUOTE, edits, cut))


def _real_extension() -> bytes:
    chain = parse_pck_chain_pem(parse_quote(REAL_QUOTE).pck_chain_pem)
    leaf = x509.load_der_x509_certificate(chain[0])
    value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.840.113741.1.13.1")).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


REAL_EXTENSION = _real_extension()


def test_real_pck_extension() -> None:
    ext = parse_sgx_extensions(REAL_EXTENSION)
    assert ext.fmspc.hex() == "50806f000000"
    assert ext.pce_id.hex() == "0000"
    assert ext.ppid.hex() == "df4c32a9d8d86009aaf380ec43cfcefb"
    assert ext.sgx_type == 1
    assert ext.platform_instance_id is not None
    assert ext.platform_instance_id.hex() == "021ac64d355ba904e2d5948d228d5482"


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_pck_extension_random(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_sgx_extensions(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.integers(0, 400))
def test_fuzz_pck_extension_mutated(edits: list[tuple[int, int]], cut: int) -> None:
    with contextlib.suppress(FormatError):
        parse_sgx_extensions(_mutate(REAL_EXTENSION, edits, cut))


REAL_TCB_INFO = (TRUSTEE_VECTORS / "tcbInfo.json").read_bytes()
REAL_QE_ID = (TRUSTEE_VECTORS / "enclaveIdentity.json").read_bytes()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.integers(0, 3000))
def test_fuzz_collateral_json_mutated(edits: list[tuple[int, int]], cut: int) -> None:
    for parse, doc in ((parse_tcb_info, REAL_TCB_INFO), (parse_qe_identity, REAL_QE_ID)):
        with contextlib.suppress(FormatError):
            parse(_mutate(doc, edits, cut))


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
        max_leaves=20,
    )
)
def test_fuzz_collateral_json_structure(inner: object) -> None:
    for key, parse in (("tcbInfo", parse_tcb_info), ("enclaveIdentity", parse_qe_identity)):
        doc = json.dumps({key: inner, "signature": "00" * 64}).encode()
        with contextlib.suppress(FormatError):
            parse(doc)


# Quote v5 ([QGL] 1.5 addendum): header 48, body descriptor 6, TD 1.5 body 648; the signature covers all three.
V5_FLIPS = {
    "header.user_data": 30,
    "body.MRTD": 54 + 136,
    "body.TEE_TCB_SVN2": 54 + 584,
    "body.MRSERVICETD": 54 + 600 + 47,
}


@pytest.mark.parametrize("offset", V5_FLIPS.values(), ids=V5_FLIPS.keys())
def test_v5_single_byte_flip_is_signature_invalid(vectors: Path, offset: int) -> None:
    data = bytearray(quote(vectors, 5))
    data[offset] ^= 0x80
    assert reason_of(bytes(data), at=AT_GO_TDX_GUEST, collateral=()) is Reason.SIGNATURE_INVALID


def test_v5_body_descriptor_must_match_the_type(vectors: Path) -> None:
    data = bytearray(quote(vectors, 5))
    data[50:54] = (584).to_bytes(4, "little")  # type 3 with a TD 1.0 size
    with pytest.raises(FormatError) as info:
        parse_quote(bytes(data))
    assert info.value.reason is Reason.MALFORMED_EVIDENCE
    assert "body_descriptor.size is 584, expected 648" in info.value.detail
