"""The guest side of ocicrypt's key-provider protocol for the CoCo `attestation-agent` provider (docs/images.md).

`keyunwrap` reads the provider's annotation, fetches the key-encryption key named by its `kid` from the KBS
(the fetcher attests first) and returns the unwrapped private layer options. `keywrap` is the image owner's
business (`kbs admin keyprovider`) and is refused here.

Example (the fetcher is normally `attestation_agent.kbs_client.KbsClient(url)`):
    >>> class Fetcher:
    ...     def get_resource(self, uri: str) -> bytes:
    ...         return bytes(32)
    >>> packet = wrap_options(bytes(32), "kbs:///default/key/1", b"opts")
    >>> unwrap_annotation(packet.to_json(), Fetcher())
    b'opts'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from kbs_protocol.keyprovider import (
    AnnotationPacket,
    KeyProviderError,
    KeyUnwrapRequest,
    keyunwrap_response,
    parse_request,
    unwrap_options,
    wrap_options,
)

__all__ = ["KeyProviderError", "ResourceFetcher", "handle_request", "unwrap_annotation", "wrap_options"]


class ResourceFetcher(Protocol):
    """Anything that returns a KBS resource's bytes for `kbs:///R/T/T` (the agent's KbsClient)."""

    def get_resource(self, uri: str) -> bytes: ...


def unwrap_annotation(annotation: bytes, fetcher: ResourceFetcher) -> bytes:
    """The private layer options in an `attestation-agent` annotation, unwrapped with the KEK at its kid."""
    packet = AnnotationPacket.from_json(annotation)
    return unwrap_options(fetcher.get_resource(packet.kid), packet)


def handle_request(request: bytes, fetcher: Callable[[], ResourceFetcher], *, encoding: str = "base64") -> bytes:
    """One key-provider exchange: the request JSON in, the response JSON out (KeyProviderError on refusal).

    `fetcher` is called only once a well-formed keyunwrap request arrived, so a malformed request costs no
    attestation round trip. `encoding` writes the unwrapped options as base64 (Go ocicrypt, skopeo) or as an
    integer array (Rust ocicrypt as image-rs runs it; Go reads that too).
    """
    parsed = parse_request(request)
    if not isinstance(parsed, KeyUnwrapRequest):
        raise KeyProviderError(
            "request op: 'keywrap' is the image owner's operation; use `kbs admin ... keyprovider` to encrypt"
        )
    return keyunwrap_response(unwrap_annotation(parsed.annotation, fetcher()), encoding)
