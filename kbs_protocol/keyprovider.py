"""ocicrypt key-provider wire format, shared by the image owner's side (`kbs admin keyprovider`, keywrap)
and the guest side (`attestation-agent keyprovider` and `guest`, keyunwrap).

ocicrypt's command protocol (containers/ocicrypt keywrap/keyprovider; docs/images.md) exchanges one JSON
document each way. Go marshals []byte as base64 strings; Rust ocicrypt (serde) as arrays of integers: both are
accepted on input. Base64 is emitted by default; `encoding="array"` emits integer arrays, which Rust ocicrypt
(image-rs) needs for the results (its `Vec<u8>` fields read only arrays) and Go's encoding/json also reads.

    stdin   {"op": "keywrap", "keywrapparams": {"ec": {"Parameters": {"<provider>": [<key id bytes>]},
                                                "DecryptConfig": {...}}, "optsdata": <private options bytes>}}
            {"op": "keyunwrap", "keyunwrapparams": {"dc": {"Parameters": {...}}, "annotation": <bytes>}}
    stdout  {"keywrapresults": {"annotation": <bytes>}} / {"keyunwrapresults": {"optsdata": <bytes>}}

The annotation of the CoCo `attestation-agent` provider (guest-components' keyprovider, trustee's
coco-keyprovider) is JSON: `{"kid": "kbs:///R/T/T", "wrapped_data": <b64 AES-256-GCM ciphertext || tag>,
"iv": <b64 12 bytes>, "wrap_type": "A256GCM"}`; the key-encryption key (KEK) is the KBS resource named by kid.

Example:
    >>> kek = bytes(32)
    >>> packet = wrap_options(kek, "kbs:///default/key/1", b'{"symkey":"..."}')
    >>> unwrap_options(kek, AnnotationPacket.from_json(packet.to_json()))
    b'{"symkey":"..."}'
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import ProtocolError
from ._resources import RESOURCE_SEGMENT

__all__ = [
    "BYTE_ENCODINGS",
    "KEK_SIZE",
    "PROVIDER_NAME",
    "WRAP_TYPE",
    "AnnotationPacket",
    "KeyProviderError",
    "KeyUnwrapRequest",
    "KeyWrapRequest",
    "decode_bytes",
    "encode_bytes",
    "keyunwrap_response",
    "keywrap_response",
    "parse_request",
    "resource_path",
    "unwrap_options",
    "wrap_options",
]

# How byte fields of a response are written: base64 strings (Go ocicrypt's []byte) or integer arrays (Rust
# ocicrypt's Vec<u8>, which Go's encoding/json reads as well).
BYTE_ENCODINGS = ("base64", "array")
PROVIDER_NAME = "attestation-agent"  # annotation org.opencontainers.image.enc.keys.provider.attestation-agent
WRAP_TYPE = "A256GCM"
KEK_SIZE = 32  # AES-256
IV_SIZE = 12  # AES-GCM recommended nonce size (NIST SP 800-38D)
MAX_REQUEST_BYTES = 1024 * 1024  # private options are ~200 bytes; annotations a few hundred
# A key id is a KBS resource URI with no broker address: kbs:/// and three resource segments.
_SEGMENT = RESOURCE_SEGMENT.pattern
_KID_RE = re.compile(rf"kbs:///({_SEGMENT}/{_SEGMENT}/{_SEGMENT})")


class KeyProviderError(ProtocolError):
    """A malformed key-provider request or annotation, or a failed unwrap; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


def decode_bytes(value: object, field: str) -> bytes:
    """A protocol byte field: a base64 string (Go ocicrypt) or a list of integers 0..255 (Rust ocicrypt)."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise KeyProviderError(f"{field}: is not valid base64") from None
    if isinstance(value, list):
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            raise KeyProviderError(f"{field}: integer array holds values outside 0..255")
        return bytes(value)
    raise KeyProviderError(f"{field}: is {type(value).__name__}, expected a base64 string or an array of bytes")


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()


def resource_path(kid: str) -> str:
    """The KBS resource path `R/T/T` of a key id `kbs:///R/T/T`."""
    match = _KID_RE.fullmatch(kid)
    if match is None:
        raise KeyProviderError(f"key id {kid!r}: expected kbs:///REPO/TYPE/TAG")
    return match.group(1)


@dataclass(frozen=True)
class AnnotationPacket:
    """The `attestation-agent` provider's annotation."""

    kid: str
    wrapped_data: bytes
    iv: bytes
    wrap_type: str = WRAP_TYPE

    @classmethod
    def from_json(cls, data: bytes) -> AnnotationPacket:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
            raise KeyProviderError("annotation: not valid JSON") from None
        if not isinstance(doc, dict):
            raise KeyProviderError(f"annotation: is a JSON {type(doc).__name__}, expected an object")
        kid = doc.get("kid")
        if not isinstance(kid, str):
            raise KeyProviderError(f"annotation kid: is {kid!r}, expected kbs:///REPO/TYPE/TAG")
        resource_path(kid)
        wrap_type = doc.get("wrap_type")
        if wrap_type != WRAP_TYPE:
            raise KeyProviderError(f"annotation wrap_type: is {wrap_type!r}, expected {WRAP_TYPE!r}")
        iv = decode_bytes(doc.get("iv"), "annotation iv")
        if len(iv) != IV_SIZE:
            raise KeyProviderError(f"annotation iv: is {len(iv)} bytes, expected {IV_SIZE}")
        wrapped = decode_bytes(doc.get("wrapped_data"), "annotation wrapped_data")
        if len(wrapped) < 16:
            raise KeyProviderError(f"annotation wrapped_data: is {len(wrapped)} bytes, shorter than the GCM tag")
        return cls(kid, wrapped, iv, wrap_type)

    def to_json(self) -> bytes:
        doc = {
            "kid": self.kid,
            "wrapped_data": encode_bytes(self.wrapped_data),
            "iv": encode_bytes(self.iv),
            "wrap_type": self.wrap_type,
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def _check_kek(kek: bytes, kid: str) -> AESGCM:
    if len(kek) != KEK_SIZE:
        raise KeyProviderError(f"KEK {kid}: is {len(kek)} bytes, expected {KEK_SIZE} (AES-256)")
    return AESGCM(kek)


def wrap_options(kek: bytes, kid: str, optsdata: bytes) -> AnnotationPacket:
    """AES-256-GCM wrap of ocicrypt private options under `kek` (no AAD, as guest-components does)."""
    resource_path(kid)
    iv = os.urandom(IV_SIZE)
    return AnnotationPacket(kid, _check_kek(kek, kid).encrypt(iv, optsdata, None), iv)


def unwrap_options(kek: bytes, packet: AnnotationPacket) -> bytes:
    try:
        return _check_kek(kek, packet.kid).decrypt(packet.iv, packet.wrapped_data, None)
    except InvalidTag:
        raise KeyProviderError(
            f"annotation wrapped_data: AES-256-GCM authentication failed with the KEK {packet.kid} "
            "(a different key, or the annotation was altered)"
        ) from None


@dataclass(frozen=True)
class KeyWrapRequest:
    """op keywrap: the key ids asked for this provider (ec.Parameters[provider]) and the private options."""

    parameters: Mapping[str, tuple[bytes, ...]]
    optsdata: bytes

    def key_ids(self, provider: str = PROVIDER_NAME) -> tuple[str, ...]:
        ids = self.parameters.get(provider)
        if not ids:
            raise KeyProviderError(
                f"keywrapparams.ec.Parameters has no {provider!r} entry "
                f"(encrypt with --encryption-key provider:{provider}:kbs:///REPO/TYPE/TAG)"
            )
        try:
            return tuple(i.decode() for i in ids)
        except UnicodeDecodeError:
            raise KeyProviderError(f"keywrapparams.ec.Parameters[{provider!r}]: key id is not UTF-8") from None


@dataclass(frozen=True)
class KeyUnwrapRequest:
    """op keyunwrap: the annotation bytes (the provider's own JSON)."""

    annotation: bytes


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeyProviderError(f"{field}: is {type(value).__name__}, expected an object")
    return value


def _parameters(config: object, field: str) -> dict[str, tuple[bytes, ...]]:
    if config is None:
        return {}
    params = _object(config, field).get("Parameters") or {}
    out: dict[str, tuple[bytes, ...]] = {}
    for name, values in _object(params, f"{field}.Parameters").items():
        if not isinstance(values, list):
            raise KeyProviderError(f"{field}.Parameters[{name!r}]: expected a list of byte strings")
        out[name] = tuple(decode_bytes(v, f"{field}.Parameters[{name!r}]") for v in values)
    return out


def parse_request(data: bytes) -> KeyWrapRequest | KeyUnwrapRequest:
    if len(data) > MAX_REQUEST_BYTES:
        raise KeyProviderError(f"request: {len(data)} bytes, more than the {MAX_REQUEST_BYTES}-byte cap")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
        raise KeyProviderError("request: not valid JSON") from None
    doc = _object(doc, "request")
    op = doc.get("op")
    if op == "keywrap":
        params = _object(doc.get("keywrapparams"), "keywrapparams")
        return KeyWrapRequest(
            parameters=_parameters(params.get("ec"), "keywrapparams.ec"),
            optsdata=decode_bytes(params.get("optsdata"), "keywrapparams.optsdata"),
        )
    if op == "keyunwrap":
        params = _object(doc.get("keyunwrapparams"), "keyunwrapparams")
        return KeyUnwrapRequest(annotation=decode_bytes(params.get("annotation"), "keyunwrapparams.annotation"))
    raise KeyProviderError(f"request op: is {op!r}, expected 'keywrap' or 'keyunwrap'")


def _encoded(data: bytes, encoding: str) -> str | list[int]:
    if encoding == "array":
        return list(data)
    if encoding != "base64":
        raise ValueError(f"byte encoding {encoding!r}, expected one of {BYTE_ENCODINGS}")
    return encode_bytes(data)


def keywrap_response(annotation: bytes, encoding: str = "base64") -> bytes:
    return json.dumps({"keywrapresults": {"annotation": _encoded(annotation, encoding)}}).encode()


def keyunwrap_response(optsdata: bytes, encoding: str = "base64") -> bytes:
    return json.dumps({"keyunwrapresults": {"optsdata": _encoded(optsdata, encoding)}}).encode()
