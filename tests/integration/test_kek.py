"""Key custody: the root key from a file, an environment variable or a SoftHSM2 token; `kbs kek rotate` while real
brokers serve (two replicas, SQLite and PostgreSQL), killed half way and run again, and a secret whose key is gone."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert

import kbs.storage
import policies
from kbs._audit_chain import AuditRecord
from kbs._kek_sources import key_source, load_or_create_kek
from kbs.admin_client import AdminError
from kbs.kek import rotate as kek_rotate
from kbs.sealing import ROOT_KID, Sealer, kid_of, sealer_for
from kbs.settings import StorageSettings, load
from kbs.storage import SEALED_COLUMNS, ConflictError, Store
from kbs.tables import Resource
from tests.conftest import cli_env, run_cli
from tests.integration._guest import Guest
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import UNLIMITED, KbsServer, free_port
from tests.integration._kek import (
    SOFTHSM_LIBRARY,
    kek_cli,
    sealed_by_kid,
    sealed_kids,
    sealed_values,
    softhsm_token,
)
from tests.integration._load import LoadResult, run_load

GRACE = "1.2"  # seconds: just over the second a replica trusts its view of the active key


def provision(server: KbsServer, extra: int) -> dict[str, bytes]:
    """default/key/1 (the guests' secret), `extra` more secrets, and the policy that releases them to the sample TEE."""
    values = {"default/key/1": SECRET} | {f"default/extra/{i:04}": os.urandom(24) for i in range(extra)}
    for path, value in values.items():
        server.admin.put_resource(path, value)
    server.admin.put_reference_value("sample_svn", ["1"])
    server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
    return values


def fetch(url: str, path: str = "default/key/1") -> bytes:
    """The secret through the whole RCAR handshake."""
    guest = Guest(url)
    guest.handshake()
    response = guest.resource(path)
    assert response.status_code == 200, response.text
    return guest.decrypt(response.json())


def database_of(server: KbsServer) -> str:
    return load(server.config_file).database.url


def rotate(server: KbsServer, *extra: str) -> tuple[int, dict[str, Any], str]:
    return kek_cli("rotate", "--config", str(server.config_file), "--grace-seconds", GRACE, *extra)


def test_rotation_with_a_second_replica_serving(tmp_path: Path, database_url: str) -> None:
    with KbsServer(tmp_path / "kbs", database_url=database_url) as first:
        values = provision(first, 40)
        # The second replica shares the first one's configuration (root key, admin key) and database.
        with KbsServer(tmp_path / "kbs", database_url=database_url, init=False) as second:
            assert fetch(second.url) == SECRET  # the second replica has loaded the data key in use
            (old,) = sealed_by_kid(database_url)
            code, report, err = rotate(first, "--batch-size", "7")
            assert code == 0, err
            new = report["active"]
            assert new != old
            assert report["retired"] == [old]
            # Each resource has one kept version (the history), sealed like the current value and re-sealed with it.
            assert report["resealed"] == {"kbs_resource": 41, "kbs_resource_version": 41, "kbs_signing_key": 1}
            assert sealed_by_kid(database_url) == {new: 83}
            # Neither replica restarted: both open what is now sealed under the new key, handshakes included.
            for server in (first, second):
                assert fetch(server.url) == SECRET
                for path in ("default/extra/0000", "default/extra/0039"):
                    assert server.admin.get_resource(path) == values[path]
            # A secret put on one replica is sealed under the new key, and the other replica serves it.
            first.admin.put_resource("default/key/fresh", b"fresh")
            assert fetch(second.url, "default/key/fresh") == b"fresh"
            code, status, err = kek_cli("status", "--config", str(first.config_file))
            assert code == 0, err
            assert {k["kid"]: k["state"] for k in status["keys"]} == {old: "retired", new: "active"}
            assert status["unreadable"] == []


def test_killed_mid_rotation_then_run_again(tmp_path: Path, database_url: str) -> None:
    with KbsServer(tmp_path / "kbs", database_url=database_url) as server:
        values = provision(server, 150)
        (old,) = sealed_by_kid(database_url)
        code = "import sys; from kbs.cli import main; sys.exit(main())"
        args = ["kek", "rotate", "--config", str(server.config_file), "--batch-size", "1", "--grace-seconds", GRACE]
        process = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, env=cli_env())
        assert process.stderr is not None
        batches = 0
        for line in process.stderr:
            batches += b"re-sealed" in line
            if batches == 20:
                break
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        assert batches == 20
        kids = sealed_by_kid(database_url)
        assert kids[old] > 0, kids  # half way: some values under each key
        assert len(kids) == 2, kids
        # The broker serves secrets sealed under either key meanwhile.
        by_kid = {kid: key for (table, key), kid in sealed_kids(database_url).items() if table == "kbs_resource"}
        for path in by_kid.values():
            assert server.admin.get_resource(path) == values[path]
        assert fetch(server.url) == SECRET
        code_again, report, err = rotate(server)
        assert code_again == 0, err
        assert report["resumed"] is True
        assert "resuming the rotation away from " + old in err
        assert report["retired"] == [old]
        assert set(sealed_by_kid(database_url)) == {report["active"]}
        for path, value in values.items():
            assert server.admin.get_resource(path) == value
        assert fetch(server.url) == SECRET


def test_a_secret_under_a_retired_key_is_reported_not_lost(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        values = provision(server, 3)
        url = database_of(server)
        before = sealed_values(url)[("kbs_resource", "default/key/1")]
        code, report, err = rotate(server)
        assert code == 0, err
        (old,) = report["retired"]
        # One row restored from a backup taken before the rotation: its key is retired, and gone.
        store = Store(url, threads=1)
        try:
            now = sealed_values(url)[("kbs_resource", "default/key/1")]
            assert store.replace_sealed(SEALED_COLUMNS[0], [(("default/key/1",), now, before)]) == 1
        finally:
            store.engine.dispose()
        code, status, err = kek_cli("status", "--config", str(server.config_file))
        assert code == 1
        assert status["unreadable"] == [
            {
                "table": "kbs_resource",
                "key": "default/key/1",
                "kid": old,
                "reason": f"data key {old} retired: the key is gone",
            }
        ]
        assert f"kbs_resource default/key/1: cannot be opened: data key {old} retired" in err
        # The other secrets open (the broker has read the keyring again: it forgets the retired key); a guest asking
        # for the restored one gets a clear error naming the key, and the broker stays up and ready.
        assert server.admin.get_resource("default/extra/0002") == values["default/extra/0002"]
        guest = Guest(server.url)
        guest.handshake()
        assert_error(
            guest.resource("default/key/1"), 503, "ServiceUnavailable", f"sealed under data key {old}, retired"
        )
        with pytest.raises(AdminError, match="retired at"):
            server.admin.get_resource("default/key/1")
        assert httpx.get(server.url + "/readyz").status_code == 200
        # Another rotation re-seals the rest, and names the one it cannot open again.
        code, report, err = rotate(server)
        assert code == 1
        assert [u["key"] for u in report["unreadable"]] == ["default/key/1"]
        assert "default/key/1: cannot be opened" in err
        assert server.admin.get_resource("default/extra/0002") == values["default/extra/0002"]


def test_environment_variable_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERITEE_TEST_KEK", os.urandom(32).hex())
    config = {"storage": {"kek_source": "env", "kek_env": "VERITEE_TEST_KEK"}}
    server = KbsServer(tmp_path / "kbs", config=config, database_url=f"sqlite:///{tmp_path / 'env.sqlite'}")
    with server:
        provision(server, 2)
        assert fetch(server.url) == SECRET
        assert httpx.get(server.url + "/readyz").status_code == 200
        code, _, err = rotate(server)
        assert code == 0, err
        assert fetch(server.url) == SECRET
    serve = ("serve", "--config", str(server.config_file), "--port", str(free_port()))
    # Another key in the variable: the keyring does not unwrap, and the broker says so rather than start.
    monkeypatch.setenv("VERITEE_TEST_KEK", os.urandom(32).hex())
    done = run_cli("kbs", *serve)
    assert done.returncode == 1
    assert b"another root key-encryption key" in done.stderr
    monkeypatch.delenv("VERITEE_TEST_KEK")
    done = run_cli("kbs", *serve)
    assert done.returncode == 1
    assert b"environment variable VERITEE_TEST_KEK (storage.kek_env) is not set" in done.stderr


def test_pkcs11_token_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pkcs11

    for name, value in softhsm_token(tmp_path / "hsm").items():
        monkeypatch.setenv(name, value)
    token = {"library": str(SOFTHSM_LIBRARY), "token_label": "veritee", "pin_file": str(tmp_path / "hsm" / "token.pin")}
    config = {"storage": {"kek_source": "pkcs11", "pkcs11": token}}
    # Two worker processes, each with its own session on the token.
    server = KbsServer(
        tmp_path / "kbs", config=config, database_url=f"sqlite:///{tmp_path / 'token.sqlite'}", workers=2
    )
    done = run_cli("kbs", "serve", "--config", str(server.config_file), "--port", str(free_port()))
    assert done.returncode == 1
    assert b"no such key" in done.stderr
    assert b"kbs kek init" in done.stderr
    for said in (b"generated", b"already there"):
        done = run_cli("kbs", "kek", "init", "--config", str(server.config_file))
        assert done.returncode == 0, done.stderr
        assert said in done.stderr
    with server:
        provision(server, 5)
        assert fetch(server.url) == SECRET
        code, _, err = rotate(server)
        assert code == 0, err
        assert fetch(server.url) == SECRET
        # The root key never leaves the token: its value cannot be read.
        session = pkcs11.lib(str(SOFTHSM_LIBRARY)).get_token(token_label="veritee").open(user_pin="1234")
        try:
            key = session.get_key(label="veritee-kek")
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[pkcs11.Attribute.VALUE]
        finally:
            session.close()
        # The token taken away: the broker is not ready.
        tokens = tmp_path / "hsm" / "tokens"
        shutil.move(tokens, tmp_path / "hsm" / "away")
        assert_error(httpx.get(server.url + "/readyz"), 503, "ServiceUnavailable", "token")


def test_rotation_while_16_clients_fetch_secrets(tmp_path: Path, database_url: str) -> None:
    """The fault test: two replicas, 16 guests doing full handshakes over both, a rotation through it all: 0 errors."""
    config = UNLIMITED
    with KbsServer(tmp_path / "kbs", config=config, database_url=database_url) as first:
        provision(first, 300)
        with KbsServer(tmp_path / "kbs", config=config, database_url=database_url, init=False) as second:
            urls = [first.url, second.url]
            code = "import sys; from kbs.cli import main; sys.exit(main())"
            args = ["kek", "rotate", "--config", str(first.config_file), "--batch-size", "20", "--grace-seconds", GRACE]
            rotation = subprocess.Popen(
                [sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env()
            )
            result = LoadResult()
            during = 0
            while rotation.poll() is None:
                chunk = asyncio.run(run_load(urls, 16, seconds=2.0, secret=SECRET))
                during += chunk.ops
                result = result.merge(chunk)
            _, err = rotation.communicate()
            assert rotation.returncode == 0, err.decode()
            # and after it: the replicas serve from the new key alone
            result = result.merge(asyncio.run(run_load(urls, 16, seconds=2.0, secret=SECRET)))
    assert dict(result.errors) == {}
    assert during > 0
    assert result.ops > during
    assert len(sealed_by_kid(database_url)) == 1


def test_values_sealed_before_the_keyring_open_and_rotate_away(tmp_path: Path, database_url: str) -> None:
    """An upgrade: values the root key sealed itself (before revision 0003) are tagged `root`, open, and a rotation
    re-seals them under a data key."""
    kek = tmp_path / "kek.bin"
    store = Store(database_url, threads=1)
    try:
        with store.write() as writes:
            config = Config()
            config.set_main_option("script_location", str(Path(kbs.storage.__file__).parent / "migrations"))
            config.attributes["connection"] = writes.connection
            command.upgrade(config, "0002")
        root = AESGCM(load_or_create_kek(kek, create=True))
        nonce = os.urandom(12)
        legacy = nonce + root.encrypt(nonce, SECRET, b"resource:default/key/1")
        with store.write() as writes:  # the row as revision 0002 stored it (there was no history or audit chain then)
            row = {"path": "default/key/1", "sealed": legacy, "size": len(SECRET), "updated_at": 0.0}
            writes.connection.execute(insert(Resource), row)
        store.migrate()
        sealer = Sealer(key_source(StorageSettings(kek_file=kek)), store, keep_retired=True)
        sealer.ensure()
        # The value, and its copy that revision 0004 made version 1 of the resource's history.
        expected = {("kbs_resource", "default/key/1"), ("kbs_resource_version", "default/key/1/1")}
        sealed = sealed_values(database_url)
        assert set(sealed) == expected
        for value in sealed.values():
            assert kid_of(value) == ROOT_KID
            assert sealer.open(value, "resource:default/key/1") == SECRET
        report = kek_rotate(store, sealer, grace_seconds=0.0)
        assert report.resealed == {"kbs_resource": 1, "kbs_resource_version": 1}
        for value in sealed_values(database_url).values():
            assert kid_of(value) == report.active
            assert sealer.open(value, "resource:default/key/1") == SECRET
    finally:
        store.engine.dispose()


def test_changing_the_root_key(tmp_path: Path) -> None:
    """A new root key (here a new key file) with the old one as [storage.previous]: the broker serves what the old
    root's data keys sealed, a rotation moves every secret under a data key of the new root, then the old root goes."""
    with KbsServer(tmp_path / "kbs") as server:
        values = provision(server, 3)
        server.stop()
        document = tomllib.loads(server.config_file.read_text())
        document["storage"] = {"kek_file": "kek-2.bin", "previous": {"kek_file": "kek.bin"}}
        server.config_file.write_text(tomli_w.dumps(document))
        done = run_cli("kbs", "kek", "init", "--config", str(server.config_file))
        assert done.returncode == 0, done.stderr
        server.start()
        assert fetch(server.url) == SECRET
        code, status, err = kek_cli("status", "--config", str(server.config_file))
        assert code == 0, err
        assert [k["wrapped_by"] for k in status["keys"]] == ["previous root"]
        code, _, err = rotate(server)
        assert code == 0, err
        code, status, err = kek_cli("status", "--config", str(server.config_file))
        assert [(k["state"], k["wrapped_by"]) for k in status["keys"]] == [("retired", None), ("active", "root")]
        server.stop()
        del document["storage"]["previous"]
        server.config_file.write_text(tomli_w.dumps(document))
        (server.config_dir / "kek.bin").unlink()  # the old root key is gone
        server.start()
        assert fetch(server.url) == SECRET
        for path, value in values.items():
            assert server.admin.get_resource(path) == value


def test_a_rotation_started_meanwhile_is_refused(tmp_path: Path, database_url: str) -> None:
    """Two rotations at once: the second one's switch of the active key finds it switched already, and refuses."""
    store = Store(database_url, threads=1)
    try:
        store.migrate()
        sealer = sealer_for(StorageSettings(kek_file=tmp_path / "kek.bin"), store, create=True)
        sealer.ensure()
        (first,) = [row.kid for row in store.data_keys()]
        started = AuditRecord("test", "kek.rotate", "data key", "started", time.time())
        store.start_data_key(sealer.new_key(time.time()), [first], started)
        with pytest.raises(ConflictError, match="another rotation made a new data key meanwhile"):
            store.start_data_key(sealer.new_key(time.time()), [first], started)
        assert [row.state for row in store.data_keys()] == ["previous", "active"]
    finally:
        store.engine.dispose()
