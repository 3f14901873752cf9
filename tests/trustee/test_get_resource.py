"""Trustee's own KBS integration scenarios (trustee `integration-tests/tests/get_resource.rs`, see PROVENANCE.md)
against a real `kbs serve`, through trustee's endpoints and message formats only, with trustee's policy texts
unchanged: the resource set as raw bytes, the resource policy and the `default_cpu` / `default_gpu` attestation
policies by `POST /resource-policy` and `POST /attestation-policy`, the reference values as RVPS messages, and the
guest's RCAR handshake with the sample TEE and, when trustee sets ENABLE_SAMPLE_DEVICE, the sample device in
`additional_evidence`. Admin calls carry Veritee's bearer JWT (trustee's harness signs its own)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from kbs_protocol import ERROR_TYPE_PREFIX, device_runtime_digest, runtime_digest
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer

HERE = Path(__file__).parent
SECRET_BYTES = b"shhhhhhh"
SECRET_PATH = "default/test/secret"


def policy(name: str) -> str:
    return (HERE / f"{name}.rego").read_text()


# httpx clients a test opened; closed after each test (warnings are errors: no socket is left open).
OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class TrusteeAdmin:
    """What trustee's kbs_client and rvps_client send, with Veritee's admin bearer JWT."""

    def __init__(self, server: KbsServer) -> None:
        self.http = httpx.Client(
            base_url=server.url + "/kbs/v0", headers={"Authorization": f"Bearer {server.token}"}, timeout=30
        )
        OPEN.append(self.http)

    def set_secret(self, path: str, value: bytes) -> httpx.Response:
        return self.http.post(f"/resource/{path}", content=value, headers={"Content-Type": "application/octet-stream"})

    def set_resource_policy(self, source: str) -> httpx.Response:
        return self.http.post("/resource-policy", json={"policy": b64url(source)})

    def set_attestation_policy(self, source: str, policy_id: str) -> httpx.Response:
        return self.http.post(
            "/attestation-policy", json={"type": "rego", "policy_id": policy_id, "policy": b64url(source)}
        )

    def set_reference_value(self, key: str, value: Any) -> httpx.Response:
        payload = base64.b64encode(json.dumps({key: value}).encode()).decode()
        return self.http.post("/reference-value", json={"version": "0.1.0", "type": "sample", "payload": payload})


class TrusteeGuest:
    """guest-components' sample attester (svn "1") and sample device attester (svn "2"), as kbs_client attests."""

    def __init__(self, url: str, *, sample_device: bool) -> None:
        self.http = httpx.Client(base_url=url + "/kbs/v0", timeout=30)
        OPEN.append(self.http)
        self.key = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
        self.sample_device = sample_device

    def attest(self) -> httpx.Response:
        challenge = self.http.post("/auth", json={"version": "0.4.0", "tee": "sample", "extra-params": ""})
        assert challenge.status_code == 200, challenge.text
        nonce = challenge.json()["nonce"]
        pubkey = json.loads(self.key.export_public())
        additional = ""
        if self.sample_device:
            device_data = device_runtime_digest(nonce, pubkey)
            additional = json.dumps(
                {"sampledevice": {"svn": "2", "report_data": base64.b64encode(device_data).decode()}}
            )
        report_data = runtime_digest(nonce, pubkey, additional)
        body = {
            "init-data": None,
            "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
            "tee-evidence": {
                "primary_evidence": {"svn": "1", "report_data": base64.b64encode(report_data).decode()},
                "additional_evidence": additional,
            },
        }
        return self.http.post("/attest", json=body)

    def get_secret(self, path: str) -> httpx.Response:
        attested = self.attest()
        assert attested.status_code == 200, attested.text
        return self.http.get(f"/resource/{path}")

    def decrypt(self, body: dict[str, str]) -> bytes:
        token = jwcrypto_jwe.JWE()
        token.deserialize(json.dumps(body), key=self.key)
        return bytes(token.payload)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KbsServer]:
    with KbsServer(tmp_path / "conf") as running:
        yield running


SVN_RVS: list[tuple[str, Any]] = [
    ("svn", ["1"]),
    ("launch_digest", ["abcde"]),
    ("major_version", 1),
    ("minimum_minor_version", 1),
]

# (resource policy, reference values, sample device, default_cpu policy, default_gpu policy, released?)
CASES = {
    "basic_ear_allow_all": ("allow_all_policy", [], False, "ear_contraindicated_attestation_policy", None, True),
    "basic_ear_deny_all": ("deny_all_policy", [], False, "ear_contraindicated_attestation_policy", None, False),
    "policy_contraindicated": (
        "check_contraindicated_policy",
        [],
        False,
        "ear_contraindicated_attestation_policy",
        None,
        False,
    ),
    "policy_not_contraindicated": (
        "check_contraindicated_policy",
        SVN_RVS,
        False,
        "ear_rv_attestation_policy",
        None,
        True,
    ),
    "device_contraindicated": (
        "check_contraindicated_device_policy",
        SVN_RVS,
        True,
        "ear_rv_attestation_policy",
        "ear_rv_attestation_policy",
        False,
    ),
    "device_not_contraindicated": (
        "check_contraindicated_device_policy",
        [*SVN_RVS, ("device_svn", ["2"])],
        True,
        "ear_rv_attestation_policy",
        "ear_device_rv_attestation_policy",
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trustee_get_resource_scenario(server: KbsServer, case: str) -> None:
    resource_policy, rvs, sample_device, cpu_policy, gpu_policy, released = CASES[case]
    admin = TrusteeAdmin(server)
    assert admin.set_secret(SECRET_PATH, SECRET_BYTES).status_code == 200
    assert admin.set_resource_policy(policy(resource_policy)).status_code == 200
    done = admin.set_attestation_policy(policy(cpu_policy), "default_cpu")
    assert done.status_code == 200, done.text
    if gpu_policy is not None:
        assert admin.set_attestation_policy(policy(gpu_policy), "default_gpu").status_code == 200
    for key, value in rvs:
        done = admin.set_reference_value(key, value)
        assert done.status_code == 200, done.text

    guest = TrusteeGuest(server.url, sample_device=sample_device)
    secret = guest.get_secret(SECRET_PATH)
    if released:
        assert secret.status_code == 200, secret.text
        assert guest.decrypt(secret.json()) == SECRET_BYTES
    else:
        assert secret.status_code == 403, secret.text
        assert secret.json()["type"] == ERROR_TYPE_PREFIX + "PolicyDeny"
        assert "Access denied by policy" in secret.json()["detail"]


def test_composite_ear_has_cpu0_and_gpu0_with_the_policies_statuses(server: KbsServer) -> None:
    admin = TrusteeAdmin(server)
    assert admin.set_attestation_policy(policy("ear_rv_attestation_policy"), "default_cpu").status_code == 200
    assert admin.set_attestation_policy(policy("ear_device_rv_attestation_policy"), "default_gpu").status_code == 200
    assert admin.set_reference_value("svn", ["1"]).status_code == 200
    token = TrusteeGuest(server.url, sample_device=True).attest().json()["token"]
    submods = jwt.decode(token, options={"verify_signature": False})["submods"]
    assert set(submods) == {"cpu0", "gpu0"}
    # cpu0: hardware 2 (svn "1" is a reference value), executables 33, configuration 36 -> warning.
    assert submods["cpu0"]["ear.status"] == "warning"
    assert submods["cpu0"]["ear.trustworthiness-vector"]["hardware"] == 2
    # gpu0: device_svn is not provisioned -> hardware 97 -> contraindicated.
    assert submods["gpu0"]["ear.status"] == "contraindicated"
    assert submods["gpu0"]["ear.veraison.annotated-evidence"]["sampledevice"]["svn"] == "2"
    assert submods["gpu0"]["ear.appraisal-policy-id"] == "default_gpu"

    assert admin.set_reference_value("device_svn", ["2"]).status_code == 200
    token = TrusteeGuest(server.url, sample_device=True).attest().json()["token"]
    submods = jwt.decode(token, options={"verify_signature": False})["submods"]
    assert (submods["cpu0"]["ear.status"], submods["gpu0"]["ear.status"]) == ("warning", "warning")
    assert submods["gpu0"]["ear.trustworthiness-vector"]["hardware"] == 2


def test_veritee_agent_gets_a_resource_from_a_broker_configured_like_trustee(server: KbsServer, tmp_path: Path) -> None:
    """Every policy, secret and reference value set through trustee's endpoints and messages; then Veritee's agent
    (the CLI, sample TEE) attests and fetches the secret."""
    admin = TrusteeAdmin(server)
    assert admin.set_secret(SECRET_PATH, SECRET_BYTES).status_code == 200
    assert admin.set_resource_policy(policy("check_contraindicated_policy")).status_code == 200
    assert admin.set_attestation_policy(policy("ear_rv_attestation_policy"), "default_cpu").status_code == 200
    env = {"VERITEE_SYSROOT": str(tmp_path / "empty-root")}
    args = ("attestation-agent", "get-resource", "--kbs", server.url, f"kbs:///{SECRET_PATH}")
    denied = run_cli(*args, env=env)  # no "svn" reference value yet: hardware 97, contraindicated
    assert denied.returncode == 1
    assert b"403" in denied.stderr
    assert admin.set_reference_value("svn", ["1"]).status_code == 200
    got = run_cli(*args, env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == SECRET_BYTES
