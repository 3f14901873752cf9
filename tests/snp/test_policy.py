"""The default SNP attestation policy: its Rego unit tests, and the real vectors' claims through it."""

from __future__ import annotations

from pathlib import Path

import pytest

import verifier
from policies import attestation_default, load
from tests.snp.conftest import TODAY
from verifier import Options
from verifier.appraisal import annotated_evidence, appraise
from verifier.rego import Policy, run_rego_tests


def test_rego_unit_tests_pass() -> None:
    results = run_rego_tests(load("snp.rego"), load("snp_test.rego"))
    assert len(results) >= 10
    assert all(results.values()), [name for name, ok in results.items() if not ok]


def _appraise(snp_vectors: Path, report: str, vcek: str, reference: dict[str, list[str]]) -> dict[str, int]:
    options = Options(at=TODAY, certificates=((snp_vectors / vcek).read_bytes(),))
    verified = verifier.verify("snp", (snp_vectors / report).read_bytes(), options)
    evidence = annotated_evidence("snp", verified.claims, verified.report_data)
    source = attestation_default("snp")
    assert source is not None
    return dict(appraise(Policy.compile(source), "default_snp", evidence, reference).vector)


def _reference(claims_measurement: str, tcb: tuple[int, int, int, int]) -> dict[str, list[str]]:
    names = ("bootloader", "tee", "snp", "microcode")
    return {"snp_measurement": [claims_measurement]} | {
        f"snp_min_tcb_{n}": [str(v)] for n, v in zip(names, tcb, strict=True)
    }


def test_go_sev_guest_debug_report_is_refused_by_default(snp_vectors: Path) -> None:
    """EXPECTED.log S1: policy 0xb0000 allows DEBUG; the default policy refuses the configuration."""
    measurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
    vector = _appraise(
        snp_vectors, "go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", _reference(measurement, (2, 0, 5, 68))
    )
    assert (vector["executables"], vector["hardware"], vector["configuration"]) == (3, 2, 36)


@pytest.mark.parametrize(("minimum", "hardware"), [((3, 0, 8, 115), 2), ((3, 0, 8, 206), 97)])
def test_trustee_report_tcb_floor_uses_reported_tcb(
    snp_vectors: Path, minimum: tuple[int, int, int, int], hardware: int
) -> None:
    """EXPECTED.log S2: REPORTED_TCB microcode 115 (current_tcb 206); the floor is judged on REPORTED_TCB."""
    measurement = "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    vector = _appraise(
        snp_vectors, "trustee/test-report.bin", "trustee/test-vcek.der", _reference(measurement, minimum)
    )
    assert (vector["executables"], vector["hardware"], vector["configuration"]) == (3, hardware, 2)
