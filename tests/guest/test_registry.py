"""`guest unpack` / `guest decrypt-image` from `docker://` sources: a real registry (Debian's docker-registry), images
encrypted and signed by real skopeo (sigstore attachments) and cosign, a containers-policy.json enforced before
anything is unpacked, and every refusal leaving nothing at the destination.

The registry and the images are made once per module; each test pulls into its own folder.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.guest._images import dir_, file_, tar_bytes, write_image
from tests.guest._registry import RegistryServer, cosign, signing_key, skopeo

pytestmark = pytest.mark.skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Published:
    """What the module's registry holds, and the keys around it."""

    registry: RegistryServer
    folder: Path
    image_key: Path  # private key of the JWE recipient the layers are encrypted to
    signer: Path  # cosign.pub: public key of the skopeo and cosign signatures
    wrong: Path  # another cosign public key
    digests: dict[str, str]

    @property
    def host(self) -> str:
        return self.registry.host

    def policy(self, folder: Path, requirement: dict[str, Any] | None = None, scope: str = "") -> Path:
        req = requirement or {"type": "sigstoreSigned", "keyPath": str(self.signer)}
        doc = {"default": [{"type": "reject"}], "transports": {"docker": {scope or self.host: [req]}}}
        path = folder / "policy.json"
        path.write_text(json.dumps(doc))
        return path


def _digest(host: str, repo: str, tag: str) -> str:
    r = httpx.head(f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    r.raise_for_status()
    return r.headers["Docker-Content-Digest"]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path]]) -> Any:
    folder = tmp_path_factory.mktemp("registry")
    with RegistryServer(folder / "registry") as registry:
        host = registry.host
        layers = [tar_bytes([dir_("etc"), file_("etc/motd", b"pulled, verified, decrypted\n")]),
                  tar_bytes([file_("etc/second", b"layer two")])]  # fmt: skip
        write_image(folder / "plain", layers, tag="v1")
        write_image(folder / "plain2", [tar_bytes([file_("unsigned", b"nobody signed this")])], tag="v1")
        sign = signing_key(folder)
        cosign("generate-key-pair", "--output-key-prefix", "wrong", cwd=folder)
        _, public = keys["rsa"]
        common = ["copy", "--dest-tls-verify=false"]
        encrypt = ["--encryption-key", f"jwe:{public}"]
        # Encrypted and signed by skopeo, in one copy.
        skopeo(*common, *encrypt, *sign, f"oci:{folder / 'plain'}:v1", f"docker://{host}/app:signed", check=True)
        # Encrypted, unsigned (other content: a signature is per manifest digest).
        skopeo(*common, *encrypt, f"oci:{folder / 'plain2'}:v1", f"docker://{host}/app:unsigned", check=True)
        # Encrypted by skopeo, signed by cosign (identity: the repository, no tag).
        skopeo(*common, *encrypt, f"oci:{folder / 'plain'}:v1", f"docker://{host}/cosigned:v1", check=True)
        cosigned = _digest(host, "cosigned", "v1")
        cosign("sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-http-registry",
               "--allow-insecure-registry", "-y", f"{host}/cosigned@{cosigned}", cwd=folder)  # fmt: skip
        # Signed for repository `other`, then copied with its signature to `stolen`.
        skopeo(*common, *sign, f"oci:{folder / 'plain2'}:v1", f"docker://{host}/other:v1", check=True)
        skopeo(*common, "--registries.d", str(folder / "registries.d"), "--src-tls-verify=false",
               f"docker://{host}/other:v1", f"docker://{host}/stolen:v1", check=True)  # fmt: skip
        digests = {name: _digest(host, *name.split(":")) for name in ("app:signed", "app:unsigned", "stolen:v1")}
        digests["cosigned:v1"] = cosigned
        yield Published(registry, folder, keys["rsa"][0], folder / "cosign.pub", folder / "wrong.pub", digests)


def guest(command: str, published: Published, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run_cli("guest", command, "--insecure-registry", published.host, *args)


def nothing_left(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.partial-")] == []


def test_skopeo_signed_encrypted_image_unpacks(published: Published, tmp_path: Path) -> None:
    policy = published.policy(tmp_path)
    done = guest("unpack", published, "--json", "--policy", str(policy), "--key", f"file:{published.image_key}",
                 f"docker://{published.host}/app:signed", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "pulled, verified, decrypted\n"
    assert (tmp_path / "root/etc/second").read_text() == "layer two"
    summary = json.loads(done.stdout)
    assert summary["layers"] == 2
    assert f"signed as {published.host}/app:signed" in summary["policy"][0]


def test_decrypt_image_from_registry_writes_a_plain_layout(published: Published, tmp_path: Path) -> None:
    policy = published.policy(tmp_path)
    done = guest("decrypt-image", published, "--json", "--policy", str(policy), "--key", f"file:{published.image_key}",
                 f"docker://{published.host}/app:signed", f"oci:{tmp_path / 'plain'}")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["decrypted_layers"] == 2
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'plain'}:signed", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "pulled, verified, decrypted\n"


@pytest.mark.parametrize(
    ("identity", "reference", "ok"),
    [
        ({"type": "matchRepository"}, "cosigned:v1", True),
        (None, "cosigned:v1", False),  # matchRepoDigestOrExact: cosign names no tag
        (None, "cosigned@{digest}", True),  # ... but a pull by digest needs only the repository
        ({"type": "exactRepository", "dockerRepository": "{host}/cosigned"}, "cosigned:v1", True),
    ],
)
def test_cosign_signed_image_and_signed_identity(
    published: Published, tmp_path: Path, identity: dict[str, str] | None, reference: str, ok: bool
) -> None:
    fill = {"host": published.host, "digest": published.digests["cosigned:v1"]}
    requirement: dict[str, Any] = {"type": "sigstoreSigned", "keyPath": str(published.signer)}
    if identity is not None:
        requirement["signedIdentity"] = {k: v.format(**fill) for k, v in identity.items()}
    policy = published.policy(tmp_path, requirement)
    done = guest("unpack", published, "--policy", str(policy), "--key", f"file:{published.image_key}",
                 f"docker://{published.host}/{reference.format(**fill)}", str(tmp_path / "root"))  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "root/etc/motd").is_file()
    else:
        assert done.returncode == 1, done.stderr.decode()
        assert "does not satisfy" in done.stderr.decode()
        nothing_left(tmp_path, "root")


def test_key_datas_and_the_most_specific_scope(published: Published, tmp_path: Path) -> None:
    """keyData (base64 PEM) works as keyPath does; scopes: the repository scope wins over the host's reject."""
    import base64

    doc = {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {"docker": {
            published.host: [{"type": "reject"}],
            f"{published.host}/app": [{"type": "sigstoreSigned",
                                       "keyDatas": [base64.b64encode(published.wrong.read_bytes()).decode(),
                                                    base64.b64encode(published.signer.read_bytes()).decode()]}],
        }},
    }  # fmt: skip
    (tmp_path / "policy.json").write_text(json.dumps(doc))
    done = guest("unpack", published, "--policy", str(tmp_path / "policy.json"), "--key", f"file:{published.image_key}",
                 f"docker://{published.host}/app:signed", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    done = guest("unpack", published, "--policy", str(tmp_path / "policy.json"),
                 f"docker://{published.host}/cosigned:v1", str(tmp_path / "root2"))  # fmt: skip
    assert done.returncode == 1
    assert "rejected by the policy's transports.docker" in done.stderr.decode()


REFUSED = {
    # name: (reference, policy requirement (None: the signer's key), expected message)
    "unsigned": ("app:unsigned", None, "unsigned: no sigstore signature is attached to manifest"),
    "wrong-key": ("app:signed", {"type": "sigstoreSigned", "keyPath": "{wrong}"}, "does not verify under"),
    "other-repository": ("stolen:v1", None, "does not satisfy matchRepoDigestOrExact"),
    "reject": ("app:signed", {"type": "reject"}, "rejected by the policy"),
    "signed-by-gpg": ("app:signed", {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "{signer}"},
                      "requires signedBy (GPG), which this guest does not support"),
    "fulcio": ("app:signed", {"type": "sigstoreSigned", "fulcio": {"caPath": "/x"}}, "is not supported"),
    "missing-key-file": ("app:signed", {"type": "sigstoreSigned", "keyPath": "/nonexistent.pub"}, "cannot read"),
    "bad-key": ("app:signed", {"type": "sigstoreSigned", "keyPath": "{image_key}.notakey"},
                "not a valid PEM or DER public key"),
    "unknown-type": ("app:signed", {"type": "signedByMagic"}, "unknown requirement type 'signedByMagic'"),
    "unknown-field": ("app:signed", {"type": "sigstoreSigned", "keyPath": "{signer}", "keyPat": "x"},
                      "unknown field(s) ['keyPat']"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_policy_refusals_leave_nothing(published: Published, tmp_path: Path, case: str) -> None:
    reference, requirement, message = REFUSED[case]
    (tmp_path / "x.notakey").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    fill = {"wrong": str(published.wrong), "signer": str(published.signer), "image_key": str(tmp_path / "x")}
    if requirement is not None:
        requirement = {k: v.format(**fill) if isinstance(v, str) else v for k, v in requirement.items()}
    policy = published.policy(tmp_path, requirement)
    commands = [("unpack", str(tmp_path / "out")), ("decrypt-image", f"oci:{tmp_path / 'out'}")]
    for command, target in commands if case in ("unsigned", "wrong-key") else commands[:1]:  # the same check
        done = guest(command, published, "--policy", str(policy), "--key", f"file:{published.image_key}",
                     f"docker://{published.host}/{reference}", target)  # fmt: skip
        assert done.returncode == 1, done.stderr.decode()
        assert message in done.stderr.decode()
        nothing_left(tmp_path, "out")


def test_registry_source_needs_a_policy(published: Published, tmp_path: Path) -> None:
    done = guest("unpack", published, f"docker://{published.host}/app:signed", str(tmp_path / "root"))
    assert done.returncode == 2
    assert "a registry image needs a signature policy: give --policy" in done.stderr.decode()
    nothing_left(tmp_path, "root")


def test_policy_syntax_error(published: Published, tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text('{"default": [{"type": "reject"}]')
    done = guest("unpack", published, "--policy", str(tmp_path / "policy.json"),
                 f"docker://{published.host}/app:signed", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 1
    assert f"policy {tmp_path / 'policy.json'}: not valid JSON" in done.stderr.decode()


def test_https_is_required_unless_insecure_registry(published: Published, tmp_path: Path) -> None:
    policy = published.policy(tmp_path)
    done = run_cli("guest", "unpack", "--policy", str(policy), f"docker://{published.host}/app:signed",
                   str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 1
    assert f"cannot reach 127.0.0.1:{published.registry.port}" in done.stderr.decode()
    nothing_left(tmp_path, "root")


def test_unknown_tag_and_insecure_policy(published: Published, tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    done = guest("unpack", published, "--policy", str(tmp_path / "policy.json"),
                 f"docker://{published.host}/app:nosuchtag", str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 1
    assert "not found in" in done.stderr.decode()
    done = guest("unpack", published, "--policy", str(tmp_path / "policy.json"), "--key",
                 f"file:{published.image_key}", f"docker://{published.host}/app:unsigned",
                 str(tmp_path / "root"))  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/unsigned").read_text() == "nobody signed this"
