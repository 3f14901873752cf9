"""The sample device (verifier.sampledevice) on guest-components' evidence, and its exact device binding."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest

from verifier import Options, Reason, VerifierError
from verifier.sampledevice import verify

NOW = datetime(2026, 11, 27, tzinfo=UTC)
# JCS (RFC 8785) of {"nonce", "tee-pubkey"}: keys sorted, compact
RUNTIME_DATA = b'{"nonce":"bm9uY2U=","tee-pubkey":{"crv":"P-256","kty":"EC","x":"eA","y":"eQ"}}'
DEVICE_DIGEST = hashlib.sha384(RUNTIME_DATA).digest()  # no additional-evidence in a device's


def guest_components(report_data: bytes) -> bytes:
    """What guest-components' sample_device attester serialises (svn "2", standard base64)."""
    return json.dumps({"svn": "2", "report_data": base64.b64encode(report_data).decode()}).encode()


def test_guest_components_sample_device_evidence_verifies_with_its_binding() -> None:
    result = verify(json.loads(guest_components(DEVICE_DIGEST)), Options(at=NOW, report_data=DEVICE_DIGEST))
    assert result.tee == "sampledevice"
    assert result.claims == {"svn": "2", "report_data": DEVICE_DIGEST.hex()}


def test_the_binding_is_exact_without_padding() -> None:
    padded = DEVICE_DIGEST + bytes(16)
    with pytest.raises(VerifierError) as caught:
        verify(json.loads(guest_components(padded)), Options(at=NOW, report_data=DEVICE_DIGEST))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH


def test_missing_report_data_is_empty_as_in_trustee() -> None:
    assert verify({"svn": "2"}, Options(at=NOW)).claims == {"svn": "2", "report_data": ""}
    with pytest.raises(VerifierError) as caught:
        verify({"svn": "2"}, Options(at=NOW, report_data=DEVICE_DIGEST))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH


MALFORMED = {
    "svn-as-number": ({"svn": 2, "report_data": ""}, "field svn is 2, expected a string"),
    "report-data-not-base64": ({"svn": "2", "report_data": "@@"}, "field report_data is not standard base64"),
    "report-data-too-long": (
        {"svn": "2", "report_data": base64.b64encode(bytes(65)).decode()},
        "report_data is 65 bytes, at most 64",
    ),
    "not-an-object": (b"\x00\x01", "sampledevice evidence is not a JSON object"),
}


@pytest.mark.parametrize(("evidence", "text"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_sample_device_evidence(evidence: object, text: str) -> None:
    with pytest.raises(VerifierError) as caught:
        verify(evidence, Options(at=NOW))  # type: ignore[arg-type]
    assert caught.value.reason is Reason.MALFORMED_EVIDENCE
    assert text in caught.value.detail
