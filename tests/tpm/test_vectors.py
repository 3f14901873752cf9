"""Real TPM evidence from tests/vectors/tpm with the values of EXPECTED.log (section "TPM").

- go-tpm-tools/gce-cos-85-nonce9009.pb: google/go-tpm-tools internal/test/attestations, commit 67670e5c021a.
- trustee/tpm_evidence.json: confidential-containers/trustee deps/verifier/test_data, commit 78962cd416dc.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import verifier
from verifier import Options, Reason, VerifierError
from verifier.tpm import parse_public

from ._gotpm import GoTpmAttestation, decode

AT = datetime(2026, 11, 27, tzinfo=UTC)
NONCE = bytes.fromhex("9009")
# EXPECTED.log P1: the quotes' clocks, in bank order sha1, sha256, sha384.
GOOGLE_CLOCKS = {"sha1": 8219159479, "sha256": 8219159552, "sha384": 8219159625}
GOOGLE_PCR0 = {
    "sha1": "c032c3b51dbb6f96b047421512fd4b4dfde496f3",
    "sha256": "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf",
    "sha384": "46ce251b0b5b3da7917c5eb7a72e6e88f8f830445b149937921b095c1fd628db691963861c1153aba9c7097ff1c747f9",
}
GOOGLE_PCR9 = {
    "sha1": "f43c10ad862c39aee3f99fa270b91472533bae5f",
    "sha256": "e01c8cf808763422c5ede2cdb34595b92bd7d06b8bbd6014b54d2e95b14b0963",
    "sha384": "25bb55977c44a0eb38fdaf6f4c2fc4cda23c20bc89ada9399f52908d0ba7342f28c2ba3e953ab1786273f90be0e8447c",
}
# EXPECTED.log P3: trustee's software-TPM quote.
TRUSTEE_EXTRA_DATA = (
    "a04182b506878d4f29b91ee606a71a0d3361ccf1b22db20c98adcaa537bea393"
    "ef0e41a18b3569ab678f1497fbc5c12000000000000000000000000000000000"
)


@pytest.fixture(scope="module")
def google(vectors: Path) -> GoTpmAttestation:
    return decode((vectors / "tpm/go-tpm-tools/gce-cos-85-nonce9009.pb").read_bytes())


@pytest.fixture(scope="module")
def trustee(vectors: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((vectors / "tpm/trustee/tpm_evidence.json").read_bytes())
    return document


def test_google_has_three_quotes_one_per_bank(google: GoTpmAttestation) -> None:
    assert google.banks == ("sha1", "sha256", "sha384")


@pytest.mark.parametrize("index", [0, 1, 2], ids=["sha1", "sha256", "sha384"])
def test_google_quote_verifies_with_nonce_and_certificate(google: GoTpmAttestation, index: int) -> None:
    bank = google.banks[index]
    result = verifier.verify("tpm", google.evidences[index], Options(at=AT, report_data=NONCE))
    claims = result.claims
    assert result.report_data == NONCE
    assert claims["report_data"] == "9009"
    assert claims["ak_trust"] == "certificate"
    assert claims["signature_scheme"] == "rsassa"
    assert claims["signature_hash"] == "sha256"  # trap: pcrDigest uses the signing hash, not the bank's
    assert claims["firmware_version"] == "2016051100162800"
    assert claims["reset_count"] == 10
    assert claims["clock"] == GOOGLE_CLOCKS[bank]
    pcrs = claims["pcrs"]
    assert isinstance(pcrs, dict)
    assert list(pcrs) == [bank]
    assert sorted(pcrs[bank], key=int) == [str(i) for i in range(24)]
    assert pcrs[bank]["0"] == GOOGLE_PCR0[bank]
    assert pcrs[bank]["9"] == GOOGLE_PCR9[bank]
    assert pcrs[bank]["17"] == "ff" * (len(GOOGLE_PCR0[bank]) // 2)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["sha1", "sha256", "sha384"])
def test_google_event_log_replays_pcr0_to_9(google: GoTpmAttestation, index: int) -> None:
    claims = verifier.verify("tpm", google.evidences[index], Options(at=AT)).claims
    assert claims["pcr_replay_ok"] is True
    events = claims["eventlog"]
    assert isinstance(events, list)
    assert len(events) == 44
    extended = {event["register"] for event in events if event["type_name"] != "EV_NO_ACTION"}
    assert extended == {str(i) for i in range(10)}


def test_google_ak_certificate_key_is_the_ak(google: GoTpmAttestation) -> None:
    cert = x509.load_der_x509_certificate(google.ak_certificate)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ak = parse_public(google.ak_tpmt_public)
    assert spki == ak.spki_der()
    # EXPECTED.log P1: the AK's TPM name.
    assert ak.name.hex() == "000bf175bdb57297b2b289973f819863d6c9d09c236725676914f4248c9a2404c2a4"


def test_google_ak_certificate_is_untrusted_before_it_was_issued(google: GoTpmAttestation) -> None:
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", google.evidences[1], Options(at=datetime(2021, 1, 1, tzinfo=UTC)))
    assert caught.value.reason is Reason.CERTIFICATE_EXPIRED
    assert "AK certificate" in caught.value.detail


def test_trustee_evidence_verifies(trustee: dict[str, object]) -> None:
    expected = bytes.fromhex(TRUSTEE_EXTRA_DATA)
    result = verifier.verify("tpm", trustee, Options(at=AT, report_data=expected))
    claims = result.claims
    assert claims["report_data"] == TRUSTEE_EXTRA_DATA
    assert claims["ak_trust"] == "none"
    assert claims["qualified_signer"] == "000b3081a4cbbe307f3de1456f9875a3c2632528a70d91fcf578ccf092465e4e8e09"
    assert claims["clock"] == 1913548331
    assert claims["reset_count"] == 2
    assert claims["restart_count"] == 0
    assert claims["safe"] is True
    assert claims["firmware_version"] == "2019102300163636"
    pcrs = claims["pcrs"]
    assert isinstance(pcrs, dict)
    sha256 = pcrs["sha256"]
    assert [sha256[str(i)] for i in range(24)] == ["00" * 32] * 17 + ["ff" * 32] * 6 + ["00" * 32]
    assert "eventlog" not in claims


def test_trustee_evidence_as_bytes_through_the_dispatcher(vectors: Path) -> None:
    raw = (vectors / "tpm/trustee/tpm_evidence.json").read_bytes()
    assert verifier.verify("tpm", raw, Options(at=AT)).claims["ak_trust"] == "none"


def test_trustee_ak_fingerprint_is_sha256_of_spki(trustee: dict[str, object]) -> None:
    ak = base64.b64decode(str(trustee["ak_public"]))
    claims = verifier.verify("tpm", trustee, Options(at=AT)).claims
    assert claims["ak_sha256"] == hashlib.sha256(ak).hexdigest()
