"""Real TDX quotes and Intel collateral from tests/vectors/tdx, judged against EXPECTED.log (TDX section).

Provenance of every file: tests/vectors/PROVENANCE.md (trustee 78962cd416dc, go-tdx-guest 91f9a52f36c7).
All Intel collateral there is expired (trap 1): the go-tdx-guest set is judged at a time inside its validity,
the trustee set at the vectors' evaluation date with allow_expired_collateral.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from verifier import Reason, VerifierError
from verifier.tdx import parse_quote

from ._vectors import (
    AT_EXPECTED_LOG,
    AT_GO_TDX_GUEST,
    GO_TDX_GUEST,
    QUOTE_FIELDS,
    check,
    go_tdx_guest,
    quote,
    reason_of,
    trustee,
)


@pytest.mark.parametrize("n", sorted(QUOTE_FIELDS))
def test_quote_fields_match_expected_log(vectors: Path, n: int) -> None:
    want = QUOTE_FIELDS[n]
    q = parse_quote(quote(vectors, n))
    assert q.header.version == want["version"]
    assert q.header.att_key_type == 2
    assert q.header.tee_type == 0x81
    assert q.header.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert q.header.user_data.hex() == want["user_data"]
    assert q.trailing == want["trailing"]
    assert q.body.tee_tcb_svn.hex() == want["tee_tcb_svn"]
    assert q.body.mr_seam.hex() == want["mr_seam"]
    assert q.body.mr_signer_seam == bytes(48)
    assert q.body.seam_attributes == bytes(8)
    assert q.body.td_attributes.hex() == want["td_attributes"]
    assert q.body.xfam.hex() == want["xfam"]
    assert q.body.mr_td.hex() == want["mr_td"]
    assert q.body.rtmr[0].hex() == want["rtmr0"]
    assert q.body.rtmr[1].hex() == want["rtmr1"]
    assert q.body.report_data.hex() == want["report_data"]
    assert q.qe_report.isv_svn == want["qe_isvsvn"]
    assert q.qe_report.isv_prod_id == 2
    assert q.qe_report.mr_enclave.hex() == want["qe_mrenclave"]
    assert q.qe_report.mr_signer.hex() == "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5"
    assert q.qe_report.attributes.hex() == "1500000000000000e700000000000000"
    assert q.qe_auth_data == bytes(range(32))


def test_quote_6_fields_only_it_has(vectors: Path) -> None:
    body = parse_quote(quote(vectors, 6)).body
    assert body.mr_config_id.hex() == (
        "889abf4718f037e38d74464c11e7c91a6e9890b5546409e1e7df9de7a51ca93152bf847bd2440328e90adb18b150ed67"
    )
    assert body.rtmr[2].hex() == (
        "193edd321148e81fd4d6ce00ac8331e737febdb428f18ae66f697c1d2a7f2cd97c535c8df9f045f62b16a41facad84a1"
    )


def test_quote_5_is_a_td15_body(vectors: Path) -> None:
    body = parse_quote(quote(vectors, 5)).body
    assert body.body_type == 3
    assert body.tee_tcb_svn2 is not None
    assert body.tee_tcb_svn2.hex() == "05010200000000000000000000000000"
    assert body.mr_servicetd is not None
    assert body.mr_servicetd.hex() == (
        "383c87d3bbb047b2d171eaca95312ede99f258088dc788f6ae2ccf8b6dd848fe8d47629e08b3f6cbd4a00dd47a5a033d"
    )


def test_quote_4_with_go_tdx_guest_collateral_is_up_to_date_and_debug(vectors: Path) -> None:
    result = check(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors))
    claims = result.claims
    assert claims["tcb_status"] == "UpToDate"
    assert claims["debug"] is True
    assert claims["collateral_expired"] is False
    assert claims["advisory_ids"] == []
    assert claims["fmspc"] == "50806f000000"
    assert claims["pce_svn"] == 11
    assert claims["sgx_tcb_comp_svn"] == [5, 5, 13, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
    assert claims["cpu_svn"] == "05050d02030100030000000000000000"
    assert claims["qe_tcb_status"] == "UpToDate"
    assert claims["quote_version"] == 4
    assert claims["mr_td"] == QUOTE_FIELDS[4]["mr_td"]
    assert claims["rtmr"] == [QUOTE_FIELDS[4]["rtmr0"], QUOTE_FIELDS[4]["rtmr1"], "00" * 48, "00" * 48]
    assert claims["report_data"] == QUOTE_FIELDS[4]["report_data"]
    assert result.report_data.hex() == QUOTE_FIELDS[4]["report_data"]
    for key in ("mr_seam", "mr_config_id", "mr_owner", "mr_owner_config", "td_attributes", "xfam"):
        assert isinstance(claims[key], str)


def test_quote_4_at_the_evaluation_date_needs_allow_expired(vectors: Path) -> None:
    docs = go_tdx_guest(vectors)
    assert reason_of(quote(vectors, 4), at=AT_EXPECTED_LOG, collateral=docs) is Reason.COLLATERAL_EXPIRED
    verified = check(quote(vectors, 4), at=AT_EXPECTED_LOG, collateral=docs, allow_expired_collateral=True)
    claims = verified.claims
    assert claims["collateral_expired"] is True
    assert claims["tcb_status"] == "UpToDate"


def test_quote_5_with_v5_tcb_info_has_no_matching_tcb_level(vectors: Path) -> None:
    docs = go_tdx_guest(vectors, "sample_tcbinfo_response_v5", *GO_TDX_GUEST[1:])
    reason = reason_of(quote(vectors, 5), at=AT_EXPECTED_LOG, collateral=docs, allow_expired_collateral=True)
    assert reason is Reason.TCB_NOT_SUPPORTED


def test_quote_6_with_trustee_collateral_is_out_of_date(vectors: Path) -> None:
    claims = check(
        quote(vectors, 6), at=AT_EXPECTED_LOG, collateral=trustee(vectors), allow_expired_collateral=True
    ).claims
    assert claims["tcb_status"] == "OutOfDate"
    assert claims["platform_tcb_status"] == "OutOfDate"
    assert claims["tcb_date"] == "2018-01-04T00:00:00Z"
    assert claims["tdx_module_tcb_status"] == "UpToDate"  # TDX_03, isvsvn 5
    assert claims["qe_tcb_status"] == "UpToDate"
    assert claims["fmspc"] == "00a06d080000"
    assert claims["debug"] is False
    assert claims["collateral_expired"] is True


def test_trustee_collateral_is_refused_when_expired(vectors: Path) -> None:
    reason = reason_of(quote(vectors, 6), at=AT_EXPECTED_LOG, collateral=trustee(vectors))
    assert reason is Reason.COLLATERAL_EXPIRED


def test_tcb_signing_certificate_expiry_counts_as_expired_collateral(vectors: Path) -> None:
    """Trap 1: the TCB signing certificate expired 2025-05-21 but signed the 2025-10 trustee collateral.
    Inside the JSON documents' own validity the stale items are that certificate (and the 2023 CRLs)."""
    with pytest.raises(VerifierError) as info:
        check(quote(vectors, 6), at=datetime(2025, 11, 1, tzinfo=UTC), collateral=trustee(vectors))
    assert info.value.reason is Reason.COLLATERAL_EXPIRED
    assert "CN=Intel SGX TCB Signing is valid" in info.value.detail
    assert "tcbInfo is valid" not in info.value.detail


@pytest.mark.parametrize("n", [4, 5])
def test_trustee_tcb_info_has_another_fmspc(vectors: Path, n: int) -> None:
    docs = trustee(vectors)
    reason = reason_of(quote(vectors, n), at=AT_EXPECTED_LOG, collateral=docs, allow_expired_collateral=True)
    assert reason is Reason.FMSPC_MISMATCH


def test_several_fmspcs_pick_the_pck_one(vectors: Path) -> None:
    docs = trustee(vectors) + go_tdx_guest(vectors)
    claims = check(quote(vectors, 6), at=AT_EXPECTED_LOG, collateral=docs, allow_expired_collateral=True)
    assert claims.claims["tcb_status"] == "OutOfDate"
    claims = check(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=docs, allow_expired_collateral=True)
    assert claims.claims["tcb_status"] == "UpToDate"


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        pytest.param("sample_tcbInfo_response", Reason.COLLATERAL_MISSING, id="no-tcb-info"),
        pytest.param("sample_qeIdentity_response", Reason.COLLATERAL_MISSING, id="no-qe-identity"),
        pytest.param("pckcrl", Reason.COLLATERAL_MISSING, id="no-pck-crl"),
        pytest.param("rootcrl.der", Reason.COLLATERAL_MISSING, id="no-root-crl"),
        pytest.param("tcbInfoIssuerChain.pem", Reason.SIGNATURE_INVALID, id="no-tcb-signing-cert"),
    ],
)
def test_missing_collateral(vectors: Path, missing: str, reason: Reason) -> None:
    names = [n for n in GO_TDX_GUEST if n != missing]
    if missing == "tcbInfoIssuerChain.pem":
        names.remove("pckCrlIssuerChain.pem")  # it holds the root only: no TCB signing cert anywhere
    docs = go_tdx_guest(vectors, *names)
    assert reason_of(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=docs) is reason


def test_tcb_info_signature_covers_the_exact_bytes(vectors: Path) -> None:
    """Trap 3: re-serialising breaks the signature; so does any change inside the signed object."""
    docs = list(go_tdx_guest(vectors))
    docs[0] = docs[0].replace(b'"tcbEvaluationDataNumber":15', b'"tcbEvaluationDataNumber":16')
    reason = reason_of(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=tuple(docs))
    assert reason is Reason.SIGNATURE_INVALID
    # Whitespace outside the signed object is harmless.
    docs = list(go_tdx_guest(vectors))
    docs[0] = b"  " + docs[0].replace(b',"signature"', b' ,\n "signature"') + b"\n"
    result = check(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=tuple(docs))
    assert result.claims["tcb_status"] == "UpToDate"


def test_report_data_binding(vectors: Path) -> None:
    docs = go_tdx_guest(vectors)
    expected = bytes.fromhex(str(QUOTE_FIELDS[4]["report_data"]))
    check(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=docs, report_data=expected)
    reason = reason_of(quote(vectors, 4), at=AT_GO_TDX_GUEST, collateral=docs, report_data=expected[:48])
    assert reason is Reason.REPORT_DATA_MISMATCH


def test_init_data_binds_mrconfigid(vectors: Path) -> None:
    docs = trustee(vectors)
    digest = bytes.fromhex(
        "889abf4718f037e38d74464c11e7c91a6e9890b5546409e1e7df9de7a51ca93152bf847bd2440328e90adb18b150ed67"
    )
    opts = {"at": AT_EXPECTED_LOG, "collateral": docs, "allow_expired_collateral": True}
    check(quote(vectors, 6), init_data_digest=digest, **opts)
    assert reason_of(quote(vectors, 6), init_data_digest=bytes(32), **opts) is Reason.INIT_DATA_MISMATCH


def test_evidence_json_shape(vectors: Path) -> None:
    doc = json.dumps({"quote": base64.b64encode(quote(vectors, 4)).decode(), "cc_eventlog": None}).encode()
    assert check(doc, at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors)).claims["tcb_status"] == "UpToDate"
