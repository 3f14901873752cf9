"""Deciding whether an image may be used: its signature policy's requirements, checked before any layer is read.

    >>> check = PolicyCheck(Policy.parse(policy_json), load=resources.load)           # doctest: +SKIP
    >>> source = RegistrySource(registry, verify=check)  # calls check(registry, manifest)  # doctest: +SKIP

For a `docker://` image the requirements are those of the most specific scope (guest._policy). A `sigstoreSigned`
requirement is met when one signature attached to the *chosen* manifest (for a multi-platform image: the
platform's own manifest, as containers/image requires) verifies under one of its keys, names that manifest's
digest in `critical.image.docker-manifest-digest`, and names an identity that `signedIdentity` accepts for the
reference the image was pulled by. Keys are loaded when a requirement needs them: a `keyPath` may be a `kbs:///`
resource (CoCo keeps cosign keys at `kbs:///default/cosign-public-key/<tag>`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from guest._errors import PolicyError
from guest._manifests import Descriptor
from guest._policy import Policy, Requirement, SignedBy, SigstoreSigned, Simple
from guest._registry import Registry
from guest._sigstore import PublicKey, SignedClaims, fetch_signatures, load_public_key, verify_signature

__all__ = ["PolicyCheck"]

Loader = Callable[[str, str], bytes]  # (file path or kbs:/// URI, what it is for) -> bytes


@dataclass
class PolicyCheck:
    """The containers-policy.json check for registry pulls (a guest._registry.Verify)."""

    policy: Policy
    load: Loader
    verdicts: list[str] = field(default_factory=list)  # what was accepted and why, for the CLI's summary

    def __call__(self, registry: Registry, manifest: Descriptor) -> None:
        ref = registry.ref
        scope, requirements = self.policy.requirements_for(ref)
        for requirement in requirements:
            self.verdicts.append(self._check(requirement, registry, manifest, scope))

    def _check(self, requirement: Requirement, registry: Registry, manifest: Descriptor, scope: str) -> str:
        ref = registry.ref
        if isinstance(requirement, Simple):
            if requirement.kind == "reject":
                raise PolicyError(f"image {ref}: rejected by the policy's {scope} (type reject)")
            return f"{scope}: insecureAcceptAnything"
        if isinstance(requirement, SignedBy):
            raise PolicyError(
                f"image {ref}: the policy's {scope} requires signedBy (GPG), which this guest does not support "
                "(unsupported: use sigstoreSigned with a public key)"
            )
        return self._sigstore(requirement, registry, manifest, scope)

    def _keys(self, requirement: SigstoreSigned, scope: str) -> list[tuple[str, PublicKey]]:
        keys = []
        for source in requirement.keys:
            what = f"policy {scope} {source.describe()}"
            data = source.data if source.data is not None else self.load(source.path or "", what)
            keys.append((source.path or "keyData", load_public_key(data, what)))
        return keys

    def _sigstore(self, requirement: SigstoreSigned, registry: Registry, manifest: Descriptor, scope: str) -> str:
        ref = registry.ref
        if requirement.unsupported is not None:
            raise PolicyError(f"image {ref}: {requirement.unsupported}")
        keys = self._keys(requirement, scope)
        signatures = fetch_signatures(registry, manifest)
        if not signatures:
            raise PolicyError(
                f"image {ref}: unsigned: no sigstore signature is attached to manifest {manifest.digest} "
                f"(the policy's {scope} requires sigstoreSigned)"
            )
        reasons = []
        for signature in signatures:
            claims = verify_signature(signature, keys)
            problem = claims if isinstance(claims, str) else self._problem(claims, registry, manifest, requirement)
            if problem is None:
                assert isinstance(claims, SignedClaims)
                return f"{scope}: sigstoreSigned: {signature.where} signed as {claims.reference}"
            reasons.append(f"{signature.where}: {problem}" if not isinstance(claims, str) else problem)
        raise PolicyError(
            f"image {ref}: no signature satisfies the policy's {scope} sigstoreSigned requirement: {'; '.join(reasons)}"
        )

    @staticmethod
    def _problem(
        claims: SignedClaims, registry: Registry, manifest: Descriptor, requirement: SigstoreSigned
    ) -> str | None:
        """Why a verified signature's claims do not fit: the digest of this very manifest and an acceptable
        identity are required (None: they fit)."""
        if claims.manifest_digest != manifest.digest:
            return (
                f"signed critical.image.docker-manifest-digest is {claims.manifest_digest}, "
                f"the pulled manifest's digest is {manifest.digest}"
            )
        return requirement.identity.check(registry.ref, claims.reference)
