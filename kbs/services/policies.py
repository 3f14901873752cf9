"""Where policies and reference values come from: the database first, then the policies shipped in `policies/`.

Attestation policies are chosen by TEE (`attestation:<tee>`, then `attestation:default`, then the shipped
`default_<tee>`); resource policies by the most specific scope of the path (tag, type, repository, global, shipped).
Compiled policies are cached by source text, so a policy set on another replica is used as soon as it is read.
"""

from __future__ import annotations

from functools import lru_cache

import verifier
from policies import load as load_shipped_policy
from verifier.rego import Policy

from ..errors import KbsError
from ..storage import Store

__all__ = ["PolicyBook", "compiled"]


@lru_cache(maxsize=64)
def compiled(source: str) -> Policy:
    """The compiled policy of a Rego source (PolicyError if it does not compile)."""
    return Policy.compile(source)


class PolicyBook:
    def __init__(self, store: Store) -> None:
        self._store = store

    def attestation_policy(self, tee: str) -> tuple[str, str]:
        """(policy id as the EAR names it, Rego source) for a TEE."""
        row = self._store.first_policy([f"attestation:{tee}", "attestation:default"])
        if row is not None:
            return row.id.removeprefix("attestation:"), row.source
        try:
            shipped = load_shipped_policy(verifier.lookup(tee).default_policy)  # the TEE's declared default
        except verifier.VerifierError as exc:
            raise KbsError.attestation_failed(f"no attestation policy for tee {tee!r}") from exc
        return f"default_{tee}", shipped

    def resource_policy(self, path: str) -> tuple[str, str]:
        """The most specific resource policy for a path: by tag, type, repository, then global, then shipped."""
        repo, type_, tag = path.split("/")
        scopes = [f"resource:{repo}/{type_}/{tag}", f"resource:{repo}/{type_}", f"resource:{repo}", "resource"]
        row = self._store.first_policy(scopes)
        if row is not None:
            return row.id, row.source
        return "default", load_shipped_policy("resource.rego")

    def reference_values(self, now: float) -> dict[str, list[str]]:
        """name -> accepted values, without those expired at `now` (what `query_reference_value` offers)."""
        out: dict[str, list[str]] = {}
        for row in self._store.reference_values(now):
            out.setdefault(row.name, []).append(row.value)
        return out
