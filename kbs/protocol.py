"""The broker's view of the KBS protocol: the wire module's constants and binding digests (`kbs_protocol`) and
where each TEE carries the binding (`verifier.binding`), re-exported for the broker's modules. The request and
response bodies are the pydantic models of `kbs.api.schemas`; the guest side imports `kbs_protocol` directly."""

from kbs_protocol import (
    BASE_PATH,
    ERROR_TYPE_PREFIX,
    PROTOCOL_VERSION,
    RESOURCE_SEGMENT,
    SESSION_COOKIE,
    ProtocolError,
    device_runtime_digest,
    init_data_digest,
    parse_resource_uri,
    runtime_digest,
    version_supported,
)
from verifier.binding import expected_report_data

__all__ = [
    "BASE_PATH",
    "ERROR_TYPE_PREFIX",
    "PROTOCOL_VERSION",
    "RESOURCE_SEGMENT",
    "SESSION_COOKIE",
    "ProtocolError",
    "device_runtime_digest",
    "expected_report_data",
    "init_data_digest",
    "parse_resource_uri",
    "runtime_digest",
    "version_supported",
]
