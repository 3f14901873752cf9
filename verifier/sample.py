"""The sample TEE: no hardware, no signature. Evidence is `{"svn": "1", "report_data": "<b64>"}`.

It exists to exercise the protocol; the broker accepts it only when its configuration says so, and the
default resource policy never releases a secret to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ._common import b64field, check_report_data
from .errors import FormatError
from .options import Options
from .registry import Tee
from .result import Verified

__all__ = ["TEE", "SampleEvidence", "parse", "report_data", "verify"]

MAX_REPORT_DATA = 64


@dataclass(frozen=True)
class SampleEvidence:
    svn: str
    report_data: bytes


def parse(evidence: Mapping[str, object] | bytes) -> SampleEvidence:
    # verifier.verify() has already parsed JSON bytes; anything else is not sample evidence.
    if not isinstance(evidence, Mapping):
        raise FormatError("sample evidence is not a JSON object")
    svn = evidence.get("svn")
    if not isinstance(svn, str):
        raise FormatError(f"sample evidence: field svn is {svn!r}, expected a string")
    report_data = b64field(evidence, "report_data", "sample evidence")
    if len(report_data) > MAX_REPORT_DATA:
        raise FormatError(f"sample evidence: report_data is {len(report_data)} bytes, at most 64 expected")
    return SampleEvidence(svn=svn, report_data=report_data)


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    parsed = parse(evidence)
    check_report_data("report_data", parsed.report_data, options)
    return Verified(
        tee="sample",
        claims={"svn": parsed.svn, "report_data": parsed.report_data.hex()},
        report_data=parsed.report_data,
    )


def report_data(runtime_digest: bytes) -> bytes:
    """The sample evidence carries the runtime digest as it is (48 bytes of SHA-384)."""
    return runtime_digest


TEE = Tee(
    name="sample",
    verify=verify,
    report_data=report_data,
    init_data=None,  # no init-data binding: nothing in sample evidence is set by a host
    sources=(),
    default_policy="sample.rego",
)
