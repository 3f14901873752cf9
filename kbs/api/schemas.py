"""The broker's request and response bodies, as pydantic models: parsing at the JSON boundary and the OpenAPI
document come from here.

The RCAR models repeat trustee's KBS protocol 0.4.0 shapes key for key (kebab-case aliases); the agent does not
import this module (it speaks the same wire format through the light wire module).

>>> AuthRequest.model_validate_json('{"version": "0.4.0", "tee": "sample"}').model_dump(by_alias=True)
{'version': '0.4.0', 'tee': 'sample', 'extra-params': ''}
>>> Challenge(nonce="AAAA").model_dump(by_alias=True)
{'nonce': 'AAAA', 'extra-params': ''}
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

__all__ = [
    "MAX_VERSION",
    "AttestationPolicyBody",
    "AttestationRequest",
    "AttestationToken",
    "AuditEntry",
    "AuditVerification",
    "AuthRequest",
    "Challenge",
    "DecisionDocument",
    "DecisionExplanation",
    "DecisionInfo",
    "ErrorBody",
    "Health",
    "ImpactReport",
    "ImpactRequest",
    "InitData",
    "Jwe",
    "Jwks",
    "PolicyDocument",
    "PolicyFlip",
    "PolicyId",
    "PolicyInfo",
    "PolicyVersionInfo",
    "ReferenceValueBody",
    "ReferenceValueInfo",
    "ReferenceValueStored",
    "ReferenceValueVersionInfo",
    "ResourceInfo",
    "ResourcePolicyBody",
    "ResourceVersionInfo",
    "RestoreBody",
    "RollbackBody",
    "RotatedKey",
    "RuntimeData",
    "TeeEvidence",
    "TpmActivateRequest",
    "TpmCredentialChallenge",
    "TpmEnrollRequest",
    "TpmEnrolled",
]


class _Body(BaseModel):
    """Unknown keys are ignored (trustee's clients add fields between patch releases); parsed bodies are frozen."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class ErrorBody(_Body):
    """Every error, in trustee's shape: `type` is `https://github.com/confidential-containers/kbs/errors/<Variant>`."""

    type: str = Field(examples=["https://github.com/confidential-containers/kbs/errors/InvalidRequest"])
    detail: str


# -- RCAR (trustee's KBS protocol 0.4.0) ---------------------------------------------------------------------------


class AuthRequest(_Body):
    """POST /kbs/v0/auth: the protocol version (any 0.4.x) and the guest's TEE."""

    version: str = "0.4.0"
    tee: str
    extra_params: Any = Field(default="", alias="extra-params")


class Challenge(_Body):
    """The answer to /auth: 32 random bytes, standard base64; the session travels in the `kbs-session-id` cookie."""

    nonce: str
    extra_params: Any = Field(default="", alias="extra-params")


class InitData(_Body):
    format: str
    body: str


class RuntimeData(_Body):
    nonce: str
    tee_pubkey: dict[str, Any] = Field(alias="tee-pubkey")


class TeeEvidence(_Body):
    primary_evidence: dict[str, Any]
    additional_evidence: str = ""


class AttestationRequest(_Body):
    """POST /kbs/v0/attest: evidence bound to the challenge nonce and the guest's ephemeral public key (a JWK)."""

    init_data: InitData | None = Field(default=None, alias="init-data")
    runtime_data: RuntimeData = Field(alias="runtime-data")
    tee_evidence: TeeEvidence = Field(alias="tee-evidence")


class AttestationToken(_Body):
    """The EAR (EAT Attestation Result) JWT, ES256, verifiable with /.well-known/jwks.json."""

    token: str


class Jwe(_Body):
    """A resource, as flattened JWE JSON encrypted to the token's tee-pubkey (base64url, no padding; enc A256GCM)."""

    protected: str
    encrypted_key: str
    iv: str
    ciphertext: str
    tag: str


# -- TPM AK enrolment by credential activation (Veritee's own; binary fields standard base64) ----------------------


class TpmEnrollRequest(_Body):
    """POST /kbs/v0/tpm/enroll: the AK's TPMT_PUBLIC, and the EK as certificate (required) and TPMT_PUBLIC."""

    ak_public: str
    ek_certificate: str
    ek_public: str | None = None


class TpmCredentialChallenge(_Body):
    """The broker's TPM2_MakeCredential output: activate it in the TPM and return the secret."""

    id: str
    credential_blob: str
    encrypted_secret: str
    expires_in: int


class TpmActivateRequest(_Body):
    """POST /kbs/v0/tpm/activate: the challenge id and the secret TPM2_ActivateCredential recovered."""

    id: str
    secret: str


class TpmEnrolled(_Body):
    ak_sha256: str


# -- admin ---------------------------------------------------------------------------------------------------------


_TESTS_DESCRIPTION = (
    "Veritee extension: Rego unit-test modules (file name -> source, base64url) run against the policy before it is "
    "stored; a policy that fails one is refused. Required when the broker's `policies.require_tests` is set."
)


class ResourcePolicyBody(_Body):
    """POST /kbs/v0/resource-policy: Rego source, base64url."""

    policy: str
    # Veritee extension: scope a policy to a resource path prefix (repo, repo/type or repo/type/tag).
    scope: str | None = None
    tests: dict[str, str] | None = Field(default=None, description=_TESTS_DESCRIPTION, max_length=64)


class AttestationPolicyBody(_Body):
    """POST /kbs/v0/attestation-policy: Rego source, base64url, stored as `attestation:<policy_id>`."""

    policy_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    policy: str
    type: str = "rego"
    tests: dict[str, str] | None = Field(default=None, description=_TESTS_DESCRIPTION, max_length=64)


class ReferenceValueBody(_Body):
    """POST /kbs/v0/reference-value, in either of two shapes:

    - Veritee's: `{name, values, expires?}`, the accepted values of one name (replacing the old ones);
    - trustee's RVPS message: `{version: "0.1.0", type: "sample", payload}`, `payload` standard base64 of a JSON
      object name -> value (a list of values, or one scalar); chosen when `payload` is present.
    """

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    values: list[str] | None = Field(default=None, max_length=1000)
    expires: datetime | None = None
    version: str | None = None
    type: str | None = None
    payload: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> ReferenceValueBody:
        if self.payload is not None:
            missing = [k for k in ("version", "type") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a reference-value message with payload needs {' and '.join(missing)}")
        elif self.name is None or self.values is None:
            missing = [k for k in ("name", "values") if getattr(self, k) is None]
            raise ValueError(f"{' and '.join(missing)}: Field required (or send trustee's version/type/payload)")
        return self


class ReferenceValuesStored(_Body):
    """The names an RVPS message stored, each with its count of accepted values."""

    stored: dict[str, int]
    # Veritee extension: name -> the version this message made of it.
    versions: dict[str, int] | None = None


class PolicyId(_Body):
    policy_id: str
    # Veritee extension: the version this write made (numbered from 1 per policy id, in the order of `set`).
    version: int | None = None


class ReferenceValueStored(_Body):
    name: str
    count: int
    version: int | None = None


class ResourceInfo(_Body):
    path: str
    size: int
    updated_at: float


class PolicyInfo(_Body):
    id: str
    sha256: str
    updated_at: float


class PolicyDocument(_Body):
    id: str
    policy: str = Field(description="the Rego source, base64url without padding")
    sha256: str
    updated_at: float
    version: int | None = Field(default=None, description="the stored version (none for a shipped default)")


class ReferenceValueInfo(_Body):
    name: str
    value: str
    expires_at: float | None


class AuditEntry(_Body):
    id: int = Field(description="the entry's place in the hash chain: 1, 2, ...")
    at: float = Field(description="UNIX seconds")
    actor: str = Field(description="`<subject> (<role>)` of an admin token, or `guest <address> [session <digest>]`")
    action: str
    target: str
    outcome: str
    reason: str | None = Field(description="why a call or evidence was refused")
    claims_digest: str | None = Field(description="SHA-256 of the attestation token's claims acted on")
    prev_digest: str = Field(description="the digest of entry id-1 (64 zeros for entry 1)")
    digest: str = Field(description="SHA-256 over this entry's canonical encoding and prev_digest")


class AuditVerification(_Body):
    intact: bool
    entries: int | None = Field(description="entries the chain head records (null when the head row is gone)")
    head_digest: str | None
    unchained: int = Field(
        description="entries committed but not chained yet (counted up to 1000); those older than the grace fail"
    )
    broken_at: int | None = Field(
        default=None, description="the first broken or missing entry's id (null when only unchained entries fail)"
    )
    problem: str | None = Field(default=None, description="what is wrong at that entry, or which entries are late")


class DecisionInfo(_Body):
    id: int
    at: float
    kind: str = Field(description="attestation | resource")
    outcome: str = Field(
        description="attestation: the EAR status (affirming, warning, contraindicated, none), rejected (the "
        "verifier refused the evidence) or error (the policy failed); resource: released or denied"
    )
    denied: bool = Field(description="a resource denied, or an attestation that did not come out affirming")
    tee: str | None
    path: str | None = Field(description="the resource path (resource decisions)")
    policy_id: str
    policy_sha256: str
    policy_version: int | None = Field(
        description="the version (as `policy history` numbers them) of the stored policy that decided; null for a "
        "shipped default"
    )
    detail: str | None


class DecisionDocument(DecisionInfo):
    input: Any = Field(description="the policy's input after the configured redactions")
    reference_values: dict[str, Any] | None = Field(description="the reference values the policy asked for")
    trust_vector: dict[str, int] | None


class DecisionExplanation(_Body):
    decision: DecisionInfo
    explanation: dict[str, Any] | None = Field(
        description="verifier.explain's explanation: for a resource decision the rule `allow` (the definitions "
        "that decided, each failing condition with the values it compared); for an attestation decision the "
        "trust vector, its ear.status and each claim's rule. Null when no policy judged claims."
    )
    text: str = Field(description="the explanation for people")


class ImpactRequest(_Body):
    """POST /kbs/v0/admin/policy-impact: a candidate policy replayed on the recorded decisions, nothing stored."""

    kind: Literal["attestation", "resource"]
    policy: str = Field(description="Rego source, base64url")
    policy_id: str | None = Field(
        default=None, description="attestation: the policy id or TEE it would be set as; resource: the scope"
    )
    since: float | None = Field(default=None, description="UNIX seconds: only decisions made since")


class PolicyFlip(_Body):
    decision: DecisionInfo
    before: str
    after: str
    explanation: dict[str, Any] | None
    text: str


class ImpactReport(_Body):
    replayed: int = Field(description="decisions replayed under the candidate policy")
    skipped: int = Field(description="decisions with no claims to replay (evidence refused before any policy)")
    flips: list[PolicyFlip] = Field(description="the decisions the candidate decides otherwise, newest first")


class _Version(_Body):
    """One version of a resource, policy or reference-value set: who wrote it and when, and whether it was deleted."""

    version: int = Field(description="numbered from 1 per key, in the order written")
    created_at: float
    created_by: str
    action: str = Field(description="put, set, restore (of `restored_from`) or rollback (to `restored_from`)")
    restored_from: int | None
    deleted_at: float | None = Field(description="set on the newest version when the key was deleted")
    deleted_by: str | None


class ResourceVersionInfo(_Version):
    """A resource version: its size, never its value nor a digest of it (a digest would confirm a guessed secret)."""

    size: int


class PolicyVersionInfo(_Version):
    sha256: str


class ReferenceValueVersionInfo(_Version):
    values: list[str]
    expires_at: float | None


# Version numbers and row ids (decisions, audit entries) are SQL INTEGERs, 32-bit on PostgreSQL: a larger one is a
# malformed request (400), not a query the driver fails on (it was a 500, found by schemathesis).
MAX_VERSION = MAX_ID = 2**31 - 1


class RestoreBody(_Body):
    """Which version to make current again (as a new version); none: the newest one of a deleted key."""

    version: StrictInt | None = Field(default=None, ge=1, le=MAX_VERSION)  # strict: `true` is not version 1


class RollbackBody(_Body):
    version: StrictInt = Field(ge=1, le=MAX_VERSION)


class RotatedKey(_Body):
    kid: str


# -- operations ----------------------------------------------------------------------------------------------------


class Health(_Body):
    status: str


class Jwks(_Body):
    """The token signing keys (ES256 JWKs with `kid`, `use`, `alg`), rotated-out keys for their overlap."""

    keys: list[dict[str, str]]
