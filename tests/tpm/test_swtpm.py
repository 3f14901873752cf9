"""The TPM attester against a real software TPM (swtpm), verified by the verifier: RSA and ECC AKs, the
AK persisted and reused, init-data in PCR8, the EK certificate from NV, credential activation, no leaked
handles."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attestation_agent.attesters import AttesterError
from attestation_agent.attesters.tpm import TpmAttester, probe

import verifier
from tests._swtpm import Swtpm
from verifier import Options, Reason, VerifierError
from verifier.tpm import check_ak_public, make_credential, parse_public, verify_ek_certificate

pytestmark = pytest.mark.swtpm

REPORT_DATA = hashlib.sha384(b"runtime digest").digest()


def _verify(evidence: dict[str, object], **options: object) -> dict[str, object]:
    result = verifier.verify("tpm", evidence, Options(at=datetime.now(UTC), report_data=REPORT_DATA[:32], **options))  # type: ignore[arg-type]
    return dict(result.claims)


def _transient_handles(tpm: Swtpm) -> list[int]:
    # Imported here, after the swtpm fixture ran require_swtpm(), so a missing package fails with its message.
    from tpm2_pytss import ESAPI, TPM2_CAP, TPM2_HR

    esapi = ESAPI(tpm.tcti)
    try:
        _, data = esapi.get_capability(TPM2_CAP.HANDLES, TPM2_HR.TRANSIENT, 64)
        transient = list(data.data.handles)
        _, data = esapi.get_capability(TPM2_CAP.HANDLES, TPM2_HR.POLICY_SESSION, 64)
        return transient + list(data.data.handles)
    finally:
        esapi.close()


@pytest.mark.parametrize(("ak_type", "scheme"), [("rsa", "rsassa"), ("ecc", "ecdsa")])
def test_quote_from_swtpm_verifies(swtpm: Swtpm, ak_type: str, scheme: str) -> None:
    attester = TpmAttester(swtpm.tcti, ak_type=ak_type)
    evidence = attester.evidence(REPORT_DATA)
    claims = _verify(evidence)
    assert claims["signature_scheme"] == scheme
    assert claims["report_data"] == REPORT_DATA[:32].hex()
    assert claims["ak_trust"] == "none"
    pcrs = claims["pcrs"]
    assert isinstance(pcrs, dict)
    assert sorted(pcrs["sha256"], key=int) == [str(i) for i in range(16)]
    assert _transient_handles(swtpm) == []


def test_ak_is_persisted_and_reused(swtpm: Swtpm) -> None:
    first = _verify(TpmAttester(swtpm.tcti).evidence(REPORT_DATA))
    again = _verify(TpmAttester(swtpm.tcti).evidence(REPORT_DATA))
    other_handle = _verify(TpmAttester(swtpm.tcti, ak_handle=0x81010003).evidence(REPORT_DATA))
    assert first["ak_sha256"] == again["ak_sha256"]
    assert other_handle["ak_sha256"] != first["ak_sha256"]
    assert _transient_handles(swtpm) == []


def test_wrong_nonce_is_refused(swtpm: Swtpm) -> None:
    evidence = TpmAttester(swtpm.tcti).evidence(REPORT_DATA)
    with pytest.raises(VerifierError) as caught:
        verifier.verify("tpm", evidence, Options(at=datetime.now(UTC), report_data=bytes(32)))
    assert caught.value.reason is Reason.REPORT_DATA_MISMATCH


def test_init_data_extends_pcr8(swtpm: Swtpm) -> None:
    attester = TpmAttester(swtpm.tcti)
    digest = hashlib.sha256(b'algorithm = "sha256"\nversion = "0.1.0"\n').digest()
    attester.bind_init_data(digest)
    evidence = attester.evidence(REPORT_DATA)
    claims = _verify(evidence, init_data_digest=digest)
    assert claims["pcrs"]["sha256"]["8"] == hashlib.sha256(bytes(32) + digest).hexdigest()  # type: ignore[index]
    with pytest.raises(VerifierError) as caught:
        _verify(evidence, init_data_digest=hashlib.sha256(b"other").digest())
    assert caught.value.reason is Reason.INIT_DATA_MISMATCH


def test_init_data_other_than_sha256_is_refused(swtpm: Swtpm) -> None:
    with pytest.raises(AttesterError, match="only SHA-256 init-data"):
        TpmAttester(swtpm.tcti).bind_init_data(hashlib.sha384(b"x").digest())


def test_event_log_is_sent_when_readable(swtpm: Swtpm, tmp_path: Path, vectors: Path) -> None:
    log = tmp_path / "sysroot/sys/kernel/security/tpm0/binary_bios_measurements"
    log.parent.mkdir(parents=True)
    log.write_bytes((vectors / "tpm/go-tpm-tools/rhel8-uefi.bin").read_bytes())
    evidence = TpmAttester(swtpm.tcti, sysroot=tmp_path / "sysroot").evidence(REPORT_DATA)
    assert base64.b64decode(str(evidence["event_log"])) == log.read_bytes()
    # Another machine's log does not replay to this TPM's PCRs.
    with pytest.raises(VerifierError) as caught:
        _verify(evidence)
    assert caught.value.reason is Reason.EVENTLOG_MISMATCH


def test_ek_certificate_from_nv_chains_to_the_local_ca(swtpm_ek: Swtpm) -> None:
    evidence = TpmAttester(swtpm_ek.tcti).evidence(REPORT_DATA)
    ek_certificate = base64.b64decode(str(evidence["ek_certificate"]))
    _verify(evidence)  # an EK certificate alone does not make the AK trusted
    root, issuer = swtpm_ek.ca_certificates
    verify_ek_certificate(ek_certificate, [root], datetime.now(UTC), intermediates=[issuer])
    with pytest.raises(VerifierError) as caught:
        verify_ek_certificate(ek_certificate, [], datetime.now(UTC), intermediates=[issuer])
    assert caught.value.reason is Reason.UNTRUSTED_KEY


@pytest.mark.parametrize("ek_type", ["rsa", "ecc"])
def test_credential_activation(swtpm_ek: Swtpm, ek_type: str) -> None:
    attester = TpmAttester(swtpm_ek.tcti, ek_type=ek_type, ak_handle=0x81010004)
    ek_public, _ = attester.ek()
    ak = parse_public(attester.ak_tpmt_public())
    check_ak_public(ak)
    secret = os.urandom(32)
    credential = make_credential(parse_public(ek_public), ak.name, secret)
    assert attester.activate_credential(credential.credential_blob, credential.encrypted_secret) == secret
    assert _transient_handles(swtpm_ek) == []


def test_credential_for_the_ek_key_from_its_certificate(swtpm_ek: Swtpm) -> None:
    attester = TpmAttester(swtpm_ek.tcti)
    _, certificate = attester.ek()
    assert certificate is not None
    root, issuer = swtpm_ek.ca_certificates
    ek_key = verify_ek_certificate(certificate, [root], datetime.now(UTC), intermediates=[issuer]).public_key()
    ak = parse_public(attester.ak_tpmt_public())
    credential = make_credential(ek_key, ak.name, b"enrolment secret")  # type: ignore[arg-type]
    assert attester.activate_credential(credential.credential_blob, credential.encrypted_secret) == b"enrolment secret"


def test_credential_for_another_name_does_not_activate(swtpm_ek: Swtpm) -> None:
    attester = TpmAttester(swtpm_ek.tcti)
    ek_public, _ = attester.ek()
    other_name = b"\x00\x0b" + hashlib.sha256(b"not this AK").digest()
    credential = make_credential(parse_public(ek_public), other_name, b"secret")
    with pytest.raises(AttesterError, match="TPM command failed"):
        attester.activate_credential(credential.credential_blob, credential.encrypted_secret)
    assert _transient_handles(swtpm_ek) == []


@pytest.fixture
def tcti_env(swtpm: Swtpm) -> Iterator[str]:
    old = os.environ.get("VERITEE_TPM_TCTI")
    os.environ["VERITEE_TPM_TCTI"] = swtpm.tcti
    yield swtpm.tcti
    if old is None:
        del os.environ["VERITEE_TPM_TCTI"]
    else:
        os.environ["VERITEE_TPM_TCTI"] = old


def test_probe_uses_the_tcti_from_the_environment(tcti_env: str, tmp_path: Path) -> None:
    found = probe(tmp_path)
    assert found is not None
    assert found.tcti == tcti_env


def test_probe_finds_device_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERITEE_TPM_TCTI", raising=False)
    assert probe(tmp_path) is None
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/tpm0").touch()
    found = probe(tmp_path)
    assert found is not None
    assert found.tcti == f"device:{tmp_path}/dev/tpm0"
    (tmp_path / "dev/tpmrm0").touch()
    found = probe(tmp_path)
    assert found is not None
    assert found.tcti == f"device:{tmp_path}/dev/tpmrm0"
