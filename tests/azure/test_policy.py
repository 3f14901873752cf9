"""The default Azure attestation policies (policies/az-snp-vtpm.rego, az-tdx-vtpm.rego): their Rego unit tests,
and their verdict on the claims of real and synthetic evidence as the broker appraises them (fail closed)."""

from __future__ import annotations

import pytest

import policies
from tests.azure.conftest import CHALLENGE, load, synthetic_options, verify
from tests.azure.make_evidence import Synthetic
from verifier.appraisal import Status, annotated_evidence, appraise
from verifier.rego import Policy, run_rego_tests


@pytest.mark.parametrize("tee", ["az-snp-vtpm", "az-tdx-vtpm"])
def test_rego_unit_tests_pass(tee: str) -> None:
    results = run_rego_tests(policies.load(f"{tee}.rego"), policies.load(f"{tee}_test.rego"))
    assert len(results) >= 8
    assert [name for name, ok in results.items() if not ok] == []


@pytest.mark.parametrize("tee", ["az-snp-vtpm", "az-tdx-vtpm"])
def test_shipped_as_the_default_of_its_tee(tee: str) -> None:
    assert policies.attestation_default(tee) == policies.load(f"{tee}.rego")


def _appraise(tee: str, claims: object, reference: dict[str, list[str]]) -> tuple[Status, dict[str, int]]:
    evidence = annotated_evidence(tee, claims, b"", {"nonce": "n", "tee-pubkey": {}})  # type: ignore[arg-type]
    policy = Policy.compile(policies.attestation_default(tee) or "", tee)
    appraisal = appraise(policy, f"default_{tee}", evidence, reference)
    return appraisal.status, dict(appraisal.vector)


def test_real_snp_cvm_affirms_only_with_its_reference_values() -> None:
    claims = verify("az-snp-vtpm", load("az-snp-vtpm/evidence-v1.json"), report_data=CHALLENGE).claims
    snp, tpm = claims["snp"], claims["tpm"]
    tcb = snp["reported_tcb"]  # type: ignore[index]
    reference = {
        "az_snp_measurement": [snp["measurement"]],  # type: ignore[index]
        **{f"snp_min_tcb_{c}": [str(tcb[c])] for c in ("bootloader", "tee", "snp", "microcode")},
        "az_pcr0": [tpm["pcrs"]["sha256"]["0"]],  # type: ignore[index]
        "az_pcr4": [tpm["pcrs"]["sha256"]["4"]],  # type: ignore[index]
    }
    status, vector = _appraise("az-snp-vtpm", claims, reference)
    assert status is Status.AFFIRMING, vector
    assert _appraise("az-snp-vtpm", claims, {})[0] is not Status.AFFIRMING
    other_pcr = {**reference, "az_pcr4": ["00" * 32]}
    assert _appraise("az-snp-vtpm", claims, other_pcr)[1]["executables"] == 33
    higher_floor = {**reference, "snp_min_tcb_microcode": [str(tcb["microcode"] + 1)]}
    assert _appraise("az-snp-vtpm", claims, higher_floor)[1]["hardware"] == 97


def test_synthetic_tdx_cvm_affirms_only_with_its_reference_values(tdx_cvm: Synthetic) -> None:
    claims = verify(
        "az-tdx-vtpm", tdx_cvm.evidence(), report_data=bytes(range(48)), **synthetic_options(tdx_cvm)
    ).claims
    reference = {
        "az_tdx_mr_td": [claims["tdx"]["mr_td"]],  # type: ignore[index]
        "az_pcr7": [claims["tpm"]["pcrs"]["sha256"]["7"]],  # type: ignore[index]
    }
    status, vector = _appraise("az-tdx-vtpm", claims, reference)
    assert status is Status.AFFIRMING, vector
    status, vector = _appraise("az-tdx-vtpm", claims, {"az_tdx_mr_td": reference["az_tdx_mr_td"]})
    assert vector["executables"] == 33
    assert status is not Status.AFFIRMING
