"""`attestation-agent unseal` against a real `kbs serve` holding the verification key, the secrets and the KEK:
vault and envelope secrets unseal to their exact bytes; a forged or malformed one fails with a message, exit 1,
no traceback, and the broker's audit log shows that what it names was never released."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import policies
from tests.agent._sealing import envelope, seal, signing_key, vault
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer

KID = "kbs:///default/sealed-secret/key-1"
KEY, PUBLIC_JWK = signing_key()
FORGER, _ = signing_key()
KEK = os.urandom(32)
PASSWORD = b"s3cret \x00\x01 password"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs") / "conf") as server:
        server.admin.put_resource("default/sealed-secret/key-1", PUBLIC_JWK)
        server.admin.put_resource("default/secret/db", PASSWORD)
        server.admin.put_resource("default/kek/1", KEK)
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        yield server


def unseal(broker: KbsServer, tmp_path: Path, sealed: str, *, stdin: bool = False) -> tuple[int, bytes, bytes]:
    env = {"VERITEE_SYSROOT": str(tmp_path / "no-tee")}
    if stdin:
        done = run_cli("attestation-agent", "unseal", "--kbs", broker.url, "-", input=sealed.encode(), env=env)
    else:
        (tmp_path / "secret").write_text(sealed)
        done = run_cli("attestation-agent", "unseal", "--kbs", broker.url, str(tmp_path / "secret"), env=env)
    return done.returncode, done.stdout, done.stderr


def released(broker: KbsServer, path: str) -> int:
    return sum(1 for a in broker.admin.audit() if a["action"] == "resource.release" and a.get("target") == path)


def test_vault_secret_from_file_and_stdin(broker: KbsServer, tmp_path: Path) -> None:
    sealed = seal(vault("kbs:///default/secret/db"), KEY, KID)
    before = released(broker, "default/secret/db")
    code, out, err = unseal(broker, tmp_path, sealed)
    assert (code, out) == (0, PASSWORD), err
    assert released(broker, "default/secret/db") == before + 1
    code, out, err = unseal(broker, tmp_path, sealed + "\n", stdin=True)
    assert (code, out) == (0, PASSWORD), err


def test_envelope_secret(broker: KbsServer, tmp_path: Path) -> None:
    plaintext = os.urandom(300)
    code, out, err = unseal(broker, tmp_path, seal(envelope(plaintext, KEK, "kbs:///default/kek/1"), KEY, KID))
    assert (code, out) == (0, plaintext), err


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("forged", lambda: seal(vault("kbs:///default/secret/db"), FORGER, KID), b"does not verify"),
        ("unsigned", lambda: "sealed.fakejwsheader.e30.fakesignature", b"'fakejwsheader' form is refused"),
        ("unknown-type", lambda: seal({**vault("kbs:///default/secret/db"), "type": "x"}, KEY, KID), b"type is 'x'"),
        ("no-prefix", lambda: seal(vault("kbs:///default/secret/db"), KEY, KID)[7:], b"does not start with"),
    ],
)
def test_bad_secret_fails_cleanly_and_releases_nothing(
    broker: KbsServer, tmp_path: Path, name: str, make: object, message: bytes
) -> None:
    before = released(broker, "default/secret/db")
    assert callable(make)
    code, out, err = unseal(broker, tmp_path, make())
    assert code == 1, name
    assert out == b""
    assert message in err
    assert b"Traceback" not in err
    assert released(broker, "default/secret/db") == before


def test_missing_verification_key_is_a_clear_404(broker: KbsServer, tmp_path: Path) -> None:
    code, _, err = unseal(broker, tmp_path, seal(vault("kbs:///default/secret/db"), KEY, "kbs:///default/x/none"))
    assert code == 1
    assert b"404" in err
    assert b"Traceback" not in err
