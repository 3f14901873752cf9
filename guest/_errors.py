"""The guest's error tree (one base, three kinds; the CLI maps every GuestError to exit status 1).

    GuestError
    ├── LayoutError        the OCI image layout is missing, malformed, or a digest/size does not match
    ├── DecryptionError    no usable key, a wrong key, a failed HMAC, a malformed encryption annotation
    └── UnsafeLayerError   a layer tries to leave the root filesystem or create what a rootfs must not hold

Messages name the OCI/ocicrypt field, the value found and the value expected; they never carry key material.
"""

from __future__ import annotations


class GuestError(Exception):
    """Base of every error the guest raises on purpose."""


class LayoutError(GuestError):
    """The image layout (index, manifest, config, blobs) is unusable."""


class DecryptionError(GuestError):
    """A layer could not be decrypted and verified; nothing of it was released."""


class UnsafeLayerError(GuestError):
    """A layer's tar stream would escape the root filesystem or holds a forbidden entry."""


class ImageRefError(ValueError):
    """An image reference is not `oci:DIR[:TAG]` (a usage error: exit status 2)."""
