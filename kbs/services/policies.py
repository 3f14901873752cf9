"""Where policies and reference values come from: the database first, then the policies shipped in `policies/`.

Attestation policies are chosen by TEE (`attestation:<tee>`, then `attestation:default`, then the shipped
`default_<tee>`); resource policies by the most specific scope of the path (tag, type, repository, global, shipped).
Compiled policies are cached by source text, so a policy set on another replica is used as soon as it is read; the
shipped ones are read from the package once. The lookups run inside the caller's read transaction (`Reads`), with
the other reads of its protocol step.
"""

from __future__ import annotations

from functools import lru_cache

import verifier
from policies import load as load_shipped_policy
from verifier.rego import Policy

from ..errors import KbsError
from ..storage import Reads

__all__ = ["PolicyBook", "compiled", "resource_scopes"]


@lru_cache(maxsize=64)
def compiled(source: str) -> Policy:
    """The compiled policy of a Rego source (PolicyError if it does not compile)."""
    return Policy.compile(source)


@lru_cache(maxsize=32)
def _shipped_attestation(tee: str) -> str:
    """The TEE's declared default policy (VerifierError for a TEE the verifier does not know)."""
    return load_shipped_policy(verifier.lookup(tee).default_policy)


@lru_cache(maxsize=1)
def _shipped_resource() -> str:
    return load_shipped_policy("resource.rego")


def attestation_scopes(tee: str, tee_class: str = "cpu") -> list[str]:
    """The policy ids that may govern a TEE of a class, most specific first."""
    return [f"attestation:{tee}", f"attestation:default_{tee_class}", "attestation:default"]


def resource_scopes(path: str) -> list[str]:
    """The policy ids that may govern `path`, most specific first: by tag, type, repository, then global."""
    repo, type_, tag = path.split("/")
    return [f"resource:{repo}/{type_}/{tag}", f"resource:{repo}/{type_}", f"resource:{repo}", "resource"]


class PolicyBook:
    def attestation_policy(self, reads: Reads, tee: str, tee_class: str = "cpu") -> tuple[str, str]:
        """(policy id as the EAR names it, Rego source) for a TEE of a class (`cpu`, `gpu`)."""
        row = reads.first_policy(attestation_scopes(tee, tee_class))
        if row is not None:
            return row.id.removeprefix("attestation:"), row.source
        try:
            shipped = _shipped_attestation(tee)
        except verifier.VerifierError as exc:
            raise KbsError.attestation_failed(f"no attestation policy for tee {tee!r}") from exc
        return f"default_{tee}", shipped

    def resource_policy(self, reads: Reads, path: str) -> tuple[str, str]:
        """The most specific resource policy for a path: by tag, type, repository, then global, then shipped."""
        row = reads.first_policy(resource_scopes(path))
        if row is not None:
            return row.id, row.source
        return "default", _shipped_resource()

    @staticmethod
    def reference_values(reads: Reads, now: float) -> dict[str, list[str]]:
        # A name's accepted values as a list, for every name: trustee's scalar values arrive as one-value lists.
        """name -> accepted values, without those expired at `now` (what `query_reference_value` offers)."""
        return reads.reference_values(now)
