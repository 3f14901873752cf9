"""Helpers shared by the integration tests: the secret they provision, the check of trustee's error shape, and the
PCR value that runtime measurements (CoCo AAEL) must leave."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import httpx

import policies
from kbs.protocol import ERROR_TYPE_PREFIX

if TYPE_CHECKING:
    from tests.integration._kbs_server import KbsServer

SECRET = b"the image key \x00\x01\x02"
DEMO_POLICY = policies.load("demo_resource_allow_sample.rego")


def provision(server: KbsServer) -> None:
    """SECRET at default/key/1, released to the sample TEE at svn 1 (the demo policy)."""
    server.admin.put_resource("default/key/1", SECRET)
    server.admin.put_reference_value("sample_svn", ["1"])
    server.admin.set_resource_policy(DEMO_POLICY)


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
