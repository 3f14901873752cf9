"""Registry credentials: Basic (htpasswd) and Bearer (a token server) against the real registry, from an auth.json
file or from the KBS; and the whole CoCo flow with a real `kbs serve` holding the policy, the cosign key, the
registry credentials and the image key (CoCo's resource names: default/security-policy, default/cosign-public-key,
default/credential), pulling an encrypted, signed image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.guest._registry import RegistryServer, TokenServer, auth_json, htpasswd, publish_signed
from tests.integration._kbs_server import KbsServer

pytestmark = pytest.mark.skopeo

USER, SECRET = "puller", "test-only-registry-password"
ALLOW_SAMPLE = ROOT / "policies" / "demo_resource_allow_sample.rego"


def _publish(folder: Path, host: str, public_key: Path) -> None:
    """An image encrypted to `public_key` and signed with folder/cosign.key, pushed with credentials."""
    publish_signed(folder, b"behind a login\n", public_key, f"docker://{host}/private/app:v1",
                   "--dest-creds", f"{USER}:{SECRET}")  # fmt: skip


def _policy(folder: Path, key_path: str) -> Path:
    doc = {"default": [{"type": "sigstoreSigned", "keyPath": key_path}]}
    (folder / "policy.json").write_text(json.dumps(doc))
    return folder / "policy.json"


@pytest.fixture(scope="module")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[str, tuple[Path, Path]]
) -> Iterator[tuple[RegistryServer, Path]]:
    folder = tmp_path_factory.mktemp("basic")
    with RegistryServer(folder / "registry", auth=("htpasswd", htpasswd(folder / "htpasswd", USER, SECRET))) as reg:
        _publish(folder, reg.host, keys["rsa"][1])
        yield reg, folder


def test_basic_auth_from_an_auth_json(
    basic_registry: tuple[RegistryServer, Path], tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    registry, folder = basic_registry
    policy = _policy(tmp_path, str(folder / "cosign.pub"))
    args = ["--insecure-registry", registry.host, "--policy", str(policy), "--key", f"file:{keys['rsa'][0]}"]
    source = f"docker://{registry.host}/private/app:v1"
    done = run_cli("guest", "unpack", *args, source, str(tmp_path / "root"))
    assert done.returncode == 1
    assert "access denied by" in done.stderr.decode()
    assert "(HTTP 401); check --auth" in done.stderr.decode()
    assert not (tmp_path / "root").exists()

    wrong = auth_json(tmp_path / "wrong.json", registry.host, USER, "not-the-password")
    done = run_cli("guest", "unpack", *args, "--auth", str(wrong), source, str(tmp_path / "root"))
    assert done.returncode == 1
    assert "access denied by" in done.stderr.decode()

    good = auth_json(tmp_path / "auth.json", f"{registry.host}/private", USER, SECRET)  # a namespace-scoped entry
    done = run_cli("guest", "unpack", *args, "--auth", str(good), source, str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "behind a login\n"


def test_bearer_token_auth(tmp_path: Path, keys: dict[str, tuple[Path, Path]]) -> None:
    with (
        TokenServer(tmp_path / "token", USER, SECRET) as tokens,
        RegistryServer(tmp_path / "registry", auth=("token", tokens)) as registry,
    ):
        _publish(tmp_path, registry.host, keys["rsa"][1])
        tokens.requests.clear()
        policy = _policy(tmp_path, str(tmp_path / "cosign.pub"))
        creds = auth_json(tmp_path / "auth.json", registry.host, USER, SECRET)
        args = ["--policy", str(policy), "--key", f"file:{keys['rsa'][0]}", "--auth", str(creds),
                "--insecure-registry", registry.host]  # fmt: skip
        source = f"docker://{registry.host}/private/app:v1"
        done = run_cli("guest", "unpack", *args, source, str(tmp_path / "root"))
        assert done.returncode == 1  # the token realm is plain HTTP and not named
        assert f"token realm {tokens.url} is not HTTPS" in done.stderr.decode()
        done = run_cli("guest", "unpack", *args, "--insecure-registry", tokens.host, source, str(tmp_path / "root"))
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "root/etc/motd").read_text() == "behind a login\n"
        assert len(tokens.requests) == 1  # one token, reused for every request of the pull
        assert "scope=repository%3Aprivate%2Fapp%3Apull" in tokens.requests[0]


def test_policy_key_credentials_and_image_key_from_the_kbs(
    basic_registry: tuple[RegistryServer, Path], tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    """The encrypted, signed image pulled with everything it needs held by a real broker (CoCo's resource names)."""
    registry, folder = basic_registry
    policy = {
        "default": [{"type": "reject"}],
        "transports": {"docker": {f"{registry.host}/private": [
            {"type": "sigstoreSigned", "keyPath": "kbs:///default/cosign-public-key/test"}]}},
    }  # fmt: skip
    creds = auth_json(tmp_path / "auth.json", registry.host, USER, SECRET)
    with KbsServer(tmp_path / "kbs") as kbs:
        kbs.admin.put_reference_value("sample_svn", ["1"])
        kbs.admin.set_resource_policy(ALLOW_SAMPLE.read_text())
        kbs.admin.put_resource("default/security-policy/test", json.dumps(policy).encode())
        kbs.admin.put_resource("default/cosign-public-key/test", (folder / "cosign.pub").read_bytes())
        kbs.admin.put_resource("default/credential/test", creds.read_bytes())
        kbs.admin.put_resource("default/image-key/test", keys["rsa"][0].read_bytes())
        done = run_cli(
            "guest", "unpack", "--json", "--kbs", kbs.url, "--insecure-registry", registry.host,
            "--policy", "kbs:///default/security-policy/test", "--auth", "kbs:///default/credential/test",
            "--key", "kbs:///default/image-key/test", f"docker://{registry.host}/private/app:v1",
            str(tmp_path / "root"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "root/etc/motd").read_text() == "behind a login\n"
        assert "sigstoreSigned" in json.loads(done.stdout)["policy"][0]

        # The cosign key replaced by another: the same pull is refused, and leaves nothing.
        kbs.admin.put_resource("default/cosign-public-key/test", keys["ec"][1].read_bytes())
        done = run_cli(
            "guest", "unpack", "--kbs", kbs.url, "--insecure-registry", registry.host,
            "--policy", "kbs:///default/security-policy/test", "--auth", "kbs:///default/credential/test",
            "--key", "kbs:///default/image-key/test", f"docker://{registry.host}/private/app:v1", str(tmp_path / "r2"),
        )  # fmt: skip
        assert done.returncode == 1
        assert "does not verify under ['kbs:///default/cosign-public-key/test']" in done.stderr.decode()
        assert not (tmp_path / "r2").exists()


AUTH_FILE = {
    "auths": {
        "reg.io": {"auth": "aG9zdDpwdw=="},  # host:pw
        "reg.io/team": {"auth": "dGVhbTpwdw=="},  # team:pw
        "https://index.docker.io/v1/": {"auth": "aHViOnB3"},  # hub:pw
        "bad.io": {"auth": "not base64!"},
        "token.io": {"identitytoken": "x"},
    }
}


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("reg.io/team/app", "team"),  # the most specific namespace wins
        ("reg.io/teams/app", "host"),  # ... at a '/' boundary only
        ("reg.io/other", "host"),
        ("docker.io/library/busybox", "hub"),  # Docker's legacy key
        ("elsewhere.io/app", None),
    ],
)
def test_auth_json_lookup(name: str, user: str | None) -> None:
    from guest._registry_auth import credentials_for

    found = credentials_for(json.dumps(AUTH_FILE).encode(), name, "auth.json")
    assert (found.username if found else None) == user
    if found:
        assert "pw" not in repr(found)  # the password never reaches a message


@pytest.mark.parametrize(
    ("name", "message"),
    [("bad.io/app", "auth is not base64 of user:password"), ("token.io/app", "identitytoken")],
)
def test_bad_auth_json_entries(name: str, message: str) -> None:
    from guest._errors import RegistryError
    from guest._registry_auth import credentials_for

    with pytest.raises(RegistryError, match=message):
        credentials_for(json.dumps(AUTH_FILE).encode(), name, "auth.json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        credentials_for(b"{", name, "auth.json")
