"""From the command line's source text to an ImageSource: a local `oci:` layout, or a `docker://` pull under the
signature policy, with its credentials and policy read from files or from the KBS (`kbs:///R/T/T`).

CoCo's conventions for where these live in the KBS (guest-components image-rs): the policy at
`kbs:///default/security-policy/<tag>`, cosign public keys at `kbs:///default/cosign-public-key/<tag>` (named by
the policy's keyPath), registry credentials (an auth.json) at `kbs:///default/credential/<tag>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from guest._errors import GuestError, ImageRefError
from guest._keys import ResourceFetcher
from guest._layout import ImageRef, LayoutSource, OciLayout
from guest._manifests import ImageSource
from guest._policy import Policy
from guest._reference import DockerReference, Platform

__all__ = ["PullOptions", "Resources", "open_source"]

DOCKER_PREFIX = "docker://"
MAX_RESOURCE_BYTES = 1024 * 1024
_HOST_PORT_RE = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass
class Resources:
    """Reads a small file, or a `kbs:///R/T/T` resource through the attested channel (`fetcher`, from --kbs)."""

    fetcher: ResourceFetcher | None = None

    def load(self, ref: str, what: str) -> bytes:
        if ref.startswith("kbs://"):
            if self.fetcher is None:
                raise GuestError(f"{what}: {ref} is a KBS resource; give --kbs URL")
            return self.fetcher.get_resource(ref)
        path = Path(ref.removeprefix("file:"))
        try:
            with path.open("rb") as f:
                data = f.read(MAX_RESOURCE_BYTES + 1)
        except OSError as exc:
            raise GuestError(f"{what}: cannot read {path} ({exc.strerror})") from None
        if len(data) > MAX_RESOURCE_BYTES:
            raise GuestError(f"{what}: {path} is larger than {MAX_RESOURCE_BYTES} bytes")
        return data


@dataclass(frozen=True)
class PullOptions:
    """--policy, --auth, --insecure-registry and --platform."""

    policy: str | None = None
    auth: str | None = None
    insecure_registries: tuple[str, ...] = ()
    platform: Platform | None = None
    verdicts: list[str] = field(default_factory=list)  # what the policy accepted, filled in by the pull

    def __post_init__(self) -> None:
        for host in self.insecure_registries:
            if not _HOST_PORT_RE.fullmatch(host):
                raise ImageRefError(f"--insecure-registry {host!r}: expected HOST[:PORT]")


def _insecure_hosts(names: tuple[str, ...]) -> frozenset[str]:
    # A name without a port covers the default ports of both schemes (what the URL of a bare host uses).
    hosts = set()
    for name in names:
        hosts.add(name)
        if not re.search(r":[0-9]+$", name):
            hosts.update({f"{name}:80", f"{name}:443"})
    return frozenset(hosts)


def _policy(options: PullOptions, resources: Resources) -> Policy | None:
    if options.policy is None:
        return None
    return Policy.parse(resources.load(options.policy, "--policy"), f"policy {options.policy}")


@contextmanager
def open_source(text: str, options: PullOptions, resources: Resources) -> Iterator[ImageSource]:
    """The image named by `text` (`oci:DIR[:TAG]` or `docker://REF`), ready to resolve; closed on exit."""
    if not text.startswith(DOCKER_PREFIX):
        ref = ImageRef.parse(text)
        policy = _policy(options, resources)
        if policy is not None:  # a local layout is used as before unless a policy is given
            options.verdicts.append(policy.check_layout(str(ref.directory.absolute())))
        yield LayoutSource(OciLayout(ref.directory), ref.tag, options.platform)
        return
    # Imported for registry pulls only: http.client, ssl and the policy code are not for local layouts.
    from guest._admission import PolicyCheck  # noqa: PLC0415
    from guest._registry import Registry, RegistrySource  # noqa: PLC0415
    from guest._registry_auth import credentials_for  # noqa: PLC0415

    docker = DockerReference.parse(text.removeprefix(DOCKER_PREFIX))
    if options.policy is None:  # secure default: a usage error, before anything is fetched
        raise ImageRefError(
            f"{text}: a registry image needs a signature policy: give --policy FILE|kbs:///R/T/T (a "
            'containers-policy.json; {"default": [{"type": "insecureAcceptAnything"}]} accepts unsigned images); '
            "without --policy, expected oci:DIR[:TAG]"
        )
    policy = Policy.parse(resources.load(options.policy, "--policy"), f"policy {options.policy}")
    credentials = None
    if options.auth is not None:
        credentials = credentials_for(resources.load(options.auth, "--auth"), docker.name, f"--auth {options.auth}")
    insecure = _insecure_hosts(options.insecure_registries)
    registry = Registry(docker, credentials=credentials, insecure_hosts=insecure)
    try:
        check = PolicyCheck(policy, resources.load, options.verdicts)
        yield RegistrySource(registry, check, options.platform or Platform.host())
    finally:
        registry.close()
