"""ocicrypt-compatible image encryption in Python, for the image owner where skopeo has no key providers
(Debian 12's skopeo) and for tests. skopeo stays the reference encryptor; this writes the same format.

    >>> encrypt_image(Path("plain"), Path("enc"), provider_recipient(kek, "kbs:///default/key/1"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from guest._errors import LayoutError
from guest._layout import REF_NAME_ANNOTATION, Descriptor, LayoutWriter, OciLayout
from guest._ocicrypt import KEYS_ANNOTATION_PREFIX, NONCE_SIZE, PUBOPTS_ANNOTATION, SYMKEY_SIZE, PrivateOptions
from guest._ocicrypt import encrypt_layer as encrypt_blob
from guest._streams import ENCRYPTED_SUFFIX, LayerType
from kbs_protocol.keyprovider import PROVIDER_NAME, wrap_options

__all__ = ["Recipient", "encrypt_image", "jwe_recipient", "provider_recipient"]

# Wraps the private options JSON; returns (annotation name, annotation value).
Recipient = Callable[[bytes], tuple[str, str]]


def provider_recipient(kek: bytes, kid: str) -> Recipient:
    """The CoCo `attestation-agent` key provider's wrapping (what `kbs admin keyprovider` returns)."""

    def wrap(optsdata: bytes) -> tuple[str, str]:
        packet = wrap_options(kek, kid, optsdata).to_json()
        return KEYS_ANNOTATION_PREFIX + "provider." + PROVIDER_NAME, base64.b64encode(packet).decode()

    return wrap


def jwe_recipient(public_key_pem: bytes) -> Recipient:
    """ocicrypt's `jwe:` recipient: RSA-OAEP (RSA keys) or ECDH-ES+A256KW (EC keys), A256GCM, JSON serialization."""
    try:
        key: RSAKey | ECKey = RSAKey.import_key(public_key_pem)
        alg = "RSA-OAEP"
    except JoseError:
        key, alg = ECKey.import_key(public_key_pem), "ECDH-ES+A256KW"

    def wrap(optsdata: bytes) -> tuple[str, str]:
        obj = jwe.FlattenedJSONEncryption({"enc": "A256GCM"}, optsdata)
        obj.add_recipient({"alg": alg}, key)  # per-recipient header, as go-jose writes it
        out = jwe.encrypt_json(obj, None, algorithms=[alg, "A256GCM"])
        return KEYS_ANNOTATION_PREFIX + "jwe", base64.b64encode(json.dumps(out).encode()).decode()

    return wrap


def encrypt_image(source: Path, destination: Path, recipient: Recipient, tag: str | None = None) -> None:
    """Encrypt every layer of the image at `source` (an OCI layout) into a new layout at `destination`."""
    layout = OciLayout(source)
    manifest = layout.resolve(tag)
    for desc in manifest.layers:
        if LayerType.of(desc.media_type).encrypted:
            raise LayoutError(f"layer {desc.digest} is already encrypted")
    writer = LayoutWriter(destination)
    try:
        shutil.copyfile(layout.blob_path(manifest.config), writer.blob_path(manifest.config.digest))
        layers: list[Descriptor] = []
        for index, desc in enumerate(manifest.layers):
            scratch = writer.scratch(f"enc-{index}")
            symkey, nonce = os.urandom(SYMKEY_SIZE), os.urandom(NONCE_SIZE)
            plain_digest, public = encrypt_blob(layout.blob_path(desc), scratch, symkey, nonce)
            name, value = recipient(PrivateOptions(symkey, nonce, plain_digest).to_json())
            digest = "sha256:" + _sha256_file(scratch)
            size = scratch.stat().st_size
            writer.adopt(scratch, digest)
            annotations = {**desc.annotations, name: value, PUBOPTS_ANNOTATION: public.to_annotation()}
            layers.append(Descriptor(desc.media_type + ENCRYPTED_SUFFIX, digest, size, annotations, desc.extra))
        doc = dict(manifest.raw)
        doc["layers"] = [d.to_json() for d in layers]
        digest, size = writer.put_json(doc)
        annotations = dict(manifest.descriptor.annotations)
        if tag:
            annotations[REF_NAME_ANNOTATION] = tag
        writer.write_index([Descriptor(manifest.descriptor.media_type, digest, size, annotations)])
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _sha256_file(path: Path) -> str:
    import hashlib  # noqa: PLC0415

    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
