"""kbs_protocol._hash against the cases guest-components' kbs_protocol tests its get_hash_algorithm with, and the
broker's reading of the Request's extra-params."""

from __future__ import annotations

import hashlib

import pytest

from kbs_protocol import (
    NegotiationError,
    challenge_extra_params,
    request_extra_params,
    runtime_digest,
    selected_hash_algorithm,
    supported_hash_algorithms,
)
from kbs_protocol._hash import hash_runtime_data

KEY = "selected-hash-algorithm"

# guest-components rcar_client.rs test_get_hash_algorithm: the same inputs, the same outcomes.
SELECTED = {
    "empty-object": ({}, "sha384"),
    "trustee-builtin-empty-string": ("", "sha384"),
    "sha256": ({KEY: "sha256"}, "sha256"),
    "SHA256": ({KEY: "SHA256"}, "sha256"),
    "sha384": ({KEY: "sha384"}, "sha384"),
    "SHA384": ({KEY: "SHA384"}, "sha384"),
    "sha512": ({KEY: "sha512"}, "sha512"),
    "SHA512": ({KEY: "SHA512"}, "sha512"),
}
NOT_SELECTABLE = {
    "empty-name": ({KEY: ""}, "is '', expected one of"),
    "unknown-name": ({KEY: "foo"}, "is 'foo', expected one of"),
    "array": ({KEY: []}, "is [], expected a string"),
    "object": ({KEY: {}}, "is {}, expected a string"),
    "bool": ({KEY: True}, "is True, expected a string"),
    "integer": ({KEY: 99999}, "is 99999, expected a string"),
    "float": ({KEY: 42.141}, "is 42.141, expected a string"),
}


@pytest.mark.parametrize(("extra_params", "expected"), SELECTED.values(), ids=SELECTED.keys())
def test_selected_hash_algorithm(extra_params: object, expected: str) -> None:
    assert selected_hash_algorithm(extra_params) == expected


@pytest.mark.parametrize(("extra_params", "text"), NOT_SELECTABLE.values(), ids=NOT_SELECTABLE.keys())
def test_unselectable_hash_algorithm(extra_params: object, text: str) -> None:
    with pytest.raises(NegotiationError, match=r"extra-params\.selected-hash-algorithm: is") as caught:
        selected_hash_algorithm(extra_params)
    assert text in str(caught.value)


def test_request_extra_params_are_kbs_types_list_all() -> None:
    assert request_extra_params() == {"supported-hash-algorithms": ["sha256", "sha384", "sha512"]}
    assert supported_hash_algorithms(request_extra_params()) == ("sha256", "sha384", "sha512")
    assert supported_hash_algorithms("") is None
    assert supported_hash_algorithms(None) is None
    assert challenge_extra_params(request_extra_params()) == ""


def test_runtime_digest_with_each_algorithm() -> None:
    jcs = b'{"additional-evidence":"","nonce":"n","tee-pubkey":{"kty":"EC"}}'
    for name, size in (("sha256", 32), ("sha384", 48), ("sha512", 64)):
        digest = runtime_digest("n", {"kty": "EC"}, algorithm=name)
        assert digest == hashlib.new(name, jcs).digest()
        assert len(digest) == size
    assert runtime_digest("n", {"kty": "EC"}) == hashlib.sha384(jcs).digest()
    with pytest.raises(NegotiationError, match="hash algorithm"):
        hash_runtime_data("md5", jcs)
