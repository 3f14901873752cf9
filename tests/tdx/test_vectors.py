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

import verifier
from verifier import Options, Reason, VerifierError
from verifier.tdx import parse_quote

# go-tdx-guest's TCB info (issued 2023-06-18), QE identity and PCK CRL (2023-06-08) are all valid here.
AT_GO_TDX_GUEST = datetime(2023, 6, 20, tzinfo=UTC)
# "### evaluation date 2026-11-27" in EXPECTED.log.
AT_EXPECTED_LOG = datetime(2026, 11, 27, tzinfo=UTC)

GO_TDX_GUEST = (
    "sample_tcbInfo_response",
    "sample_qeIdentity_response",
    "tcbInfoIssuerChain.pem",
    "pckcrl",
    "pckCrlIssuerChain.pem",
    "rootcrl.der",
)
# trustee ships only the two JSON documents; their issuer chain and the CRLs come from go-tdx-guest.
TRUSTEE = ("tcbInfo.json", "enclaveIdentity.json")


def quote(vectors: Path, n: int) -> bytes:
    return (vectors / "tdx" / "trustee" / f"tdx_quote_{n}.dat").read_bytes()


def go_tdx_guest(vectors: Path, *names: str) -> tuple[bytes, ...]:
    return tuple((vectors / "tdx" / "go-tdx-guest" / name).read_bytes() for name in names or GO_TDX_GUEST)


def trustee(vectors: Path) -> tuple[bytes, ...]:
    chains = go_tdx_guest(vectors, "tcbInfoIssuerChain.pem", "pckcrl", "pckCrlIssuerChain.pem", "rootcrl.der")
    return tuple((vectors / "tdx" / "trustee" / name).read_bytes() for name in TRUSTEE) + chains


def check(evidence: bytes, **options: object) -> verifier.Verified:
    return verifier.verify("tdx", evidence, Options(**options))  # type: ignore[arg-type]


def reason_of(evidence: bytes, **options: object) -> Reason:
    with pytest.raises(VerifierError) as info:
        check(evidence, **options)
    return info.value.reason


# EXPECTED.log: quote fields.
QUOTE_FIELDS = {
    4: {
        "version": 4,
        "trailing": 0,
        "tee_tcb_svn": "03000500000000000000000000000000",
        "mr_seam": "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656",
        "td_attributes": "0100001000000000",
        "xfam": "e742060000000000",
        "mr_td": "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
        "rtmr0": "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288",
        "rtmr1": "559cfcf42716ed6c40a48a73d5acb7da255435012f0a9f00fbe8c1c57612ede486a5684c4c9ff3ddf52315fcdca3a596",
        "report_data": "7c71fe2c86eff65a7cf8dbc22b3275689fd0464a267baced1bf94fc1324656ae"
        "b755da3d44d098c0c87382f3a5f85b45c8a28fee1d3bdb38342bf96671501429",
        "user_data": "d099bfec0a477aa85a605dceabf2b10800000000",
        "qe_isvsvn": 4,
        "qe_mrenclave": "853e298f3b7cde28b06493d06fb2ad6f9566a97fea6d3de66236b2af1a35150f",
    },
    5: {
        "version": 5,
        "trailing": 0,
        "tee_tcb_svn": "05010200000000000000000000000000",
        "mr_seam": "1cc6a17ab799e9a693fac7536be61c12ee1e0fabada82d0c999e08ccee2aa86de77b0870f558c570e7ffe55d6d47fa04",
        "td_attributes": "0000001000000000",
        "xfam": "e742060000000000",
        "mr_td": "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba422f3886400a",
        "rtmr0": "9b529f3689e2e8ebb899e9abbbc3dab394d6545e8cdb28a2abb9cc2f377b83a65c01ba56b824cd3ee885df20051f5128",
        "rtmr1": "ca5a979317ffe8a527a3b7aadab03976d7cb6eef1041fb9bd9d69e6fafa7252cdc10e4c2a55e7ecbd2ddb5cacc867430",
        "report_data": "6d6ab13b046cff606ac0074be13981b07b6325dba10b5facc96febf551c0c3be"
        "2b75f92fe1f88f4bb996969ad0174b4b7a70261b7b85c844f4b33a4674fd049f",
        "user_data": "da2c7e326c5696889a6a6ab4f8a64b1700000000",
        "qe_isvsvn": 6,
        "qe_mrenclave": "e5a3a7b5d830c2953b98534c6c59a3a34fdc34e933f7f5898f0a85cf08846bca",
    },
    6: {
        "version": 4,
        "trailing": 70,
        "tee_tcb_svn": "05030200000000000000000000000000",
        "mr_seam": "476a2997c62bccc78370913d0a80b956e3721b24272bc66c4d6307ced4be2865c40e26afac75f12df3425b03eb59ea7c",
        "td_attributes": "0000001000000000",
        "xfam": "e702060000000000",
        "mr_td": "21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88",
        "rtmr0": "395aefe7bac15b24c40f1cd7ba6f8fa48732be5c56c61485ed3cd9c8b16cce8ece64c331b99ce36d96605135c753aaa2",
        "rtmr1": "fc4b0f849d8d76fdf1da563a8c29d0d456b484a65e01797baf52ea1d8c002040527a1f0278925077219656dba039429f",
        "report_data": "26cae1c77185617fb6a03fc29bf1f924596e52352b9b7594940b576ae126cd4a"
        "570cc3202a900c5d19a6eb0a95b32cfd00000000000000000000000000000000",
        "user_data": "5bd9e09e6e0bbcd3f9cc4d7c9295764a00000000",
        "qe_isvsvn": 7,
        "qe_mrenclave": "b7ae9ab69e76f7794a56b0db1915281d435d488c91d406ed33a7939caf8730f8",
    },
}


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
    claims = check(quote(vectors, 4), at=AT_EXPECTED_LOG, collateral=docs, allow_expired_collateral=True)
    claims = claims.claims
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
