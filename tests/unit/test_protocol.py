"""The KBS wire contract (kbs_protocol): messages, versions, resource URIs, and the runtime-data binding
(docs/protocol.md)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from kbs_protocol import (
    ProtocolError,
    Request,
    init_data_digest,
    parse_attestation,
    parse_challenge,
    parse_request,
    parse_resource_uri,
    parse_response,
    parse_tpm_activate_request,
    parse_tpm_credential_challenge,
    parse_tpm_enroll_request,
    parse_tpm_enrolled,
    runtime_digest,
    version_supported,
)
from verifier.binding import expected_report_data


@pytest.mark.parametrize("version", ["0.4.0", "0.4.1", "0.4.17"])
def test_supported_versions(version: str) -> None:
    assert version_supported(version)


@pytest.mark.parametrize("version", ["0.3.0", "0.5.0", "1.4.0", "0.4", "0.4.x", "", "0.4.0.1"])
def test_unsupported_versions(version: str) -> None:
    assert not version_supported(version)


def test_request_wire_names() -> None:
    assert Request(tee="tdx").to_dict() == {"version": "0.4.0", "tee": "tdx", "extra-params": ""}


def test_attestation_parses_trustee_shape() -> None:
    body = {
        "init-data": None,
        "runtime-data": {"nonce": "abc", "tee-pubkey": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}},
        "tee-evidence": {"primary_evidence": {"svn": "1"}, "additional_evidence": ""},
    }
    parsed = parse_attestation(json.dumps(body))
    assert parsed.runtime_data.nonce == "abc"
    assert parsed.tee_evidence.primary_evidence == {"svn": "1"}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("kbs:///default/key/1", ("default", "key", "1")),
        ("default/key/1", ("default", "key", "1")),
        ("kbs://kbs.example:8080/a/b/c.d", ("a", "b", "c.d")),
        ("kbs:///my-repo/_type/tag_1.2", ("my-repo", "_type", "tag_1.2")),
    ],
)
def test_resource_uri(uri: str, expected: tuple[str, str, str]) -> None:
    assert parse_resource_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    ["kbs:///a/b", "kbs:///a/b/c/d", "kbs:///../b/c", "kbs:///a/../c", "kbs:///a/b/.hidden", "a//c", "a/b/c d", ""],
)
def test_bad_resource_uri(uri: str) -> None:
    with pytest.raises(ValueError, match="kbs:///REPO/TYPE/TAG"):
        parse_resource_uri(uri)


def test_runtime_digest_is_sha384_of_jcs() -> None:
    key = {"y": "Y", "x": "X", "kty": "EC", "crv": "P-256"}
    canonical = '{"additional-evidence":"","nonce":"N","tee-pubkey":{"crv":"P-256","kty":"EC","x":"X","y":"Y"}}'
    assert runtime_digest("N", key) == hashlib.sha384(canonical.encode()).digest()


def test_report_data_per_tee() -> None:
    digest = bytes(range(48))
    assert expected_report_data("tdx", digest) == digest + bytes(16)
    assert expected_report_data("snp", digest) == digest + bytes(16)
    assert expected_report_data("tpm", digest) == digest[:32]
    assert expected_report_data("sample", digest) == digest


def test_init_data_digest_follows_algorithm() -> None:
    body = 'algorithm = "sha256"\nversion = "0.1.0"\n[data]\n"a.toml" = "x"\n'
    assert init_data_digest(body) == hashlib.sha256(body.encode()).digest()
    default = 'version = "0.1.0"\n'
    assert init_data_digest(default) == hashlib.sha384(default.encode()).digest()


@pytest.mark.parametrize(("body", "message"), [("algorithm = 'md5'", "algorithm"), ("not toml [", "not TOML")])
def test_init_data_digest_rejects(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        init_data_digest(body)


def test_messages_round_trip() -> None:
    body = {
        "init-data": {"format": "toml", "body": "version = '0.1.0'"},
        "runtime-data": {"nonce": "n", "tee-pubkey": {"kty": "EC"}},
        "tee-evidence": {"primary_evidence": {"svn": "1"}, "additional_evidence": "extra"},
    }
    assert parse_attestation(json.dumps(body).encode()).to_dict() == body
    assert parse_request({"tee": "snp"}) == Request(tee="snp")


def test_python_names_accepted_as_before() -> None:
    parsed = parse_attestation(
        {"runtime_data": {"nonce": "n", "tee_pubkey": {}}, "tee_evidence": {"primary_evidence": {}}}
    )
    assert parsed.runtime_data.nonce == "n"
    assert parsed.init_data is None


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"{not json", "body", "is not JSON"),
        (b"[]", "body", "is a JSON array, expected an object"),
        (b"{}", "runtime-data", "is missing"),
        (b'{"runtime-data": {}}', "runtime-data.nonce", "is missing"),
        (b'{"runtime-data": {"nonce": 1, "tee-pubkey": {}}}', "runtime-data.nonce", "expected a string"),
        (b'{"runtime-data": {"nonce": "n", "tee-pubkey": []}}', "runtime-data.tee-pubkey", "expected an object"),
        (
            b'{"runtime-data": {"nonce": "n", "tee-pubkey": {}}, "tee-evidence": {}}',
            "tee-evidence.primary_evidence",
            "is missing",
        ),
        (b'{"init-data": "x"}', "init-data", "expected an object"),
        (b'{"init-data": {"format": "toml"}}', "init-data.body", "is missing"),
    ],
)
def test_malformed_attestation(body: bytes, field: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem) as caught:
        parse_attestation(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("parse", "body", "field"),
    [
        (parse_request, b'{"version": "0.4.0"}', "tee"),
        (parse_request, b'{"tee": null}', "tee"),
        (parse_challenge, b'{"extra-params": ""}', "nonce"),
        (
            parse_tpm_credential_challenge,
            b'{"id": "i", "credential_blob": "", "encrypted_secret": "", "expires_in": true}',
            "expires_in",
        ),
    ],
)
def test_malformed_messages(parse: Callable[[bytes], object], body: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(body)
    assert caught.value.field == field


# The broker parses bodies with its pydantic models (kbs.api.schemas, for OpenAPI); the agent with kbs_protocol.
# The same bodies must read the same through both.
_SAME_SHAPES = [
    ("AuthRequest", parse_request, {"version": "0.4.2", "tee": "tdx", "extra-params": {"a": 1}}),
    ("Challenge", parse_challenge, {"nonce": "bm9uY2U=", "extra-params": ""}),
    (
        "AttestationRequest",
        parse_attestation,
        {
            "init-data": {"format": "toml", "body": "algorithm = 'sha384'"},
            "runtime-data": {"nonce": "n", "tee-pubkey": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}},
            "tee-evidence": {"primary_evidence": {"svn": "1"}, "additional_evidence": ""},
        },
    ),
    ("AttestationToken", parse_response, {"token": "a.b.c"}),
    ("TpmEnrollRequest", parse_tpm_enroll_request, {"ak_public": "AA==", "ek_certificate": "AA==", "ek_public": None}),
    (
        "TpmCredentialChallenge",
        parse_tpm_credential_challenge,
        {"id": "i", "credential_blob": "AA==", "encrypted_secret": "AA==", "expires_in": 300},
    ),
    ("TpmActivateRequest", parse_tpm_activate_request, {"id": "i", "secret": "AA=="}),
    ("TpmEnrolled", parse_tpm_enrolled, {"ak_sha256": "00" * 32}),
]


@pytest.mark.parametrize(("schema", "parse", "body"), _SAME_SHAPES, ids=[s[0] for s in _SAME_SHAPES])
def test_broker_schemas_and_wire_module_agree(schema: str, parse: Callable[[bytes], Any], body: dict[str, Any]) -> None:
    from kbs.api import schemas

    raw = json.dumps(body).encode()
    model = getattr(schemas, schema).model_validate_json(raw)
    assert model.model_dump(by_alias=True) == parse(raw).to_dict() == body
