"""The one way into the verifier for a relying party: verify, bind, appraise, in one call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .appraisal import Appraisal, annotated_evidence, appraise
from .errors import FormatError
from .options import Options
from .registry import _LOADED, lookup
from .result import Verified

if TYPE_CHECKING:  # the Rego engine is the caller's to load: the verifier imports without it
    from .rego import Policy

__all__ = ["Binding", "attest", "verify"]

MAX_EVIDENCE_BYTES = 2 * 1024 * 1024
_BYTES = (bytes, bytearray)


@dataclass(frozen=True)
class Binding:
    """What the evidence must be bound to (docs/protocol.md), and what the EAR then says it was bound to.

    runtime_digest: SHA-384 of the JCS runtime data; the TEE's rule makes the report-data value to expect.
    runtime_data: the runtime data's claims (the nonce, the `tee-pubkey` to encrypt secrets to).
    init_data_digest: the init-data TOML's digest; None when there is no init-data (nothing is checked).
    init_data_claims: the init-data's `data` table.
    """

    runtime_digest: bytes
    runtime_data: Mapping[str, object] = field(default_factory=dict)
    init_data_digest: bytes | None = None
    init_data_claims: Mapping[str, object] = field(default_factory=dict)


def _document(evidence: Mapping[str, object] | bytes) -> Mapping[str, object] | bytes:
    """Bytes that look like JSON become the parsed object; other bytes stay (a raw TDX quote or SNP report)."""
    if not isinstance(evidence, bytes | bytearray):
        return evidence
    if len(evidence) > MAX_EVIDENCE_BYTES:
        raise FormatError(f"evidence is {len(evidence)} bytes, at most {MAX_EVIDENCE_BYTES} accepted")
    evidence = bytes(evidence)
    # JSON may start with whitespace (trustee's Azure vectors start with a newline); a raw TDX quote or SNP
    # report starts with its version (2 to 5), neither whitespace nor "{".
    if evidence[:1] != b"{" and evidence.lstrip()[:1] != b"{":
        return evidence
    try:
        document = json.loads(evidence)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise FormatError(f"evidence starts like JSON but does not parse ({exc})") from exc
    if not isinstance(document, dict):
        raise FormatError("evidence JSON is not an object")
    return document


def verify(tee: str, evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Verify one piece of evidence: a parsed evidence JSON object, or its bytes (JSON, or a raw TDX quote or
    SNP report). Raises VerifierError with a reason code on any failure (unsupported_format for an unknown TEE)."""
    declared = _LOADED.get(tee) or lookup(tee)
    if isinstance(evidence, _BYTES):
        evidence = _document(evidence)
    return declared.verify(evidence, options)


def attest(
    tee: str,
    evidence: Mapping[str, object] | bytes,
    *,
    binding: Binding,
    options: Options,
    policy: Policy,
    policy_id: str,
    reference_values: Mapping[str, object],
) -> Appraisal:
    """Verify evidence against the expected binding and appraise it with an attestation policy.

    The TEE's own rules (its `Tee` declaration) turn the binding's digests into the exact report-data and
    init-data values the evidence must carry; `options` gives the time, collateral and sources (its report_data
    and init_data_digest are replaced by the binding's). Returns the Appraisal (claims, trust vector, status,
    annotated evidence): `verifier.ear.ear_claims` makes it the EAR claims-set to sign. Raises VerifierError when
    the evidence is rejected and PolicyError when the policy fails.
    """
    declared = lookup(tee)
    bound = replace(
        options,
        report_data=declared.report_data(binding.runtime_digest),
        init_data_digest=binding.init_data_digest,
    )
    verified = declared.verify(_document(evidence), bound)
    document = annotated_evidence(
        tee,
        verified.claims,
        verified.report_data,
        binding.runtime_data,
        binding.init_data_digest,
        binding.init_data_claims,
    )
    return appraise(policy, policy_id, document, reference_values)
