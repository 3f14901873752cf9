"""The admin API: trustee's endpoints (resources as raw bytes, resource and attestation policies, reference values)
and Veritee's list/get/delete, rotation and audit. Every route needs an admin bearer JWT whose role grants the
route's permission; no admin key configured answers 403 AdminDenied."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..admin_auth import Permission
from ..errors import KbsError
from ..protocol import BASE_PATH
from ._params import JSON_INTEGER, IntParam, NumberParam
from .deps import Admin, AdminCaller, JsonBody, RawBody, ResourcePath
from .errors import error_responses
from .schemas import (
    MAX_ID,
    MAX_VERSION,
    AttestationPolicyBody,
    AuditEntry,
    AuditVerification,
    PolicyDocument,
    PolicyId,
    PolicyInfo,
    PolicyVersionInfo,
    ReferenceValueBody,
    ReferenceValueInfo,
    ReferenceValuesStored,
    ReferenceValueStored,
    ReferenceValueVersionInfo,
    ResourceInfo,
    ResourcePolicyBody,
    ResourceVersionInfo,
    RestoreBody,
    RollbackBody,
    RotatedKey,
)

__all__ = ["router"]

router = APIRouter(prefix=BASE_PATH, tags=["admin"])

_BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
_EMPTY = "done; the body is empty"
_NDJSON = "application/x-ndjson"


def _caller(permission: Permission) -> Any:
    return Depends(AdminCaller(permission))


ResourceWriter = Annotated[str, _caller(Permission.RESOURCE_WRITE)]
ResourceReader = Annotated[str, _caller(Permission.RESOURCE_READ)]
PolicyWriter = Annotated[str, _caller(Permission.POLICY_WRITE)]
PolicyReader = Annotated[str, _caller(Permission.POLICY_READ)]
ReferenceWriter = Annotated[str, _caller(Permission.REFERENCE_WRITE)]
ReferenceReader = Annotated[str, _caller(Permission.REFERENCE_READ)]
Auditor = Annotated[str, _caller(Permission.AUDIT_READ)]
KeyRotator = Annotated[str, _caller(Permission.KEYS_ROTATE)]
# What trustee's admin endpoints take, and the admin reads: repo/type/tag checked on the raw path.
TrusteePath = Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/resource/"))]
AdminPath = Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/admin/resource/"))]
VersionsPath = Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/admin/resource-versions/"))]
RestorePath = Annotated[str, Depends(ResourcePath(f"{BASE_PATH}/admin/resource-restore/"))]
Version = Annotated[
    Annotated[int, Field(ge=1, le=MAX_VERSION), JSON_INTEGER] | None,
    Query(description="a kept version (numbered from 1); absent: the current one"),
]
# The JSON bodies, each read by JsonBody (400 InvalidRequest naming the first bad field).
ResourcePolicy = Annotated[ResourcePolicyBody, Depends(JsonBody(ResourcePolicyBody))]
AttestationPolicy = Annotated[AttestationPolicyBody, Depends(JsonBody(AttestationPolicyBody))]
ReferenceValue = Annotated[ReferenceValueBody, Depends(JsonBody(ReferenceValueBody))]
Restore = Annotated[RestoreBody, Depends(JsonBody(RestoreBody))]
Rollback = Annotated[RollbackBody, Depends(JsonBody(RollbackBody))]


def _empty(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The responses of a route answering 200 with an empty body (trustee's admin writes, and Veritee's deletes)."""
    return {200: {"description": _EMPTY}, **error_responses(*statuses)}


# -- trustee's endpoints -------------------------------------------------------------------------------------------


@router.post(
    "/resource/{path:path}",
    response_class=Response,
    responses=_empty(400, 401, 403, 413, 503),
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": _BINARY}}}},
    summary="Store a resource (the body, raw bytes), sealed under the key-encryption key",
)
async def put_resource(actor: ResourceWriter, path: TrusteePath, value: RawBody, admin: Admin) -> Response:
    await run_in_threadpool(admin.put_resource, actor, path, value, time.time())
    return Response(status_code=200)


@router.delete(
    "/resource/{path:path}",
    response_class=Response,
    responses=_empty(400, 401, 403, 404, 503),
    summary="Delete a resource",
)
async def delete_resource(actor: ResourceWriter, path: TrusteePath, admin: Admin) -> Response:
    await run_in_threadpool(admin.delete_resource, actor, path, time.time())
    return Response(status_code=200)


@router.post(
    "/resource-policy",
    response_model=PolicyId,
    responses=error_responses(400, 401, 403, 413, 503),
    summary="Set the resource policy (Rego, base64url), for every path or for a scope (Veritee's `scope`)",
)
async def set_resource_policy(actor: PolicyWriter, body: ResourcePolicy, admin: Admin) -> PolicyId:
    policy_id, version = await run_in_threadpool(
        admin.set_resource_policy, actor, body.policy, body.scope, time.time(), body.tests
    )
    return PolicyId(policy_id=policy_id, version=version)


@router.post(
    "/attestation-policy",
    response_model=PolicyId,
    responses=error_responses(400, 401, 403, 413, 503),
    summary="Set an attestation policy (Rego, base64url) by id: a TEE name or `default`",
)
async def set_attestation_policy(
    actor: PolicyWriter,
    body: AttestationPolicy,
    admin: Admin,
) -> PolicyId:
    policy_id, version = await run_in_threadpool(
        admin.set_attestation_policy, actor, body.policy_id, body.policy, body.type, time.time(), body.tests
    )
    return PolicyId(policy_id=policy_id, version=version)


@router.post(
    "/reference-value",
    response_model=ReferenceValueStored | ReferenceValuesStored,
    responses=error_responses(400, 401, 403, 413, 503),
    summary="Replace the accepted values of reference value names: Veritee's one name with an optional expiry, "
    "or trustee's RVPS message (version 0.1.0, type sample, base64 payload of name -> value)",
)
async def put_reference_value(
    actor: ReferenceWriter,
    body: ReferenceValue,
    admin: Admin,
) -> ReferenceValueStored | ReferenceValuesStored:
    now = time.time()
    if body.payload is not None:
        return await run_in_threadpool(
            admin.register_reference_values, actor, str(body.version), str(body.type), body.payload, now
        )
    return await run_in_threadpool(
        admin.put_reference_values, actor, str(body.name), body.values or [], body.expires, now
    )


@router.get(
    "/reference-value/{name}",
    response_model=list[str],
    responses=error_responses(401, 403, 404, 503),
    summary="The accepted values of a reference value name that have not expired (what query_reference_value sees)",
)
async def get_reference_value(_actor: ReferenceReader, name: str, admin: Admin) -> list[str]:
    return await run_in_threadpool(admin.reference_value, name, time.time())


@router.get(
    "/resource-policy",
    response_model=PolicyDocument,
    responses=error_responses(401, 403, 503),
    summary="The resource policy for every path (the stored one, else the shipped default), its source base64url",
)
async def get_resource_policy(_actor: PolicyReader, admin: Admin) -> PolicyDocument:
    return await run_in_threadpool(admin.resource_policy)


# -- Veritee's list/get/delete ---------------------------------------------------------------------------------


@router.get(
    "/admin/resources",
    response_model=list[ResourceInfo],
    responses=error_responses(401, 403, 503),
    summary="Every resource's path, size and update time (never the value)",
)
async def list_resources(_actor: ResourceReader, admin: Admin) -> list[ResourceInfo]:
    return await run_in_threadpool(admin.list_resources)


@router.get(
    "/admin/resource/{path:path}",
    response_class=Response,
    responses={
        200: {"description": "the resource's value", "content": {"application/octet-stream": {"schema": _BINARY}}},
        **error_responses(400, 401, 403, 404, 503),
    },
    summary="Read a resource's value, the current one or a kept `version` (audited)",
)
async def read_resource(actor: ResourceReader, path: AdminPath, admin: Admin, version: Version = None) -> Response:
    if version is None:
        value = await run_in_threadpool(admin.get_resource, actor, path, time.time())
    else:
        value = await run_in_threadpool(admin.history.resource_value, actor, path, version, time.time())
    return Response(value, media_type="application/octet-stream")


@router.get(
    "/admin/resource-versions/{path:path}",
    response_model=list[ResourceVersionInfo],
    responses=error_responses(400, 401, 403, 404, 503),
    summary="A resource's kept versions, oldest first: who wrote each and when, its size (never the value), and "
    "who deleted it",
)
async def resource_versions(_actor: ResourceReader, path: VersionsPath, admin: Admin) -> list[ResourceVersionInfo]:
    return await run_in_threadpool(admin.history.resource_versions, path, time.time())


@router.post(
    "/admin/resource-restore/{path:path}",
    response_model=ResourceVersionInfo,
    responses=error_responses(400, 401, 403, 404, 413, 503),
    summary="Make a kept version of a resource current again, as a new version (without `version`: the newest "
    "version of a deleted resource, within the retention)",
)
async def restore_resource(
    actor: ResourceWriter,
    path: RestorePath,
    body: Restore,
    admin: Admin,
) -> ResourceVersionInfo:
    return await run_in_threadpool(admin.history.restore_resource, actor, path, body.version, time.time())


@router.get(
    "/admin/policies",
    response_model=list[PolicyInfo],
    responses=error_responses(401, 403, 503),
    summary="Every stored policy's id, digest and update time",
)
async def list_policies(_actor: PolicyReader, admin: Admin) -> list[PolicyInfo]:
    return await run_in_threadpool(admin.list_policies)


@router.get(
    "/admin/policy/{policy_id:path}",
    response_model=PolicyDocument,
    responses=error_responses(400, 401, 403, 404, 503),
    summary="A stored policy, the one in force or a kept `version`, its source base64url",
)
async def get_policy(_actor: PolicyReader, policy_id: str, admin: Admin, version: Version = None) -> PolicyDocument:
    if version is None:
        return await run_in_threadpool(admin.get_policy, policy_id)
    return await run_in_threadpool(admin.history.policy_version, policy_id, version, time.time())


@router.get(
    "/admin/policy-versions/{policy_id:path}",
    response_model=list[PolicyVersionInfo],
    responses=error_responses(401, 403, 404, 503),
    summary="A policy's kept versions, oldest first (numbered from 1 in the order set): who set each, when, digest",
)
async def policy_versions(_actor: PolicyReader, policy_id: str, admin: Admin) -> list[PolicyVersionInfo]:
    return await run_in_threadpool(admin.history.policy_versions, policy_id, time.time())


@router.post(
    "/admin/policy-rollback/{policy_id:path}",
    response_model=PolicyVersionInfo,
    responses=error_responses(400, 401, 403, 404, 413, 503),
    summary="Put a kept version of a policy back in force, as a new version",
)
async def rollback_policy(
    actor: PolicyWriter,
    policy_id: str,
    body: Rollback,
    admin: Admin,
) -> PolicyVersionInfo:
    return await run_in_threadpool(admin.history.rollback_policy, actor, policy_id, body.version, time.time())


@router.delete(
    "/admin/policy/{policy_id:path}",
    response_class=Response,
    responses=_empty(401, 403, 404, 503),
    summary="Delete a stored policy (the shipped default takes over)",
)
async def delete_policy(actor: PolicyWriter, policy_id: str, admin: Admin) -> Response:
    await run_in_threadpool(admin.delete_policy, actor, policy_id, time.time())
    return Response(status_code=200)


@router.get(
    "/admin/reference-values",
    response_model=list[ReferenceValueInfo],
    responses=error_responses(401, 403, 503),
    summary="Every reference value, expired ones included",
)
async def list_reference_values(_actor: ReferenceReader, admin: Admin) -> list[ReferenceValueInfo]:
    return await run_in_threadpool(admin.list_reference_values)


@router.delete(
    "/admin/reference-value/{name}",
    response_class=Response,
    responses=_empty(401, 403, 404, 503),
    summary="Delete every value of a reference value name",
)
async def delete_reference_value(actor: ReferenceWriter, name: str, admin: Admin) -> Response:
    await run_in_threadpool(admin.delete_reference_values, actor, name, time.time())
    return Response(status_code=200)


@router.get(
    "/admin/reference-value-versions/{name}",
    response_model=list[ReferenceValueVersionInfo],
    responses=error_responses(401, 403, 404, 503),
    summary="A reference value's kept versions, oldest first: the accepted values, who put them and when",
)
async def reference_value_versions(_actor: ReferenceReader, name: str, admin: Admin) -> list[ReferenceValueVersionInfo]:
    return await run_in_threadpool(admin.history.reference_value_versions, name, time.time())


@router.post(
    "/admin/reference-value-restore/{name}",
    response_model=ReferenceValueVersionInfo,
    responses=error_responses(400, 401, 403, 404, 413, 503),
    summary="Make a kept version of a reference value current again, as a new version (without `version`: the "
    "newest version of a deleted one, within the retention)",
)
async def restore_reference_value(
    actor: ReferenceWriter,
    name: str,
    body: Restore,
    admin: Admin,
) -> ReferenceValueVersionInfo:
    return await run_in_threadpool(admin.history.restore_reference_values, actor, name, body.version, time.time())


@router.get(
    "/admin/audit",
    response_model=list[AuditEntry],
    responses=error_responses(400, 401, 403, 503),
    summary="The newest audit entries first (limit 1..1000)",
)
async def audit(_actor: Auditor, admin: Admin, limit: IntParam = 100) -> list[AuditEntry]:
    return await run_in_threadpool(admin.audit_log, limit)


@router.get(
    "/admin/audit/verify",
    response_model=AuditVerification,
    responses=error_responses(400, 401, 403, 503),
    summary="Walk the hash-chained audit log: intact, or the first broken or missing entry and why",
)
async def audit_verify(
    _actor: Auditor,
    admin: Admin,
    anchor_id: Annotated[
        Annotated[int, Field(ge=1, le=MAX_ID), JSON_INTEGER] | None, Query(description="an id from an earlier export")
    ] = None,
    anchor_digest: Annotated[
        str | None, Query(pattern="^[0-9a-f]{64}$", description="that entry's digest, as exported")
    ] = None,
) -> AuditVerification:
    if (anchor_id is None) != (anchor_digest is None):
        raise KbsError.invalid_request("anchor_id and anchor_digest go together")
    anchor = None if anchor_id is None or anchor_digest is None else (anchor_id, anchor_digest)
    return await run_in_threadpool(admin.audit_verify, anchor)


@router.get(
    "/admin/audit/export",
    response_class=Response,
    responses={
        200: {
            "description": "JSON lines, one AuditEntry a line, oldest first; page on with after_id = the last id",
            "content": {_NDJSON: {"schema": {"type": "string"}}},
        },
        **error_responses(400, 401, 403, 503),
    },
    summary="Audit entries after an id (and since a time), oldest first, as JSON lines for a log pipeline",
)
async def audit_export(
    _actor: Auditor,
    admin: Admin,
    after_id: Annotated[
        int, Field(ge=0, le=MAX_ID), JSON_INTEGER, Query(description="entries after this id (0: from the first)")
    ] = 0,
    since: Annotated[NumberParam | None, Query(description="only entries at or after this time (UNIX seconds)")] = None,
    limit: Annotated[IntParam, Query(description="at most this many (1..1000)")] = 1000,
) -> Response:
    entries = await run_in_threadpool(admin.audit_export, after_id, since, limit)
    return Response("".join(e.model_dump_json() + "\n" for e in entries), media_type=_NDJSON)


@router.post(
    "/admin/signing-key/rotate",
    response_model=RotatedKey,
    responses=error_responses(401, 403, 503),
    summary="A new token signing key; the old one stays in the JWKS for the overlap",
)
async def rotate_signing_key(actor: KeyRotator, admin: Admin) -> RotatedKey:
    return RotatedKey(kid=await run_in_threadpool(admin.rotate_signing_key, actor))
