"""The sample device: trustee's stand-in for a GPU, no hardware and no signature. Evidence is
`{"svn": "2", "report_data": "<b64>"}` (trustee's deps/verifier/src/sample_device), sent in `additional_evidence`.

It exists to exercise composite attestation: the broker verifies it as a device (class `gpu`) bound to the
device digest of the runtime data, SHA-384(JCS({"nonce", "tee-pubkey"})) as it is (48 bytes), appraises it with
the `gpu` class's policy and reports it as the EAR submod `gpu0`.

>>> from datetime import UTC, datetime
>>> verify({"svn": "2", "report_data": "AAE="}, Options(at=datetime.now(UTC))).claims
{'svn': '2', 'report_data': '0001'}
"""

from __future__ import annotations

from collections.abc import Mapping

from ._common import check_report_data
from .options import Options
from .registry import Tee
from .result import Verified
from .sample import parse

__all__ = ["TEE", "verify"]

NAME = "sampledevice"


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    # The same document as the sample TEE's; parsed by the same function, reported under the device's own name.
    parsed = parse(evidence)
    check_report_data("report_data", parsed.report_data, options)
    return Verified(
        tee=NAME, claims={"svn": parsed.svn, "report_data": parsed.report_data.hex()}, report_data=parsed.report_data
    )


def report_data(device_digest: bytes) -> bytes:
    """The sample device carries the device digest as it is (48 bytes of SHA-384)."""
    return device_digest


TEE = Tee(
    name=NAME,
    verify=verify,
    report_data=report_data,
    init_data=None,  # a device binds no init-data
    sources=(),
    default_policy="sampledevice.rego",
    tee_class="gpu",
)
