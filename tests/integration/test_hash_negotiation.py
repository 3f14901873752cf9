"""The runtime-data hash negotiated in extra-params (kbs_protocol/_hash.py), both halves:

- Veritee's broker (a real `kbs serve`) takes guest-components' /auth Request and answers as trustee's built-in
  attestation service (extra-params "", SHA-384), refusing a guest that cannot hash with SHA-384;
- Veritee's agent sends guest-components' Request and binds with the hash a trustee KBS selects (a trustee-shaped
  KBS on loopback selecting SHA-512 or SHA-256), and still with SHA-384 against the real `kbs serve`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from attestation_agent.attesters.sample import SampleAttester
from attestation_agent.kbs_client import KbsClient, KbsClientError

import policies
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration._trustee_kbs import TrusteeKbs

# guest-components' kbs_protocol build_request(): kbs-types HashAlgorithm::list_all(), serde lowercase.
GUEST_COMPONENTS_REQUEST = {
    "version": "0.4.0",
    "tee": "sample",
    "extra-params": {"supported-hash-algorithms": ["sha256", "sha384", "sha512"]},
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs") / "conf") as server:
        server.admin.put_resource("default/key/1", SECRET)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        yield server


def _auth(broker: KbsServer, extra_params: object) -> httpx.Response:
    body = {**GUEST_COMPONENTS_REQUEST, "extra-params": extra_params}
    return httpx.post(broker.url + "/kbs/v0/auth", json=body, timeout=30)


@pytest.mark.parametrize(
    "extra_params",
    [
        GUEST_COMPONENTS_REQUEST["extra-params"],
        {"supported-hash-algorithms": ["SHA384"]},  # trustee lower-cases the names
        {"supported-hash-algorithms": ["sha384", "sm3"]},  # names it does not know are ignored
        "",  # older guests
        {},
    ],
)
def test_broker_answers_guest_components_as_trustees_builtin_service(broker: KbsServer, extra_params: object) -> None:
    response = _auth(broker, extra_params)
    assert response.status_code == 200, response.text
    assert response.json()["extra-params"] == ""


REFUSED = {
    "no-sha384": ({"supported-hash-algorithms": ["sha256", "sha512"]}, "which the guest does not list"),
    "not-a-list": ({"supported-hash-algorithms": "sha384"}, "expected an array of strings"),
    "not-strings": ({"supported-hash-algorithms": [384]}, "expected an array of strings"),
    "not-an-object": (384, "extra-params: is int, expected an object or an empty string"),
}


@pytest.mark.parametrize(("extra_params", "detail"), REFUSED.values(), ids=REFUSED.keys())
def test_broker_refuses_a_guest_that_cannot_bind_with_sha384(
    broker: KbsServer, extra_params: object, detail: str
) -> None:
    assert_error(_auth(broker, extra_params), 400, "InvalidRequest", detail)


def test_agent_gets_a_resource_from_the_real_broker_with_the_negotiation(broker: KbsServer) -> None:
    with KbsClient(broker.url, SampleAttester()) as client:
        assert client.get_resource("kbs:///default/key/1") == SECRET


@pytest.mark.parametrize("algorithm", ["sha512", "SHA256", "sha384"])
def test_agent_binds_with_the_hash_a_trustee_kbs_selects(algorithm: str) -> None:
    with TrusteeKbs({"selected-hash-algorithm": algorithm}, SECRET) as trustee:
        with KbsClient(trustee.url, SampleAttester()) as client:
            assert client.get_resource("kbs:///default/key/1") == SECRET
        assert trustee.bound_with == algorithm.lower()
        path, request = trustee.requests[0]
        assert (path, request) == ("/kbs/v0/auth", GUEST_COMPONENTS_REQUEST)


def test_agent_binds_with_sha384_when_a_trustee_kbs_selects_nothing() -> None:
    with TrusteeKbs("", SECRET) as trustee, KbsClient(trustee.url, SampleAttester()) as client:
        assert client.get_resource("kbs:///default/key/1") == SECRET
        assert trustee.bound_with == "sha384"


@pytest.mark.parametrize("selected", [{"selected-hash-algorithm": "md5"}, {"selected-hash-algorithm": 512}])
def test_agent_refuses_a_selection_it_cannot_honour(selected: dict[str, object]) -> None:
    with TrusteeKbs(selected, SECRET) as trustee, KbsClient(trustee.url, SampleAttester()) as client:
        with pytest.raises(KbsClientError, match=r"challenge is malformed: extra-params\.selected-hash-algorithm: is"):
            client.get_resource("kbs:///default/key/1")
        assert [path for path, _ in trustee.requests] == ["/kbs/v0/auth"]  # no evidence was sent
