"""TPM 2.0 quotes: parse (TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC), verify (AK signature, pcrDigest,
bindings, AK trust, event log replay), and TPM2_MakeCredential for AK enrolment.

Errors are `verifier.errors.VerifierError` with a reason code (docs/evidence.md); parsers raise only `FormatError`.

>>> import json, pathlib
>>> from datetime import UTC, datetime
>>> from verifier.options import Options
>>> path = pathlib.Path(__file__).parents[2] / "tests/vectors/tpm/trustee/tpm_evidence.json"
>>> claims = verify(json.loads(path.read_text()), Options(at=datetime.now(UTC))).claims
>>> claims["ak_trust"], claims["pcrs"]["sha256"]["17"][:8]
('none', 'ffffffff')
"""

from __future__ import annotations

from ._claims import AkTrust, TpmClaims, claims_to_json
from ._credential import Credential, check_ak_public, kdfa, kdfe, make_credential, verify_ek_certificate
from ._evidence import TpmEvidence, parse_evidence
from ._public import TpmPublic, parse_public
from ._structures import Attest, PcrSelection, Signature, parse_attest, parse_signature
from ._verify import EnrolledAks, verify, verify_quote_signature

__all__ = [
    "AkTrust",
    "Attest",
    "Credential",
    "EnrolledAks",
    "PcrSelection",
    "Signature",
    "TpmClaims",
    "TpmEvidence",
    "TpmPublic",
    "check_ak_public",
    "claims_to_json",
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
