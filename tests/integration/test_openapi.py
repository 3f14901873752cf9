"""/openapi.json documents the whole API: every body in and out, every error status with trustee's error schema,
and the admin bearer scheme; and the layered broker still answers byte for byte what trustee's clients expect."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration._guest import Guest
from tests.integration._helpers import assert_error
from tests.integration._kbs_server import KbsServer

ERROR_REF = "#/components/schemas/ErrorBody"
# Operations that answer 200 with an empty body (trustee's admin writes, and Veritee's deletes).
EMPTY_SUCCESS = {
    ("post", "/kbs/v0/resource/{path}"),
    ("delete", "/kbs/v0/resource/{path}"),
    ("delete", "/kbs/v0/admin/policy/{policy_id}"),
    ("delete", "/kbs/v0/admin/reference-value/{name}"),
}
# POSTs that take no body.
NO_BODY = {("post", "/kbs/v0/admin/signing-key/rotate")}
SERVED = {
    ("post", "/kbs/v0/auth"),
    ("post", "/kbs/v0/attest"),
    ("get", "/kbs/v0/resource/{path}"),
    ("post", "/kbs/v0/tpm/enroll"),
    ("post", "/kbs/v0/tpm/activate"),
    ("post", "/kbs/v0/resource/{path}"),
    ("delete", "/kbs/v0/resource/{path}"),
    ("post", "/kbs/v0/resource-policy"),
    ("post", "/kbs/v0/attestation-policy"),
    ("post", "/kbs/v0/reference-value"),
    ("get", "/kbs/v0/reference-value/{name}"),
    ("get", "/kbs/v0/resource-policy"),
    ("get", "/kbs/v0/admin/resources"),
    ("get", "/kbs/v0/admin/resource/{path}"),
    ("get", "/kbs/v0/admin/policies"),
    ("get", "/kbs/v0/admin/policy/{policy_id}"),
    ("delete", "/kbs/v0/admin/policy/{policy_id}"),
    ("get", "/kbs/v0/admin/reference-values"),
    ("delete", "/kbs/v0/admin/reference-value/{name}"),
    ("get", "/kbs/v0/admin/resource-versions/{path}"),
    ("post", "/kbs/v0/admin/resource-restore/{path}"),
    ("get", "/kbs/v0/admin/policy-versions/{policy_id}"),
    ("post", "/kbs/v0/admin/policy-rollback/{policy_id}"),
    ("get", "/kbs/v0/admin/reference-value-versions/{name}"),
    ("post", "/kbs/v0/admin/reference-value-restore/{name}"),
    ("get", "/kbs/v0/admin/audit"),
    ("get", "/kbs/v0/admin/audit/verify"),
    ("get", "/kbs/v0/admin/audit/export"),
    ("get", "/kbs/v0/admin/decisions"),
    ("get", "/kbs/v0/admin/decision/{decision_id}"),
    ("get", "/kbs/v0/admin/decision/{decision_id}/explain"),
    ("post", "/kbs/v0/admin/policy-impact"),
    ("post", "/kbs/v0/admin/signing-key/rotate"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/.well-known/jwks.json"),
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("openapi")) as server:
        yield server


@pytest.fixture(scope="module")
def spec(broker: KbsServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(broker.url + "/openapi.json").json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its top-level $ref followed (and the reference checked to exist)."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/"), ref
    target: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return target


def test_every_served_operation_is_documented(spec: dict[str, Any]) -> None:
    assert {(method, path) for method, path, _ in operations(spec)} == SERVED


def test_every_success_response_has_a_schema(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        success = operation["responses"].get("200")
        assert success is not None, (method, path)
        if (method, path) in EMPTY_SUCCESS:
            assert "content" not in success, (method, path)
            assert "empty" in success["description"], (method, path)
            continue
        assert success.get("content"), (method, path)
        for media_type, body in success["content"].items():
            assert resolve(spec, body["schema"]), (method, path, media_type)


def test_every_body_taking_operation_documents_its_body(spec: dict[str, Any]) -> None:
    for method, path, operation in operations(spec):
        takes_body = method in ("post", "put", "patch") and (method, path) not in NO_BODY
        if not takes_body:
            assert "requestBody" not in operation, (method, path)
            continue
        body = operation.get("requestBody")
        assert body is not None, (method, path)
        assert body["required"] is True, (method, path)
        for media_type, content in body["content"].items():
            schema = resolve(spec, content["schema"])
            assert schema, (method, path, media_type)
            if media_type == "application/json":
                assert schema["type"] == "object", (method, path)
                assert schema["properties"], (method, path)
            else:
                assert (media_type, schema) == ("application/octet-stream", {"type": "string", "format": "binary"})


def test_admin_operations_require_the_bearer_scheme(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["admin-jwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    admin = [(m, p, o) for m, p, o in operations(spec) if "admin" in o["tags"]]
    assert len(admin) == 28
    for method, path, operation in admin:
        assert operation.get("security") == [{"admin-jwt": []}], (method, path)
    for method, path, operation in operations(spec):
        if "admin" not in operation["tags"]:
            assert {"admin-jwt": []} not in operation.get("security", []), (method, path)
    resource = spec["paths"]["/kbs/v0/resource/{path}"]["get"]
    assert resource["security"] == [{"kbs-session": []}, {"ear": []}]


def test_error_responses_use_trustees_error_schema(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"type", "detail"}
    seen: set[str] = set()
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                seen.add(status)
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path)
        assert "422" not in operation["responses"], (method, path)  # validation failures are 400s
    assert seen >= {"400", "401", "403", "404", "413", "429", "503"}
    for name in ("HTTPValidationError", "ValidationError"):
        assert name not in spec["components"]["schemas"]


def test_wire_shapes_keep_trustees_keys(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert set(schemas["AuthRequest"]["properties"]) == {"version", "tee", "extra-params"}
    assert set(schemas["Challenge"]["properties"]) == {"nonce", "extra-params"}
    assert set(schemas["AttestationRequest"]["properties"]) == {"init-data", "runtime-data", "tee-evidence"}
    assert set(schemas["RuntimeData"]["properties"]) == {"nonce", "tee-pubkey"}
    assert set(schemas["TeeEvidence"]["properties"]) == {"primary_evidence", "additional_evidence"}
    assert set(schemas["Jwe"]["properties"]) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}


def test_answers_byte_for_byte(broker: KbsServer, tmp_path: Path) -> None:
    assert httpx.get(broker.url + "/healthz").content == b'{"status":"ok"}'
    assert httpx.get(broker.url + "/readyz").content == b'{"status":"ready"}'
    guest = Guest(broker.url)
    challenge = guest.auth()
    assert re.fullmatch(rb'\{"nonce":"[A-Za-z0-9+/]{43}=","extra-params":""\}', challenge.content)
    cookie = challenge.headers["set-cookie"]
    assert re.fullmatch(r"kbs-session-id=[\w-]{43}; HttpOnly; Max-Age=300; Path=/kbs/v0; SameSite=strict", cookie)
    attested = guest.attest(challenge.json()["nonce"])
    assert re.fullmatch(rb'\{"token":"[\w-]+\.[\w-]+\.[\w-]+"\}', attested.content)
    broker.admin.put_resource("default/key/1", b"x")
    put = httpx.post(
        broker.url + "/kbs/v0/resource/default/key/2", content=b"y", headers={"Authorization": f"Bearer {broker.token}"}
    )
    assert (put.status_code, put.content, put.headers.get("content-type")) == (200, b"", None)
    refused = httpx.post(broker.url + "/kbs/v0/auth", content=b"[]")
    assert refused.status_code == 400
    assert refused.content == (
        b'{"type":"https://github.com/confidential-containers/kbs/errors/InvalidRequest",'
        b'"detail":"malformed request body at body: Input should be an object"}'
    )


def test_framework_refusals_answer_in_trustee_error_shape(broker: KbsServer) -> None:
    """No route and a method a path does not take: trustee's error body, and an Allow naming every method."""
    assert_error(httpx.get(broker.url + "/kbs/v0/no-such-endpoint"), 404, "ResourceNotFound", "no such endpoint")
    # a resource path with a newline matches no route
    assert_error(httpx.delete(broker.url + "/kbs/v0/resource/a%0Ab/c/d"), 404, "ResourceNotFound")
    refused = httpx.put(broker.url + "/kbs/v0/resource/default/key/1", content=b"x")
    assert_error(refused, 405, "InvalidRequest", "PUT is not a method")
    assert {m.strip() for m in refused.headers["Allow"].split(",")} >= {"GET", "POST", "DELETE"}


def test_resource_paths_are_documented_with_their_pattern(spec: dict[str, Any], broker: KbsServer) -> None:
    """What the broker accepts as repo/type/tag is in the document (schemathesis generates from it)."""
    documented = [
        parameter["schema"]["pattern"]
        for _method, _path, operation in operations(spec)
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "path"
    ]
    assert len(documented) == 7  # trustee's GET, POST, DELETE; the admin read, versions, restore; decisions' filter
    pattern = re.compile(documented[0])
    assert set(documented) == {pattern.pattern}
    assert pattern.fullmatch("default/key/1")
    assert not pattern.fullmatch("default/key")
    assert not pattern.fullmatch("default/../1")
    # the broker's own check, not the framework's, still refuses a path, naming the segment at fault
    admin = {"Authorization": f"Bearer {broker.token}"}
    refused = httpx.get(broker.url + "/kbs/v0/admin/resource/default/.key/1", headers=admin)
    assert_error(refused, 400, "InvalidRequest", "resource type '.key' does not match")
