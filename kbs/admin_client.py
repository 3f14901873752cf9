"""A small client of the admin API, used by `kbs admin` and by tests.

>>> AdminClient("http://127.0.0.1:8080", "token").base
'http://127.0.0.1:8080/kbs/v0'
"""

from __future__ import annotations

import base64
import ssl
from datetime import datetime
from typing import Any

import httpx

from .protocol import BASE_PATH, parse_resource_uri

__all__ = ["AUDIT_PAGE", "AdminClient", "AdminError", "tls_verify"]

AUDIT_PAGE = 1000  # the broker's most entries a page (kbs.services.audit.MAX_ENTRIES)


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's `verify` from True/False or the path of a CA certificate file (the broker's, for clients)."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


class AdminError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _tests(tests: dict[str, str] | None) -> dict[str, Any]:
    return {} if not tests else {"tests": {name: _b64url(source) for name, source in tests.items()}}


class AdminClient:
    def __init__(self, url: str, token: str, *, verify: bool | str = True, timeout: float = 30.0) -> None:
        self.base = url.rstrip("/") + BASE_PATH
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, verify=tls_verify(verify), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, self.base + path, **kwargs)
        except httpx.HTTPError as exc:
            raise AdminError(0, f"cannot reach the broker at {self.base}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text
            raise AdminError(response.status_code, detail)
        return response

    @staticmethod
    def _path(resource: str) -> str:
        return "/".join(parse_resource_uri(resource))

    def put_resource(self, resource: str, data: bytes) -> None:
        self._call("POST", f"/resource/{self._path(resource)}", content=data)

    def get_resource(self, resource: str, version: int | None = None) -> bytes:
        params = {} if version is None else {"version": version}
        return self._call("GET", f"/admin/resource/{self._path(resource)}", params=params).content

    def resource_versions(self, resource: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/admin/resource-versions/{self._path(resource)}").json()
        return result

    def restore_resource(self, resource: str, version: int | None = None) -> dict[str, Any]:
        body = {"version": version}
        result: dict[str, Any] = self._call("POST", f"/admin/resource-restore/{self._path(resource)}", json=body).json()
        return result

    def delete_resource(self, resource: str) -> None:
        self._call("DELETE", f"/resource/{self._path(resource)}")

    def list_resources(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/resources").json()
        return result

    def set_resource_policy(
        self, rego: str, scope: str | None = None, tests: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Set a resource policy; with `tests` (file name -> Rego), the broker runs them first. `{policy_id,
        version}`."""
        body: dict[str, Any] = {"policy": _b64url(rego), **_tests(tests)}
        if scope:
            body["scope"] = scope
        result: dict[str, Any] = self._call("POST", "/resource-policy", json=body).json()
        return result

    def set_attestation_policy(self, policy_id: str, rego: str, tests: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"policy_id": policy_id, "policy": _b64url(rego), "type": "rego", **_tests(tests)}
        result: dict[str, Any] = self._call("POST", "/attestation-policy", json=body).json()
        return result

    def get_policy(self, policy_id: str, version: int | None = None) -> str:
        params = {} if version is None else {"version": version}
        encoded = self._call("GET", f"/admin/policy/{policy_id}", params=params).json()["policy"]
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()

    def policy_versions(self, policy_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/admin/policy-versions/{policy_id}").json()
        return result

    def rollback_policy(self, policy_id: str, version: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/admin/policy-rollback/{policy_id}", json={"version": version}
        ).json()
        return result

    def list_policies(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/policies").json()
        return result

    def delete_policy(self, policy_id: str) -> None:
        self._call("DELETE", f"/admin/policy/{policy_id}")

    def put_reference_value(self, name: str, values: list[str], expires: datetime | None = None) -> None:
        body: dict[str, Any] = {"name": name, "values": values}
        if expires is not None:
            body["expires"] = expires.isoformat()
        self._call("POST", "/reference-value", json=body)

    def list_reference_values(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/reference-values").json()
        return result

    def delete_reference_value(self, name: str) -> None:
        self._call("DELETE", f"/admin/reference-value/{name}")

    def reference_value_versions(self, name: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/admin/reference-value-versions/{name}").json()
        return result

    def restore_reference_value(self, name: str, version: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/admin/reference-value-restore/{name}", json={"version": version}
        ).json()
        return result

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/admin/audit", params={"limit": limit}).json()
        return result

    def audit_verify(self, anchor: tuple[int, str] | None = None) -> dict[str, Any]:
        params = {} if anchor is None else {"anchor_id": anchor[0], "anchor_digest": anchor[1]}
        result: dict[str, Any] = self._call("GET", "/admin/audit/verify", params=params).json()
        return result

    def audit_export(self, after_id: int = 0, since: float | None = None) -> list[str]:
        """One page (up to AUDIT_PAGE entries after `after_id`), as the JSON lines the broker sent."""
        params: dict[str, Any] = {"after_id": after_id, "limit": AUDIT_PAGE}
        if since is not None:
            params["since"] = since
        return self._call("GET", "/admin/audit/export", params=params).text.splitlines()

    def list_decisions(
        self,
        *,
        kind: str | None = None,
        denied: bool = False,
        since: float | None = None,
        path: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"denied": denied, "limit": limit}
        params.update({k: v for k, v in {"kind": kind, "since": since, "path": path}.items() if v is not None})
        result: list[dict[str, Any]] = self._call("GET", "/admin/decisions", params=params).json()
        return result

    def get_decision(self, decision_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/admin/decision/{decision_id}").json()
        return result

    def explain_decision(self, decision_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/admin/decision/{decision_id}/explain").json()
        return result

    def policy_impact(
        self, kind: str, rego: str, policy_id: str | None = None, since: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": kind, "policy": _b64url(rego), "policy_id": policy_id, "since": since}
        result: dict[str, Any] = self._call("POST", "/admin/policy-impact", json=body).json()
        return result

    def rotate_signing_key(self) -> str:
        return str(self._call("POST", "/admin/signing-key/rotate").json()["kid"])
