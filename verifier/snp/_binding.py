"""How the KBS protocol's digests bind into an SEV-SNP attestation report (docs/protocol.md).

- runtime digest (SHA-384, 48 bytes): REPORT_DATA (64 bytes), the digest followed by 16 zero bytes;
- init-data digest: HOST_DATA (32 bytes, set by the host at launch), the digest's first 32 bytes (a SHA-384
  digest is truncated to fit, as trustee and the CoCo guest components do; a shorter one is zero-padded).
"""

from __future__ import annotations

from .._common import zero_padded
from ..errors import Reason
from ._abi import HOST_DATA_SIZE, REPORT_DATA_SIZE

__all__ = ["init_data", "report_data"]


def report_data(runtime_digest: bytes) -> bytes:
    return zero_padded(runtime_digest, REPORT_DATA_SIZE, "runtime", Reason.REPORT_DATA_MISMATCH)


def init_data(init_data_digest: bytes) -> bytes:
    return zero_padded(init_data_digest[:HOST_DATA_SIZE], HOST_DATA_SIZE, "init-data", Reason.INIT_DATA_MISMATCH)
