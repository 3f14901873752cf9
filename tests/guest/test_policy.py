"""containers-policy.json semantics without a registry: references, scopes, signed identities, parse errors, and
following image indexes (platforms, nesting depth, cycles) in local layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from guest._errors import ImageRefError, LayoutError, PolicyError
from guest._manifests import Descriptor, select_manifest
from guest._policy import Identity, Policy, SigstoreSigned
from guest._reference import DockerReference, Platform
from tests.conftest import run_cli
from tests.guest._images import file_, tar_bytes, write_image

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("quay.io/team/app:1.0", "quay.io/team/app:1.0"),
        ("localhost/app", "localhost/app:latest"),
        ("127.0.0.1:5000/a/b/c@sha256:" + "a" * 64, "127.0.0.1:5000/a/b/c@sha256:" + "a" * 64),
        ("team/app:v2", "docker.io/team/app:v2"),
    ],
)
def test_references_normalise(text: str, expected: str) -> None:
    assert str(DockerReference.parse(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Upper/app", "must be lowercase components"),
        ("host.io/app:v1@sha256:" + "a" * 64, "names both a tag and a digest"),
        ("host.io/app@sha256:abc", "is not sha256:<64 hex>"),
        ("host.io/app:bad tag", "is not a valid tag"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(ImageRefError, match=message):
        DockerReference.parse(text)


POLICY = {
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "": [{"type": "insecureAcceptAnything"}],
            "reg.example.com": [{"type": "sigstoreSigned", "keyPath": "/host.pub"}],
            "reg.example.com/team": [{"type": "sigstoreSigned", "keyPath": "/team.pub"}],
            "reg.example.com/team/app:v1": [{"type": "reject"}],
            "*.mirror.example": [{"type": "sigstoreSigned", "keyData": "LS0t"}],
        }
    },
}


@pytest.mark.parametrize(
    ("reference", "scope"),
    [
        ("reg.example.com/team/app:v1", "reg.example.com/team/app:v1"),
        ("reg.example.com/team/app:v2", "reg.example.com/team"),
        ("reg.example.com/team/sub/app@sha256:" + "b" * 64, "reg.example.com/team"),
        ("reg.example.com/other:v1", "reg.example.com"),
        ("eu.mirror.example/app:v1", "*.mirror.example"),
        ("elsewhere.io/app:v1", ""),
    ],
)
def test_the_most_specific_scope_wins(reference: str, scope: str) -> None:
    found, _ = Policy.parse(json.dumps(POLICY).encode()).requirements_for(DockerReference.parse(reference))
    assert found == f"transports.docker[{scope!r}]"


def test_no_transport_scope_falls_back_to_default() -> None:
    policy = Policy.parse(b'{"default": [{"type": "insecureAcceptAnything"}]}')
    assert policy.requirements_for(DockerReference.parse("a.io/b")) == ("default", policy.default)


IMAGE = DockerReference.parse("reg.io/team/app:v1")
BY_DIGEST = DockerReference.parse("reg.io/team/app@sha256:" + "c" * 64)


@pytest.mark.parametrize(
    ("identity", "image", "signed", "ok"),
    [
        ({"type": "matchExact"}, IMAGE, "reg.io/team/app:v1", True),
        ({"type": "matchExact"}, IMAGE, "reg.io/team/app:v2", False),
        (None, IMAGE, "reg.io/team/app:v1", True),
        (None, IMAGE, "reg.io/team/app", False),
        (None, BY_DIGEST, "reg.io/team/app:anything", True),
        (None, BY_DIGEST, "reg.io/team/other:v1", False),
        ({"type": "matchRepository"}, IMAGE, "reg.io/team/app:v9", True),
        ({"type": "matchRepository"}, IMAGE, "reg.io/team/app2", False),
        ({"type": "exactReference", "dockerReference": "reg.io/x/y:1"}, IMAGE, "reg.io/x/y:1", True),
        ({"type": "exactReference", "dockerReference": "reg.io/x/y:1"}, IMAGE, "reg.io/team/app:v1", False),
        ({"type": "exactRepository", "dockerRepository": "reg.io/x/y"}, IMAGE, "reg.io/x/y:7", True),
        ({"type": "remapIdentity", "prefix": "reg.io/team", "signedPrefix": "upstream.io/prod"}, IMAGE,
         "upstream.io/prod/app:v1", True),
        ({"type": "remapIdentity", "prefix": "reg.io/team", "signedPrefix": "upstream.io/prod"}, IMAGE,
         "reg.io/team/app:v1", False),
        ({"type": "remapIdentity", "prefix": "reg.io/te", "signedPrefix": "upstream.io/prod"}, IMAGE,
         "reg.io/team/app:v1", True),  # not a whole namespace: no remapping
    ],
)  # fmt: skip
def test_signed_identity(identity: dict[str, str] | None, image: DockerReference, signed: str, ok: bool) -> None:
    result = Identity.parse(identity, "signedIdentity").check(image, DockerReference.parse(signed, default_tag=False))
    assert (result is None) is ok, result


BAD_POLICIES: dict[str, tuple[Any, str]] = {
    "not-json": ("{", "not valid JSON"),
    "no-default": ({"transports": {}}, "`default` is required"),
    "empty-list": ({"default": []}, "expected a non-empty list of requirements"),
    "unknown-type": ({"default": [{"type": "acceptIfSunny"}]}, "unknown requirement type 'acceptIfSunny'"),
    "unknown-top-field": ({"default": [{"type": "reject"}], "defualt": []}, "unknown field(s) ['defualt']"),
    "two-key-sources": ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyData": "YQ=="}]},
                        "exactly one of"),
    "no-key": ({"default": [{"type": "sigstoreSigned"}]}, "exactly one of"),
    "key-data-not-base64": ({"default": [{"type": "sigstoreSigned", "keyData": "!!"}]}, "keyData is not base64"),
    "bad-identity": ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {"type": "any"}}]},
                     "signedIdentity: type is 'any'"),
    "exact-reference-without-tag": ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {
        "type": "exactReference", "dockerReference": "reg.io/a"}}]}, "must name a tag or a digest"),
    "bad-scope": ({"default": [{"type": "reject"}], "transports": {"docker": {"UPPER/case": [{"type": "reject"}]}}},
                  "transports.docker scope 'UPPER/case'"),
    "signed-by-bad-key-type": ({"default": [{"type": "signedBy", "keyType": "Magic", "keyPath": "/a"}]},
                               "keyType is 'Magic'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_bad_policies_are_refused_whole(case: str) -> None:
    doc, message = BAD_POLICIES[case]
    data = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Policy.parse(data)


def test_rekor_options_parse_but_are_unsupported() -> None:
    policy = Policy.parse(b'{"default": [{"type": "sigstoreSigned", "keyPath": "/a", "rekorPublicKeyPath": "/r"}]}')
    requirement = policy.default[0]
    assert isinstance(requirement, SigstoreSigned)
    assert requirement.unsupported is not None
    assert "not supported by this guest" in requirement.unsupported


# --- image indexes ---


def _desc(media_type: str, body: bytes, platform: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                           "size": len(body)}  # fmt: skip
    if platform:
        doc["platform"] = platform
    return doc


def test_cycle_and_depth_guards() -> None:
    """A loader that does not check digests (as none here may) could loop; the visited set stops it."""
    loop = Descriptor(INDEX, "sha256:" + "d" * 64, 10)
    doc = {"schemaVersion": 2, "manifests": [loop.to_json()]}
    with pytest.raises(LayoutError, match="image index cycle"):
        select_manifest(loop, lambda _d, _w: doc, Platform("linux", "amd64"))


def _nested_layout(directory: Path, depth: int, platforms: list[tuple[str, str]]) -> None:
    """A layout whose index.json points through `depth` nested indexes to one manifest per platform."""
    write_image(directory, [tar_bytes([file_("hello", b"nested")])], tag=None)
    index = json.loads((directory / "index.json").read_text())
    manifest = index["manifests"][0]
    entries = [{**manifest, "platform": {"os": os_, "architecture": arch}} for os_, arch in platforms]
    top: dict[str, Any] = {}
    for _ in range(depth):
        body = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}).encode()
        (directory / "blobs/sha256" / hashlib.sha256(body).hexdigest()).write_bytes(body)
        top = _desc(INDEX, body)
        entries = [top]
    top["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))


def test_nested_index_layout_unpacks(tmp_path: Path) -> None:
    _nested_layout(tmp_path / "img", 2, [("linux", "arm64"), (Platform.host().os, Platform.host().architecture)])
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}:v1", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/hello").read_text() == "nested"
    done = run_cli("guest", "unpack", "--platform", "linux/s390x", f"oci:{tmp_path / 'img'}:v1", str(tmp_path / "r2"))
    assert done.returncode == 1
    offered = sorted({"linux/arm64", f"linux/{Platform.host().architecture}"})
    assert f"no manifest for platform linux/s390x (the index offers {offered})" in done.stderr.decode()
    assert not (tmp_path / "r2").exists()


def test_too_deeply_nested_indexes_are_refused(tmp_path: Path) -> None:
    _nested_layout(tmp_path / "img", 6, [(Platform.host().os, Platform.host().architecture)])
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'img'}:v1", str(tmp_path / "root"))
    assert done.returncode == 1
    assert "image indexes nested deeper than 4" in done.stderr.decode()
    assert not (tmp_path / "root").exists()


def test_a_layout_under_a_policy(tmp_path: Path) -> None:
    write_image(tmp_path / "img", [tar_bytes([file_("a", b"a")])])
    (tmp_path / "accept.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    (tmp_path / "signed.json").write_text('{"default": [{"type": "sigstoreSigned", "keyPath": "/k.pub"}]}')
    done = run_cli("guest", "unpack", "--policy", str(tmp_path / "accept.json"), f"oci:{tmp_path / 'img'}:v1",
                   str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    done = run_cli("guest", "unpack", "--policy", str(tmp_path / "signed.json"), f"oci:{tmp_path / 'img'}:v1",
                   str(tmp_path / "r2"))  # fmt: skip
    assert done.returncode == 1
    assert "requires SigstoreSigned, which a local layout (no signatures) cannot meet" in done.stderr.decode()
    assert not (tmp_path / "r2").exists()


def test_usage_errors() -> None:
    done = run_cli("guest", "unpack", "--platform", "linux", "oci:/nonexistent", "/tmp/nowhere")
    assert done.returncode == 2
    assert "platform 'linux': expected OS/ARCH[/VARIANT]" in done.stderr.decode()
    done = run_cli("guest", "unpack", "--policy", "/x", "docker://UPPER/app", "/tmp/nowhere")
    assert done.returncode == 2
    done = run_cli("guest", "unpack", "--insecure-registry", "a b", "docker://reg.io/app", "/tmp/nowhere")
    assert done.returncode == 2
