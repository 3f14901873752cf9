"""Bad input on trustee's paths into a real `kbs serve`: composite evidence and trustee's admin messages. Each is
a clear 4xx naming what is wrong (or, for a device whose evidence fails, a submod naming the reason code), and
nothing is stored half-way: the nonce survives a malformed attestation, no reference value or policy is kept from
a refused message."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from jwcrypto import jwk as jwcrypto_jwk

from kbs.services.composite import MAX_ADDITIONAL_EVIDENCE_BYTES
from kbs_protocol import ERROR_TYPE_PREFIX, device_runtime_digest, runtime_digest
from tests.integration._kbs_server import KbsServer

HERE = Path(__file__).parent


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_error(response: httpx.Response, status: int, variant: str, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == ERROR_TYPE_PREFIX + variant, response.text
    assert detail in response.json()["detail"], response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("trustee-bad") / "conf") as running:
        yield running


@pytest.fixture
def admin(server: KbsServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url + "/kbs/v0", headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def guest(server: KbsServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/kbs/v0", timeout=30) as client:
        yield client


KEY = json.loads(jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256").export_public())


def attest_body(nonce: str, additional: str, device_report_data: bytes | None = None) -> dict[str, Any]:
    return {
        "runtime-data": {"nonce": nonce, "tee-pubkey": KEY},
        "tee-evidence": {
            "primary_evidence": {"svn": "1", "report_data": b64(runtime_digest(nonce, KEY, additional))},
            "additional_evidence": additional,
        },
    }


def challenge(guest: httpx.Client) -> str:
    response = guest.post("/auth", json={"version": "0.4.0", "tee": "sample", "extra-params": ""})
    assert response.status_code == 200, response.text
    nonce: str = response.json()["nonce"]
    return nonce


def device(nonce: str, svn: str = "2", report_data: bytes | None = None) -> str:
    data = device_runtime_digest(nonce, KEY) if report_data is None else report_data
    return json.dumps({"sampledevice": {"svn": svn, "report_data": b64(data)}})


BAD_ADDITIONAL_EVIDENCE: dict[str, tuple[Callable[[str], str], int, str, str]] = {
    "oversized": (
        lambda nonce: json.dumps({"sampledevice": {"svn": "2", "pad": "x" * MAX_ADDITIONAL_EVIDENCE_BYTES}}),
        413,
        "PayloadTooLarge",
        "additional_evidence is",
    ),
    "unknown_device_tee": (
        lambda nonce: json.dumps({"nvidia-h100": {}}),
        400,
        "InvalidRequest",
        "device tee 'nvidia-h100' is not one of ['sampledevice']",
    ),
    "primary_tee_as_device": (lambda nonce: json.dumps({"tdx": {}}), 400, "InvalidRequest", "device tee 'tdx'"),
    "not_json": (lambda nonce: "{sampledevice", 400, "InvalidRequest", "additional_evidence is not JSON"),
    "not_an_object": (lambda nonce: "[1]", 400, "InvalidRequest", "is a JSON list, expected an object"),
    "device_evidence_not_an_object": (
        lambda nonce: json.dumps({"sampledevice": "x"}),
        400,
        "InvalidRequest",
        "additional_evidence.sampledevice is a JSON str",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ADDITIONAL_EVIDENCE))
def test_bad_additional_evidence_is_refused_and_the_nonce_survives(guest: httpx.Client, case: str) -> None:
    make, status, variant, detail = BAD_ADDITIONAL_EVIDENCE[case]
    nonce = challenge(guest)
    assert_error(guest.post("/attest", json=attest_body(nonce, make(nonce))), status, variant, detail)
    # Nothing was spent: the same session attests once its evidence is well formed.
    good = guest.post("/attest", json=attest_body(nonce, device(nonce)))
    assert good.status_code == 200, good.text


def test_device_tee_cannot_be_the_primary_evidence(guest: httpx.Client) -> None:
    response = guest.post("/auth", json={"version": "0.4.0", "tee": "sampledevice", "extra-params": ""})
    assert_error(response, 400, "InvalidRequest", "tee 'sampledevice' is not one of")


def test_a_device_whose_evidence_fails_is_reported_not_dropped(guest: httpx.Client) -> None:
    nonce = challenge(guest)
    # Bound to the primary's digest (with additional-evidence) instead of the device digest: refused binding.
    wrong = device(nonce, report_data=bytes(48))
    token = guest.post("/attest", json=attest_body(nonce, wrong)).json()["token"]
    submods = jwt.decode(token, options={"verify_signature": False})["submods"]
    assert set(submods) == {"cpu0", "gpu0"}
    assert submods["gpu0"]["ear.status"] == "contraindicated"
    assert submods["gpu0"]["ear.veritee.error"]["reason"] == "report_data_mismatch"
    assert submods["gpu0"]["ear.trustworthiness-vector"]["hardware"] == 97


def rvps(payload: str, version: str = "0.1.0", kind: str = "sample") -> dict[str, str]:
    return {"version": version, "type": kind, "payload": payload}


def encoded(document: object) -> str:
    return b64(json.dumps(document).encode())


BAD_RVPS = {
    "wrong_version": (rvps(encoded({"bad_a": ["1"]}), version="0.2.0"), "version is '0.2.0', expected '0.1.0'"),
    "unknown_type": (rvps(encoded({"bad_a": ["1"]}), kind="in-toto"), "type is 'in-toto'"),
    "payload_not_base64": (rvps("not base64!"), "payload is not standard base64"),
    "payload_not_json": (rvps(b64(b"{bad_a")), "payload is not standard base64 of a JSON object"),
    "payload_a_list": (rvps(encoded([["bad_a", "1"]])), "not a non-empty JSON object"),
    "payload_empty": (rvps(encoded({})), "not a non-empty JSON object"),
    "bad_name": (rvps(encoded({"bad a": ["1"]})), "is not [A-Za-z0-9_.:-]"),
    "object_value": (rvps(encoded({"bad_a": ["1"], "bad_b": [{"x": 1}]})), "bad_b: a value is a JSON dict"),
    "null_value": (rvps(encoded({"bad_a": ["1"], "bad_b": None})), "bad_b: a value is a JSON NoneType"),
    "no_values": (rvps(encoded({"bad_a": ["1"], "bad_b": []})), "bad_b: 0 values"),
    "missing_type": ({"version": "0.1.0", "payload": encoded({"bad_a": ["1"]})}, "needs type"),
}


@pytest.mark.parametrize("case", sorted(BAD_RVPS))
def test_bad_reference_value_message_is_refused_and_nothing_is_stored(admin: httpx.Client, case: str) -> None:
    body, detail = BAD_RVPS[case]
    assert_error(admin.post("/reference-value", json=body), 400, "InvalidRequest", detail)
    for name in ("bad_a", "bad_b"):
        assert admin.get(f"/reference-value/{name}").status_code == 404


def test_reference_value_message_round_trip(admin: httpx.Client) -> None:
    body = rvps(encoded({"rt_list": ["a", "b"], "rt_scalar": 1, "rt_flag": True}))
    stored = admin.post("/reference-value", json=body)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {
        "stored": {"rt_list": 2, "rt_scalar": 1, "rt_flag": 1},
        "versions": {"rt_list": 1, "rt_scalar": 1, "rt_flag": 1},
    }
    assert admin.get("/reference-value/rt_list").json() == ["a", "b"]
    assert admin.get("/reference-value/rt_scalar").json() == ["1"]
    assert admin.get("/reference-value/rt_flag").json() == ["true"]
    assert_error(admin.get("/reference-value/rt_missing"), 404, "ResourceNotFound", "rt_missing")
    # Veritee's own shape still works on the same endpoint.
    assert admin.post("/reference-value", json={"name": "rt_list", "values": ["c"]}).status_code == 200
    assert admin.get("/reference-value/rt_list").json() == ["c"]


def test_reference_value_endpoints_need_the_admin_token(guest: httpx.Client) -> None:
    assert guest.get("/reference-value/rt_list").status_code == 401
    assert guest.post("/reference-value", json=rvps(encoded({"x": ["1"]}))).status_code == 401
    assert guest.get("/resource-policy").status_code == 401


BAD_ATTESTATION_POLICIES = {
    "no_trust_claims": ("package policy\nimport rego.v1\nhardware := 2\n", "trust_claims is undefined"),
    "out_of_range": ('package policy\nimport rego.v1\ntrust_claims := {"hardware": 300}\n', "hardware is 300"),
    "unknown_claim": ('package policy\nimport rego.v1\ntrust_claims := {"gpu": 2}\n', "names ['gpu']"),
    "does_not_compile": ("package policy\ntrust_claims :=", "does not compile"),
}


@pytest.mark.parametrize("case", sorted(BAD_ATTESTATION_POLICIES))
def test_bad_attestation_policy_is_refused_and_not_stored(admin: httpx.Client, case: str) -> None:
    source, detail = BAD_ATTESTATION_POLICIES[case]
    body = {"type": "rego", "policy_id": f"bad_{case}", "policy": b64url(source)}
    assert_error(admin.post("/attestation-policy", json=body), 400, "InvalidRequest", detail)
    assert admin.get(f"/admin/policy/attestation:bad_{case}").status_code == 404


def test_get_resource_policy_answers_the_default_then_the_one_set(admin: httpx.Client) -> None:
    shipped = admin.get("/resource-policy")
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["id"] == "default"
    source = (HERE / "allow_all_policy.rego").read_text()
    assert admin.post("/resource-policy", json={"policy": b64url(source)}).status_code == 200
    current = admin.get("/resource-policy").json()
    assert current["id"] == "resource"
    assert base64.urlsafe_b64decode(current["policy"] + "=" * (-len(current["policy"]) % 4)).decode() == source
