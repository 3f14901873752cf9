"""Where each TEE carries the KBS protocol's digests: the exact values its evidence must hold.

The rules are declared by each TEE in its own package (`verifier/<tee>/_binding.py`) and looked up through the
registry: TDX and SNP carry the 48-byte SHA-384 runtime digest zero-padded to their 64-byte REPORTDATA /
REPORT_DATA; the TPM its first 32 bytes in TPM2_Quote's extraData; the sample TEE all 48. The broker builds the
expected value with this before verifying; the agent, the value it asks its TEE to sign. An unknown TEE has no
rule: it is refused (FormatError, unsupported_format), never given the digest as it is.

>>> expected_report_data("tpm", bytes(range(48))).hex()
'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'
>>> expected_init_data("tpm", bytes(48)).hex()[:16]
'5b6fb58e61fa4759'
"""

from __future__ import annotations

from .registry import expected_init_data, expected_report_data

__all__ = ["expected_init_data", "expected_report_data"]
