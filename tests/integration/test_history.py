"""Versions of resources, policies and reference values (issue 14 item 3, issue 15 item 4) on a real `kbs serve`,
SQLite and PostgreSQL: history with who and when, reading a kept version, restore and rollback as new versions,
retention, policies refused by their unit tests, and trustee's admin messages making versions too."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config

import policies
from kbs.admin_client import AdminError
from kbs.storage import POLICIES, REFERENCE_VALUES, PolicyRecord, Store
from tests.conftest import ROOT
from tests.integration._helpers import SECRET, assert_error
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import new_database_url

DEMO = ROOT / "policies" / "demo_resource_allow_sample.rego"
SHIPPED = ROOT / "policies" / "resource.rego"
PASSING_TEST = """package policy_test
import rego.v1
test_warning_denied if not data.policy.allow with input as {"submods": {"cpu0": {"ear.status": "warning"}}}
"""
FAILING_TEST = """package policy_test
import rego.v1
test_everything_allowed if data.policy.allow with input as {}
"""


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _admin_headers(server: KbsServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    """A broker keeping at most 4 versions a key (deleted keys restorable for the default 30 days)."""
    folder = tmp_path_factory.mktemp(f"history-{request.param}")
    url = new_database_url(request, request.param, folder)
    history = {"history": {"max_versions": 4}}
    with KbsServer(folder / "conf", database_url=url, config=history) as running:
        yield running


def test_resource_versions_who_when_and_size_never_the_value(server: KbsServer, tmp_path: Path) -> None:
    before = time.time()
    server.admin.put_resource("hist/key/a", b"first value")
    server.admin.put_resource("hist/key/a", SECRET)
    listed = server.cli("resource", "versions", "hist/key/a")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [(v["version"], v["action"], v["size"]) for v in versions] == [(1, "put", 11), (2, "put", len(SECRET))]
    assert all(v["created_by"] == "admin (admin)" and v["created_at"] >= before for v in versions)
    assert all(v["deleted_at"] is None for v in versions)
    assert b"first value" not in listed.stdout
    assert b"sha256" not in listed.stdout

    old = server.cli("resource", "get", "hist/key/a", "--version", "1")
    assert (old.returncode, old.stdout) == (0, b"first value")
    assert server.admin.get_resource("hist/key/a") == SECRET
    audit = server.admin.audit(20)
    assert any(e["action"] == "resource.read" and e["target"] == "hist/key/a@1" for e in audit)


def test_reading_a_version_that_is_not_kept(server: KbsServer) -> None:
    server.admin.put_resource("hist/key/b", b"only")
    missing = server.cli("resource", "get", "hist/key/b", "--version", "7")
    assert missing.returncode == 1
    assert b"has no version 7 (kept: 1..1)" in missing.stderr
    assert missing.stdout == b""
    never = server.cli("resource", "versions", "hist/key/never")
    assert never.returncode == 1
    assert b"has no history" in never.stderr
    for bad in ("0", "-1", "x"):
        usage = server.cli("resource", "get", "hist/key/b", "--version", bad)
        assert usage.returncode == 2, bad
    response = httpx.get(
        server.url + "/kbs/v0/admin/resource/hist/key/b", params={"version": 9}, headers=_admin_headers(server)
    )
    assert_error(response, 404, "ResourceNotFound", "has no version 9")


def test_delete_is_recorded_and_undone(server: KbsServer) -> None:
    server.admin.put_resource("hist/key/c", b"v1")
    server.admin.put_resource("hist/key/c", b"v2")
    assert server.cli("resource", "delete", "hist/key/c").returncode == 0
    gone = server.cli("resource", "get", "hist/key/c")
    assert gone.returncode == 1
    deleted = server.admin.resource_versions("hist/key/c")[-1]
    assert (deleted["version"], deleted["deleted_by"]) == (2, "admin (admin)")
    assert deleted["deleted_at"] is not None

    restored = server.cli("resource", "restore", "hist/key/c")
    assert restored.returncode == 0, restored.stderr
    made = json.loads(restored.stdout)
    assert (made["version"], made["action"], made["restored_from"]) == (3, "restore", 2)
    assert server.admin.get_resource("hist/key/c") == b"v2"

    live = server.cli("resource", "restore", "hist/key/c")
    assert live.returncode == 1
    assert b"is not deleted: name the version" in live.stderr
    assert server.cli("resource", "restore", "hist/key/c", "--version", "1").returncode == 0
    assert server.admin.get_resource("hist/key/c") == b"v1"
    assert [v["version"] for v in server.admin.resource_versions("hist/key/c")] == [1, 2, 3, 4]
    actions = {e["action"] for e in server.admin.audit(50)}
    assert {"resource.delete", "resource.restore"} <= actions


def test_restore_after_the_retention_is_refused_and_history_swept(tmp_path: Path, database_url: str) -> None:
    config = {"history": {"retention_seconds": 2}}
    with KbsServer(tmp_path / "conf", database_url=database_url, config=config) as server:
        server.admin.put_resource("hist/key/d", b"short-lived")
        server.admin.delete_resource("hist/key/d")
        time.sleep(2.5)
        late = server.cli("resource", "restore", "hist/key/d")
        assert late.returncode == 1
        assert b"has no history" in late.stderr
        with pytest.raises(AdminError, match="has no history"):
            server.admin.get_resource("hist/key/d", 1)
        # The next admin write sweeps the rows themselves: put again, the key starts again at version 1.
        server.admin.put_resource("hist/key/d", b"again")
        assert [v["version"] for v in server.admin.resource_versions("hist/key/d")] == [1]
        assert server.admin.get_resource("hist/key/d") == b"again"


def test_a_key_keeps_at_most_max_versions(server: KbsServer) -> None:
    for n in range(6):
        server.admin.put_resource("hist/key/e", f"value {n}".encode())
    assert [v["version"] for v in server.admin.resource_versions("hist/key/e")] == [3, 4, 5, 6]
    swept = server.cli("resource", "get", "hist/key/e", "--version", "2")
    assert swept.returncode == 1
    assert b"kept: 3..6" in swept.stderr


def test_concurrent_puts_number_every_version_once(server: KbsServer) -> None:
    """Writers racing for one version number: each write gets its own, none is lost or refused."""

    def put(n: int) -> None:
        server.admin.put_resource("hist/key/race", f"writer {n}".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(16)))
    versions = [v["version"] for v in server.admin.resource_versions("hist/key/race")]
    assert versions == [13, 14, 15, 16]  # max_versions 4 of 16 writes, numbered without gaps


def test_policy_history_get_diff_and_rollback(server: KbsServer) -> None:
    assert server.cli("policy", "set", "resource", str(DEMO), "--scope", "hist").returncode == 0
    assert server.cli("policy", "set", "resource", str(SHIPPED), "--scope", "hist").returncode == 0
    history = server.cli("policy", "history", "resource", "hist")
    assert history.returncode == 0, history.stderr
    versions = json.loads(history.stdout)
    assert [(v["version"], v["action"]) for v in versions] == [(1, "set"), (2, "set")]
    assert versions[1]["created_by"] == "admin (admin)"
    old = server.cli("policy", "get", "resource:hist", "--version", "1")
    assert old.stdout.decode() == DEMO.read_text()

    diff = server.cli("policy", "diff", "resource", "hist", "1", "2")
    assert diff.returncode == 0
    text = diff.stdout.decode()
    assert text.startswith("--- resource:hist@1\n+++ resource:hist@2\n")
    assert any(line.startswith("-") and not line.startswith("---") for line in text.splitlines())

    back = server.cli("policy", "rollback", "resource", "hist", "1")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["version"] == 3
    assert server.admin.get_policy("resource:hist") == DEMO.read_text()
    in_force = httpx.get(server.url + "/kbs/v0/admin/policy/resource:hist", headers=_admin_headers(server)).json()
    assert in_force["version"] == 3
    assert [v["action"] for v in server.admin.policy_versions("resource:hist")] == ["set", "set", "rollback"]

    nowhere = server.cli("policy", "rollback", "resource", "hist", "9")
    assert nowhere.returncode == 1
    assert b"has no version 9" in nowhere.stderr
    assert len(server.admin.policy_versions("resource:hist")) == 3
    assert server.cli("policy", "rollback", "resource", "hist", "first").returncode == 2
    assert server.cli("policy", "rollback", "attestation", "1").returncode == 2
    assert server.cli("policy", "history", "resource", "no-such-scope").returncode == 1


def test_policy_with_failing_unit_test_is_not_stored(server: KbsServer, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "resource_test.rego").write_text(PASSING_TEST)
    (bad / "resource_test.rego").write_text(FAILING_TEST)
    stored = server.cli("policy", "set", "resource", str(SHIPPED), "--scope", "tested", "--tests", str(good))
    assert stored.returncode == 0, stored.stderr
    assert b"PASS resource_test.rego: test_warning_denied" in stored.stderr

    refused = server.cli("policy", "set", "resource", str(DEMO), "--scope", "tested", "--tests", str(bad))
    assert refused.returncode == 1
    assert b"FAIL resource_test.rego: test_everything_allowed" in refused.stderr
    assert [v["version"] for v in server.admin.policy_versions("resource:tested")] == [1]
    assert server.admin.get_policy("resource:tested") == SHIPPED.read_text()

    empty = server.cli("policy", "set", "resource", str(DEMO), "--scope", "tested", "--tests", str(tmp_path))
    assert empty.returncode == 2
    assert b"no *_test.rego" in empty.stderr

    # The broker runs them too: a client that skips the local run cannot store a policy its tests refuse.
    body = {"policy": _b64url(DEMO.read_text()), "scope": "tested", "tests": {"t_test.rego": _b64url(FAILING_TEST)}}
    response = httpx.post(server.url + "/kbs/v0/resource-policy", json=body, headers=_admin_headers(server))
    assert_error(response, 400, "InvalidRequest", "failing tests: t_test.rego: test_everything_allowed")
    body["tests"] = {"t_test.rego": _b64url("package policy_test\nthis is not rego")}
    response = httpx.post(server.url + "/kbs/v0/resource-policy", json=body, headers=_admin_headers(server))
    assert_error(response, 400, "InvalidRequest", "test module t_test.rego")
    assert [v["version"] for v in server.admin.policy_versions("resource:tested")] == [1]


def test_trustee_admin_messages_make_versions(server: KbsServer) -> None:
    sample = policies.load("sample.rego")
    body = {"policy_id": "hist_trustee", "policy": _b64url(sample), "type": "rego"}
    for _ in range(2):
        response = httpx.post(server.url + "/kbs/v0/attestation-policy", json=body, headers=_admin_headers(server))
        assert response.status_code == 200, response.text
    assert response.json() == {"policy_id": "attestation:hist_trustee", "version": 2}
    listed = server.cli("policy", "history", "attestation", "hist_trustee")
    assert [v["version"] for v in json.loads(listed.stdout)] == [1, 2]

    payload = base64.b64encode(json.dumps({"hist_svn": ["1", "2"], "hist_other": "x"}).encode()).decode()
    message = {"version": "0.1.0", "type": "sample", "payload": payload}
    response = httpx.post(server.url + "/kbs/v0/reference-value", json=message, headers=_admin_headers(server))
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == {"hist_svn": 2, "hist_other": 1}
    server.admin.put_reference_value("hist_svn", ["3"])
    history = server.cli("reference-value", "history", "hist_svn")
    assert history.returncode == 0, history.stderr
    assert [(v["version"], v["values"]) for v in json.loads(history.stdout)] == [(1, ["1", "2"]), (2, ["3"])]

    assert server.cli("reference-value", "delete", "hist_svn").returncode == 0
    assert server.cli("reference-value", "restore", "hist_svn", "--version", "1").returncode == 0
    assert sorted(v["value"] for v in server.admin.list_reference_values() if v["name"] == "hist_svn") == ["1", "2"]
    assert server.cli("reference-value", "restore", "hist_svn", "--version", "8").returncode == 1

    server.admin.put_reference_value("hist_empty", [])  # an empty set is a version too (found by schemathesis)
    assert [v["values"] for v in server.admin.reference_value_versions("hist_empty")] == [[]]


def test_broker_requiring_tests_refuses_a_policy_without(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "conf", config={"policies": {"require_tests": True}}) as server:
        refused = server.cli("policy", "set", "resource", str(DEMO))
        assert refused.returncode == 1
        assert b"requires Rego unit tests" in refused.stderr
        folder = tmp_path / "tests"
        folder.mkdir()
        (folder / "resource_test.rego").write_text(PASSING_TEST)
        assert server.cli("policy", "set", "resource", str(SHIPPED), "--tests", str(folder)).returncode == 0


def test_migration_makes_stored_state_version_1(database_url: str) -> None:
    """A database written before history existed: what it holds becomes version 1, by `migration 0004`."""
    store = Store(database_url)
    config = Config()
    config.set_main_option("script_location", str(ROOT / "kbs" / "migrations"))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.exec_driver_sql(
            "INSERT INTO kbs_policy (id, source, sha256, updated_at) VALUES ('resource', 'package policy', 'ab', 1)"
        )
        connection.exec_driver_sql(
            "INSERT INTO kbs_reference_value (name, value, expires_at, updated_at) "
            "VALUES ('svn', '1', NULL, 1), ('svn', '2', NULL, 1)"
        )
    store.migrate()
    now = time.time()
    [policy] = store.history(POLICIES, "resource", now)
    with store.read() as reads:
        assert reads.first_policy(["resource"]) == PolicyRecord("resource", "package policy", "ab", 1)
    assert (policy.version, policy.created_by, policy.data["source"]) == (1, "migration 0004", "package policy")
    [values] = store.history(REFERENCE_VALUES, "svn", now)
    assert json.loads(values.data["values_json"]) == ["1", "2"]
    store.engine.dispose()
