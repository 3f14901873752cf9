"""AK enrolment by credential activation, end to end: `attestation-agent tpm-enroll` against `kbs serve`, with a
swtpm manufactured with an EK certificate by a local CA that the broker's configuration trusts (trust.tpm)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from attestation_agent.attesters.tpm import TpmAttester

from tests._swtpm import Swtpm
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer

pytestmark = pytest.mark.swtpm

SECRET = b"released to an enrolled AK"


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with Swtpm(tmp_path_factory.mktemp("swtpm"), ek_certificate=True) as started:
        yield started


def _kbs(folder: Path, tpm: Swtpm, *, trust_local_ca: bool) -> KbsServer:
    folder.mkdir(parents=True)
    anchors = []
    if trust_local_ca:
        for n, pem in enumerate(tpm.ca_certificates):
            path = folder / f"tpm-ca-{n}.pem"
            path.write_bytes(pem)
            anchors.append(str(path))
    return KbsServer(folder, allow_sample=False, config={"verifier": {"trust": {"tpm": anchors}}})


@pytest.fixture
def kbs(tmp_path: Path, tpm: Swtpm) -> Iterator[KbsServer]:
    with _kbs(tmp_path / "kbs", tpm, trust_local_ca=True) as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("tpm_pcr0", ["00" * 32])
        yield server


def _agent(tpm: Swtpm, *args: str) -> tuple[int, bytes, str]:
    done = run_cli("attestation-agent", *args, env={"VERITEE_TPM_TCTI": tpm.tcti})
    return done.returncode, done.stdout, done.stderr.decode()


def test_enrolled_ak_is_trusted(kbs: KbsServer, tpm: Swtpm) -> None:
    code, _, err = _agent(tpm, "get-resource", "--kbs", kbs.url, "kbs:///default/key/1")
    assert code == 1, "an unenrolled AK without allowlisting must not get the secret"
    assert "denies" in err

    code, out, err = _agent(tpm, "tpm-enroll", "--kbs", kbs.url, "--json")
    assert code == 0, err
    ak_sha256 = json.loads(out)["ak_sha256"]
    assert len(ak_sha256) == 64

    code, out, err = _agent(tpm, "get-resource", "--kbs", kbs.url, "kbs:///default/key/1")
    assert code == 0, err
    assert out == SECRET
    audit = httpx.get(
        kbs.url + "/kbs/v0/admin/audit", headers={"Authorization": f"Bearer {kbs.token}"}, timeout=10
    ).json()
    assert f"ak:{ak_sha256}" in json.dumps(audit)


def test_enrolment_refused_when_the_ek_certificate_is_not_trusted(tmp_path: Path, tpm: Swtpm) -> None:
    with _kbs(tmp_path / "kbs", tpm, trust_local_ca=False) as server:
        code, _, err = _agent(tpm, "tpm-enroll", "--kbs", server.url)
    assert code == 1
    assert "untrusted_key" in err


def test_wrong_secret_and_replayed_challenge_are_refused(kbs: KbsServer, tpm: Swtpm) -> None:
    attester = TpmAttester(tpm.tcti)
    ek_public, ek_certificate = attester.ek()
    assert ek_certificate is not None
    body = {
        "ak_public": base64.b64encode(attester.ak_tpmt_public()).decode(),
        "ek_certificate": base64.b64encode(ek_certificate).decode(),
        "ek_public": base64.b64encode(ek_public).decode(),
    }
    challenge = httpx.post(kbs.url + "/kbs/v0/tpm/enroll", json=body, timeout=10).json()
    wrong = {"id": challenge["id"], "secret": base64.b64encode(b"\0" * 32).decode()}
    response = httpx.post(kbs.url + "/kbs/v0/tpm/activate", json=wrong, timeout=10)
    assert response.status_code == 401
    assert "secret does not match" in response.json()["detail"]
    # The challenge was consumed by the failed answer: even the right secret cannot use it now.
    secret = attester.activate_credential(
        base64.b64decode(challenge["credential_blob"]), base64.b64decode(challenge["encrypted_secret"])
    )
    right = {"id": challenge["id"], "secret": base64.b64encode(secret).decode()}
    response = httpx.post(kbs.url + "/kbs/v0/tpm/activate", json=right, timeout=10)
    assert response.status_code == 401
    assert "already answered" in response.json()["detail"]


def test_enrolment_refuses_a_non_restricted_ak(kbs: KbsServer, tpm: Swtpm) -> None:
    attester = TpmAttester(tpm.tcti)
    ek_public, ek_certificate = attester.ek()
    assert ek_certificate is not None
    body = {
        # The EK itself is a decryption key, not a restricted signing key: never an AK.
        "ak_public": base64.b64encode(ek_public).decode(),
        "ek_certificate": base64.b64encode(ek_certificate).decode(),
    }
    response = httpx.post(kbs.url + "/kbs/v0/tpm/enroll", json=body, timeout=10)
    assert response.status_code == 401
    assert "objectAttributes" in response.json()["detail"]
