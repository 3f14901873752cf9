"""SQLModel tables: the broker's whole state. Nothing that matters lives in process memory, so any replica can
serve any step of a guest's handshake. Times are UNIX seconds (float) so SQLite and PostgreSQL agree."""

from __future__ import annotations

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

__all__ = [
    "Audit",
    "AuditHead",
    "DataKey",
    "Decision",
    "Policy",
    "PolicyVersion",
    "ReferenceValue",
    "ReferenceValueVersion",
    "Resource",
    "ResourceVersion",
    "Session",
    "SigningKey",
    "TpmAk",
    "TpmEnrollment",
]


class Session(SQLModel, table=True):
    __tablename__ = "kbs_session"

    id: str = Field(primary_key=True, max_length=64)
    nonce: str = Field(unique=True, max_length=64)
    tee: str = Field(max_length=32)
    # challenged -> consumed (one /attest took the nonce) -> attested (a token was issued)
    state: str = Field(max_length=16)
    created_at: float
    expires_at: float = Field(index=True)
    token: str | None = None


class Resource(SQLModel, table=True):
    __tablename__ = "kbs_resource"

    path: str = Field(primary_key=True, max_length=400)
    # AES-256-GCM under the key-encryption key, AAD = the path; 12-byte nonce prefixed.
    sealed: bytes
    size: int
    updated_at: float


class Policy(SQLModel, table=True):
    __tablename__ = "kbs_policy"

    # "resource" (every path), "resource:<repo>" or "resource:<repo>/<type>" (a prefix), "attestation:<id>"
    id: str = Field(primary_key=True, max_length=300)
    source: str
    sha256: str = Field(max_length=64)
    updated_at: float
    # Its number in kbs_policy_version: read with the source in the protocol step's one read, so what a decision
    # names (policy id and version) costs no second query.
    version: int | None = None


class ReferenceValue(SQLModel, table=True):
    __tablename__ = "kbs_reference_value"

    name: str = Field(primary_key=True, max_length=200)
    value: str = Field(primary_key=True, max_length=1024)
    expires_at: float | None = None
    updated_at: float


class SigningKey(SQLModel, table=True):
    __tablename__ = "kbs_signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    sealed_private_key: bytes
    public_pem: str
    created_at: float
    # Set on rotation: the key signs nothing after this, and leaves the JWKS after the overlap.
    retired_at: float | None = None


class Audit(SQLModel, table=True):
    """One entry of the hash-chained audit log (kbs._audit_chain). The audited transaction stores it unchained
    (`seq`, `prev_digest` and `digest` null); the chainer (kbs._audit_chainer) then gives it its place in the chain,
    `seq` 1, 2, ..., unique, so two chainers can never both append entry n. `id` is the database's and is not the
    chain's order (PostgreSQL hands ids out before commit)."""

    __tablename__ = "kbs_audit"
    # The chainer's query: the unchained entries, oldest id first, without reading the chained ones.
    __table_args__ = (
        Index(
            "ix_kbs_audit_unchained",
            "id",
            sqlite_where=text("seq IS NULL"),
            postgresql_where=text("seq IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    seq: int | None = Field(default=None, unique=True, index=True)
    at: float = Field(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    target: str = Field(max_length=400)
    outcome: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=200)
    claims_digest: str | None = Field(default=None, max_length=64)
    prev_digest: str | None = Field(default=None, max_length=64)
    digest: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's head, one row (id 1): the newest chained entry's seq and digest. A chain pass locks it (SELECT
    ... FOR UPDATE SKIP LOCKED) for the length of its one short transaction, which keeps the chain linear across
    replicas; and it is the anchor that shows entries removed at the tail."""

    __tablename__ = "kbs_audit_head"

    id: int = Field(primary_key=True)
    seq: int
    digest: str = Field(max_length=64)


class Decision(SQLModel, table=True):
    """An attestation (/attest) or resource (GET /resource) decision, with what the policy judged, so that an admin
    can ask why it went as it did and what another policy would have decided (docs/tokens-and-policies.md)."""

    __tablename__ = "kbs_decision"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    kind: str = Field(max_length=16)  # attestation | resource
    # attestation: the EAR status (affirming, warning, contraindicated, none), rejected (the verifier refused the
    # evidence) or error (the policy failed); resource: released or denied
    outcome: str = Field(max_length=32)
    denied: bool = Field(index=True)
    tee: str | None = Field(default=None, max_length=32)
    path: str | None = Field(default=None, max_length=400, index=True)
    policy_id: str = Field(max_length=300)
    policy_sha256: str = Field(max_length=64)
    # JSON: the policy's input (annotated evidence, or the EAR claims) after the configured redactions
    input: str | None = None
    # JSON: the reference values the policy asked for, as it was answered (name -> value or null)
    reference_values: str | None = None
    # JSON: the AR4SI vector (attestation decisions)
    trust_vector: str | None = None
    detail: str | None = Field(default=None, max_length=2000)


class TpmEnrollment(SQLModel, table=True):
    """A credential made for an AK under an EK, waiting for the guest to return the activated secret."""

    __tablename__ = "kbs_tpm_enrollment"

    id: str = Field(primary_key=True, max_length=64)
    ak_sha256: str = Field(max_length=64)
    ek_certificate_sha256: str = Field(max_length=64)
    # Only a digest of the secret is kept: the row alone cannot answer its own challenge.
    secret_sha256: str = Field(max_length=64)
    created_at: float
    expires_at: float = Field(index=True)


class TpmAk(SQLModel, table=True):
    """An AK proven by credential activation to live in a TPM whose EK certificate chains to a trusted root."""

    __tablename__ = "kbs_tpm_ak"

    ak_sha256: str = Field(primary_key=True, max_length=64)
    ek_certificate_sha256: str = Field(max_length=64)
    enrolled_at: float


class DataKey(SQLModel, table=True):
    """A data key of the keyring: AES-256, wrapped by the root key-encryption key (file, environment or token).
    Every sealed value names the key that sealed it, so old and new keys coexist while `kbs kek rotate` runs."""

    __tablename__ = "kbs_data_key"

    kid: str = Field(primary_key=True, max_length=32)
    # active (seals; exactly one after start-up) -> previous (still opens, being re-sealed away) -> retired
    state: str = Field(max_length=16)
    # AES-256-GCM under the root key, AAD = "data-key:<kid>"; None once retired: the key is gone.
    wrapped: bytes | None = None
    created_at: float
    retired_at: float | None = None


# -- history: every write of a resource, policy or reference-value set is a version, numbered from 1 per key ---------
# The current state stays in the tables above (the handshake reads only those); a version row is appended in the same
# transaction as each change. A delete marks the version that was current (`deleted_at`, `deleted_by`): it can be
# restored until `history.retention_seconds` after that, then the key's whole history is swept.


class ResourceVersion(SQLModel, table=True):
    __tablename__ = "kbs_resource_version"

    path: str = Field(primary_key=True, max_length=400)
    version: int = Field(primary_key=True)
    # Sealed exactly as `Resource.sealed` (AES-256-GCM under the KEK, AAD "resource:<path>"): a restore copies the
    # bytes back, and KEK rotation re-seals these rows as it re-seals the current ones.
    sealed: bytes
    size: int
    created_at: float
    created_by: str = Field(max_length=200)
    # put | restore (of version `restored_from`)
    action: str = Field(max_length=16)
    restored_from: int | None = None
    deleted_at: float | None = Field(default=None, index=True)
    deleted_by: str | None = Field(default=None, max_length=200)


class PolicyVersion(SQLModel, table=True):
    __tablename__ = "kbs_policy_version"

    policy_id: str = Field(primary_key=True, max_length=300)
    version: int = Field(primary_key=True)
    source: str
    sha256: str = Field(max_length=64)
    created_at: float
    created_by: str = Field(max_length=200)
    # set | rollback (to version `restored_from`)
    action: str = Field(max_length=16)
    restored_from: int | None = None
    deleted_at: float | None = Field(default=None, index=True)
    deleted_by: str | None = Field(default=None, max_length=200)


class ReferenceValueVersion(SQLModel, table=True):
    __tablename__ = "kbs_reference_value_version"

    name: str = Field(primary_key=True, max_length=200)
    version: int = Field(primary_key=True)
    # The accepted values, a JSON list of strings (reference values are not secret).
    values_json: str
    expires_at: float | None = None
    created_at: float
    created_by: str = Field(max_length=200)
    # put | restore (of version `restored_from`)
    action: str = Field(max_length=16)
    restored_from: int | None = None
    deleted_at: float | None = Field(default=None, index=True)
    deleted_by: str | None = Field(default=None, max_length=200)
