"""Appraisal: an attestation policy (Rego) turns verified claims into an AR4SI trustworthiness vector.

Trustee's model, the one Veritee runs (trustee's attestation-service/src/token/ear_broker.rs): the policy is
`package policy`, selected as `<policy_id>_<class>` (`default_cpu`, `default_gpu`) by the broker; its input is the
annotated evidence keyed by TEE name (`input.sample.svn`, `input.snp.measurement`; docs/tokens-and-policies.md);
reference values come from the built-in `query_reference_value(name)` (verifier.rego). It yields `trust_claims`, an
object from AR4SI claim names (`executables`, `file-system`, ...) to integers in -128..127. A claim it leaves out is 0
("no claim"); `trust_claims` undefined, empty, naming another claim or holding another value is a policy error
(trustee: "At least one policy claim must be set"), never a pass. The EAR status is the worst tier of the vector
(draft-ietf-rats-ar4si, "Trustworthiness Tiers", as the ear crate's `update_status_from_trust_vector`):
contraindicated 96..127, warning 32..95, affirming 2..31, otherwise none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import PolicyError

if TYPE_CHECKING:  # the Rego engine is the caller's to load: the verifier imports without it
    from .rego import Policy

__all__ = [
    "ANNOTATIONS",
    "AR4SI_CLAIMS",
    "Appraisal",
    "Status",
    "annotated_evidence",
    "appraise",
    "status_of",
    "trust_vector",
]

AR4SI_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)


# The members of the annotated evidence besides the TEE's claims (which sit under the TEE's name).
ANNOTATIONS = frozenset({"report_data", "runtime_data_claims", "init_data", "init_data_claims"})


class Status(StrEnum):
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"
    NONE = "none"


def _tier(value: int) -> Status:
    if 2 <= value <= 31:
        return Status.AFFIRMING
    if 32 <= value <= 95:
        return Status.WARNING
    if 96 <= value <= 127:
        return Status.CONTRAINDICATED
    return Status.NONE


def status_of(vector: Mapping[str, int]) -> Status:
    tiers = {_tier(v) for v in vector.values()}
    for status in (Status.CONTRAINDICATED, Status.WARNING, Status.AFFIRMING):
        if status in tiers:
            return status
    return Status.NONE


@dataclass(frozen=True)
class Appraisal:
    """The appraisal of verified evidence: the policy that judged it, the AR4SI trustworthiness vector, the EAR
    status, and the annotated evidence it judged (the policy's `input`, carried in the EAR: `ear.ear_claims`
    turns an Appraisal into the claims-set to sign)."""

    policy_id: str
    vector: Mapping[str, int]
    status: Status
    annotated_evidence: Mapping[str, object]

    @property
    def tee(self) -> str:
        return next(key for key in self.annotated_evidence if key not in ANNOTATIONS)

    @property
    def claims(self) -> Mapping[str, object]:
        """The TEE's verified claims (docs/evidence.md)."""
        claims = self.annotated_evidence[self.tee]
        assert isinstance(claims, Mapping)
        return claims


def annotated_evidence(
    tee: str,
    claims: Mapping[str, object],
    report_data: bytes,
    runtime_data_claims: Mapping[str, object] | None = None,
    init_data: bytes | None = None,
    init_data_claims: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The one JSON document policies see as `input` and tokens carry as `ear.veraison.annotated-evidence`."""
    return {
        tee: dict(claims),
        "report_data": report_data.hex(),
        "runtime_data_claims": dict(runtime_data_claims or {}),
        "init_data": None if init_data is None else init_data.hex(),
        "init_data_claims": dict(init_data_claims or {}),
    }


def appraise(
    policy: Policy,
    policy_id: str,
    evidence: Mapping[str, object],
    reference: Mapping[str, object],
) -> Appraisal:
    """Evaluate an attestation policy with `reference` as what `query_reference_value` answers.

    A policy error is not a pass: it propagates as PolicyError."""
    values = policy.evaluate("data.policy", evidence, None, reference)
    vector = trust_vector(policy_id, values.get("trust_claims"))
    return Appraisal(policy_id=policy_id, vector=vector, status=status_of(vector), annotated_evidence=evidence)


def trust_vector(policy_id: str, trust_claims: object) -> dict[str, int]:
    """The AR4SI vector of a policy's `trust_claims`, every claim present (0 for those it leaves out)."""
    if not isinstance(trust_claims, dict) or not trust_claims:
        raise PolicyError(
            f"policy {policy_id}: trust_claims is {'undefined' if trust_claims is None else repr(trust_claims)}, "
            f"expected an object of AR4SI claims ({', '.join(AR4SI_CLAIMS)}) to integers in -128..127"
        )
    unknown = sorted(set(trust_claims) - set(AR4SI_CLAIMS))
    if unknown:
        raise PolicyError(f"policy {policy_id}: trust_claims names {unknown}, expected only {list(AR4SI_CLAIMS)}")
    vector: dict[str, int] = {}
    for claim in AR4SI_CLAIMS:
        value = trust_claims.get(claim, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
            raise PolicyError(f"policy {policy_id}: {claim} is {value!r}, expected an integer in -128..127")
        vector[claim] = value
    return vector
