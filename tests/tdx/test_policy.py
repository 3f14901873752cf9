"""The default TDX attestation policy: its Rego unit tests, and the real quote 4 (a debug TD) refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import policies
import verifier
from verifier import Options
from verifier.appraisal import Status, annotated_evidence, appraise
from verifier.rego import Policy, run_rego_tests

from ._vectors import AT_GO_TDX_GUEST, QUOTE_FIELDS, go_tdx_guest, quote

TESTS = run_rego_tests(policies.load("tdx.rego"), policies.load("tdx_test.rego"))


@pytest.mark.parametrize("name", sorted(TESTS))
def test_rego_unit_test(name: str) -> None:
    assert TESTS[name], f"policies/tdx_test.rego: {name} failed"


def test_there_are_rego_unit_tests() -> None:
    assert len(TESTS) >= 8


def test_quote_4_is_refused_as_a_debug_td(vectors: Path) -> None:
    result = verifier.verify("tdx", quote(vectors, 4), Options(at=AT_GO_TDX_GUEST, collateral=go_tdx_guest(vectors)))
    assert result.claims["tcb_status"] == "UpToDate"
    evidence = annotated_evidence("tdx", result.claims, result.report_data)
    refs = {"tdx_mr_td": [QUOTE_FIELDS[4]["mr_td"]]}
    appraisal = appraise(Policy.compile(policies.load("tdx.rego")), "default", evidence, refs)
    assert appraisal.vector["executables"] == 3
    assert appraisal.vector["hardware"] == 2
    assert appraisal.vector["configuration"] == 36  # debug
    assert appraisal.status is not Status.AFFIRMING
