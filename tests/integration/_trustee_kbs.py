"""A trustee-shaped KBS on loopback for the agent's tests: the RCAR exchange as trustee's KBS speaks it when its
attestation service selects the runtime-data hash (Intel Trust Authority selects SHA-512 for TDX, SHA-256 for
SGX; trustee kbs/src/attestation/intel_trust_authority). It checks the binding with the hash it selected, the
way trustee's attestation service does, and releases one resource as a JWE to the tee-pubkey.

Not a broker: no policies, no verification beyond the sample evidence's report data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import rfc8785

from kbs.jwe import encrypt_for

__all__ = ["TrusteeKbs"]

_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TrusteeKbs:
    """`selected`: what the challenge's extra-params carry (a dict, or "" as trustee's built-in service)."""

    def __init__(self, selected: object, secret: bytes) -> None:
        self.selected = selected
        self.secret = secret
        self.requests: list[tuple[str, Any]] = []  # (path, JSON body) as received
        self.bound_with: str | None = None
        self._nonce = ""
        self._pubkey: dict[str, Any] | None = None
        self._token = ""
        kbs = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return

            def _reply(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if self.path.endswith("/auth"):
                    self.send_header("Set-Cookie", "kbs-session-id=trustee; HttpOnly")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kbs.requests.append((self.path, body))
                if self.path == "/kbs/v0/auth":
                    kbs._nonce = base64.b64encode(secrets.token_bytes(32)).decode()
                    self._reply(200, {"nonce": kbs._nonce, "extra-params": kbs.selected})
                elif self.path == "/kbs/v0/attest":
                    self._reply(*kbs._attest(body))
                else:
                    self._reply(404, {"type": "NotFound", "detail": self.path})

            def do_GET(self) -> None:
                kbs.requests.append((self.path, None))
                # trustee's get_attest_token_from_session: the session cookie of an attested session, else a Bearer.
                by_cookie = kbs._token and "kbs-session-id=trustee" in (self.headers.get("Cookie") or "")
                by_bearer = self.headers.get("Authorization") == f"Bearer {kbs._token}"
                if not (by_cookie or by_bearer) or kbs._pubkey is None:
                    self._reply(401, {"type": "TokenNotFound", "detail": "no token"})
                    return
                self._reply(200, encrypt_for(kbs._pubkey, kbs.secret))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _attest(self, body: dict[str, Any]) -> tuple[int, object]:
        selected = self.selected if isinstance(self.selected, dict) else {}
        algorithm = selected.get("selected-hash-algorithm", "sha384")
        runtime = body["runtime-data"]
        evidence = body["tee-evidence"]
        document = {
            "additional-evidence": evidence["additional_evidence"],
            "nonce": runtime["nonce"],
            "tee-pubkey": runtime["tee-pubkey"],
        }
        digest = _HASHES[str(algorithm).lower()](rfc8785.dumps(document)).digest()
        carried = base64.b64decode(evidence["primary_evidence"]["report_data"])
        if runtime["nonce"] != self._nonce or carried != digest:
            return 401, {"type": "AttestationFailed", "detail": f"report data is not the {algorithm} binding"}
        self.bound_with = str(algorithm).lower()
        self._pubkey = runtime["tee-pubkey"]
        claims = {"exp": int(time.time()) + 300, "iss": "trustee-shaped test KBS"}
        self._token = ".".join((_b64url(b'{"alg":"none"}'), _b64url(json.dumps(claims).encode()), ""))
        return 200, {"token": self._token}

    def __enter__(self) -> TrusteeKbs:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
