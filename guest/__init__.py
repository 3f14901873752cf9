"""The image side of Veritee: ocicrypt layer decryption, OCI image layouts, safe unpacking.

    >>> from pathlib import Path
    >>> from guest import ImageRef, Keyring, unpack_image
    >>> keyring = Keyring(key_refs=["file:/secrets/image-key.pem"])          # or fetcher=KbsClient(url)
    >>> unpack_image(ImageRef.parse("oci:/images/app:v1"), Path("/run/app/rootfs"), keyring)  # doctest: +SKIP

Errors (see guest._errors): GuestError > LayoutError, DecryptionError, UnsafeLayerError.
"""

from guest._errors import DecryptionError, GuestError, ImageRefError, LayoutError, UnsafeLayerError
from guest._image import DecryptedImage, decrypt_image, unpack_image
from guest._keys import Keyring, ResourceFetcher
from guest._layout import Descriptor, ImageRef, Manifest, OciLayout
from guest._ocicrypt import PrivateOptions, PublicOptions, decrypt_layer, encrypt_layer

__all__ = [
    "DecryptedImage",
    "DecryptionError",
    "Descriptor",
    "GuestError",
    "ImageRef",
    "ImageRefError",
    "Keyring",
    "LayoutError",
    "Manifest",
    "OciLayout",
    "PrivateOptions",
    "PublicOptions",
    "ResourceFetcher",
    "UnsafeLayerError",
    "decrypt_image",
    "decrypt_layer",
    "encrypt_layer",
    "unpack_image",
]
