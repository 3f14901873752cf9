"""The KBS wire contract: versions, resource URIs, and the runtime-data binding (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import json

import pytest

from kbs.protocol import (
    Attestation,
    Request,
    expected_report_data,
    init_data_digest,
    parse_resource_uri,
    runtime_digest,
    version_supported,
)


@pytest.mark.parametrize("version", ["0.4.0", "0.4.1", "0.4.17"])
def test_supported_versions(version: str) -> None:
    assert version_supported(version)


@pytest.mark.parametrize("version", ["0.3.0", "0.5.0", "1.4.0", "0.4", "0.4.x", "", "0.4.0.1"])
def test_unsupported_versions(version: str) -> None:
    assert not version_supported(version)


def test_request_wire_names() -> None:
    assert Request(tee="tdx").model_dump(by_alias=True) == {"version": "0.4.0", "tee": "tdx", "extra-params": ""}


def test_attestation_parses_trustee_shape() -> None:
    body = {
        "init-data": None,
        "runtime-data": {"nonce": "abc", "tee-pubkey": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}},
        "tee-evidence": {"primary_evidence": {"svn": "1"}, "additional_evidence": ""},
    }
    parsed = Attestation.model_validate_json(json.dumps(body))
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
