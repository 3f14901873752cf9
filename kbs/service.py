"""The broker's logic, between the HTTP routes and storage/verifier: RCAR (auth, attest, resource) and admin.

Routes parse HTTP; this module decides. Every failure is a KbsError with trustee's error shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import verifier
from kbs import __version__
from policies import attestation_default
from policies import load as load_shipped_policy
from verifier.appraisal import annotated_evidence, appraise
from verifier.ear import TokenError, UnknownKeyError, claims_digest, issue, verify_token
from verifier.rego import Policy, PolicyError

from .errors import KbsError
from .hash_negotiation import NegotiationError, challenge_extra_params
from .jwe import JweError, encrypt_for
from .protocol import (
    RESOURCE_SEGMENT,
    Attestation,
    Challenge,
    Request,
    TpmActivateRequest,
    TpmCredentialChallenge,
    TpmEnrolled,
    TpmEnrollRequest,
    expected_report_data,
    init_data_digest,
    runtime_digest,
    version_supported,
)
from .sealing import Sealer
from .settings import Settings
from .signing import KeyRing
from .storage import ConflictError, Store
from .tables import Audit, Resource
from .tables import Policy as PolicyRow
from .tables import Session as SessionRow
from .tpm_enrollment import EnrolledAkRegistry, TpmEnrollmentService
from .verification import VerifierInputs

__all__ = ["Broker", "resource_path"]

NONCE_BYTES = 32
_SWEEP_EVERY_SECONDS = 60.0


def resource_path(repo: str, type_: str, tag: str) -> str:
    for name, segment in (("repository", repo), ("type", type_), ("tag", tag)):
        if not RESOURCE_SEGMENT.fullmatch(segment):
            raise KbsError.invalid_request(f"resource {name} {segment!r} does not match [A-Za-z0-9_-][A-Za-z0-9_.-]*")
    return f"{repo}/{type_}/{tag}"


def split_resource_path(path: str) -> tuple[str, str, str]:
    parts = path.split("/")
    if len(parts) != 3:
        raise KbsError.invalid_request(f"resource path has {len(parts)} segments, expected repo/type/tag")
    resource_path(*parts)
    return parts[0], parts[1], parts[2]


@lru_cache(maxsize=64)
def _compiled(source: str) -> Policy:
    return Policy.compile(source)


def _b64url(value: str, what: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise KbsError.invalid_request(f"{what} is not base64url-encoded UTF-8 text") from exc


class Broker:
    def __init__(self, settings: Settings, store: Store, sealer: Sealer) -> None:
        self.settings = settings
        self.store = store
        self.sealer = sealer
        self.keys = KeyRing(store, sealer, settings.tokens.rotation_overlap_seconds)
        self.inputs = VerifierInputs(settings.verifier)
        self.tpm = TpmEnrollmentService(store, self.inputs.trust.get("tpm", ()))
        self.enrolled_aks = EnrolledAkRegistry(store)
        self._last_sweep = 0.0

    def start(self) -> None:
        self.store.migrate()
        self.keys.ensure()

    # -- RCAR -------------------------------------------------------------------------------------------------
    def auth(self, request: Request, now: float) -> tuple[Challenge, str]:
        if not version_supported(request.version):
            raise KbsError.protocol_version(
                f"protocol version {request.version!r} is not supported; this broker speaks 0.4.x (0.4.0)"
            )
        if request.tee not in verifier.TEES:
            raise KbsError.invalid_request(f"tee {request.tee!r} is not one of {sorted(verifier.TEES)}")
        if request.tee == "sample" and not self.inputs.allow_sample:
            raise KbsError.invalid_request("tee 'sample' is refused by this broker (verifier.allow_sample is off)")
        try:  # the answer is "" (SHA-384), Challenge's default, as trustee's built-in attestation service answers
            challenge_extra_params(request.extra_params)
        except NegotiationError as exc:
            raise KbsError.invalid_request(str(exc)) from None
        if now - self._last_sweep > _SWEEP_EVERY_SECONDS:
            self._last_sweep = now
            self.store.sweep_sessions(now)
        nonce = base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
        session_id = secrets.token_urlsafe(32)
        self.store.create_session(
            SessionRow(
                id=session_id,
                nonce=nonce,
                tee=request.tee,
                state="challenged",
                created_at=now,
                expires_at=now + self.settings.sessions.ttl_seconds,
            )
        )
        return Challenge(nonce=nonce), session_id

    def _consume(self, session_id: str | None, nonce: str, now: float) -> SessionRow:
        if not session_id:
            raise KbsError.unauthorized("no kbs-session-id cookie: call /auth first")
        try:
            return self.store.consume_session(session_id, nonce, now)
        except ConflictError:
            row = self.store.get_session(session_id)
            if row is None:
                raise KbsError.unauthorized("unknown or expired session: call /auth again") from None
            if row.expires_at <= now:
                raise KbsError.unauthorized("session expired: call /auth again") from None
            if row.state != "challenged":
                raise KbsError.unauthorized(
                    "this session's nonce was already used: a session attests once; call /auth again"
                ) from None
            raise KbsError.attestation_failed("runtime-data nonce is not this session's challenge") from None

    def attest(self, session_id: str | None, attestation: Attestation, now: float) -> str:
        runtime = attestation.runtime_data
        init = attestation.init_data
        init_digest: bytes | None = None
        init_claims: dict[str, Any] = {}
        if init is not None:
            if init.format != "toml":
                raise KbsError.invalid_request(f"init-data format is {init.format!r}, expected 'toml'")
            try:
                init_digest = init_data_digest(init.body)
                init_claims = tomllib.loads(init.body).get("data", {})
            except ValueError as exc:
                raise KbsError.invalid_request(str(exc)) from exc
        session = self._consume(session_id, runtime.nonce, now)
        digest = runtime_digest(runtime.nonce, runtime.tee_pubkey, attestation.tee_evidence.additional_evidence)
        at = datetime.fromtimestamp(now, UTC)
        options = self.inputs.options(
            at=at,
            report_data=expected_report_data(session.tee, digest),
            init_data_digest=init_digest,
            extra_sources={"tpm": self.enrolled_aks},
        )
        try:
            verified = verifier.verify(session.tee, attestation.tee_evidence.primary_evidence, options)
        except verifier.VerifierError as exc:
            raise KbsError.attestation_failed(
                f"{session.tee} evidence rejected: {exc.reason.value}: {exc.detail}"
            ) from exc
        evidence = annotated_evidence(
            session.tee,
            verified.claims,
            verified.report_data,
            {"nonce": runtime.nonce, "tee-pubkey": runtime.tee_pubkey},
            init_digest,
            init_claims,
        )
        policy_id, source = self._attestation_policy(session.tee)
        try:
            appraisal = appraise(_compiled(source), policy_id, evidence, self.reference_values(now))
        except PolicyError as exc:
            raise KbsError.attestation_failed(f"attestation policy {policy_id} failed: {exc}") from exc
        token = issue(
            self.keys.signer(),
            appraisal=appraisal,
            annotated_evidence=evidence,
            issuer=self.settings.tokens.issuer,
            verifier_id={"developer": "veritee", "build": f"veritee-{__version__}"},
            now=at,
            ttl_seconds=self.settings.tokens.ttl_seconds,
        )
        self.store.complete_session(session.id, token)
        return token

    def _attestation_policy(self, tee: str) -> tuple[str, str]:
        row = self.store.first_policy([f"attestation:{tee}", "attestation:default"])
        if row is not None:
            return row.id.removeprefix("attestation:"), row.source
        shipped = attestation_default(tee)
        if shipped is None:
            raise KbsError.attestation_failed(f"no attestation policy for tee {tee!r}")
        return f"default_{tee}", shipped

    def reference_values(self, now: float) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for row in self.store.reference_values(now):
            out.setdefault(row.name, []).append(row.value)
        return out

    def _token_claims(self, session_id: str | None, authorization: str | None, now: float) -> dict[str, Any]:
        if authorization:
            if not authorization.startswith("Bearer "):
                raise KbsError.token_invalid("Authorization header is not a Bearer token")
            token = authorization.removeprefix("Bearer ").strip()
        elif session_id:
            row = self.store.get_session(session_id)
            if row is None or row.expires_at <= now:
                raise KbsError.unauthorized("unknown or expired session: attest again")
            if row.state != "attested" or row.token is None:
                raise KbsError.unauthorized("this session has not attested: call /attest first")
            token = row.token
        else:
            raise KbsError.unauthorized("no attestation: send the kbs-session-id cookie or a Bearer token")
        at = datetime.fromtimestamp(now, UTC)
        try:
            try:
                return verify_token(token, self.keys.public_keys(), now=at, issuer=self.settings.tokens.issuer)
            except UnknownKeyError:
                # A key made moments ago by a rotation on another replica: reload once. Only for an unknown kid,
                # so a forged or expired token costs no database read.
                self.keys.reload()
                return verify_token(token, self.keys.public_keys(), now=at, issuer=self.settings.tokens.issuer)
        except TokenError as exc:
            raise KbsError.token_invalid(str(exc)) from exc

    def resource_policy(self, path: str) -> tuple[str, str]:
        """The most specific resource policy for a path: by tag, type, repository, then global, then shipped."""
        repo, type_, tag = path.split("/")
        scopes = [f"resource:{repo}/{type_}/{tag}", f"resource:{repo}/{type_}", f"resource:{repo}", "resource"]
        row = self.store.first_policy(scopes)
        if row is not None:
            return row.id, row.source
        return "default", load_shipped_policy("resource.rego")

    def evaluate_resource_policy(self, source: str, claims: Mapping[str, Any], path: str) -> dict[str, Any]:
        data = {"plugin": "resource", "resource-path": path.split("/"), "query": {}}
        try:
            return _compiled(source).evaluate("data.policy", claims, data)
        except PolicyError as exc:
            raise KbsError.policy_deny(f"resource policy failed to evaluate: {exc}") from exc

    def release(self, path: str, session_id: str | None, authorization: str | None, now: float) -> dict[str, str]:
        claims = self._token_claims(session_id, authorization, now)
        policy_id, source = self.resource_policy(path)
        result = self.evaluate_resource_policy(source, claims, path)
        digest = claims_digest(claims)
        if result.get("allow") is not True:
            reasons = result.get("reasons")
            why = f": {'; '.join(sorted(map(str, reasons)))}" if isinstance(reasons, list) and reasons else ""
            self._audit("token", "resource.deny", path, "denied", digest, now)
            raise KbsError.policy_deny(f"resource policy {policy_id} denies {path}{why}")
        row = self.store.get_resource(path)
        if row is None:
            raise KbsError.not_found(f"resource {path} does not exist")
        try:
            pubkey = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["runtime_data_claims"]["tee-pubkey"]
        except (KeyError, TypeError) as exc:
            raise KbsError.token_invalid("token carries no tee-pubkey to encrypt the resource to") from exc
        try:
            response = encrypt_for(
                pubkey,
                self.sealer.open(row.sealed, f"resource:{path}"),
                allow_rsa1_5=self.settings.server.insecure_allow_rsa1_5,
            )
        except JweError as exc:
            raise KbsError.invalid_request(str(exc)) from exc
        self._audit("token", "resource.release", path, "released", digest, now)
        return response

    # -- admin ------------------------------------------------------------------------------------------------
    # -- TPM AK enrolment (kbs/tpm_enrollment.py) ------------------------------------------------------------
    def tpm_enroll(self, request: TpmEnrollRequest, now: float) -> TpmCredentialChallenge:
        return self.tpm.enroll(request, now)

    def tpm_activate(self, request: TpmActivateRequest, now: float) -> TpmEnrolled:
        try:
            enrolled = self.tpm.activate(request, now)
        except KbsError:
            self._audit("tpm-guest", "tpm.enroll", f"enrollment:{request.id[:16]}", "refused", None, now)
            raise
        self._audit("tpm-guest", "tpm.enroll", f"ak:{enrolled.ak_sha256}", "ok", None, now)
        return enrolled

    def _audit(self, actor: str, action: str, target: str, outcome: str, digest: str | None, now: float) -> None:
        self.store.audit(
            Audit(at=now, actor=actor, action=action, target=target, outcome=outcome, claims_digest=digest)
        )

    def put_resource(self, actor: str, path: str, value: bytes, now: float) -> None:
        self.store.put_resource(
            Resource(path=path, sealed=self.sealer.seal(value, f"resource:{path}"), size=len(value), updated_at=now)
        )
        self._audit(actor, "resource.put", path, "ok", None, now)

    def get_resource(self, actor: str, path: str, now: float) -> bytes:
        row = self.store.get_resource(path)
        if row is None:
            raise KbsError.not_found(f"resource {path} does not exist")
        self._audit(actor, "resource.read", path, "ok", None, now)
        return self.sealer.open(row.sealed, f"resource:{path}")

    def delete_resource(self, actor: str, path: str, now: float) -> None:
        if not self.store.delete_resource(path):
            raise KbsError.not_found(f"resource {path} does not exist")
        self._audit(actor, "resource.delete", path, "ok", None, now)

    def list_resources(self) -> list[dict[str, object]]:
        return [{"path": r.path, "size": r.size, "updated_at": r.updated_at} for r in self.store.list_resources()]

    def set_policy(self, actor: str, policy_id: str, encoded: str, now: float) -> None:
        source = _b64url(encoded, "policy")
        try:
            _compiled(source)
        except PolicyError as exc:
            raise KbsError.invalid_request(f"policy does not compile: {exc}") from exc
        digest = hashlib.sha256(source.encode()).hexdigest()
        self.store.set_policy(PolicyRow(id=policy_id, source=source, sha256=digest, updated_at=now))
        self._audit(actor, "policy.set", policy_id, "ok", None, now)

    def delete_policy(self, actor: str, policy_id: str, now: float) -> None:
        if not self.store.delete_policy(policy_id):
            raise KbsError.not_found(f"policy {policy_id} does not exist")
        self._audit(actor, "policy.delete", policy_id, "ok", None, now)

    def put_reference_values(
        self, actor: str, name: str, values: Sequence[str], expires: datetime | None, now: float
    ) -> None:
        expires_at = None if expires is None else expires.timestamp()
        self.store.put_reference_values(name, values, expires_at, now)
        self._audit(actor, "reference-value.put", name, "ok", None, now)

    def delete_reference_values(self, actor: str, name: str, now: float) -> None:
        if not self.store.delete_reference_values(name):
            raise KbsError.not_found(f"reference value {name} does not exist")
        self._audit(actor, "reference-value.delete", name, "ok", None, now)

    def rotate_signing_key(self, actor: str, now: float) -> str:
        kid = self.keys.rotate()
        self._audit(actor, "signing-key.rotate", kid, "ok", None, now)
        return kid


def now_seconds() -> float:
    return time.time()
