"""The image side of Veritee: registry pulls under a signature policy, ocicrypt layer decryption, OCI image
layouts, safe unpacking.

    >>> from pathlib import Path
    >>> from guest import ImageRef, Keyring, unpack_image
    >>> keyring = Keyring(key_refs=["file:/secrets/image-key.pem"])          # or fetcher=KbsClient(url)
    >>> unpack_image(ImageRef.parse("oci:/images/app:v1"), Path("/run/app/rootfs"), keyring)  # doctest: +SKIP

    >>> from guest import PullOptions, Resources, open_source
    >>> options = PullOptions(policy="/etc/containers/policy.json", insecure_registries=("127.0.0.1:5000",))
    >>> with open_source("docker://127.0.0.1:5000/app:v1", options, Resources()) as image:  # doctest: +SKIP
    ...     unpack_image(image, Path("/run/app/rootfs"), keyring)

Errors (see guest._errors): GuestError > LayoutError, RegistryError, PolicyError, DecryptionError, UnsafeLayerError.
"""

from guest._errors import (
    DecryptionError,
    GuestError,
    ImageRefError,
    LayoutError,
    PolicyError,
    RegistryError,
    UnsafeLayerError,
)
from guest._image import DecryptedImage, decrypt_image, unpack_image
from guest._keys import Keyring, ResourceFetcher
from guest._layout import Descriptor, ImageRef, Manifest, OciLayout
from guest._ocicrypt import PrivateOptions, PublicOptions, decrypt_layer, encrypt_layer
from guest._policy import Policy
from guest._pull import PullOptions, Resources, open_source
from guest._reference import DockerReference, Platform

__all__ = [
    "DecryptedImage",
    "DecryptionError",
    "Descriptor",
    "DockerReference",
    "GuestError",
    "ImageRef",
    "ImageRefError",
    "Keyring",
    "LayoutError",
    "Manifest",
    "OciLayout",
    "Platform",
    "Policy",
    "PolicyError",
    "PrivateOptions",
    "PublicOptions",
    "PullOptions",
    "RegistryError",
    "ResourceFetcher",
    "Resources",
    "UnsafeLayerError",
    "decrypt_image",
    "decrypt_layer",
    "encrypt_layer",
    "open_source",
    "unpack_image",
]
