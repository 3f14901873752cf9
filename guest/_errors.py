"""The guest's error tree (one base, three kinds; the CLI maps every GuestError to exit status 1).

    GuestError
    ├── LayoutError        the image (layout or registry content) is missing, malformed, or a digest/size does not
    │                      match
    ├── RegistryError      the registry is unreachable, refuses us, or answers outside the distribution API
    ├── PolicyError        the containers-policy.json refuses the image, or the policy or one of its keys is unusable
    ├── DecryptionError    no usable key, a wrong key, a failed HMAC, a malformed encryption annotation
    └── UnsafeLayerError   a layer tries to leave the root filesystem or create what a rootfs must not hold

Messages name the OCI/ocicrypt field, the value found and the value expected; they never carry key material.
"""

from __future__ import annotations


class GuestError(Exception):
    """Base of every error the guest raises on purpose."""


class LayoutError(GuestError):
    """The image layout (index, manifest, config, blobs) is unusable."""


class RegistryError(GuestError):
    """A registry could not be reached, refused a request, or answered what the distribution API does not allow."""


class PolicyError(GuestError):
    """The signature policy refuses the image (unsigned, wrong key or identity), or the policy itself is unusable."""


class DecryptionError(GuestError):
    """A layer could not be decrypted and verified; nothing of it was released."""


class UnsafeLayerError(GuestError):
    """A layer's tar stream would escape the root filesystem or holds a forbidden entry."""


class ImageRefError(ValueError):
    """An image reference is not `oci:DIR[:TAG]` or `docker://...` (a usage error: exit status 2)."""
