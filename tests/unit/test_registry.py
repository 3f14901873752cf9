"""The TEE registry: each TEE's declared bindings, an unknown TEE failing closed everywhere, typed sources."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import verifier
from kbs.protocol import expected_report_data as protocol_expected_report_data
from verifier import FormatError, Options, Reason, SourceError, VerifierError
from verifier.registry import TEES, Tee, expected_init_data, expected_report_data, lookup

DIGEST = hashlib.sha384(b"runtime data").digest()
INIT = hashlib.sha384(b"init-data").digest()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_registered_tee_declares_itself() -> None:
    for name, module in TEES.items():
        declared = lookup(name)
        assert isinstance(declared, Tee)
        assert declared.name == name
        assert module.startswith("verifier.")
        assert declared.default_policy == f"{name}.rego"
        assert set(declared.sources) <= {"collateral", "certificates", "trust", *Options.__dataclass_fields__}


def test_report_data_rules() -> None:
    assert expected_report_data("tdx", DIGEST) == DIGEST + bytes(16)
    assert expected_report_data("snp", DIGEST) == DIGEST + bytes(16)
    assert expected_report_data("tpm", DIGEST) == DIGEST[:32]
    assert expected_report_data("sample", DIGEST) == DIGEST


def test_init_data_rules() -> None:
    assert expected_init_data("tdx", INIT) == INIT  # MRCONFIGID: 48 bytes, filled by SHA-384
    assert expected_init_data("tdx", INIT[:32]) == INIT[:32] + bytes(16)
    assert expected_init_data("snp", INIT) == INIT[:32]  # HOST_DATA: 32 bytes, truncated
    assert expected_init_data("tpm", INIT) == hashlib.sha256(bytes(32) + INIT).digest()  # PCR8 extended once
    assert expected_init_data("sample", INIT) is None


def test_a_digest_longer_than_the_field_is_refused() -> None:
    with pytest.raises(VerifierError) as info:
        expected_init_data("tdx", bytes(64))
    assert info.value.reason is Reason.INIT_DATA_MISMATCH
    with pytest.raises(VerifierError) as info:
        expected_report_data("snp", bytes(65))
    assert info.value.reason is Reason.REPORT_DATA_MISMATCH


@pytest.mark.parametrize("tee", ["ternary", "", "TDX", "sample "])
def test_unknown_tee_fails_closed_everywhere(tee: str) -> None:
    """No default binding for a TEE nobody declared: the registry, the protocol helper and verify all refuse."""
    for call in (
        lambda: lookup(tee),
        lambda: expected_report_data(tee, DIGEST),
        lambda: protocol_expected_report_data(tee, DIGEST),
        lambda: verifier.verify(tee, b"{}", Options(at=AT)),
    ):
        with pytest.raises(FormatError) as info:
            call()
        assert info.value.reason is Reason.UNSUPPORTED_FORMAT


class _NotASource:
    pass


@pytest.mark.parametrize(
    ("tee", "field"),
    [("tdx", "tdx_collateral"), ("snp", "snp_certificates"), ("tpm", "tpm_enrolled_aks")],
)
def test_a_source_of_the_wrong_type_is_one_typed_error_for_every_tee(tee: str, field: str) -> None:
    from verifier import sources

    check = getattr(sources, field)
    with pytest.raises(SourceError) as info:
        check(_NotASource())
    assert info.value.reason is Reason.COLLATERAL_MISSING
    assert f"Options.{field} is a _NotASource" in info.value.detail
    with pytest.raises(SourceError) as info:
        check(None)
    assert info.value.reason is Reason.COLLATERAL_MISSING
    assert isinstance(info.value, TypeError)  # and a caller's programming error


def test_every_tee_reports_a_wrong_source_as_collateral_missing_through_verify(vectors: Path) -> None:
    """End to end: evidence that needs the source (no offline collateral), and a source of the wrong type."""
    import json

    tdx_quote = (vectors / "tdx" / "trustee" / "tdx_quote_4.dat").read_bytes()
    snp_report = (vectors / "snp" / "go-sev-guest" / "attestation.bin").read_bytes()
    tpm_evidence = json.loads((vectors / "tpm" / "trustee" / "tpm_evidence.json").read_text())
    cases = [
        ("tdx", tdx_quote, Options(at=datetime(2023, 6, 20, tzinfo=UTC), tdx_collateral=_NotASource())),  # type: ignore[arg-type]
        ("snp", snp_report, Options(at=AT, snp_certificates=_NotASource())),  # type: ignore[arg-type]
        ("tpm", tpm_evidence, Options(at=AT, tpm_enrolled_aks=_NotASource())),  # type: ignore[arg-type]
    ]
    for tee, evidence, options in cases:
        with pytest.raises(SourceError) as info:
            verifier.verify(tee, evidence, options)
        assert info.value.reason is Reason.COLLATERAL_MISSING, tee
