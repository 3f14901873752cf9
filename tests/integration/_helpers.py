"""Helpers shared by the integration tests: the secret they provision, the check of trustee's error shape, and the
PCR value that runtime measurements (CoCo AAEL) must leave."""

from __future__ import annotations

import hashlib

import httpx

from kbs.protocol import ERROR_TYPE_PREFIX

SECRET = b"the image key \x00\x01\x02"


def assert_error(response: httpx.Response, status: int, variant: str, detail: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERROR_TYPE_PREFIX + variant, body
    assert detail.lower() in body["detail"].lower(), body


def aael_pcr(events: list[tuple[str, str, str]]) -> bytes:
    """The SHA-256 PCR, from zero, after these (domain, operation, content) runtime measurements: each extends
    the digest of its TCG_PCClientTaggedEvent (taggedEventID "AAEL" little-endian, the text's length, the text
    `domain operation content`), as guest-components measures them; computed here by hand, not by the agent."""
    pcr = bytes(32)
    for event in events:
        text = " ".join(event).encode()
        tagged = b"LEAA" + len(text).to_bytes(4, "little") + text
        pcr = hashlib.sha256(pcr + hashlib.sha256(tagged).digest()).digest()
    return pcr
