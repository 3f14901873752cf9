"""trustee's real Azure evidence (tests/vectors/azure) verified as trustee's own tests expect it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from kbs.collateral.files import read_documents
from tests.azure.conftest import (
    AZURE,
    CHALLENGE,
    GENOA_REPORT_DATA,
    TODAY,
    V2_REPORT_DATA,
    flip_pcr,
    flip_quote,
    hcl_of,
    load,
    reason_of,
    verify,
    with_hcl,
)
from verifier import Options, Reason, VerifierError, registry
from verifier.azure import check_td_report, parse_evidence, parse_hcl_report, parse_runtime_data
from verifier.azure._vtpm import check_user_data, verify_vtpm_quote
from verifier.tdx import parse_quote

PCR0_V1 = "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced"
PCR0_V2 = "84275b2f4312cd4fc6cbe6b152ad3c3683e513d9f1e23c34fca160c8cca7a6a7"
PCR0_GENOA = "afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338"
SNP_CASES = {
    "v0": ("az-snp-vtpm/evidence-v0.json", CHALLENGE, PCR0_V1),
    "v1": ("az-snp-vtpm/evidence-v1.json", CHALLENGE, PCR0_V1),
    "v2": ("az-snp-vtpm/evidence-v2.json", V2_REPORT_DATA, PCR0_V2),
    "genoa": ("az-snp-vtpm/evidence-genoa.json", GENOA_REPORT_DATA, PCR0_GENOA),
}
TDX_PCR0 = "782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273"


@pytest.mark.parametrize(("name", "report_data", "pcr0"), SNP_CASES.values(), ids=SNP_CASES.keys())
def test_snp_vectors_verify_with_their_report_data(name: str, report_data: bytes, pcr0: str) -> None:
    result = verify("az-snp-vtpm", (AZURE / name).read_bytes(), report_data=report_data)
    claims = result.claims
    assert set(claims) == {"tpm", "hcl", "snp"}
    assert claims["tpm"]["report_data"] == report_data.hex()  # type: ignore[index]
    assert claims["tpm"]["pcrs"]["sha256"]["0"] == pcr0  # type: ignore[index]
    assert claims["tpm"]["ak_trust"] == "hcl"  # type: ignore[index]
    assert claims["tpm"]["ak_sha256"] == claims["hcl"]["ak_sha256"]  # type: ignore[index]
    assert claims["snp"]["vmpl"] == 0  # type: ignore[index]
    assert claims["snp"]["signing_key"] == "vcek"  # type: ignore[index]
    assert result.report_data == report_data


def test_snp_v1_claims() -> None:
    claims = verify("az-snp-vtpm", load("az-snp-vtpm/evidence-v1.json"), report_data=CHALLENGE).claims
    snp, hcl, tpm = claims["snp"], claims["hcl"], claims["tpm"]
    assert snp["product"] == "Milan"  # type: ignore[index]
    assert snp["debug"] is False  # type: ignore[index]
    assert snp["measurement"] == (  # type: ignore[index]
        "6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e"
    )
    assert snp["reported_tcb"] == {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 219, "raw": "db18000000000004"}  # type: ignore[index]
    # REPORT_DATA is the runtime data's SHA-256, zero-padded: never the nonce.
    assert snp["report_data"] == "af2910341dd8108360e485f1b72494255190b9cdd5ccb44b73b883037cf99f21" + "00" * 32  # type: ignore[index]
    assert hcl == {
        "evidence_version": 1,
        "report_version": 1,
        "request_type": 2,
        "report_type": "snp",
        "runtime_data_hash": "sha256",
        "ak_sha256": "18363b87a4b74a15492d8a8c2d71295d7a63652d244dd059847aa3d35edc6f62",
        "vm_configuration": {
            "console-enabled": True,
            "secure-boot": True,
            "tpm-enabled": True,
            "vmUniqueId": "26F8BC30-774E-4290-8E7A-535F3B672AEE",
        },
        "user_data": "00" * 64,
        "runtime_data": hcl["runtime_data"],  # type: ignore[index]
    }
    assert sorted(tpm["pcrs"]["sha256"]) == sorted(str(i) for i in range(24))  # type: ignore[index]
    assert tpm["signature_scheme"] == "rsassa"  # type: ignore[index]


def test_snp_claims_are_those_of_tee_snp() -> None:
    """The hardware report is verified exactly as `--tee snp` verifies it: the same claims, from the same report
    and VCEK, with REPORT_DATA the runtime data's digest."""
    document = load("az-snp-vtpm/evidence-v1.json")
    hcl = parse_hcl_report(hcl_of(document))
    vcek = base64.urlsafe_b64decode(str(document["vcek"]))
    options = Options(at=TODAY, report_data=hcl.runtime_data_report_data(), certificates=(vcek,))
    expected = verifier.verify("snp", hcl.hw_report, options).claims
    assert verify("az-snp-vtpm", document, report_data=CHALLENGE).claims["snp"] == expected


def test_snp_vector_without_report_data_still_binds_everything_else() -> None:
    claims = verify("az-snp-vtpm", load("az-snp-vtpm/evidence-v1.json")).claims
    assert claims["tpm"]["report_data"] == CHALLENGE.hex()  # type: ignore[index]


def test_tdx_vector_without_collateral_is_collateral_missing() -> None:
    for name in ("az-tdx-vtpm/evidence-v0.json", "az-tdx-vtpm/evidence-v1.json"):
        assert reason_of("az-tdx-vtpm", load(name), report_data=CHALLENGE) is Reason.COLLATERAL_MISSING


def test_tdx_vector_with_collateral_for_other_fmspcs_is_fmspc_mismatch(vectors: Path) -> None:
    collateral = read_documents([vectors / "tdx"])
    for name in ("az-tdx-vtpm/evidence-v0.json", "az-tdx-vtpm/evidence-v1.json"):
        reason = reason_of(
            "az-tdx-vtpm", load(name), report_data=CHALLENGE, collateral=collateral, at=datetime(2025, 1, 1, tzinfo=UTC)
        )
        assert reason is Reason.FMSPC_MISMATCH


# The TDX vector has no collateral, so its other checks are shown piece by piece (as trustee's own tests do).


@pytest.mark.parametrize("name", ["az-tdx-vtpm/evidence-v0.json", "az-tdx-vtpm/evidence-v1.json"])
def test_tdx_vector_pieces(name: str) -> None:
    evidence = parse_evidence(load(name), "az-tdx-vtpm")
    hcl = parse_hcl_report(evidence.hcl_report)
    assert hcl.report_type == "tdx"
    quote = parse_quote(evidence.hardware)
    assert quote.body.report_data == hcl.runtime_data_report_data()  # the runtime data is bound
    check_td_report(hcl.hw_report, quote)  # the TDREPORT is the one the quote signs
    runtime = parse_runtime_data(hcl.runtime_data)
    claims = verify_vtpm_quote(evidence, runtime, Options(at=datetime.now(UTC), report_data=CHALLENGE)).claims
    assert claims["pcrs"]["sha256"]["0"] == TDX_PCR0  # type: ignore[index]
    assert claims["report_data"] == CHALLENGE.hex()
    assert quote.body.td_attributes == bytes(8)  # not a debug TD


def test_hcl_report_layout_of_both_vectors() -> None:
    for name, kind, size in (
        ("az-snp-vtpm/evidence-v1.json", "snp", 0x4A0),
        ("az-tdx-vtpm/evidence-v1.json", "tdx", 0x400),
    ):
        data = hcl_of(load(name))
        assert len(data) == 2600
        hcl = parse_hcl_report(data)
        assert (hcl.report_type, len(hcl.hw_report), hcl.hash_name) == (kind, size, "sha256")
        runtime = parse_runtime_data(hcl.runtime_data)
        assert runtime.user_data == bytes(64)
        assert base64.urlsafe_b64decode(str(load(name)["hcl_report"])) == data


# trustee's own tests (deps/verifier/src/az_*_vtpm/mod.rs at the vectors' commit) change these bytes of an SNP HCL
# report (theirs is another capture, laid out alike): the same positions of this one, and what Veritee answers.
# trustee names the first "SNP version mismatch" (it compares the VCEK's TCB before the signature); here the
# signature over the changed REPORTED_TCB fails first. The other two break the runtime data's digest in
# REPORT_DATA, which Veritee checks before it reads the AK out of the runtime data.
TRUSTEE_SNP_CHANGES = {
    "test_verify_snp_report_failure (0x1a6 := 0)": (0x1A6, 0, Reason.SIGNATURE_INVALID),
    "test_verify_report_data_failure (0x6e0 += 1)": (0x6E0, None, Reason.REPORT_DATA_MISMATCH),
    "test_verify_akpub_failure (0x540 := 0)": (0x540, 0, Reason.REPORT_DATA_MISMATCH),
}


@pytest.mark.parametrize(("offset", "value", "reason"), TRUSTEE_SNP_CHANGES.values(), ids=TRUSTEE_SNP_CHANGES.keys())
def test_trustee_snp_hcl_changes_are_refused(offset: int, value: int | None, reason: Reason) -> None:
    document = load("az-snp-vtpm/evidence-v1.json")
    data = bytearray(hcl_of(document))
    data[offset] = data[offset] + 1 if value is None else value
    assert reason_of("az-snp-vtpm", with_hcl(document, bytes(data)), report_data=CHALLENGE) is reason


def test_trustee_v2_user_data_check() -> None:
    """trustee's test_verify_user_data: the v2 vector's user-data begins with its report data, not with 123abc."""
    runtime = parse_runtime_data(parse_hcl_report(hcl_of(load("az-snp-vtpm/evidence-v2.json"))).runtime_data)
    check_user_data(runtime, Options(at=datetime.now(UTC), report_data=V2_REPORT_DATA))
    with pytest.raises(VerifierError) as caught:
        check_user_data(runtime, Options(at=datetime.now(UTC), report_data=bytes.fromhex("123abc")))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH


@pytest.mark.parametrize("tee", ["az-snp-vtpm", "az-tdx-vtpm"])
def test_trustee_init_data_pcr8(tee: str) -> None:
    """trustee's test_verify_init_data: init-data 8505e4e2... is PCR 8 bddaccb9... (SHA-256(32 zeros || digest))."""
    bind = registry.lookup(tee).init_data
    assert bind is not None
    digest = bytes.fromhex("8505e4e25e50a27c5dc8147af88efbece627fbea55291911eff832d9ee127781")
    assert bind(digest).hex() == "bddaccb9c52249e97a31baea61b7d91be8221a16e703d92148d04fb8e9c1dfdd"


def _tdx_quote_reason(document: dict[str, object], report_data: bytes) -> Reason:
    evidence = parse_evidence(document, "az-tdx-vtpm")
    runtime = parse_runtime_data(parse_hcl_report(evidence.hcl_report).runtime_data)
    with pytest.raises(VerifierError) as caught:
        verify_vtpm_quote(evidence, runtime, Options(at=datetime.now(UTC), report_data=report_data))
    return caught.value.reason


def test_trustee_tdx_changes_are_refused() -> None:
    """trustee's az-tdx-vtpm tests on this very vector (its HCL report and vTPM quote are theirs): a changed byte of
    the runtime data (0x880 += 1) unbinds it from the TD quote's REPORTDATA; a flipped signature byte, a reversed
    nonce and a flipped PCR 0 byte fail the vTPM quote."""
    document = load("az-tdx-vtpm/evidence-v1.json")
    data = bytearray(hcl_of(document))
    data[0x880] += 1
    evidence = parse_evidence(with_hcl(document, bytes(data)), "az-tdx-vtpm")
    changed = parse_hcl_report(evidence.hcl_report)
    assert parse_quote(evidence.hardware).body.report_data != changed.runtime_data_report_data()
    assert _tdx_quote_reason(flip_quote(document, "signature", 0), CHALLENGE) is Reason.SIGNATURE_INVALID
    assert _tdx_quote_reason(document, CHALLENGE[::-1]) is Reason.REPORT_DATA_MISMATCH
    assert _tdx_quote_reason(flip_pcr(document, 0), CHALLENGE) is Reason.PCR_DIGEST_MISMATCH
