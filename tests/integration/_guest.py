"""A test-side KBS guest written against the wire format directly (httpx + jwcrypto), independent of the agent,
so the broker is checked against the protocol rather than against our own client."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

from kbs_protocol import runtime_digest
from verifier.binding import expected_report_data

__all__ = ["OPEN_GUESTS", "Guest", "sample_evidence"]

# Guests created by a test; the integration conftest closes them after each test.
OPEN_GUESTS: list[Guest] = []


def sample_evidence(report_data: bytes) -> dict[str, str]:
    return {"svn": "1", "report_data": base64.b64encode(report_data).decode()}


class Guest:
    def __init__(self, url: str, key: jwcrypto_jwk.JWK | None = None) -> None:
        self.http = httpx.Client(base_url=url + "/kbs/v0", timeout=30)
        self.key = key or jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
        OPEN_GUESTS.append(self)

    def close(self) -> None:
        self.http.close()

    @property
    def pubkey(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(self.key.export_public())
        return public

    def auth(self, tee: str = "sample", version: str = "0.4.0") -> httpx.Response:
        return self.http.post("/auth", json={"version": version, "tee": tee, "extra-params": ""})

    def attest_body(
        self, nonce: str, *, bind_nonce: str | None = None, bind_key: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        digest = runtime_digest(bind_nonce or nonce, bind_key or self.pubkey)
        return {
            "init-data": None,
            "runtime-data": {"nonce": nonce, "tee-pubkey": self.pubkey},
            "tee-evidence": {
                "primary_evidence": sample_evidence(expected_report_data("sample", digest)),
                "additional_evidence": "",
            },
        }

    def attest(self, nonce: str, **kwargs: Any) -> httpx.Response:
        return self.http.post("/attest", json=self.attest_body(nonce, **kwargs))

    def handshake(self) -> str:
        challenge = self.auth()
        assert challenge.status_code == 200, challenge.text
        response = self.attest(challenge.json()["nonce"])
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def resource(self, path: str, token: str | None = None, *, cookies: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if not cookies:
            return httpx.get(f"{self.http.base_url}resource/{path}", headers=headers, timeout=30)
        return self.http.get(f"/resource/{path}", headers=headers)

    def decrypt(self, body: dict[str, str]) -> bytes:
        token = jwcrypto_jwe.JWE()
        token.deserialize(json.dumps(body), key=self.key)
        return bytes(token.payload)
