"""Helpers shared by the integration tests: the secret they provision, and the check of trustee's error shape."""

from __future__ import annotations

import httpx

from kbs.protocol import ERROR_TYPE_PREFIX

SECRET = b"the image key \x00\x01\x02"


def assert_error(response: httpx.Response, status: int, variant: str, detail: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERROR_TYPE_PREFIX + variant, body
    assert detail.lower() in body["detail"].lower(), body
