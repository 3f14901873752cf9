"""Resource release (GET /kbs/v0/resource/...): the attestation token, the resource policy, then the secret as a
JWE to the guest's ephemeral key. Every release, denial and refusal is audited (the guest's address and session
digest, the token's claims digest once it verified), in the step's one write.

    token (Bearer EAR, or the session's)  ->  EarView  ->  resource policy (data.policy.allow)  ->  JWE
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from verifier.ear import TokenError, UnknownKeyError, verify_token
from verifier.rego import PolicyError

from ..api.schemas import Jwe
from ..errors import KbsError
from ..jwe import JweError, encrypt_for
from ..sealing import Sealer
from ..settings import Settings
from ..signing import KeyRing
from ..storage import ResourceRecord, SessionRecord, Store
from ._ear import EarView
from .audit import AuditLog, AuditRecord, guest
from .decisions import DecisionLog
from .policies import PolicyBook, compiled

__all__ = ["ReleaseService"]


def _bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer` header; None when no header was sent."""
    if not authorization:
        return None
    if not authorization.startswith("Bearer "):
        raise KbsError.token_invalid("Authorization header is not a Bearer token")
    return authorization.removeprefix("Bearer ").strip()


def _session_token(session: SessionRecord | None, now: float) -> str:
    """The token the session attested to (401 when it is unknown, expired or has not attested)."""
    if session is None or session.expires_at <= now:
        raise KbsError.unauthorized("unknown or expired session: attest again")
    if session.state != "attested" or session.token is None:
        raise KbsError.unauthorized("this session has not attested: call /attest first")
    return session.token


class ReleaseService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        sealer: Sealer,
        keys: KeyRing,
        policies: PolicyBook,
        audit: AuditLog,
        decisions: DecisionLog,
    ) -> None:
        self._settings = settings
        self._store = store
        self._sealer = sealer
        self._keys = keys
        self._policies = policies
        self._audit = audit
        self._decisions = decisions

    def release(self, path: str, session_id: str | None, authorization: str | None, now: float, client: str) -> Jwe:
        """One read (the session's token, the resource policy, the sealed resource), the checks and cryptography
        with no transaction open, then one write: the audit entry of the release, the denial or the refusal (with
        the decision of a release or denial). The secret is returned only once that entry is committed."""
        actor = guest(client, session_id)
        ear: EarView | None = None
        denied = False
        decision = None
        try:
            token = _bearer(authorization)
            if token is None and not session_id:
                raise KbsError.unauthorized("no attestation: send the kbs-session-id cookie or a Bearer token")
            with self._store.read() as reads:
                session = reads.session(session_id) if token is None and session_id else None
                policy = self._policies.resource_policy(reads, path)
                row = reads.resource(path)
            policy_id, source = policy
            ear = self._verified(token if token is not None else _session_token(session, now), now)
            result = self.evaluate_resource_policy(source, ear, path)
            if result.get("allow") is not True:
                reasons = result.get("reasons")
                why = f": {'; '.join(sorted(map(str, reasons)))}" if isinstance(reasons, list) and reasons else ""
                denied = True
                decision = self._decisions.resource(
                    path, ear.claims, policy, False, why.removeprefix(": ") or None, now
                )
                # "Access denied by policy" is trustee's wording, which trustee's clients and tests look for.
                raise KbsError.policy_deny(f"Access denied by policy: resource policy {policy_id} denies {path}{why}")
            response = self._sealed_for(path, ear, row)
        except KbsError as exc:
            digest = None if ear is None else ear.digest
            if denied:
                self._audit.record(
                    AuditRecord(actor, "resource.deny", path, "denied", now, claims_digest=digest), decision
                )
            else:
                self._audit.record(AuditRecord(actor, "resource.refused", path, exc.variant, now, exc.detail, digest))
            raise
        decision = self._decisions.resource(path, ear.claims, policy, True, None, now)
        released = AuditRecord(actor, "resource.release", path, "released", now, claims_digest=ear.digest)
        self._audit.record(released, decision)
        return response

    def _sealed_for(self, path: str, ear: EarView, row: ResourceRecord | None) -> Jwe:
        """The resource as a JWE to the token's tee-pubkey."""
        if row is None:
            raise KbsError.not_found(f"resource {path} does not exist")
        if ear.tee_pubkey is None:
            raise KbsError.token_invalid("token carries no tee-pubkey to encrypt the resource to")
        try:
            response = encrypt_for(
                ear.tee_pubkey,
                self._sealer.open(row.sealed, f"resource:{path}"),
                allow_rsa1_5=self._settings.server.insecure_allow_rsa1_5,
            )
        except JweError as exc:
            raise KbsError.invalid_request(str(exc)) from exc
        return Jwe(**response)

    def _verified(self, token: str, now: float) -> EarView:
        at = datetime.fromtimestamp(now, UTC)
        issuer = self._settings.tokens.issuer
        try:
            try:
                claims = verify_token(token, self._keys.public_keys(), now=at, issuer=issuer)
            except UnknownKeyError:
                # A key made moments ago by a rotation on another replica: reload once. Only for an unknown kid,
                # so a forged or expired token costs no database read.
                self._keys.reload()
                claims = verify_token(token, self._keys.public_keys(), now=at, issuer=issuer)
        except TokenError as exc:
            raise KbsError.token_invalid(str(exc)) from exc
        return EarView.of(claims)

    @staticmethod
    def evaluate_resource_policy(source: str, ear: EarView, path: str) -> dict[str, Any]:
        """`data.policy` of a resource policy, with the EAR claims as input (trustee's resource plugin shape)."""
        data = {"plugin": "resource", "resource-path": path.split("/"), "query": {}}
        try:
            return compiled(source).evaluate("data.policy", ear.claims, data)
        except PolicyError as exc:
            raise KbsError.policy_deny(f"resource policy failed to evaluate: {exc}") from exc
