"""Helpers shared by the integration tests: the secret they provision, and the check of trustee's error shape."""

from __future__ import annotations

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
