"""`kbs admin ... keyprovider`: the image owner's side of ocicrypt's key-provider command protocol (docs/images.md).

skopeo (ocicrypt >= 1.1) runs this command for `--encryption-key provider:attestation-agent:kbs:///R/T/T` with
the keywrap request on stdin. The KEK is the KBS resource at that key id: read through the admin API, or, when
absent, a fresh random 32-byte key stored there first. The private layer options are wrapped with AES-256-GCM
under it and the CoCo annotation returned; the guest's `attestation-agent keyprovider` (or `guest`) unwraps it
after attesting. An ocicrypt key-provider configuration for skopeo:

    {"key-providers": {"attestation-agent": {"cmd": {"path": "kbs",
        "args": ["admin", "--url", "https://kbs.example", "--token", "admin.token", "keyprovider"]}}}}
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kbs_protocol.keyprovider import (
    KEK_SIZE,
    KeyProviderError,
    KeyWrapRequest,
    keywrap_response,
    parse_request,
    wrap_options,
)

from ._admin_cli import register
from .admin_client import AdminClient, AdminError

__all__ = ["kek_for", "keywrap"]

HTTP_NOT_FOUND = 404


def kek_for(client: AdminClient, kid: str) -> bytes:
    """The KEK stored at `kid`, created (random, AES-256) when the broker has none there."""
    try:
        return client.get_resource(kid)
    except AdminError as exc:
        if exc.status != HTTP_NOT_FOUND:
            raise
    kek = os.urandom(KEK_SIZE)
    client.put_resource(kid, kek)
    return kek


def keywrap(request: bytes, client: AdminClient) -> bytes:
    """One keywrap exchange: request JSON in, response JSON out (KeyProviderError on a refusal)."""
    parsed = parse_request(request)
    if not isinstance(parsed, KeyWrapRequest):
        raise KeyProviderError(
            "request op: 'keyunwrap' happens in the guest (attestation-agent keyprovider), not at the image owner"
        )
    kids = parsed.key_ids()
    if len(kids) != 1:
        raise KeyProviderError(f"keywrapparams.ec.Parameters: {len(kids)} key ids {list(kids)}, expected exactly one")
    packet = wrap_options(kek_for(client, kids[0]), kids[0], parsed.optsdata)
    return keywrap_response(packet.to_json())


def _handle(_args: argparse.Namespace, client: AdminClient) -> int:
    try:
        response = keywrap(sys.stdin.buffer.read(), client)
    except KeyProviderError as exc:
        print(f"kbs admin keyprovider: {exc}", file=sys.stderr)
        return 1
    except AdminError as exc:
        print(f"kbs admin keyprovider: the broker refused: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(response)
    sys.stdout.buffer.flush()
    return 0


@register
def _keyprovider(sub: Any) -> None:
    p = sub.add_parser(
        "keyprovider",
        help="ocicrypt key-provider command (keywrap) for skopeo --encryption-key provider:attestation-agent:kbs:///R/T/T",
    )
    p.set_defaults(handler=_handle)
