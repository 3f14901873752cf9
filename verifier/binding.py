"""Where each TEE carries the runtime digest: the exact report-data value its evidence must hold.

TDX (TDREPORT REPORTDATA) and SNP (ATTESTATION_REPORT REPORT_DATA) carry the 48-byte SHA-384 runtime digest
zero-padded to their 64-byte field; the TPM carries its first 32 bytes in TPM2_Quote's extraData (qualifyingData);
the sample TEE all 48, and so do Azure confidential VMs (az-snp-vtpm, az-tdx-vtpm) in the vTPM quote's extraData,
as guest-components' attesters put it and trustee's verifiers compare it (their hardware REPORT_DATA binds the
paravisor's runtime data). The broker builds the expected value with this before verifying; the agent, the value
it asks its TEE to sign. Binding rules: trustee's kbs_attestation_protocol.md ("Attestation"), docs/protocol.md.

>>> expected_report_data("tpm", bytes(range(48))).hex()
'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'
"""

from __future__ import annotations

__all__ = ["REPORT_DATA_SIZE", "TPM_EXTRA_DATA_SIZE", "expected_report_data"]

REPORT_DATA_SIZE = 64
TPM_EXTRA_DATA_SIZE = 32


def expected_report_data(tee: str, digest: bytes) -> bytes:
    """The exact report-data field a TEE must carry for this runtime digest."""
    if tee in ("tdx", "snp"):
        return digest + bytes(REPORT_DATA_SIZE - len(digest))
    if tee == "tpm":
        return digest[:TPM_EXTRA_DATA_SIZE]
    return digest  # sample, az-snp-vtpm, az-tdx-vtpm: the digest as it is
