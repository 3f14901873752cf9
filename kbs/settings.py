"""Broker configuration: a TOML file (written by `kbs init`) and VERITEE_KBS_* environment variables (e.g.
VERITEE_KBS_DATABASE__URL), which fill in what the file leaves unset (docker-compose.yml sets the Redis URL and the
trusted proxy so). `kbs serve` flags override the host, port and database URL.

Secure defaults: loopback HTTP only, no admin API unless an admin key is configured, the sample TEE refused,
RSA1_5 refused, request bodies capped at 2 MiB.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = 2 * 1024 * 1024
    # trustee's old clients expect 401 for every error; off by default (Veritee answers 400/403/404/413/429).
    legacy_401: bool = False
    # RSA1_5 key wrapping is deprecated; only for old clients.
    insecure_allow_rsa1_5: bool = False
    # Plain HTTP on a non-loopback address must be asked for by name.
    insecure_http: bool = False
    # Addresses or CIDRs of the reverse proxies whose X-Forwarded-For / Forwarded name the client (rate limits key on
    # the rightmost hop that is not one of them). Empty: the TCP peer is the client and those headers are ignored.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Worker processes serving one port (`kbs serve --workers N`); they share nothing but the database.
    workers: int = Field(default=1, ge=1, le=64)
    # Threads per worker for verification, cryptography and the database (0: one per core, at least 2).
    threads: int = Field(default=0, ge=0, le=256)


class DatabaseSettings(_Section):
    url: str = "sqlite:///kbs.sqlite"


class Pkcs11Settings(_Section):
    # The module of the token's vendor (SoftHSM2's by default), the token, and the AES-256 key on it.
    library: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    token_label: str
    key_label: str = "veritee-kek"
    # The user PIN: a 0600 file, or the name of an environment variable holding it.
    pin_file: Path | None = None
    pin_env: str | None = None


class RootKeySettings(_Section):
    # The root key-encryption key, which wraps the keyring's data keys (they seal resources and token signing keys):
    # "file" (32 bytes in kek_file), "env" (hex or base64 in the variable kek_env) or "pkcs11" (a key on a token).
    kek_source: Literal["file", "env", "pkcs11"] = "file"
    kek_file: Path = Path("kek.bin")
    kek_env: str = "VERITEE_KEK"
    pkcs11: Pkcs11Settings | None = None


class StorageSettings(RootKeySettings):
    # While the root key changes: the one before, which still unwraps the data keys it wrapped until `kbs kek rotate`
    # has re-sealed every secret under a data key of the new one (then remove this section).
    previous: RootKeySettings | None = None


class TokenSettings(_Section):
    issuer: str = "veritee-kbs"
    ttl_seconds: int = 300
    # A rotated-out signing key stays in the JWKS this long, so tokens it signed keep verifying.
    rotation_overlap_seconds: int = 3600


class SessionSettings(_Section):
    ttl_seconds: int = 300


class AdminSettings(_Section):
    # PEM files of the public keys (Ed25519 or ECDSA P-256) whose JWTs may call the admin API. Empty: admin off.
    public_keys: list[Path] = Field(default_factory=list)


class RateLimitSettings(_Section):
    # Per client address: /auth (and /tpm/enroll) and /attest requests a minute (0 disables); per replica unless
    # [limits] redis_url shares the budget.
    auth_per_minute: int = 600
    attest_per_minute: int = 600


class LimitsSettings(_Section):
    # redis://host:port/db: the rate limits' buckets shared by every replica. Unset: each process keeps its own.
    redis_url: str | None = None


class HistorySettings(_Section):
    # A deleted resource, policy or reference-value set can be restored this long after its deletion; then its
    # history is swept (at the next admin write, or at start-up).
    retention_seconds: float = Field(default=30 * 86400, ge=0)
    # Versions kept per resource path, policy id or reference-value name, the newest first (0: every version).
    max_versions: int = Field(default=50, ge=0)


class PolicySettings(_Section):
    # Refuse a policy set without Rego unit tests (`kbs admin policy set ... --tests DIR`); trustee's clients send
    # none, so this is off by default.
    require_tests: bool = False


class VerifierSettings(_Section):
    allow_sample: bool = False
    trust: dict[str, list[Path]] = Field(default_factory=dict)
    collateral: list[Path] = Field(default_factory=list)
    offline: bool = True
    cache_dir: Path | None = None
    # Intel PCS v4 (default) or a PCCS base URL for TDX collateral when not offline.
    tdx_pcs_url: str = "https://api.trustedservices.intel.com"


class DecisionSettings(_Section):
    # Record every attestation and resource decision (what the policy judged, for `kbs admin decisions` and
    # `policy explain|impact`). Off: nothing is recorded, and explain/impact have no history to work on.
    record: bool = True
    # Decisions older than this are expired, and swept with those beyond the newest max_count (off the protocol path).
    retention_seconds: float = Field(default=30 * 86400, gt=0)
    max_count: int = Field(default=100_000, ge=1)
    # Claims never recorded: JSON pointers into the annotated evidence (`/tdx/mr_config_id`,
    # `/init_data_claims/token`; `*` matches every member at its level); recorded as "<redacted>". In a resource
    # decision they apply to the annotated evidence of every submod of the EAR.
    redact: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERITEE_KBS_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    verifier: VerifierSettings = Field(default_factory=VerifierSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)


def load(path: Path | None) -> Settings:
    if path is None:
        return Settings()
    document = tomllib.loads(path.read_text())
    settings = Settings(**document)
    base = path.resolve().parent
    return _anchor(settings, base)


def _anchor(settings: Settings, base: Path) -> Settings:
    def anchor(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    for root in (settings.storage, settings.storage.previous):
        if root is not None:
            root.kek_file = anchor(root.kek_file)
            if root.pkcs11 is not None and root.pkcs11.pin_file is not None:
                root.pkcs11.pin_file = anchor(root.pkcs11.pin_file)
    settings.admin.public_keys = [anchor(p) for p in settings.admin.public_keys]
    settings.verifier.collateral = [anchor(p) for p in settings.verifier.collateral]
    settings.verifier.trust = {k: [anchor(p) for p in v] for k, v in settings.verifier.trust.items()}
    if settings.verifier.cache_dir is not None:
        settings.verifier.cache_dir = anchor(settings.verifier.cache_dir)
    for attr in ("tls_cert", "tls_key"):
        value = getattr(settings.server, attr)
        if value is not None:
            setattr(settings.server, attr, anchor(value))
    prefix = "sqlite:///"
    url = settings.database.url
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        settings.database.url = prefix + str(base / url.removeprefix(prefix))
    return settings
