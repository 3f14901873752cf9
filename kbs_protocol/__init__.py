"""The KBS protocol 0.4.x on the wire, shared by the broker (`kbs`) and the guest (`attestation_agent`, `guest`).

Plain frozen dataclasses and parse functions, no web framework, ORM or pydantic, so the in-guest agent starts
fast and a guest image carries none of the broker's dependencies. trustee's RCAR handshake:

    POST /kbs/v0/auth      Request {version, tee, extra-params}          -> Challenge {nonce, extra-params}
                                                                            + the session cookie
    POST /kbs/v0/attest    Attestation {init-data?, runtime-data, tee-evidence} -> Response {token}
    GET  /kbs/v0/resource/REPO/TYPE/TAG  (Bearer token)                  -> a JWE to runtime-data's tee-pubkey
    any refusal                                                          -> ErrorBody {type, detail}

plus Veritee's TPM enrolment messages (`/kbs/v0/tpm/enroll`, `/kbs/v0/tpm/activate`), the binding digests
(`runtime_digest`, `init_data_digest`), version negotiation (`version_supported`), the runtime-data hash
negotiated in extra-params (`request_extra_params`, `selected_hash_algorithm`, `challenge_extra_params`) and
`kbs:///` resource URIs.
ocicrypt's key-provider messages are in the submodule `kbs_protocol.keyprovider`.

Errors: everything malformed raises ProtocolError (a ValueError) naming the field.

>>> request = parse_request(b'{"version": "0.4.1", "tee": "sample"}')
>>> request.tee, version_supported(request.version)
('sample', True)
>>> Challenge(nonce="bm9uY2U=").to_dict()
{'nonce': 'bm9uY2U=', 'extra-params': ''}
>>> parse_attestation(b'{"runtime-data": {}}')
Traceback (most recent call last):
    ...
kbs_protocol._errors.ProtocolError: runtime-data.nonce: is missing
>>> parse_resource_uri("kbs:///default/key/1")
('default', 'key', '1')
"""

from ._binding import INIT_DATA_ALGORITHMS, device_runtime_digest, init_data_digest, runtime_digest
from ._errors import ProtocolError
from ._hash import (
    HASH_ALGORITHMS,
    SELECTED_HASH_ALGORITHM_KEY,
    SUPPORTED_HASH_ALGORITHMS_KEY,
    NegotiationError,
    challenge_extra_params,
    request_extra_params,
    selected_hash_algorithm,
    supported_hash_algorithms,
)
from ._messages import (
    BASE_PATH,
    ERROR_TYPE_PREFIX,
    PROTOCOL_VERSION,
    SESSION_COOKIE,
    Attestation,
    Challenge,
    ErrorBody,
    InitData,
    Request,
    Response,
    RuntimeData,
    TeeEvidence,
    TpmActivateRequest,
    TpmCredentialChallenge,
    TpmEnrolled,
    TpmEnrollRequest,
    parse_attestation,
    parse_challenge,
    parse_error,
    parse_request,
    parse_response,
    parse_tpm_activate_request,
    parse_tpm_credential_challenge,
    parse_tpm_enroll_request,
    parse_tpm_enrolled,
    version_supported,
)
from ._resources import RESOURCE_SEGMENT, parse_resource_uri

__all__ = [
    "BASE_PATH",
    "ERROR_TYPE_PREFIX",
    "HASH_ALGORITHMS",
    "INIT_DATA_ALGORITHMS",
    "PROTOCOL_VERSION",
    "RESOURCE_SEGMENT",
    "SELECTED_HASH_ALGORITHM_KEY",
    "SESSION_COOKIE",
    "SUPPORTED_HASH_ALGORITHMS_KEY",
    "Attestation",
    "Challenge",
    "ErrorBody",
    "InitData",
    "NegotiationError",
    "ProtocolError",
    "Request",
    "Response",
    "RuntimeData",
    "TeeEvidence",
    "TpmActivateRequest",
    "TpmCredentialChallenge",
    "TpmEnrollRequest",
    "TpmEnrolled",
    "challenge_extra_params",
    "device_runtime_digest",
    "init_data_digest",
    "parse_attestation",
    "parse_challenge",
    "parse_error",
    "parse_request",
    "parse_resource_uri",
    "parse_response",
    "parse_tpm_activate_request",
    "parse_tpm_credential_challenge",
    "parse_tpm_enroll_request",
    "parse_tpm_enrolled",
    "request_extra_params",
    "runtime_digest",
    "selected_hash_algorithm",
    "supported_hash_algorithms",
    "version_supported",
]
