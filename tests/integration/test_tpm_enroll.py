"""AK enrolment by credential activation, end to end: `attestation-agent tpm-enroll` against `kbs serve`, with a
swtpm manufactured with an EK certificate by a local CA that the broker's configuration trusts (trust.tpm)."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from attestation_agent.attesters.tpm import TpmAttester
from attestation_agent.kbs_client import KbsClient
from attestation_agent.tpm_enroll import enroll

from tests._swtpm import Swtpm
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer, free_port
from tests.integration.conftest import new_database_url

pytestmark = pytest.mark.swtpm

SECRET = b"released to an enrolled AK"


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with Swtpm(tmp_path_factory.mktemp("swtpm"), ek_certificate=True) as started:
        yield started


def _kbs(
    folder: Path, tpm: Swtpm, *, trust_local_ca: bool, database_url: str | None = None, init: bool = True
) -> KbsServer:
    folder.mkdir(parents=True, exist_ok=True)
    anchors = []
    if trust_local_ca:
        for n, pem in enumerate(tpm.ca_certificates):
            path = folder / f"tpm-ca-{n}.pem"
            path.write_bytes(pem)
            anchors.append(str(path))
    config = {"verifier": {"trust": {"tpm": anchors}}}
    return KbsServer(folder, allow_sample=False, config=config, database_url=database_url, init=init)


@pytest.fixture
def kbs(tmp_path: Path, tpm: Swtpm) -> Iterator[KbsServer]:
    with _kbs(tmp_path / "kbs", tpm, trust_local_ca=True) as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("tpm_pcr0", ["00" * 32])
        yield server


@pytest.fixture
def replicas(tmp_path: Path, tpm: Swtpm, request: pytest.FixtureRequest) -> Iterator[tuple[KbsServer, KbsServer]]:
    """Two `kbs serve` replicas on one PostgreSQL database, trusting the swtpm's EK CA, provisioned for a TPM
    guest."""
    database = new_database_url(request, "postgres", tmp_path)
    first = _kbs(tmp_path / "kbs", tpm, trust_local_ca=True, database_url=database)
    second = _kbs(tmp_path / "kbs", tpm, trust_local_ca=True, database_url=database, init=False)
    with first, second:
        first.admin.put_resource("default/key/1", SECRET)
        first.admin.put_reference_value("tpm_pcr0", ["00" * 32])
        yield first, second


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


def test_enrolment_fails_over_past_a_dead_url(replicas: tuple[KbsServer, KbsServer], tpm: Swtpm) -> None:
    first, second = replicas
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, err = _agent(tpm, "tpm-enroll", "--kbs", f"{dead},{first.url}", "--json")
    assert code == 0, err
    assert len(json.loads(out)["ak_sha256"]) == 64
    # Enrolled in the replicas' database: the other replica trusts the AK too.
    code, out, err = _agent(tpm, "get-resource", "--kbs", second.url, "kbs:///default/key/1")
    assert code == 0, err
    assert out == SECRET


class _KillBetweenTheSteps(TpmAttester):
    """Kills the first replica with SIGKILL the first time a credential is activated: after /tpm/enroll was
    answered (the challenge is in the database), before /tpm/activate is sent. With `drop_connections`, the guest's
    kept-alive connections are closed too (as an idle timeout does), so /tpm/activate is refused at connect."""

    def __init__(self, tcti: str, replica: KbsServer) -> None:
        super().__init__(tcti)
        self.replica = replica
        self.client: KbsClient | None = None
        self.activations = 0

    def activate_credential(self, credential_blob: bytes, encrypted_secret: bytes) -> bytes:
        self.activations += 1
        if self.activations == 1:
            os.kill(self.replica.pid, signal.SIGKILL)
            assert self.replica._process is not None
            self.replica._process.wait(timeout=10)  # dead, its port closed, before the guest goes on
            if self.client is not None:
                self.client.close()
        return super().activate_credential(credential_blob, encrypted_secret)


@pytest.mark.parametrize(
    ("drop_connections", "activations"),
    [
        # Refused at connect: the same answer goes to the second replica, which finds the challenge in the database.
        pytest.param(True, 1, id="activation-refused-at-connect"),
        # Cut off on the kept-alive connection: the first replica may have taken the answer, so it is not sent
        # again; the exchange starts over on the second replica.
        pytest.param(False, 2, id="activation-cut-off"),
    ],
)
def test_replica_killed_between_the_two_steps(
    replicas: tuple[KbsServer, KbsServer], tpm: Swtpm, drop_connections: bool, activations: int
) -> None:
    first, second = replicas
    attester = _KillBetweenTheSteps(tpm.tcti, first)
    with KbsClient([first.url, second.url], attester) as client:
        attester.client = client if drop_connections else None
        ak_sha256 = enroll(client)
        assert client.base == second.url + "/kbs/v0"
    assert attester.activations == activations
    assert len(ak_sha256) == 64
    code, out, err = _agent(tpm, "get-resource", "--kbs", second.url, "kbs:///default/key/1")
    assert code == 0, err
    assert out == SECRET


def test_enrolment_with_every_url_dead_fails_clearly(tpm: Swtpm) -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    code, out, err = _agent(tpm, "tpm-enroll", "--kbs", ",".join(dead))
    assert code == 1
    assert out == b""
    assert err.startswith("attestation-agent: cannot reach the broker at http://127.0.0.1:"), err
    assert "Connection refused (after 5 attempts)" in err
