"""Interop with real skopeo (Debian 13's, via scripts/skopeo-keyprovider) and a real `kbs serve`.

- skopeo `--encryption-key jwe:pub.pem` images unpack with `guest --key kbs:///...` (private key held by the KBS);
- skopeo `--encryption-key provider:attestation-agent:kbs:///default/key/1` through `kbs admin keyprovider`
  unpacks in the guest, and skopeo decrypts it through `attestation-agent keyprovider`;
- a resource policy that denies fails with a clear message and leaves nothing.
A missing skopeo with key providers FAILS these tests with the reason; they never skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest._encrypt import encrypt_image, provider_recipient
from tests.conftest import ROOT, run_cli
from tests.guest._images import dir_, file_, tar_bytes, write_image
from tests.guest._registry import SKOPEO, skopeo
from tests.integration._kbs_server import KbsServer

ALLOW_SAMPLE = ROOT / "policies" / "demo_resource_allow_sample.rego"
KID = "kbs:///default/key/1"

pytestmark = pytest.mark.skopeo


@pytest.fixture(scope="session")
def skopeo_ready() -> None:
    done = subprocess.run([str(SKOPEO), "--which"], capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"no skopeo with ocicrypt key providers: {done.stderr.decode().strip()}")


def _command(script: str, *args: str) -> dict[str, object]:
    """An ocicrypt `cmd` entry running one of this checkout's console scripts."""
    module = {"kbs": "kbs.cli", "attestation-agent": "attestation_agent.cli"}[script]
    code = f"import sys; from {module} import main; sys.argv[0] = {script!r}; sys.exit(main())"
    return {"path": sys.executable, "args": ["-c", code, *args]}


def _provider_config(path: Path, cmd: dict[str, object]) -> dict[str, str]:
    path.write_text(json.dumps({"key-providers": {"attestation-agent": {"cmd": cmd}}}))
    return {"OCICRYPT_KEYPROVIDER_CONFIG": str(path)}


@pytest.fixture
def kbs(tmp_path: Path) -> Iterator[KbsServer]:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        yield server


def _allow_sample(kbs: KbsServer) -> None:
    kbs.admin.set_resource_policy(ALLOW_SAMPLE.read_text())


@pytest.fixture
def image(tmp_path: Path) -> Path:
    layers = [
        tar_bytes([dir_("etc"), file_("etc/motd", b"from a skopeo-encrypted image\n")]),
        tar_bytes([file_("etc/second", b"layer two")]),
    ]
    write_image(tmp_path / "plain", layers, tag="v1")
    return tmp_path / "plain"


def test_skopeo_jwe_image_unpacks_with_kbs_key(
    skopeo_ready: None, kbs: KbsServer, image: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    private, public = keys["rsa"]
    done = skopeo("copy", "--encryption-key", f"jwe:{public}", f"oci:{image}:v1", f"oci:{tmp_path / 'enc'}:v1")
    assert done.returncode == 0, done.stderr.decode()
    kbs.admin.put_resource("default/image-key/rsa", private.read_bytes())
    _allow_sample(kbs)
    done = run_cli(
        "guest", "unpack", "--kbs", kbs.url, "--key", "kbs:///default/image-key/rsa",
        f"oci:{tmp_path / 'enc'}:v1", str(tmp_path / "root"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "from a skopeo-encrypted image\n"
    assert (tmp_path / "root/etc/second").read_text() == "layer two"


def test_provider_round_trip_with_skopeo_on_both_sides(
    skopeo_ready: None, kbs: KbsServer, image: Path, tmp_path: Path
) -> None:
    token = kbs.config_dir / "admin.token"
    wrap_env = _provider_config(
        tmp_path / "wrap.json", _command("kbs", "admin", "--url", kbs.url, "--token", str(token), "keyprovider")
    )
    done = skopeo(
        "copy", "--encryption-key", f"provider:attestation-agent:{KID}",
        f"oci:{image}:v1", f"oci:{tmp_path / 'enc'}:v1", env=wrap_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert len(kbs.admin.get_resource("default/key/1")) == 32  # the KEK was created at the kid
    _allow_sample(kbs)

    # The guest unwraps in-process through the agent's KBS client ...
    done = run_cli("guest", "unpack", "--kbs", kbs.url, f"oci:{tmp_path / 'enc'}:v1", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "from a skopeo-encrypted image\n"

    # ... and skopeo decrypts the same image through `attestation-agent keyprovider`.
    unwrap_env = _provider_config(
        tmp_path / "unwrap.json", _command("attestation-agent", "keyprovider", "--kbs", kbs.url, "--tee", "sample")
    )
    done = skopeo(
        "copy", "--decryption-key", "provider:attestation-agent",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1", env=unwrap_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'dec'}:v1", str(tmp_path / "root2"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root2/etc/second").read_text() == "layer two"


def test_denied_resource_policy_leaves_nothing(skopeo_ready: None, kbs: KbsServer, image: Path, tmp_path: Path) -> None:
    token = kbs.config_dir / "admin.token"
    env = _provider_config(
        tmp_path / "wrap.json", _command("kbs", "admin", "--url", kbs.url, "--token", str(token), "keyprovider")
    )
    done = skopeo(
        "copy", "--encryption-key", f"provider:attestation-agent:{KID}",
        f"oci:{image}:v1", f"oci:{tmp_path / 'enc'}:v1", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    # The default resource policy refuses the sample TEE.
    for command, target in (("unpack", str(tmp_path / "out")), ("decrypt-image", f"oci:{tmp_path / 'out'}")):
        done = run_cli("guest", command, "--kbs", kbs.url, f"oci:{tmp_path / 'enc'}:v1", target)
        assert done.returncode == 1, done.stderr.decode()
        assert "refused by the broker (HTTP 403)" in done.stderr.decode()
        assert not (tmp_path / "out").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]


def test_python_encrypted_provider_image_decrypts_with_skopeo(
    skopeo_ready: None, kbs: KbsServer, image: Path, tmp_path: Path
) -> None:
    """guest/_encrypt.py (the demo's fallback encryptor) writes what skopeo's ocicrypt reads."""
    kek = bytes(range(32))
    kbs.admin.put_resource("default/key/1", kek)
    _allow_sample(kbs)
    encrypt_image(image, tmp_path / "enc", provider_recipient(kek, KID), tag="v1")
    env = _provider_config(
        tmp_path / "unwrap.json", _command("attestation-agent", "keyprovider", "--kbs", kbs.url, "--tee", "sample")
    )
    done = skopeo(
        "copy", "--decryption-key", "provider:attestation-agent",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'dec'}:v1", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "from a skopeo-encrypted image\n"


def test_skopeo_reads_integer_array_results(skopeo_ready: None, kbs: KbsServer, image: Path, tmp_path: Path) -> None:
    """Go ocicrypt reads the `--byte-encoding array` output that Rust ocicrypt needs (test_rust_ocicrypt.py): one
    setting serves both."""
    kek = bytes(range(32))
    kbs.admin.put_resource("default/key/1", kek)
    _allow_sample(kbs)
    encrypt_image(image, tmp_path / "enc", provider_recipient(kek, KID), tag="v1")
    command = _command(
        "attestation-agent", "keyprovider", "--kbs", kbs.url, "--tee", "sample", "--byte-encoding", "array"
    )
    env = _provider_config(tmp_path / "unwrap.json", command)
    done = skopeo(
        "copy", "--decryption-key", "provider:attestation-agent",
        f"oci:{tmp_path / 'enc'}:v1", f"oci:{tmp_path / 'dec'}:v1", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    done = run_cli("guest", "unpack", f"oci:{tmp_path / 'dec'}:v1", str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "root/etc/motd").read_text() == "from a skopeo-encrypted image\n"
