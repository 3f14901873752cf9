"""Unwrapping a layer's private options from its `org.opencontainers.image.enc.keys.*` annotations.

Two recipient kinds (containers/ocicrypt; docs/images.md):
- `provider.attestation-agent`: the CoCo key-provider annotation; the KEK is the KBS resource named by its
  kid, fetched through the agent (attestation first) and used in-process (no subprocess round trip).
- `jwe`: ocicrypt's JWE recipients (JSON serialization, A256GCM content encryption; RSA-OAEP or
  ECDH-ES+A256KW key wrapping, as go-jose emits them); the private keys are those named by `--key`
  (`kbs:///R/T/T` resources, or `file:PATH` for a key the operator holds locally), in PEM (PKCS#8, PKCS#1,
  SEC1) or JWK JSON.
Each annotation value is a comma-separated list of base64 blobs, one per wrapping (ocicrypt encryption.go).
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from guest._errors import DecryptionError
from guest._ocicrypt import KEYS_ANNOTATION_PREFIX, PrivateOptions

__all__ = ["Keyring", "ResourceFetcher"]

PROVIDER_ANNOTATION = KEYS_ANNOTATION_PREFIX + "provider.attestation-agent"
JWE_ANNOTATION = KEYS_ANNOTATION_PREFIX + "jwe"
# What go-jose (ocicrypt keywrap/jwe) produces; nothing weaker is accepted.
JWE_ALGORITHMS = ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW", "A256GCM"]

JoseKey = RSAKey | ECKey


class ResourceFetcher(Protocol):
    """Returns a KBS resource's bytes for `kbs:///R/T/T` (the agent's KbsClient after attesting)."""

    def get_resource(self, uri: str) -> bytes: ...


def _load_private_key(data: bytes, name: str) -> JoseKey:
    text = data.strip()
    if text.startswith(b"{"):
        try:
            doc = json.loads(text)
            kty = doc.get("kty") if isinstance(doc, dict) else None
            if kty == "RSA":
                return RSAKey.import_key(doc)
            if kty == "EC":
                return ECKey.import_key(doc)
        except (ValueError, JoseError, RecursionError):  # RecursionError: too deeply nested
            pass
        raise DecryptionError(f"private key {name}: JSON that is not an RSA or EC private JWK")
    try:
        key = (
            serialization.load_pem_private_key(text, None)
            if text.startswith(b"-----")
            else serialization.load_der_private_key(data, None)
        )
    except (ValueError, TypeError):
        raise DecryptionError(f"private key {name}: not an unencrypted PEM/DER private key or a JWK") from None
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAKey.import_key(pem)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(pem)
    raise DecryptionError(f"private key {name}: {type(key).__name__} keys cannot unwrap ocicrypt JWE recipients")


def _split_annotation(value: str, name: str) -> list[bytes]:
    try:
        return [b64decode(part, validate=True) for part in value.split(",") if part]
    except (binascii.Error, ValueError):
        raise DecryptionError(f"annotation {name}: is not a comma-separated list of base64 values") from None


@dataclass
class Keyring:
    """The keys a guest may use: KBS access for key-provider kids, and the `--key` private keys for JWE."""

    fetcher: ResourceFetcher | None = None
    key_refs: Sequence[str] = ()
    _keys: list[tuple[str, JoseKey]] | None = field(default=None, repr=False)

    def _private_keys(self) -> list[tuple[str, JoseKey]]:
        if self._keys is None:
            keys = []
            for ref in self.key_refs:
                if ref.startswith("kbs:///"):
                    if self.fetcher is None:
                        raise DecryptionError(f"--key {ref}: a KBS key needs --kbs URL")
                    data = self.fetcher.get_resource(ref)
                elif ref.startswith("file:"):
                    try:
                        data = Path(ref.removeprefix("file:")).read_bytes()
                    except OSError as exc:
                        raise DecryptionError(f"--key {ref}: cannot read ({exc.strerror})") from None
                else:
                    raise DecryptionError(f"--key {ref!r}: expected kbs:///REPO/TYPE/TAG or file:PATH")
                keys.append((ref, _load_private_key(data, ref)))
            self._keys = keys
        return self._keys

    def _unwrap_jwe(self, blob: bytes) -> bytes | str:
        try:
            doc = json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
            return "the JWE is not JSON"
        if not isinstance(doc, dict):
            return "the JWE is not a JSON object"
        keys = self._private_keys()
        if not keys:
            return "no --key private key was given"
        for _, key in keys:
            try:
                result = jwe.decrypt_json(cast(jwe.GeneralJSONSerialization, doc), key, algorithms=JWE_ALGORITHMS)
            except (JoseError, ValueError, KeyError, TypeError):
                continue
            return result.plaintext or b""
        return f"none of the keys {[ref for ref, _ in keys]} unwraps it"

    def _unwrap_provider(self, blob: bytes) -> bytes | str:
        if self.fetcher is None:
            return "a key-provider layer needs --kbs URL"
        # Imported for key-provider layers only: with the protocol models it costs ~8 ms of every start-up.
        from attestation_agent.keyprovider import KeyProviderError, unwrap_annotation  # noqa: PLC0415

        try:
            return unwrap_annotation(blob, self.fetcher)
        except KeyProviderError as exc:
            return str(exc)

    def private_options(self, digest: str, annotations: Mapping[str, str]) -> PrivateOptions:
        """Unwrap layer `digest`'s private options, trying each recipient; DecryptionError lists why not."""
        reasons: list[str] = []
        for name in sorted(annotations):
            if not name.startswith(KEYS_ANNOTATION_PREFIX):
                continue
            scheme = name.removeprefix(KEYS_ANNOTATION_PREFIX)
            if name not in (PROVIDER_ANNOTATION, JWE_ANNOTATION):
                reasons.append(f"{scheme}: recipient kind not supported by this guest")
                continue
            for blob in _split_annotation(annotations[name], name):
                result = self._unwrap_provider(blob) if name == PROVIDER_ANNOTATION else self._unwrap_jwe(blob)
                if isinstance(result, bytes):
                    return PrivateOptions.from_json(result)
                reasons.append(f"{scheme}: {result}")
        if not reasons:
            raise DecryptionError(f"layer {digest}: no {KEYS_ANNOTATION_PREFIX}* annotation: cannot decrypt")
        raise DecryptionError(f"layer {digest}: no key unwraps it ({'; '.join(reasons)})")
