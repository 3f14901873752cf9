"""Sigstore signatures stored as registry attachments, the way cosign and skopeo (`use-sigstore-attachments`) do.

Layout (cosign's "tag-based" scheme, also containers/image's docker/docker_image_dest.go): the signatures of the
manifest with digest `sha256:HEX` are the layers of the OCI manifest tagged `sha256-HEX.sig` in the same
repository. Each layer of media type `application/vnd.dev.cosign.simplesigning.v1+json` is a payload and carries
its signature in the annotation `dev.cosignproject.cosign/signature`: base64 of a signature over the exact
payload bytes (ECDSA DER or RSA PKCS#1 v1.5 with SHA-256, or Ed25519, as sigstore's LoadVerifier with SHA-256).

The payload is the "simple signing" JSON (containers/image internal/signature/sigstore.go):
`{"critical": {"identity": {"docker-reference": REF}, "image": {"docker-manifest-digest": DIGEST},
"type": "cosign container image signature"}, "optional": {...}}`; `critical` holds exactly those three members.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from guest._errors import ImageRefError, LayoutError, PolicyError
from guest._manifests import Descriptor, load_json_object
from guest._reference import DockerReference
from guest._registry import NotFoundError, Registry

__all__ = ["PublicKey", "Signature", "SignedClaims", "fetch_signatures", "load_public_key", "verify_signature"]

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
MAX_SIGNATURES = 64  # layers of one attachment considered; more is refused as abuse
MAX_PAYLOAD_BYTES = 64 * 1024

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Signature:
    """One payload of an attachment and the signature over it; `where` names it in messages."""

    payload: bytes
    signature: bytes
    where: str


@dataclass(frozen=True)
class SignedClaims:
    """What a verified payload asserts."""

    manifest_digest: str
    reference: DockerReference


def attachment_tag(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}.sig"


def fetch_signatures(registry: Registry, manifest: Descriptor) -> list[Signature]:
    """The signatures attached to `manifest` in its repository (an empty list when there is no attachment)."""
    tag = attachment_tag(manifest.digest)
    try:
        _, body = registry.manifest(tag)
    except NotFoundError:
        return []
    doc = load_json_object(body, f"signature manifest {tag}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise LayoutError(f"signature manifest {tag}: layers is missing or not a list")
    if len(layers) > MAX_SIGNATURES:
        raise PolicyError(f"signature manifest {tag}: {len(layers)} layers, more than the {MAX_SIGNATURES} allowed")
    signatures = []
    for i, raw in enumerate(layers):
        layer = Descriptor.parse(raw, f"signature manifest {tag} layers[{i}]")
        if layer.media_type != PAYLOAD_MEDIA_TYPE:
            continue
        where = f"{tag} layers[{i}]"
        encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
        try:
            signature = base64.b64decode(encoded or "", validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        payload = registry.json_blob(layer, f"signature payload {where}", cap=MAX_PAYLOAD_BYTES)
        signatures.append(Signature(payload, signature, where))
    return signatures


def load_public_key(data: bytes, what: str) -> PublicKey:
    """A PEM (or DER) SubjectPublicKeyInfo of an ECDSA, RSA or Ed25519 key."""
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PolicyError(f"{what}: not a valid PEM or DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise PolicyError(f"{what}: {type(key).__name__} keys cannot verify sigstore signatures")
    return key


def _verifies(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def verify_signature(sig: Signature, keys: list[tuple[str, PublicKey]]) -> SignedClaims | str:
    """The payload's claims if the signature verifies under one of `keys` and the payload is well formed;
    otherwise why not (a message naming the signature)."""
    if not sig.signature:
        return f"{sig.where}: no base64 {SIGNATURE_ANNOTATION} annotation"
    if not any(_verifies(key, sig.signature, sig.payload) for _, key in keys):
        return f"{sig.where}: signature does not verify under {[name for name, _ in keys]}"
    # Only now is the payload parsed: its content is authenticated.
    try:
        doc = json.loads(sig.payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: too deeply nested
        return f"{sig.where}: signed payload is not JSON"
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict) or set(critical) != {"identity", "image", "type"}:
        return f"{sig.where}: payload `critical` must hold exactly identity, image and type"
    if critical.get("type") != SIGNATURE_TYPE:
        return f"{sig.where}: payload critical.type is {critical.get('type')!r}, expected {SIGNATURE_TYPE!r}"
    image, identity = critical.get("image"), critical.get("identity")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    if not isinstance(digest, str) or not isinstance(reference, str):
        return f"{sig.where}: payload lacks critical.image.docker-manifest-digest or critical.identity.docker-reference"
    try:
        signed = DockerReference.parse(reference, default_tag=False)
    except ImageRefError as exc:
        return f"{sig.where}: critical.identity.docker-reference: {exc}"
    return SignedClaims(digest, signed)
