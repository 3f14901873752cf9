"""How the KBS protocol's digests bind into a TDX quote (docs/protocol.md).

- runtime digest (SHA-384, 48 bytes): TD report REPORTDATA (64 bytes), the digest followed by 16 zero bytes;
- init-data digest: MRCONFIGID (48 bytes, set by the host at TD creation), the digest zero-padded to 48 bytes
  (a SHA-384 digest fills it; a SHA-256 one is padded; a longer one cannot be carried).
"""

from __future__ import annotations

from .._common import zero_padded
from ..errors import Reason
from ._quote import MR_SIZE, REPORT_DATA_SIZE

__all__ = ["REPORT_DATA_SIZE", "init_data", "report_data"]


def report_data(runtime_digest: bytes) -> bytes:
    return zero_padded(runtime_digest, REPORT_DATA_SIZE, "runtime", Reason.REPORT_DATA_MISMATCH)


def init_data(init_data_digest: bytes) -> bytes:
    return zero_padded(init_data_digest, MR_SIZE, "init-data", Reason.INIT_DATA_MISMATCH)
