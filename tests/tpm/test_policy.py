"""The default TPM attestation policy (policies/tpm.rego): its Rego unit tests, and its verdict on the claims
of real evidence (the Google vTPM quote, trustee's software-TPM quote) as the broker would appraise them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from policies import load
from verifier.appraisal import annotated_evidence, appraise
from verifier.rego import Policy, run_rego_tests

from ._gotpm import decode

AT = datetime(2026, 11, 27, tzinfo=UTC)


def test_rego_unit_tests_pass() -> None:
    results = run_rego_tests(load("tpm.rego"), load("tpm_test.rego"))
    assert len(results) >= 10
    assert [name for name, ok in results.items() if not ok] == []


def _appraise(claims: dict[str, object], reference: dict[str, list[str]]) -> dict[str, int]:
    evidence = annotated_evidence("tpm", claims, b"", {"nonce": "n", "tee-pubkey": {}}, None, {})
    return dict(appraise(Policy.compile(load("tpm.rego")), "default_tpm", evidence, reference).vector)


@pytest.fixture(scope="module")
def google_claims(vectors: Path) -> dict[str, object]:
    evidence = decode((vectors / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes()).evidences[1]
    return dict(verifier.verify("tpm", evidence, verifier.Options(at=AT)).claims)


def test_google_quote_with_its_pcrs_as_references_affirms(google_claims: dict[str, object]) -> None:
    pcrs = google_claims["pcrs"]
    assert isinstance(pcrs, dict)
    reference = {f"tpm_pcr{i}": [pcrs["sha256"][str(i)]] for i in (0, 4, 7)}
    vector = _appraise(google_claims, reference)
    assert vector["hardware"] == 2
    assert vector["executables"] == 3
    assert vector["configuration"] == 2


def test_google_quote_without_references_is_not_approved(google_claims: dict[str, object]) -> None:
    vector = _appraise(google_claims, {})
    assert vector["hardware"] == 2  # the AK certificate chains to Google's root
    assert vector["executables"] == 33


def test_trustee_quote_needs_its_ak_allowlisted(vectors: Path) -> None:
    claims = dict(
        verifier.verify("tpm", (vectors / "tpm/trustee/tpm_evidence.json").read_bytes(), verifier.Options(at=AT)).claims
    )
    reference = {"tpm_pcr0": ["00" * 32]}
    assert _appraise(claims, reference)["hardware"] == 97
    allowlisted = {**reference, "tpm_ak_sha256": [str(claims["ak_sha256"])]}
    vector = _appraise(claims, allowlisted)
    assert vector["hardware"] == 2
    assert vector["executables"] == 3
