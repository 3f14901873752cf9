"""The ocicrypt key-provider wire format (kbs_protocol/keyprovider.py): Go (base64) and Rust (int arrays) shapes."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbs_protocol.keyprovider import (
    AnnotationPacket,
    KeyProviderError,
    KeyUnwrapRequest,
    KeyWrapRequest,
    keyunwrap_response,
    keywrap_response,
    parse_request,
    unwrap_options,
    wrap_options,
)

KEK = bytes(range(32))
OPTS = b'{"symkey":"AAAA","digest":"sha256:00","cipheroptions":{"nonce":"AAAA"}}'


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("encode", [_b64, list], ids=["go-base64", "rust-int-array"])
def test_keywrap_request_both_encodings(encode: Callable[[bytes], object]) -> None:
    enc = encode
    request = {
        "op": "keywrap",
        "keywrapparams": {
            "ec": {"Parameters": {"attestation-agent": [enc(b"kbs:///default/key/1")]}, "DecryptConfig": {}},
            "optsdata": enc(OPTS),
        },
    }
    parsed = parse_request(json.dumps(request).encode())
    assert isinstance(parsed, KeyWrapRequest)
    assert parsed.key_ids() == ("kbs:///default/key/1",)
    assert parsed.optsdata == OPTS


@pytest.mark.parametrize("encode", [_b64, list], ids=["go-base64", "rust-int-array"])
def test_keyunwrap_round_trip(encode: Callable[[bytes], object]) -> None:
    packet = wrap_options(KEK, "kbs:///default/key/1", OPTS)
    enc = encode
    request = {"op": "keyunwrap", "keyunwrapparams": {"dc": {"Parameters": {}}, "annotation": enc(packet.to_json())}}
    parsed = parse_request(json.dumps(request).encode())
    assert isinstance(parsed, KeyUnwrapRequest)
    assert unwrap_options(KEK, AnnotationPacket.from_json(parsed.annotation)) == OPTS
    # Responses always carry base64 strings (what Go ocicrypt expects).
    assert json.loads(keyunwrap_response(OPTS)) == {"keyunwrapresults": {"optsdata": _b64(OPTS)}}
    assert json.loads(keywrap_response(b"ann")) == {"keywrapresults": {"annotation": _b64(b"ann")}}


def test_responses_as_integer_arrays_for_rust_ocicrypt() -> None:
    """encoding="array": what ocicrypt-rs's Vec<u8> results read (test_rust_ocicrypt.py runs the real serde)."""
    assert json.loads(keyunwrap_response(OPTS, "array")) == {"keyunwrapresults": {"optsdata": list(OPTS)}}
    assert json.loads(keywrap_response(b"ann", "array")) == {"keywrapresults": {"annotation": [97, 110, 110]}}
    with pytest.raises(ValueError, match="byte encoding 'hex'"):
        keyunwrap_response(OPTS, "hex")


def test_annotation_shape_is_cocos() -> None:
    doc = json.loads(wrap_options(KEK, "kbs:///default/key/1", OPTS).to_json())
    assert sorted(doc) == ["iv", "kid", "wrap_type", "wrapped_data"]
    assert doc["wrap_type"] == "A256GCM"
    assert len(base64.b64decode(doc["iv"])) == 12
    assert len(base64.b64decode(doc["wrapped_data"])) == len(OPTS) + 16  # GCM tag appended


BAD = {
    "not-json": (b"{", "request: not valid JSON"),
    "unknown-op": (b'{"op": "rekey"}', "expected 'keywrap' or 'keyunwrap'"),
    "bad-base64": (b'{"op": "keyunwrap", "keyunwrapparams": {"annotation": "**"}}', "not valid base64"),
    "byte-out-of-range": (b'{"op": "keyunwrap", "keyunwrapparams": {"annotation": [1, 256]}}', "outside 0..255"),
    "annotation-wrong-type": (b'{"op": "keyunwrap", "keyunwrapparams": {"annotation": 5}}', "expected a base64"),
    "params-missing": (b'{"op": "keywrap"}', "keywrapparams: is NoneType"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_requests(case: str) -> None:
    data, message = BAD[case]
    with pytest.raises(KeyProviderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_request(data)


ANNOTATIONS = {
    "kid-not-kbs": ({"kid": "http://x/a/b/c"}, "expected kbs:///REPO/TYPE/TAG"),
    "kid-dotdot": ({"kid": "kbs:///../b/c"}, "expected kbs:///REPO/TYPE/TAG"),
    "wrap-type": ({"wrap_type": "A128GCM"}, "wrap_type: is 'A128GCM'"),
    "iv-size": ({"iv": _b64(b"short")}, "iv: is 5 bytes, expected 12"),
    "tampered": ({"wrapped_data": _b64(bytes(40))}, "AES-256-GCM authentication failed"),
}


@pytest.mark.parametrize("case", sorted(ANNOTATIONS))
def test_bad_annotations(case: str) -> None:
    change, message = ANNOTATIONS[case]
    doc = json.loads(wrap_options(KEK, "kbs:///default/key/1", OPTS).to_json()) | change
    with pytest.raises(KeyProviderError, match=message):
        unwrap_options(KEK, AnnotationPacket.from_json(json.dumps(doc).encode()))


def test_wrong_kek() -> None:
    packet = wrap_options(KEK, "kbs:///default/key/1", OPTS)
    with pytest.raises(KeyProviderError, match="authentication failed with the KEK kbs:///default/key/1"):
        unwrap_options(bytes(32), packet)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_requests_raise_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(KeyProviderError):
        parse_request(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_annotations_raise_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(KeyProviderError):
        AnnotationPacket.from_json(data)
