"""The admin API's work: resources (sealed at rest), policies, reference values and token signing keys. Every write
is audited under the caller's name in the write's own transaction (both commit, or neither), every secret read
before the secret is returned; a policy that does not compile is refused before it is stored, so the one in force
stays."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from policies import load as load_shipped_policy
from verifier.appraisal import appraise
from verifier.rego import PolicyError, run_rego_tests

from ..api.schemas import (
    AuditEntry,
    AuditVerification,
    PolicyDocument,
    PolicyInfo,
    ReferenceValueInfo,
    ReferenceValuesStored,
    ReferenceValueStored,
    ResourceInfo,
)
from ..errors import KbsError
from ..sealing import Sealer
from ..signing import KeyRing
from ..storage import Store
from ..tables import Policy as PolicyRow
from ..tables import Resource
from ._paths import policy_scope_id
from ._reference_values import check_reference_values
from ._rvps import decode_message
from .audit import AuditLog, AuditRecord
from .history import HistoryService
from .policies import compiled

__all__ = ["AdminService", "b64url_text"]


def b64url_text(value: str, what: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise KbsError.invalid_request(f"{what} is not base64url-encoded UTF-8 text") from exc


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _check_tests(policy_id: str, source: str, tests: Mapping[str, str]) -> None:
    """Run each Rego unit-test module against the policy (the runner `policies/*_test.rego` use); refuse the policy
    when one does not compile, has no `test_*` rule, or has a test that fails."""
    failed: list[str] = []
    for name, encoded in sorted(tests.items()):
        module = b64url_text(encoded, f"test module {name}")
        try:
            results = run_rego_tests(source, module)
        except PolicyError as exc:
            raise KbsError.invalid_request(f"policy {policy_id} not stored: test module {name}: {exc}") from exc
        if not results:
            raise KbsError.invalid_request(f"policy {policy_id} not stored: test module {name} has no test_* rule")
        failed += [f"{name}: {rule}" for rule, passed in results.items() if not passed]
    if failed:
        raise KbsError.invalid_request(f"policy {policy_id} not stored: failing tests: {', '.join(failed)}")


class AdminService:
    """`actor` is the caller as the audit log names it: `<subject> (<role>)` from the admin token. With
    `require_tests`, a policy is stored only with unit tests that it passes."""

    def __init__(
        self, store: Store, sealer: Sealer, keys: KeyRing, audit: AuditLog, *, require_tests: bool = False
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._keys = keys
        self._audit = audit
        self._require_tests = require_tests
        self.history = HistoryService(store, sealer, audit)

    # -- resources --------------------------------------------------------------------------------------------
    def put_resource(self, actor: str, path: str, value: bytes, now: float) -> int:
        """Store a resource's new value (its previous ones stay in its history); the version made."""
        row = Resource(path=path, sealed=self._sealer.seal(value, f"resource:{path}"), size=len(value), updated_at=now)
        return self._store.put_resource(row, actor, AuditRecord(actor, "resource.put", path, "ok", now))

    def get_resource(self, actor: str, path: str, now: float) -> bytes:
        row = self._store.get_resource(path)
        if row is None:
            raise KbsError.not_found(f"resource {path} does not exist")
        self._audit.record(AuditRecord(actor, "resource.read", path, "ok", now))
        return self._sealer.open(row.sealed, f"resource:{path}")

    def delete_resource(self, actor: str, path: str, now: float) -> None:
        if not self._store.delete_resource(path, actor, now, AuditRecord(actor, "resource.delete", path, "ok", now)):
            raise KbsError.not_found(f"resource {path} does not exist")

    def list_resources(self) -> list[ResourceInfo]:
        return [ResourceInfo(path=r.path, size=r.size, updated_at=r.updated_at) for r in self._store.list_resources()]

    # -- policies ---------------------------------------------------------------------------------------------
    def set_resource_policy(
        self, actor: str, encoded: str, scope: str | None, now: float, tests: Mapping[str, str] | None = None
    ) -> tuple[str, int]:
        """Store a resource policy for every path or for a scope (repo, repo/type, repo/type/tag); (id, version)."""
        policy_id = policy_scope_id(scope)
        return policy_id, self._set_policy(actor, policy_id, encoded, now, tests)

    def set_attestation_policy(
        self, actor: str, policy_id: str, encoded: str, kind: str, now: float, tests: Mapping[str, str] | None = None
    ) -> tuple[str, int]:
        if kind != "rego":
            raise KbsError.invalid_request(f"policy type is {kind!r}, expected 'rego'")
        stored_id = f"attestation:{policy_id}"
        return stored_id, self._set_policy(actor, stored_id, encoded, now, tests, attestation=True)

    def _set_policy(
        self,
        actor: str,
        policy_id: str,
        encoded: str,
        now: float,
        tests: Mapping[str, str] | None,
        *,
        attestation: bool = False,
    ) -> int:
        """Compile, run the unit tests, try an attestation policy on nothing, then store as the next version."""
        source = b64url_text(encoded, "policy")
        try:
            policy = compiled(source)
        except PolicyError as exc:
            raise KbsError.invalid_request(f"policy does not compile: {exc}") from exc
        if tests:
            _check_tests(policy_id, source, tests)
        elif self._require_tests:
            raise KbsError.invalid_request(
                f"policy {policy_id} not stored: this broker requires Rego unit tests with every policy (--tests DIR)"
            )
        if attestation:
            # trustee's model: the policy must yield trust_claims, fail-closed defaults included, so it is tried on
            # no evidence and no reference values; one that yields none, or values out of -128..127, is refused.
            try:
                appraise(policy, policy_id, {}, {})
            except PolicyError as exc:
                raise KbsError.invalid_request(f"attestation policy refused: {exc}") from exc
        digest = hashlib.sha256(source.encode()).hexdigest()
        row = PolicyRow(id=policy_id, source=source, sha256=digest, updated_at=now)
        return self._store.set_policy(row, actor, AuditRecord(actor, "policy.set", policy_id, "ok", now))

    def get_policy(self, policy_id: str) -> PolicyDocument:
        row = self._store.get_policy(policy_id)
        if row is None:
            raise KbsError.not_found(f"policy {policy_id} does not exist")
        return PolicyDocument(
            id=row.id, policy=_b64url(row.source), sha256=row.sha256, updated_at=row.updated_at, version=row.version
        )

    def list_policies(self) -> list[PolicyInfo]:
        return [PolicyInfo(id=r.id, sha256=r.sha256, updated_at=r.updated_at) for r in self._store.list_policies()]

    def delete_policy(self, actor: str, policy_id: str, now: float) -> None:
        audit = AuditRecord(actor, "policy.delete", policy_id, "ok", now)
        if not self._store.delete_policy(policy_id, actor, now, audit):
            raise KbsError.not_found(f"policy {policy_id} does not exist")

    # -- reference values -------------------------------------------------------------------------------------
    def put_reference_values(
        self, actor: str, name: str, values: Sequence[str], expires: datetime | None, now: float
    ) -> ReferenceValueStored:
        check_reference_values(name, values)
        expires_at = None if expires is None else expires.timestamp()
        audit = AuditRecord(actor, "reference-value.put", name, "ok", now)
        version = self._store.put_reference_values(name, values, expires_at, now, actor, audit)
        return ReferenceValueStored(name=name, count=len(set(values)), version=version)

    def register_reference_values(
        self, actor: str, version: str, kind: str, payload: str, now: float
    ) -> ReferenceValuesStored:
        """Trustee's RVPS message: every name it carries replaced in one transaction, or nothing stored."""
        values = decode_message(version, kind, payload)
        for name, accepted in values.items():
            check_reference_values(name, accepted)
        audit = [AuditRecord(actor, "reference-value.put", name, "ok", now) for name in values]
        versions = self._store.put_reference_value_sets(values, None, now, actor, audit)
        counts = {name: len(set(accepted)) for name, accepted in values.items()}
        return ReferenceValuesStored(stored=counts, versions=versions)

    def reference_value(self, name: str, now: float) -> list[str]:
        """The accepted values of `name` not expired at `now`: what `query_reference_value(name)` answers."""
        values = [r.value for r in self._store.reference_values(now) if r.name == name]
        if not values:
            raise KbsError.not_found(f"reference value {name} does not exist (or every value of it has expired)")
        return values

    def resource_policy(self) -> PolicyDocument:
        """The resource policy for every path: the stored one, else the shipped default."""
        row = self._store.get_policy("resource")
        if row is None:
            source = load_shipped_policy("resource.rego")
            return PolicyDocument(
                id="default", policy=_b64url(source), sha256=hashlib.sha256(source.encode()).hexdigest(), updated_at=0.0
            )
        return PolicyDocument(
            id=row.id, policy=_b64url(row.source), sha256=row.sha256, updated_at=row.updated_at, version=row.version
        )

    def list_reference_values(self) -> list[ReferenceValueInfo]:
        """Every stored value, expired ones included (they are listed, but not offered to policies)."""
        return [
            ReferenceValueInfo(name=r.name, value=r.value, expires_at=r.expires_at)
            for r in self._store.reference_values()
        ]

    def delete_reference_values(self, actor: str, name: str, now: float) -> None:
        audit = AuditRecord(actor, "reference-value.delete", name, "ok", now)
        if not self._store.delete_reference_values(name, actor, now, audit):
            raise KbsError.not_found(f"reference value {name} does not exist")

    # -- token signing keys and audit ---------------------------------------------------------------------------
    def rotate_signing_key(self, actor: str) -> str:
        return self._keys.rotate(actor)

    def audit_log(self, limit: int) -> list[AuditEntry]:
        return self._audit.newest(limit)

    def audit_export(self, after_id: int, since: float | None, limit: int) -> list[AuditEntry]:
        return self._audit.export(after_id, since, limit)

    def audit_verify(self, anchor: tuple[int, str] | None) -> AuditVerification:
        return self._audit.verify(anchor)

    def refused(self, record: AuditRecord) -> None:
        """Audit an admin call refused before it reached a service (no token, a bad one, a role without the
        permission)."""
        self._audit.record(record)
