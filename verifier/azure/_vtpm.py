"""The vTPM quote of an Azure confidential VM, verified as `--tee tpm` verifies a quote, with the AK that the
HCL runtime data carries.

Azure's evidence holds the quote's TPMS_ATTEST and the bare RSASSA signature; the TPM evidence of docs/evidence.md
is made from them (the signature put back in its TPMT_SIGNATURE, the AK as a DER SubjectPublicKeyInfo) and handed
to `verifier.tpm.verify`: signature over TPMS_ATTEST, pcrDigest over the selected SHA-256 PCRs, extraData against
the expected report data exactly, and PCR8 against the init-data digest.

Binding (what trustee's az-*-vtpm verifiers compare, and what guest-components' attesters put where): the KBS
runtime digest, SHA-384(JCS(runtime data)), all 48 bytes, is the quote's extraData (TPM2_Quote qualifyingData)
and, from evidence version 2, the start of the runtime claims' `user-data` (the attester writes it to the vTPM NV
index 0x01400002 before the HCL report is made). The hardware report's REPORT_DATA binds the runtime data
instead, never the nonce (see `verifier.azure._hcl`).
"""

from __future__ import annotations

import base64
import struct

from .. import tpm
from ..errors import Reason, VerificationError
from ..options import Options
from ..result import Verified
from ._evidence import AzureEvidence
from ._runtime import RuntimeData

__all__ = ["check_user_data", "verify_vtpm_quote"]

# TPM 2.0 Part 2 §11.3.4 TPMT_SIGNATURE {sigAlg TPM_ALG_RSASSA, TPMS_SIGNATURE_RSA {hash TPM_ALG_SHA256, sig}}:
# the AK's scheme on Azure's vTPM (trustee verifies PKCS#1 v1.5 with SHA-256 likewise).
TPM_ALG_RSASSA = 0x0014
TPM_ALG_SHA256 = 0x000B
_SIGNATURE_HEAD = struct.Struct(">HHH")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify_vtpm_quote(evidence: AzureEvidence, runtime: RuntimeData, options: Options) -> Verified:
    """The quote verified as `--tee tpm` verifies one, with the runtime data's AK (its claims are the `tpm` claims;
    report_data is extraData); VerifierError as `--tee tpm` raises them."""
    signature = _SIGNATURE_HEAD.pack(TPM_ALG_RSASSA, TPM_ALG_SHA256, len(evidence.quote_signature))
    document = {
        "tpm_quote": {
            "message": _b64(evidence.quote_message),
            "signature": _b64(signature + evidence.quote_signature),
            "pcrs": [pcr.hex() for pcr in evidence.pcrs],
        },
        "ak_public": _b64(runtime.ak_public),
    }
    # Only the binding inputs: the AK is vouched for by the hardware report, not by certificates or enrolment.
    quote_options = Options(at=options.at, report_data=options.report_data, init_data_digest=options.init_data_digest)
    return tpm.verify(document, quote_options)


def check_user_data(runtime: RuntimeData, options: Options) -> None:
    """Evidence version 2: the runtime claims' user-data begins with the expected report data."""
    expected = options.report_data
    if expected is None:
        return
    carried = runtime.user_data
    if carried is None or carried[: len(expected)] != expected:
        found = "absent" if carried is None else carried[: len(expected)].hex()
        raise VerificationError(
            Reason.REPORT_DATA_MISMATCH,
            f"HCL runtime data user-data starts with {found}, expected the report data {expected.hex()} "
            "(evidence version 2)",
        )
