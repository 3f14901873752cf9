"""RCAR, the attestation half of trustee's KBS protocol 0.4.0: /auth opens a session with a fresh nonce, /attest
verifies evidence bound to that nonce, appraises it and issues the EAR token.

A session moves challenged -> attested (a token was issued) or challenged -> consumed (its evidence was refused) by
one conditional UPDATE after verification, so no two requests, on any replicas, both accept one nonce; the loser
of a race is told the nonce was used. Verification and signing run with no transaction open.
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
from verifier.appraisal import Appraisal
from verifier.ear import claims_digest, ear_claims, sign
from verifier.rego import PolicyError

from ..api.schemas import AttestationRequest, AuthRequest, Challenge
from ..errors import KbsError
from ..protocol import init_data_digest, runtime_digest, version_supported
from ..settings import Settings
from ..signing import KeyRing
from ..storage import DecisionRecord, Store
from ..storage import SessionRecord as SessionRow
from ..verification import VerifierInputs
from .audit import AuditRecord, guest
from .composite import Device, appraise_devices, parse_additional_evidence
from .decisions import DecisionLog, RecordingReferences
from .policies import PolicyBook, compiled
from .tpm import EnrolledAkRegistry

__all__ = ["NONCE_BYTES", "RcarService"]

NONCE_BYTES = 32
_SWEEP_EVERY_SECONDS = 60.0


class RcarService:
    """Each step is one write transaction at most: /auth inserts the session; /attest reads the session, its
    policy and the reference values in one read, verifies and signs with no transaction open, then moves the
    session to attested (or, evidence refused, spends its nonce) in one conditional UPDATE."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        keys: KeyRing,
        inputs: VerifierInputs,
        policies: PolicyBook,
        enrolled_aks: EnrolledAkRegistry,
        decisions: DecisionLog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.inputs = inputs
        self.policies = policies
        self.enrolled_aks = enrolled_aks
        self.decisions = decisions

    def auth(self, request: AuthRequest, now: float) -> tuple[Challenge, str]:
        """A challenge and the id of its new session (the caller sets it as the `kbs-session-id` cookie)."""
        if not version_supported(request.version):
            raise KbsError.protocol_version(
                f"protocol version {request.version!r} is not supported; this broker speaks 0.4.x (0.4.0)"
            )
        if request.tee not in verifier.TEES or request.tee in verifier.DEVICE_TEES:
            primary = sorted(set(verifier.TEES) - set(verifier.DEVICE_TEES))
            raise KbsError.invalid_request(f"tee {request.tee!r} is not one of {primary}")
        if request.tee == "sample" and not self.inputs.allow_sample:
            raise KbsError.invalid_request("tee 'sample' is refused by this broker (verifier.allow_sample is off)")
        try:  # the answer is "" (SHA-384), Challenge's default, as trustee's built-in attestation service answers
            challenge_extra_params(request.extra_params)
        except NegotiationError as exc:
            raise KbsError.invalid_request(str(exc)) from None
        nonce = base64.b64encode(secrets.token_bytes(NONCE_BYTES)).decode()
        session_id = secrets.token_urlsafe(32)
        with self.store.write() as writes:
            writes.add_session(session_id, nonce, request.tee, now, now + self.settings.sessions.ttl_seconds)
        return Challenge(nonce=nonce), session_id

    def sweep(self, now: float) -> int:
        """Delete the sessions expired at `now` (the app runs this every `sweep_interval` seconds)."""
        return self.store.sweep_sessions(now)

    @property
    def sweep_interval(self) -> float:
        """A quarter of the session lifetime, between 1 and 60 seconds: a session outlives its TTL by that at most."""
        return min(_SWEEP_EVERY_SECONDS, max(1.0, self.settings.sessions.ttl_seconds / 4))

    @staticmethod
    def _open_challenge(session: SessionRow | None, nonce: str, now: float) -> SessionRow:
        if session is None:
            raise KbsError.unauthorized("unknown or expired session: call /auth again")
        if session.expires_at <= now:
            raise KbsError.unauthorized("session expired: call /auth again")
        if session.state != "challenged":
            raise _nonce_spent()
        if session.nonce != nonce:
            raise KbsError.attestation_failed("runtime-data nonce is not this session's challenge")
        return session

    def attest(self, session_id: str | None, attestation: AttestationRequest, now: float, client: str) -> str:
        """The EAR token for evidence bound to this session's nonce; the nonce is spent whatever the outcome. The
        outcome is audited (the guest by `client` address and session digest, the TEE, the token's claims digest
        or why it was refused) and its decision recorded (the appraisal, or why the evidence was refused) in the
        step's one write; a request refused before its session was read is audited in a write of its own."""
        actor = guest(client, session_id)
        runtime = attestation.runtime_data
        init = attestation.init_data
        init_digest: bytes | None = None
        init_claims: dict[str, Any] = {}
        try:
            if init is not None:
                if init.format != "toml":
                    raise KbsError.invalid_request(f"init-data format is {init.format!r}, expected 'toml'")
                try:
                    init_digest = init_data_digest(init.body)
                    init_claims = tomllib.loads(init.body).get("data", {})
                except ValueError as exc:
                    raise KbsError.invalid_request(str(exc)) from exc
            devices = parse_additional_evidence(attestation.tee_evidence.additional_evidence)
            if not session_id:
                raise KbsError.unauthorized("no kbs-session-id cookie: call /auth first")
            with self.store.read() as reads:
                session = self._open_challenge(reads.session(session_id), runtime.nonce, now)
                policy = self.policies.attestation_policy(reads, session.tee)
                reference_values = self.policies.reference_values(reads, now)
        except KbsError as exc:
            self.store.audit(_refusal(actor, "unknown", exc, now))
            raise
        references = RecordingReferences(reference_values)
        try:
            token, appraisal, digest = self._appraise(
                session.tee, attestation, devices, init_digest, init_claims, policy, references, now
            )
        except Exception as exc:
            refusal: DecisionRecord | None = None
            if isinstance(exc, KbsError):
                outcome = "error" if exc.labels.get("reason") == "policy_error" else "rejected"
                refusal = self.decisions.attestation_refused(session.tee, policy, outcome, exc.detail, now)
            # Refused (or failed): the nonce is spent all the same, with the refusal's audit entry and decision.
            with self.store.write() as writes:
                writes.spend_nonce(session.id, session.nonce)
                writes.add_audit(_refusal(actor, session.tee, exc, now))
                if refusal is not None:
                    writes.add_decision(refusal)
            raise
        decision = self.decisions.attestation(appraisal, policy, references, now)
        with self.store.write() as writes:
            attested = writes.attest_session(session.id, session.nonce, token, now)
            if attested:
                writes.add_audit(AuditRecord(actor, "attest", session.tee, "token", now, claims_digest=digest))
                if decision is not None:
                    writes.add_decision(decision)
            else:
                writes.add_audit(_refusal(actor, session.tee, _nonce_spent(), now))
        if not attested:
            raise _nonce_spent()
        return token

    def _appraise(
        self,
        tee: str,
        attestation: AttestationRequest,
        devices: list[Device],
        init_digest: bytes | None,
        init_claims: dict[str, Any],
        policy: tuple[str, str],
        reference_values: RecordingReferences,
        now: float,
    ) -> tuple[str, Appraisal, str]:
        """Verify the evidence, appraise it under `policy` and sign the EAR: no database transaction is open. The
        token, the appraisal it carries and its claims digest."""
        runtime = attestation.runtime_data
        digest = runtime_digest(runtime.nonce, runtime.tee_pubkey, attestation.tee_evidence.additional_evidence)
        at = datetime.fromtimestamp(now, UTC)
        runtime_data = {"nonce": runtime.nonce, "tee-pubkey": runtime.tee_pubkey}
        binding = verifier.Binding(
            runtime_digest=digest,
            runtime_data=runtime_data,
            init_data_digest=init_digest,
            init_data_claims=init_claims,
        )
        policy_id, source = policy
        try:
            appraisal = verifier.attest(
                tee,
                attestation.tee_evidence.primary_evidence,
                binding=binding,
                options=self.inputs.options(at=at, enrolled_aks=self.enrolled_aks),
                policy=compiled(source),
                policy_id=policy_id,
                reference_values=reference_values,
            )
        except verifier.VerifierError as exc:
            raise KbsError.attestation_failed(f"{tee} evidence rejected: {exc.reason.value}: {exc.detail}").labelled(
                tee=tee, reason=exc.reason.value
            ) from exc
        except PolicyError as exc:
            raise KbsError.attestation_failed(f"attestation policy {policy_id} failed: {exc}").labelled(
                tee=tee, reason="policy_error"
            ) from exc
        device_appraisals = appraise_devices(
            devices,
            runtime_data=runtime_data,
            inputs=self.inputs,
            policies=_DevicePolicies(self.store, self.policies),
            references=reference_values,
            at=at,
        )
        claims = ear_claims(
            appraisal,
            issuer=self.settings.tokens.issuer,
            verifier_id={"developer": "veritee", "build": f"veritee-{__version__}"},
            now=at,
            ttl_seconds=self.settings.tokens.ttl_seconds,
            devices=device_appraisals,
        )
        return sign(self.keys.signer(), claims), appraisal, claims_digest(claims)


class _DevicePolicies:
    """The attestation policies of additional devices (GPUs), looked up only when evidence carries some: a read
    transaction of its own, made outside the step's read so a handshake without devices pays nothing for them."""

    def __init__(self, store: Store, book: PolicyBook) -> None:
        self._store = store
        self._book = book

    def attestation_policy(self, tee: str, tee_class: str = "cpu") -> tuple[str, str]:
        with self._store.read() as reads:
            policy: tuple[str, str] = self._book.attestation_policy(reads, tee, tee_class)
        return policy


def _refusal(actor: str, tee: str, exc: Exception, now: float) -> AuditRecord:
    """The audit entry of a refused /attest: the verifier's reason code, never its detail (which may quote the
    evidence); the broker's own refusals (session, nonce, request shape) with their message."""
    if not isinstance(exc, KbsError):
        reason = type(exc).__name__
    else:
        reason = exc.labels.get("reason") or f"{exc.variant}: {exc.detail}"
    return AuditRecord(actor, "attest", tee, "rejected", now, reason=reason)


def _nonce_spent() -> KbsError:
    return KbsError.unauthorized("this session's nonce was already used: a session attests once; call /auth again")
