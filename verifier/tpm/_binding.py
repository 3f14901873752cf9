"""How the KBS protocol's digests bind into a TPM 2.0 quote (docs/protocol.md).

- runtime digest (SHA-384, 48 bytes): TPMS_ATTEST.extraData, its first 32 bytes (TPM2_Quote's qualifyingData is
  a TPM2B_DATA of at most the size of the largest digest the TPM implements: 32 bytes on SHA-256 TPMs);
- init-data digest: PCR 8 of the SHA-256 bank, extended once from its reset value: SHA-256(32 zero bytes ||
  digest).
"""

from __future__ import annotations

import hashlib

__all__ = ["EXTRA_DATA_SIZE", "INIT_DATA_BANK", "INIT_DATA_PCR", "PCR_RESET_VALUE", "init_data", "report_data"]

EXTRA_DATA_SIZE = 32
INIT_DATA_PCR = 8
INIT_DATA_BANK = "sha256"
PCR_RESET_VALUE = bytes(32)


def report_data(runtime_digest: bytes) -> bytes:
    return runtime_digest[:EXTRA_DATA_SIZE]


def init_data(init_data_digest: bytes) -> bytes:
    return hashlib.sha256(PCR_RESET_VALUE + init_data_digest).digest()
