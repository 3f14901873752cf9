"""Wire models of the KBS protocol 0.4.0 (trustee's RCAR: Request, Challenge, Attestation, Response).

Shared by the broker and the in-guest agent, so it imports neither FastAPI nor SQLModel. Keys are kebab-case on
the wire exactly as trustee spells them.

>>> Request(tee="sample").model_dump(by_alias=True)
{'version': '0.4.0', 'tee': 'sample', 'extra-params': ''}
"""

from __future__ import annotations

import hashlib
import re
import ssl
import tomllib
from collections.abc import Mapping
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERROR_TYPE_PREFIX",
    "PROTOCOL_VERSION",
    "RESOURCE_SEGMENT",
    "SESSION_COOKIE",
    "Attestation",
    "Challenge",
    "ErrorBody",
    "InitData",
    "Request",
    "Response",
    "RuntimeData",
    "TeeEvidence",
    "TpmActivateRequest",
    "TpmCredentialChallenge",
    "TpmEnrollRequest",
    "TpmEnrolled",
    "expected_report_data",
    "init_data_digest",
    "parse_resource_uri",
    "runtime_digest",
    "tls_verify",
    "version_supported",
]

PROTOCOL_VERSION = "0.4.0"
SESSION_COOKIE = "kbs-session-id"
ERROR_TYPE_PREFIX = "https://github.com/confidential-containers/kbs/errors/"
RESOURCE_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
BASE_PATH = "/kbs/v0"


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class Request(_Wire):
    version: str = PROTOCOL_VERSION
    tee: str
    extra_params: Any = Field(default="", alias="extra-params")


class Challenge(_Wire):
    nonce: str
    extra_params: Any = Field(default="", alias="extra-params")


class InitData(_Wire):
    format: str
    body: str


class RuntimeData(_Wire):
    nonce: str
    tee_pubkey: dict[str, Any] = Field(alias="tee-pubkey")


class TeeEvidence(_Wire):
    primary_evidence: dict[str, Any]
    additional_evidence: str = ""


class Attestation(_Wire):
    init_data: InitData | None = Field(default=None, alias="init-data")
    runtime_data: RuntimeData = Field(alias="runtime-data")
    tee_evidence: TeeEvidence = Field(alias="tee-evidence")


class Response(_Wire):
    token: str


class ErrorBody(_Wire):
    type: str
    detail: str


def tls_verify(verify: bool | str) -> bool | ssl.SSLContext:
    """httpx's `verify` from True/False or the path of a CA certificate file (the broker's, for clients)."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def version_supported(version: str) -> bool:
    """Accept any 0.4.x: patch releases of the protocol do not change the wire format."""
    parts = version.split(".")
    return len(parts) == 3 and parts[:2] == ["0", "4"] and parts[2].isdigit()


def parse_resource_uri(uri: str) -> tuple[str, str, str]:
    """`kbs:///repo/type/tag` (or `repo/type/tag`) -> (repo, type, tag); ValueError if it is not exactly three
    valid segments."""
    path = uri.removeprefix("kbs:///") if uri.startswith("kbs:///") else uri
    if uri.startswith("kbs://") and not uri.startswith("kbs:///"):
        # kbs://host/repo/type/tag: the host is the broker's address, given separately.
        path = uri.removeprefix("kbs://").split("/", 1)[-1]
    parts = path.split("/")
    if len(parts) != 3 or not all(RESOURCE_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"resource {uri!r} is not kbs:///REPO/TYPE/TAG with segments [A-Za-z0-9_-][A-Za-z0-9_.-]*")
    return parts[0], parts[1], parts[2]


# -- Binding (trustee kbs_attestation_protocol.md, "Attestation"; docs/protocol.md) ----------------------------
# runtime_digest = SHA-384(JCS({"additional-evidence", "nonce", "tee-pubkey"})), JCS being RFC 8785. TDX and SNP
# carry it zero-padded to 64 bytes in REPORT_DATA, the TPM its first 32 bytes in extraData, the sample TEE all 48.
# Azure CVMs (az-snp-vtpm, az-tdx-vtpm) carry all 48 bytes in the vTPM quote's extraData, as guest-components'
# attesters put it and trustee's verifiers compare it (their hardware REPORT_DATA binds the HCL runtime data).

REPORT_DATA_SIZE = 64
TPM_EXTRA_DATA_SIZE = 32
_INIT_DATA_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def runtime_digest(nonce: str, tee_pubkey: Mapping[str, object], additional_evidence: str = "") -> bytes:
    document: dict[str, Any] = {
        "additional-evidence": additional_evidence,
        "nonce": nonce,
        "tee-pubkey": dict(tee_pubkey),
    }
    return hashlib.sha384(rfc8785.dumps(document)).digest()


def expected_report_data(tee: str, digest: bytes) -> bytes:
    """The exact report-data field a TEE must carry for this runtime digest."""
    if tee in ("tdx", "snp"):
        return digest + bytes(REPORT_DATA_SIZE - len(digest))
    if tee == "tpm":
        return digest[:TPM_EXTRA_DATA_SIZE]
    return digest  # sample, az-snp-vtpm, az-tdx-vtpm: the digest as it is


def init_data_digest(body: str) -> bytes:
    """Digest of an init-data TOML body with the algorithm its `algorithm` key names (default sha384).
    ValueError when the body is not TOML or names another algorithm."""
    try:
        document = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"init-data body is not TOML ({exc})") from exc
    algorithm = document.get("algorithm", "sha384")
    hasher = _INIT_DATA_HASHES.get(algorithm) if isinstance(algorithm, str) else None
    if hasher is None:
        raise ValueError(f"init-data algorithm is {algorithm!r}, expected one of {sorted(_INIT_DATA_HASHES)}")
    return hasher(body.encode()).digest()


# -- TPM AK enrolment by credential activation (Veritee's own endpoints; binary fields standard base64) --------


class TpmEnrollRequest(_Wire):
    """POST /kbs/v0/tpm/enroll: the AK's TPMT_PUBLIC, and the EK as certificate (required) and TPMT_PUBLIC."""

    ak_public: str
    ek_certificate: str
    ek_public: str | None = None


class TpmCredentialChallenge(_Wire):
    """The broker's TPM2_MakeCredential output: activate it in the TPM and return the secret."""

    id: str
    credential_blob: str
    encrypted_secret: str
    expires_in: int


class TpmActivateRequest(_Wire):
    """POST /kbs/v0/tpm/activate: the challenge id and the secret TPM2_ActivateCredential recovered."""

    id: str
    secret: str


class TpmEnrolled(_Wire):
    ak_sha256: str
