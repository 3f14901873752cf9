"""History of the admin-managed state: the versions of resources, policies and reference-value sets, reading one,
and making an old one current again (restore, policy rollback). Reads of a resource version are audited like reads of
the current value; a restore or rollback is itself a new version, audited under the caller's name.

The versions are written by the storage in the transaction of each change (`kbs.storage.Store.put_resource`, ...);
this service only reads them and restores.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TypeVar

from ..api.schemas import PolicyDocument, PolicyVersionInfo, ReferenceValueVersionInfo, ResourceVersionInfo
from ..errors import KbsError
from ..sealing import Sealer
from ..storage import (
    POLICIES,
    REFERENCE_VALUES,
    RESOURCES,
    HistoryConflictError,
    Kind,
    NotInHistoryError,
    Store,
    VersionRow,
)
from .audit import AuditLog

__all__ = ["HistoryService"]

_R = TypeVar("_R")


def _common(row: VersionRow) -> dict[str, object]:
    return {
        "version": row.version,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "action": row.action,
        "restored_from": row.restored_from,
        "deleted_at": row.deleted_at,
        "deleted_by": row.deleted_by,
    }


def _resource_info(row: VersionRow) -> ResourceVersionInfo:
    return ResourceVersionInfo.model_validate({**_common(row), "size": row.data["size"]})


def _policy_info(row: VersionRow) -> PolicyVersionInfo:
    return PolicyVersionInfo.model_validate({**_common(row), "sha256": row.data["sha256"]})


def _reference_info(row: VersionRow) -> ReferenceValueVersionInfo:
    values = json.loads(row.data["values_json"])
    return ReferenceValueVersionInfo.model_validate(
        {**_common(row), "values": values, "expires_at": row.data["expires_at"]}
    )


def _answer(call: Callable[[], _R]) -> _R:
    """A storage call on history, its errors as the API's: not kept -> 404, not allowed now -> 400."""
    try:
        return call()
    except NotInHistoryError as exc:
        raise KbsError.not_found(str(exc)) from None
    except HistoryConflictError as exc:
        raise KbsError.invalid_request(str(exc)) from None


class HistoryService:
    def __init__(self, store: Store, sealer: Sealer, audit: AuditLog) -> None:
        self._store = store
        self._sealer = sealer
        self._audit = audit

    def _versions(self, kind: Kind, key: str, now: float) -> list[VersionRow]:
        rows = self._store.history(kind, key, now)
        if not rows:
            raise KbsError.not_found(f"{kind.what} {key} has no history (never stored, or swept after its retention)")
        return rows

    def _restore(self, actor: str, kind: Kind, key: str, version: int | None, now: float) -> VersionRow:
        made = _answer(lambda: self._store.restore(kind, key, version, actor, now))
        action = "policy.rollback" if kind is POLICIES else f"{kind.what.replace(' ', '-')}.restore"
        self._audit.record(actor, action, f"{key}@{made}", "ok", None, now)
        return self._store.version(kind, key, made, now)

    # -- resources --------------------------------------------------------------------------------------------
    def resource_versions(self, path: str, now: float) -> list[ResourceVersionInfo]:
        return [_resource_info(r) for r in self._versions(RESOURCES, path, now)]

    def resource_value(self, actor: str, path: str, version: int, now: float) -> bytes:
        """The value a resource had at `version` (audited as a read of `path@version`)."""
        row = _answer(lambda: self._store.version(RESOURCES, path, version, now))
        self._audit.record(actor, "resource.read", f"{path}@{version}", "ok", None, now)
        sealed: bytes = bytes(row.data["sealed"])
        return self._sealer.open(sealed, f"resource:{path}")

    def restore_resource(self, actor: str, path: str, version: int | None, now: float) -> ResourceVersionInfo:
        return _resource_info(self._restore(actor, RESOURCES, path, version, now))

    # -- policies ---------------------------------------------------------------------------------------------
    def policy_versions(self, policy_id: str, now: float) -> list[PolicyVersionInfo]:
        return [_policy_info(r) for r in self._versions(POLICIES, policy_id, now)]

    def policy_version(self, policy_id: str, version: int, now: float) -> PolicyDocument:
        row = _answer(lambda: self._store.version(POLICIES, policy_id, version, now))
        source: str = row.data["source"]
        return PolicyDocument(
            id=policy_id,
            policy=base64.urlsafe_b64encode(source.encode()).decode().rstrip("="),
            sha256=row.data["sha256"],
            updated_at=row.created_at,
            version=row.version,
        )

    def rollback_policy(self, actor: str, policy_id: str, version: int, now: float) -> PolicyVersionInfo:
        return _policy_info(self._restore(actor, POLICIES, policy_id, version, now))

    # -- reference values -------------------------------------------------------------------------------------
    def reference_value_versions(self, name: str, now: float) -> list[ReferenceValueVersionInfo]:
        return [_reference_info(r) for r in self._versions(REFERENCE_VALUES, name, now)]

    def restore_reference_values(
        self, actor: str, name: str, version: int | None, now: float
    ) -> ReferenceValueVersionInfo:
        return _reference_info(self._restore(actor, REFERENCE_VALUES, name, version, now))
