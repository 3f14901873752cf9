"""RCAR, the attestation half of trustee's KBS protocol 0.4.0: /auth opens a session with a fresh nonce, /attest
verifies evidence bound to that nonce, appraises it and issues the EAR token.

A session moves challenged -> consumed (one /attest took the nonce, whatever the outcome) -> attested (a token was
issued), by conditional UPDATEs in the database, so no two replicas accept one nonce.
"""

from __future__ import annotations

import base64
import secrets
import tomllib
from datetime import UTC, datetime
from typing import Any

import verifier
from kbs import __version__
from kbs_protocol import NegotiationError, challenge_extra_params
from verifier.ear import ear_claims, sign
from verifier.rego import PolicyError

from ..api.schemas import AttestationRequest, AuthRequest, Challenge
from ..errors import KbsError
from ..protocol import init_data_digest, runtime_digest, version_supported
from ..settings import Settings
from ..signing import KeyRing
from ..storage import ConflictError, Store
from ..tables import Session as SessionRow
from ..verification import VerifierInputs
from .policies import PolicyBook, compiled
from .tpm import EnrolledAkRegistry

__all__ = ["NONCE_BYTES", "RcarService"]

NONCE_BYTES = 32
_SWEEP_EVERY_SECONDS = 60.0


class RcarService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        keys: KeyRing,
        inputs: VerifierInputs,
        policies: PolicyBook,
        enrolled_aks: EnrolledAkRegistry,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.inputs = inputs
        self.policies = policies
        self.enrolled_aks = enrolled_aks
        self._last_sweep = 0.0

    def auth(self, request: AuthRequest, now: float) -> tuple[Challenge, str]:
        """A challenge and the id of its new session (the caller sets it as the `kbs-session-id` cookie)."""
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

    def attest(self, session_id: str | None, attestation: AttestationRequest, now: float) -> str:
        """The EAR token for evidence bound to this session's nonce; the nonce is spent whatever the outcome."""
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
        binding = verifier.Binding(
            runtime_digest=digest,
            runtime_data={"nonce": runtime.nonce, "tee-pubkey": runtime.tee_pubkey},
            init_data_digest=init_digest,
            init_data_claims=init_claims,
        )
        policy_id, source = self.policies.attestation_policy(session.tee)
        try:
            appraisal = verifier.attest(
                session.tee,
                attestation.tee_evidence.primary_evidence,
                binding=binding,
                options=self.inputs.options(at=at, enrolled_aks=self.enrolled_aks),
                policy=compiled(source),
                policy_id=policy_id,
                reference_values=self.policies.reference_values(now),
            )
        except verifier.VerifierError as exc:
            raise KbsError.attestation_failed(
                f"{session.tee} evidence rejected: {exc.reason.value}: {exc.detail}"
            ).labelled(tee=session.tee, reason=exc.reason.value) from exc
        except PolicyError as exc:
            raise KbsError.attestation_failed(f"attestation policy {policy_id} failed: {exc}").labelled(
                tee=session.tee, reason="policy_error"
            ) from exc
        claims = ear_claims(
            appraisal,
            issuer=self.settings.tokens.issuer,
            verifier_id={"developer": "veritee", "build": f"veritee-{__version__}"},
            now=at,
            ttl_seconds=self.settings.tokens.ttl_seconds,
        )
        token = sign(self.keys.signer(), claims)
        self.store.complete_session(session.id, token)
        return token
