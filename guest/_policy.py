"""containers-policy.json(5): which requirements an image must meet before it is used, as containers/image decides.

    {"default": [{"type": "reject"}],
     "transports": {"docker": {"registry.example/team": [{"type": "sigstoreSigned", "keyPath": "kbs:///default/
                               cosign-public-key/team", "signedIdentity": {"type": "matchRepository"}}]}}}

Parsing (`Policy.parse`) checks the whole document's structure, so a typo fails every pull instead of opening one;
unknown fields and requirement types are errors. Scope lookup (`Policy.requirements_for`): for the docker
transport the full reference (`host/repo:tag` or `host/repo@digest`), then the repository, then each enclosing
namespace up to `host[:port]`, then wildcard hosts (`*.example.com`), then the transport's `""` scope, then
`default`. Every requirement in the chosen list must be met (and a list may not be empty).

Requirements: `insecureAcceptAnything`, `reject`, `sigstoreSigned` (public keys from `keyPath`, `keyPaths`,
`keyData`, `keyDatas`; a key path may be a `kbs:///` resource, as in CoCo's image-rs) and `signedBy`. `signedBy`
(GPG) is parsed but refused when it applies: no well-kept Python OpenPGP library verifies containers/image's GPG
signatures without a gpg agent and keyring, and registries do not store them (they need a lookaside server). The
sigstore options that need Fulcio or Rekor (`fulcio`, `pki`, `rekorPublicKey*`) are likewise refused when they
apply: this guest checks key-based signatures only and requires no transparency log.

`signedIdentity` (containers/image signature/policy_reference_match.go): `matchExact`, `matchRepoDigestOrExact`
(the default), `matchRepository`, `exactReference`, `exactRepository`, `remapIdentity`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guest._errors import ImageRefError, PolicyError
from guest._reference import DockerReference

__all__ = ["Identity", "Policy", "Requirement", "SignedBy", "SigstoreSigned"]

MAX_POLICY_BYTES = 1024 * 1024
_WILDCARD_RE = re.compile(r"\*(\.[A-Za-z0-9-]+)+")


def _fields(doc: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyError(f"{what}: unknown field(s) {unknown} (allowed: {sorted(allowed)})")


def _reference(text: object, what: str, *, named_only: bool = False, default_tag: bool = False) -> DockerReference:
    if not isinstance(text, str) or not text:
        raise PolicyError(f"{what}: expected a docker reference string, found {text!r}")
    try:
        ref = DockerReference.parse(text, default_tag=default_tag)
    except ImageRefError as exc:
        raise PolicyError(f"{what}: {exc}") from None
    if named_only and (ref.tag or ref.digest):
        raise PolicyError(f"{what}: {text!r} names a tag or digest, expected a repository")
    return ref


@dataclass(frozen=True)
class Identity:
    """A `signedIdentity`: how the reference in a signature must relate to the image's reference."""

    kind: str
    reference: DockerReference | None = None  # exactReference / exactRepository
    prefix: str | None = None  # remapIdentity
    signed_prefix: str | None = None

    KINDS = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference", "exactRepository",
             "remapIdentity")  # fmt: skip

    @classmethod
    def parse(cls, doc: object, what: str) -> Identity:
        if doc is None:
            return cls("matchRepoDigestOrExact")
        if not isinstance(doc, dict):
            raise PolicyError(f"{what}: expected an object with a type")
        kind = doc.get("type")
        if kind not in cls.KINDS:
            raise PolicyError(f"{what}: type is {kind!r}, expected one of {list(cls.KINDS)}")
        if kind == "exactReference":
            _fields(doc, {"type", "dockerReference"}, what)
            ref = _reference(doc.get("dockerReference"), f"{what} dockerReference")
            if not (ref.tag or ref.digest):
                raise PolicyError(f"{what}: dockerReference must name a tag or a digest")
            return cls(kind, reference=ref)
        if kind == "exactRepository":
            _fields(doc, {"type", "dockerRepository"}, what)
            return cls(kind, reference=_reference(doc.get("dockerRepository"), f"{what} dockerRepository",
                                                  named_only=True))  # fmt: skip
        if kind == "remapIdentity":
            _fields(doc, {"type", "prefix", "signedPrefix"}, what)
            prefix, signed = doc.get("prefix"), doc.get("signedPrefix")
            for name, value in (("prefix", prefix), ("signedPrefix", signed)):
                if not isinstance(value, str) or not value:
                    raise PolicyError(f"{what}: {name} is {value!r}, expected host[:port][/namespace...]")
                if not _WILDCARD_RE.fullmatch(value) and not ("/" not in value or _named_ok(value)):
                    raise PolicyError(f"{what}: {name} {value!r} is not a host, namespace or repository")
            return cls(kind, prefix=prefix, signed_prefix=signed)
        _fields(doc, {"type"}, what)
        return cls(kind)

    def check(self, image: DockerReference, signed: DockerReference) -> str | None:
        """None if a signature for `signed` may stand for `image`, else why not."""
        kind, want = self.kind, image
        if kind == "remapIdentity":
            prefix, signed_prefix = self.prefix or "", self.signed_prefix or ""
            if _has_prefix(image.name, prefix):
                remapped = signed_prefix + str(image)[len(prefix) :]
                try:
                    want = DockerReference.parse(remapped)
                except ImageRefError as exc:
                    return f"remapped reference {remapped!r} is invalid ({exc})"
            kind = "matchRepoDigestOrExact"
        if kind == "matchExact" or (kind == "matchRepoDigestOrExact" and want.digest is None):
            ok = str(signed) == str(want)
        elif kind in ("matchRepoDigestOrExact", "matchRepository"):
            ok = signed.name == want.name
        elif kind == "exactReference":
            ok = self.reference is not None and str(signed) == str(self.reference)
        else:  # exactRepository
            ok = self.reference is not None and signed.name == self.reference.name
        if ok:
            return None
        expected = {"exactReference": str(self.reference), "exactRepository": self.reference and self.reference.name,
                    "matchRepository": want.name}.get(kind, str(want))  # fmt: skip
        return f"signed identity {str(signed)!r} does not satisfy {self.kind} (expected {expected!r})"


def _named_ok(value: str) -> bool:
    try:
        DockerReference.parse(value, default_tag=False)
    except ImageRefError:
        return False
    return True


def _has_prefix(name: str, prefix: str) -> bool:
    # policy_reference_match.go refMatchesPrefix: a whole host, namespace or repository of the name.
    return name == prefix or (name.startswith(prefix) and name[len(prefix)] == "/")


@dataclass(frozen=True)
class KeySource:
    """Where a public key comes from: `path` (a file or a `kbs:///` resource) or inline `data` (PEM bytes)."""

    path: str | None = None
    data: bytes | None = None

    def describe(self) -> str:
        return f"keyPath {self.path}" if self.path is not None else "keyData"


def _key_sources(doc: Mapping[str, Any], what: str, options: Sequence[str]) -> tuple[KeySource, ...]:
    given = [name for name in options if name in doc]
    if len(given) != 1:
        raise PolicyError(f"{what}: exactly one of {list(options)} is required, found {given or 'none'}")
    name = given[0]
    value = doc[name]
    values = value if name.endswith("s") else [value]
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(
            f"{what}: {name} must be {'a non-empty list of strings' if name.endswith('s') else 'a string'}"
        )
    if name.startswith("keyPath"):
        return tuple(KeySource(path=v) for v in values)
    try:
        return tuple(KeySource(data=base64.b64decode(v, validate=True)) for v in values)
    except (binascii.Error, ValueError):
        raise PolicyError(f"{what}: {name} is not base64") from None


@dataclass(frozen=True)
class SigstoreSigned:
    """`sigstoreSigned` with public keys: some signature must verify under one key and satisfy the identity."""

    keys: tuple[KeySource, ...]
    identity: Identity
    unsupported: str | None = None  # a Fulcio / PKI / Rekor option: refused when the requirement applies

    KEY_OPTIONS = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
    REKOR = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")

    @classmethod
    def parse(cls, doc: Mapping[str, Any], what: str) -> SigstoreSigned:
        _fields(doc, {"type", "signedIdentity", *cls.KEY_OPTIONS, *cls.REKOR}, what)
        identity = Identity.parse(doc.get("signedIdentity"), f"{what} signedIdentity")
        unsupported = [name for name in (*cls.KEY_OPTIONS[4:], *cls.REKOR) if name in doc]
        if unsupported:
            given = [name for name in cls.KEY_OPTIONS if name in doc]
            if len(given) != 1:
                raise PolicyError(f"{what}: exactly one of {list(cls.KEY_OPTIONS)} is required, found {given}")
            return cls((), identity, f"{what}: {', '.join(unsupported)} (Fulcio / PKI / Rekor) is not supported by "
                                     "this guest, which verifies key-based sigstore signatures only")  # fmt: skip
        return cls(_key_sources(doc, what, cls.KEY_OPTIONS[:4]), identity)


@dataclass(frozen=True)
class SignedBy:
    """`signedBy` (GPG simple signing): parsed so that the policy is checked whole, refused when it applies."""

    what: str

    @classmethod
    def parse(cls, doc: Mapping[str, Any], what: str) -> SignedBy:
        _fields(doc, {"type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"}, what)
        if doc.get("keyType") not in ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs"):
            raise PolicyError(f"{what}: keyType is {doc.get('keyType')!r}, expected GPGKeys")
        _key_sources(doc, what, ("keyPath", "keyPaths", "keyData"))
        Identity.parse(doc.get("signedIdentity"), f"{what} signedIdentity")
        return cls(what)


@dataclass(frozen=True)
class Simple:
    """`insecureAcceptAnything` or `reject`."""

    kind: str


Requirement = Simple | SigstoreSigned | SignedBy
_PARSERS: dict[str, Callable[[Mapping[str, Any], str], Requirement]] = {
    "sigstoreSigned": SigstoreSigned.parse,
    "signedBy": SignedBy.parse,
}


def _requirements(doc: object, what: str) -> tuple[Requirement, ...]:
    if not isinstance(doc, list) or not doc:
        raise PolicyError(f"{what}: expected a non-empty list of requirements")
    out: list[Requirement] = []
    for i, item in enumerate(doc):
        where = f"{what}[{i}]"
        if not isinstance(item, dict):
            raise PolicyError(f"{where}: expected an object with a type")
        kind = item.get("type")
        if kind in ("insecureAcceptAnything", "reject"):
            _fields(item, {"type"}, where)
            out.append(Simple(kind))
        elif isinstance(kind, str) and kind in _PARSERS:
            out.append(_PARSERS[kind](item, where))
        else:
            raise PolicyError(
                f"{where}: unknown requirement type {kind!r} (expected insecureAcceptAnything, reject, "
                "sigstoreSigned or signedBy)"
            )
    return tuple(out)


@dataclass(frozen=True)
class Policy:
    """A parsed containers-policy.json."""

    default: tuple[Requirement, ...]
    transports: Mapping[str, Mapping[str, tuple[Requirement, ...]]]

    @classmethod
    def parse(cls, data: bytes, what: str = "policy.json") -> Policy:
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyError(f"{what}: larger than {MAX_POLICY_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: too deeply nested
            raise PolicyError(f"{what}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise PolicyError(f"{what}: expected a JSON object with `default`")
        _fields(doc, {"default", "transports"}, what)
        if "default" not in doc:
            raise PolicyError(f"{what}: `default` is required")
        default = _requirements(doc["default"], f"{what} default")
        transports: dict[str, dict[str, tuple[Requirement, ...]]] = {}
        raw = doc.get("transports", {})
        if not isinstance(raw, dict):
            raise PolicyError(f"{what}: transports must be an object of transport name -> scopes")
        for transport, scopes in raw.items():
            if not isinstance(scopes, dict):
                raise PolicyError(f"{what}: transports.{transport} must be an object of scope -> requirements")
            transports[transport] = {}
            for scope, reqs in scopes.items():
                if transport == "docker" and scope and not _WILDCARD_RE.fullmatch(scope):
                    _reference(scope, f"{what} transports.docker scope {scope!r}")
                transports[transport][scope] = _requirements(reqs, f"{what} transports.{transport}[{scope!r}]")
        return cls(default, transports)

    def requirements_for(self, ref: DockerReference) -> tuple[str, tuple[Requirement, ...]]:
        """The most specific docker scope for `ref` and its requirements (docker/policyconfiguration.go)."""
        scopes = self.transports.get("docker", {})
        for scope in _docker_scopes(ref):
            if scope in scopes:
                return f"transports.docker[{scope!r}]", scopes[scope]
        if "" in scopes:
            return "transports.docker['']", scopes[""]
        return "default", self.default

    def check_layout(self, directory: str) -> str:
        """A policy given for a local `oci:` layout: its oci scope's requirements. A layout carries no signatures,
        so only insecureAcceptAnything can be met; anything else raises PolicyError."""
        scope, requirements = self.requirements_for_layout(directory)
        for requirement in requirements:
            if not (isinstance(requirement, Simple) and requirement.kind == "insecureAcceptAnything"):
                kind = requirement.kind if isinstance(requirement, Simple) else type(requirement).__name__
                raise PolicyError(
                    f"oci:{directory}: the policy's {scope} requires {kind}, which a local layout (no signatures) "
                    "cannot meet"
                )
        return f"{scope}: insecureAcceptAnything"

    def requirements_for_layout(self, directory: str) -> tuple[str, tuple[Requirement, ...]]:
        """For a local `oci:` layout: the oci transport's scopes (the directory or a parent), then `default`."""
        scopes = self.transports.get("oci", {})
        path = directory.rstrip("/")
        while path:
            if path in scopes:
                return f"transports.oci[{path!r}]", scopes[path]
            path = path.rpartition("/")[0]
        if "" in scopes:
            return "transports.oci['']", scopes[""]
        return "default", self.default


def _docker_scopes(ref: DockerReference) -> list[str]:
    scopes = [str(ref), ref.name]
    name = ref.name
    while "/" in name:
        name = name.rpartition("/")[0]
        scopes.append(name)
    host = ref.host.rpartition(":")[0] if ":" in ref.host and not ref.host.endswith("]") else ref.host
    labels = host.split(".")
    if not host.replace(".", "").isdigit():  # wildcards are for DNS names, not IP addresses
        scopes += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
    return scopes
