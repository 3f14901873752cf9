"""TPM 2.0 quotes: parse (TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC), verify (AK signature, pcrDigest,
bindings, AK trust, event log replay), and TPM2_MakeCredential for AK enrolment.

Errors are `verifier.errors.VerifierError` with a reason code (docs/evidence.md); parsers raise only
`FormatError`. Bindings
(`_binding`): extraData carries the runtime digest's first 32 bytes, PCR 8 of the SHA-256 bank the init-data
digest extended once from zero; an AK without a certificate is trusted when Options.tpm_enrolled_aks knows it.

>>> import json, pathlib
>>> from datetime import UTC, datetime
>>> from verifier.options import Options
>>> path = pathlib.Path(__file__).parents[2] / "tests/vectors/tpm/trustee/tpm_evidence.json"
>>> claims = verify(json.loads(path.read_text()), Options(at=datetime.now(UTC))).claims
>>> claims["ak_trust"], claims["pcrs"]["sha256"]["17"][:8]
('none', 'ffffffff')
"""

from __future__ import annotations

from ..registry import Tee
from . import _binding
from ._claims import AkTrust, TpmClaims
from ._credential import Credential, check_ak_public, kdfa, kdfe, make_credential, verify_ek_certificate
from ._evidence import TpmEvidence, parse_evidence
from ._public import TpmPublic, parse_public
from ._structures import Attest, PcrSelection, Signature, parse_attest, parse_signature
from ._verify import verify, verify_quote_signature

__all__ = [
    "TEE",
    "AkTrust",
    "Attest",
    "Credential",
    "PcrSelection",
    "Signature",
    "TpmClaims",
    "TpmEvidence",
    "TpmPublic",
    "check_ak_public",
    "kdfa",
    "kdfe",
    "make_credential",
    "parse_attest",
    "parse_evidence",
    "parse_public",
    "parse_signature",
    "verify",
    "verify_ek_certificate",
    "verify_quote_signature",
]

TEE = Tee(
    name="tpm",
    verify=verify,
    report_data=_binding.report_data,
    init_data=_binding.init_data,
    sources=("certificates", "tpm_enrolled_aks", "trust"),
    default_policy="tpm.rego",
)
