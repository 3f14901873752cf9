"""The KBS protocol 0.4.x messages (trustee's RCAR: Request, Challenge, Attestation, Response), the error body,
and Veritee's TPM enrolment messages, as frozen dataclasses.

Keys are kebab-case on the wire exactly as trustee spells them (`extra-params`, `runtime-data`, `tee-pubkey`);
`tee-evidence`'s members are snake_case in trustee too. Each `parse_*` takes the JSON body (bytes or text) or its
decoded object, checks every field's type, ignores unknown keys, and raises ProtocolError naming the field
(`runtime-data.nonce: is missing`). A field may also be spelt with its Python name (`runtime_data`), as the
broker always accepted. `to_dict()` gives the wire object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ._errors import ProtocolError

__all__ = [
    "BASE_PATH",
    "ERROR_TYPE_PREFIX",
    "PROTOCOL_VERSION",
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
    "parse_attestation",
    "parse_challenge",
    "parse_error",
    "parse_request",
    "parse_response",
    "parse_tpm_activate_request",
    "parse_tpm_credential_challenge",
    "parse_tpm_enroll_request",
    "parse_tpm_enrolled",
    "version_supported",
]

PROTOCOL_VERSION = "0.4.0"
BASE_PATH = "/kbs/v0"
SESSION_COOKIE = "kbs-session-id"
ERROR_TYPE_PREFIX = "https://github.com/confidential-containers/kbs/errors/"

T = TypeVar("T")
_MISSING = object()


def version_supported(version: str) -> bool:
    """Accept any 0.4.x: patch releases of the protocol do not change the wire format."""
    parts = version.split(".")
    return len(parts) == 3 and parts[:2] == ["0", "4"] and parts[2].isdigit()


# -- field readers ------------------------------------------------------------------------------------------------


def _decode(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("body", f"is not JSON ({exc})") from None
    return _object(document, "body")


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(where, f"is a JSON {_kind(value)}, expected an object")
    return value


def _kind(value: object) -> str:
    names = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _get(document: Mapping[str, Any], wire: str, where: str, default: object = _MISSING) -> object:
    """The member spelt `wire` (or its Python name, underscores for dashes); `default` when absent."""
    value = document.get(wire, _MISSING)
    if value is _MISSING and "-" in wire:
        value = document.get(wire.replace("-", "_"), _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ProtocolError(_at(where, wire), "is missing")
        return default
    return value


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _str(document: Mapping[str, Any], wire: str, where: str = "", default: object = _MISSING) -> Any:
    value = _get(document, wire, where, default)
    if value is not default and not isinstance(value, str):
        raise ProtocolError(_at(where, wire), f"is a JSON {_kind(value)}, expected a string")
    return value


def _dict(document: Mapping[str, Any], wire: str, where: str = "") -> dict[str, Any]:
    return dict(_object(_get(document, wire, where), _at(where, wire)))


def _parser(build: Callable[[Mapping[str, Any]], T]) -> Callable[[bytes | str | Mapping[str, Any]], T]:
    def parse(body: bytes | str | Mapping[str, Any]) -> T:
        return build(_decode(body))

    parse.__doc__ = f"{build.__doc__} ProtocolError on any malformed field."
    return parse


# -- RCAR -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """POST /auth: the protocol version and the TEE the guest will attest with."""

    tee: str
    version: str = PROTOCOL_VERSION
    extra_params: Any = ""

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "tee": self.tee, "extra-params": self.extra_params}


@dataclass(frozen=True)
class Challenge:
    """The broker's answer to /auth: the nonce the evidence must bind (with the session cookie)."""

    nonce: str
    extra_params: Any = ""

    def to_dict(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "extra-params": self.extra_params}


@dataclass(frozen=True)
class InitData:
    format: str
    body: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "body": self.body}


@dataclass(frozen=True)
class RuntimeData:
    """The challenge's nonce and the guest's ephemeral public key (a JWK) the resource will be encrypted to."""

    nonce: str
    tee_pubkey: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "tee-pubkey": self.tee_pubkey}


@dataclass(frozen=True)
class TeeEvidence:
    primary_evidence: dict[str, Any]
    additional_evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"primary_evidence": self.primary_evidence, "additional_evidence": self.additional_evidence}


@dataclass(frozen=True)
class Attestation:
    """POST /attest: the runtime data, the TEE's evidence bound to its digest, and optional init-data."""

    runtime_data: RuntimeData
    tee_evidence: TeeEvidence
    init_data: InitData | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "init-data": None if self.init_data is None else self.init_data.to_dict(),
            "runtime-data": self.runtime_data.to_dict(),
            "tee-evidence": self.tee_evidence.to_dict(),
        }


@dataclass(frozen=True)
class Response:
    """The broker's answer to /attest: the attestation token (an EAR JWT)."""

    token: str

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token}


@dataclass(frozen=True)
class ErrorBody:
    """Every refusal: `type` is ERROR_TYPE_PREFIX + the variant (`AttestationFailed`, ...), `detail` the reason."""

    type: str
    detail: str

    @property
    def variant(self) -> str:
        return self.type.removeprefix(ERROR_TYPE_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "detail": self.detail}


def _request(d: Mapping[str, Any]) -> Request:
    """A /auth request."""
    return Request(
        tee=_str(d, "tee"),
        version=_str(d, "version", default=PROTOCOL_VERSION),
        extra_params=_get(d, "extra-params", "", ""),
    )


def _challenge(d: Mapping[str, Any]) -> Challenge:
    """A /auth challenge."""
    return Challenge(nonce=_str(d, "nonce"), extra_params=_get(d, "extra-params", "", ""))


def _attestation(d: Mapping[str, Any]) -> Attestation:
    """A /attest request."""
    init = _get(d, "init-data", "", None)
    init_data = None
    if init is not None:
        init_doc = _object(init, "init-data")
        init_data = InitData(format=_str(init_doc, "format", "init-data"), body=_str(init_doc, "body", "init-data"))
    runtime = _object(_get(d, "runtime-data", ""), "runtime-data")
    runtime_data = RuntimeData(
        nonce=_str(runtime, "nonce", "runtime-data"), tee_pubkey=_dict(runtime, "tee-pubkey", "runtime-data")
    )
    evidence = _object(_get(d, "tee-evidence", ""), "tee-evidence")
    tee_evidence = TeeEvidence(
        primary_evidence=_dict(evidence, "primary_evidence", "tee-evidence"),
        additional_evidence=_str(evidence, "additional_evidence", "tee-evidence", ""),
    )
    return Attestation(init_data=init_data, runtime_data=runtime_data, tee_evidence=tee_evidence)


def _response(d: Mapping[str, Any]) -> Response:
    """An /attest response."""
    return Response(token=_str(d, "token"))


def _error(d: Mapping[str, Any]) -> ErrorBody:
    """An error body."""
    return ErrorBody(type=_str(d, "type"), detail=_str(d, "detail"))


parse_request = _parser(_request)
parse_challenge = _parser(_challenge)
parse_attestation = _parser(_attestation)
parse_response = _parser(_response)
parse_error = _parser(_error)


# -- TPM AK enrolment by credential activation (Veritee's own endpoints; binary fields standard base64) ----------


@dataclass(frozen=True)
class TpmEnrollRequest:
    """POST /kbs/v0/tpm/enroll: the AK's TPMT_PUBLIC, and the EK as certificate (required) and TPMT_PUBLIC."""

    ak_public: str
    ek_certificate: str
    ek_public: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ak_public": self.ak_public, "ek_certificate": self.ek_certificate, "ek_public": self.ek_public}


@dataclass(frozen=True)
class TpmCredentialChallenge:
    """The broker's TPM2_MakeCredential output: activate it in the TPM and return the secret."""

    id: str
    credential_blob: str
    encrypted_secret: str
    expires_in: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "credential_blob": self.credential_blob,
            "encrypted_secret": self.encrypted_secret,
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True)
class TpmActivateRequest:
    """POST /kbs/v0/tpm/activate: the challenge id and the secret TPM2_ActivateCredential recovered."""

    id: str
    secret: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "secret": self.secret}


@dataclass(frozen=True)
class TpmEnrolled:
    ak_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"ak_sha256": self.ak_sha256}


def _tpm_enroll_request(d: Mapping[str, Any]) -> TpmEnrollRequest:
    """A /tpm/enroll request."""
    return TpmEnrollRequest(
        ak_public=_str(d, "ak_public"),
        ek_certificate=_str(d, "ek_certificate"),
        ek_public=_optional_str(d, "ek_public"),
    )


def _optional_str(d: Mapping[str, Any], wire: str) -> str | None:
    value = d.get(wire)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(wire, f"is a JSON {_kind(value)}, expected a string or null")
    return value


def _tpm_credential_challenge(d: Mapping[str, Any]) -> TpmCredentialChallenge:
    """A /tpm/enroll response."""
    expires_in = _get(d, "expires_in", "")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool):
        raise ProtocolError("expires_in", f"is a JSON {_kind(expires_in)}, expected an integer")
    return TpmCredentialChallenge(
        id=_str(d, "id"),
        credential_blob=_str(d, "credential_blob"),
        encrypted_secret=_str(d, "encrypted_secret"),
        expires_in=expires_in,
    )


def _tpm_activate_request(d: Mapping[str, Any]) -> TpmActivateRequest:
    """A /tpm/activate request."""
    return TpmActivateRequest(id=_str(d, "id"), secret=_str(d, "secret"))


def _tpm_enrolled(d: Mapping[str, Any]) -> TpmEnrolled:
    """A /tpm/activate response."""
    return TpmEnrolled(ak_sha256=_str(d, "ak_sha256"))


parse_tpm_enroll_request = _parser(_tpm_enroll_request)
parse_tpm_credential_challenge = _parser(_tpm_credential_challenge)
parse_tpm_activate_request = _parser(_tpm_activate_request)
parse_tpm_enrolled = _parser(_tpm_enrolled)
