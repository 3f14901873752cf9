"""The sample device (`sampledevice`): guest-components' stand-in for a device attester (a GPU), with no hardware
and no signature, sent as additional evidence beside a CPU TEE's.

Evidence, as guest-components' sample_device attester writes it: `{"svn": "2", "report_data": "<base64>"}`;
trustee's verifier takes a missing `report_data` as empty, and so does this one. Its report data is the device
binding (docs/protocol.md: SHA-384 of the JCS runtime data without `additional-evidence`), compared exactly,
with no padding. Claims: `svn` and `report_data` (hex). It is a device (class `gpu`), not a primary TEE: the
broker does not offer it in /auth, appraises it with the `default_gpu` policy (else `policies/sampledevice.rego`)
and reports it as the EAR submod `gpu0`.

>>> from datetime import UTC, datetime
>>> verify({"svn": "2", "report_data": "AAE="}, Options(at=datetime.now(UTC), report_data=b"\\x00\\x01")).claims
{'svn': '2', 'report_data': '0001'}
"""

from __future__ import annotations

from collections.abc import Mapping

from ._common import check_report_data, optional_b64field
from .errors import FormatError
from .options import Options
from .registry import Tee
from .result import Verified
from .sample import MAX_REPORT_DATA, SampleEvidence

__all__ = ["TEE", "TEE_NAME", "parse", "verify"]

TEE_NAME = "sampledevice"


def parse(evidence: Mapping[str, object] | bytes) -> SampleEvidence:
    if not isinstance(evidence, Mapping):
        raise FormatError("sampledevice evidence is not a JSON object")
    svn = evidence.get("svn")
    if not isinstance(svn, str):
        raise FormatError(f"sampledevice evidence: field svn is {svn!r}, expected a string")
    report_data = optional_b64field(evidence, "report_data", "sampledevice evidence") or b""
    if len(report_data) > MAX_REPORT_DATA:
        raise FormatError(f"sampledevice evidence: report_data is {len(report_data)} bytes, at most 64 expected")
    return SampleEvidence(svn=svn, report_data=report_data)


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    parsed = parse(evidence)
    check_report_data("report_data", parsed.report_data, options)
    return Verified(
        tee=TEE_NAME,
        claims={"svn": parsed.svn, "report_data": parsed.report_data.hex()},
        report_data=parsed.report_data,
    )


def report_data(device_digest: bytes) -> bytes:
    """The sample device carries the device digest as it is (48 bytes of SHA-384)."""
    return device_digest


TEE = Tee(
    name=TEE_NAME,
    verify=verify,
    report_data=report_data,
    init_data=None,  # a device binds no init-data
    sources=(),
    default_policy="sampledevice.rego",
    tee_class="gpu",
)
