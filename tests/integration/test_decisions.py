"""Decisions the broker remembers, and policy authoring on them, on a real `kbs serve`: every attestation and resource
decision recorded (redactions, opt-out, retention swept), listed and filtered, explained down to the failing
condition and the values it compared, and replayed under a candidate policy (`policy impact`)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import policies
from kbs.storage import DecisionFilter, Store
from tests.conftest import run_cli
from tests.integration._guest import Guest
from tests.integration._kbs_server import KbsServer
from tests.integration.conftest import new_database_url

# A resource policy with no `reasons` set: explain must find the failing condition by itself.
TEAM_POLICY = """package policy
import rego.v1

default allow := false

allow if {
\tinput.submods.cpu0["ear.status"] == "affirming"
\tdata["resource-path"][0] == "team-a"
}
"""
# The sample TEE's default policy, narrowed to svn 1: decisions with svn 2 flip, those with svn 1 or 3 do not.
ONLY_SVN_1 = policies.load("sample.rego").replace(
    'known_svn if input.sample.svn in references("sample_svn")',
    'known_svn if {\n\tinput.sample.svn in references("sample_svn")\n\tinput.sample.svn == "1"\n}',
)


def attest(guest: Guest, svn: str = "1") -> httpx.Response:
    """/auth then /attest with sample evidence claiming `svn`."""
    nonce = guest.auth().json()["nonce"]
    body = guest.attest_body(nonce)
    body["tee-evidence"]["primary_evidence"]["svn"] = svn
    return guest.http.post("/attest", json=body)


def listed(server: KbsServer, *args: str) -> list[dict[str, Any]]:
    done = server.cli("decisions", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def write_policy(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(source)
    return str(path)


def test_denied_resource_explained_to_the_failing_condition(tmp_path: Path, database_url: str) -> None:
    with KbsServer(tmp_path / "kbs", database_url=database_url) as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.put_resource("default/key/1", b"one")
        server.admin.put_resource("team-a/key/1", b"two")
        server.admin.set_resource_policy(TEAM_POLICY)
        guest = Guest(server.url)
        assert attest(guest).status_code == 200
        assert guest.resource("default/key/1").status_code == 403
        assert guest.resource("team-a/key/1").status_code == 200

        rows = listed(server)
        assert [(r["kind"], r["outcome"], r["path"]) for r in rows] == [
            ("resource", "released", "team-a/key/1"),
            ("resource", "denied", "default/key/1"),
            ("attestation", "affirming", None),
        ]
        denied = listed(server, "--denied")
        assert [(r["id"], r["outcome"]) for r in denied] == [(rows[1]["id"], "denied")]
        assert [r["outcome"] for r in listed(server, "--path", "team-a/key/1")] == ["released"]
        assert [r["kind"] for r in listed(server, "--kind", "attestation")] == ["attestation"]
        assert listed(server, "--since", "2999-01-01T00:00:00Z") == []
        assert len(listed(server, "--since", "10m")) == 3
        human = server.cli("decisions", "list")
        assert human.returncode == 0
        assert b"default/key/1" in human.stdout

        explained = server.cli("policy", "explain", str(denied[0]["id"]))
        assert explained.returncode == 0, explained.stderr
        text = explained.stdout.decode()
        assert "allow = false  (decided by line 4: default allow := false)" in text
        assert 'false: data["resource-path"][0] == "team-a"  (line 8)' in text
        assert 'data["resource-path"][0] = "default"' in text
        assert '"team-a" = "team-a"' in text
        as_json = json.loads(server.cli("policy", "explain", str(denied[0]["id"]), "--json").stdout)
        (rule,) = [d for d in as_json["explanation"]["rule"]["definitions"] if not d["default"]]
        assert rule["failed"]["line"] == 8
        assert rule["failed"]["compared"] == [
            [{"expr": 'data["resource-path"][0]', "value": "default"}, {"expr": '"team-a"', "value": "team-a"}]
        ]
        # The policy is replaced: the decision is still explained by the version that made it (policy history).
        assert (rows[1]["policy_id"], rows[1]["policy_version"]) == ("resource", 1)
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        again = server.cli("policy", "explain", str(denied[0]["id"]))
        assert 'data["resource-path"][0] = "default"' in again.stdout.decode()
        released = server.cli("policy", "explain", str(rows[0]["id"]))
        assert "allow = true  (decided by line 6: allow if {)" in released.stdout.decode()

        shown = json.loads(server.cli("decisions", "show", str(rows[2]["id"])).stdout)
        assert shown["input"]["sample"]["svn"] == "1"
        assert shown["reference_values"] == {"sample_svn": ["1"]}
        assert shown["trust_vector"]["executables"] == 3


def test_attestation_explained_with_vector_rules_and_status(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        guest = Guest(server.url)
        assert attest(guest, "7").status_code == 200  # a token, contraindicated: the resource policy decides
        (row,) = listed(server)
        assert (row["kind"], row["outcome"], row["denied"], row["tee"]) == (
            "attestation",
            "contraindicated",
            True,
            "sample",
        )
        text = server.cli("policy", "explain", str(row["id"])).stdout.decode()
        assert "ear.status: contraindicated" in text
        assert "executables=33" in text
        assert "hardware: 97 (contraindicated)" in text
        assert "hardware = 97  (decided by line 10: default hardware := 97)" in text
        assert 'false: input.sample.svn in references("sample_svn")' in text
        assert 'input.sample.svn = "7"' in text
        assert 'references("sample_svn") = ["1"]' in text


def test_attestation_policy_impact_lists_exactly_the_flips(tmp_path: Path, database_url: str) -> None:
    with KbsServer(tmp_path / "kbs", database_url=database_url) as server:
        server.admin.put_reference_value("sample_svn", ["1", "2"])
        guest = Guest(server.url)
        for svn in ("1", "2", "3", "2"):
            assert attest(guest, svn).status_code == 200
        nonce = guest.auth().json()["nonce"]
        refused = guest.attest(nonce, bind_nonce="another nonce")  # evidence bound to something else
        assert refused.status_code == 401 or refused.status_code == 403, refused.text
        rows = listed(server, "--kind", "attestation")
        outcomes = [r["outcome"] for r in reversed(rows)]
        assert outcomes == ["affirming", "affirming", "contraindicated", "affirming", "rejected"]
        svn_2 = {rows[1]["id"], rows[3]["id"]}

        new = write_policy(tmp_path, "only-1.rego", ONLY_SVN_1)
        impact = server.cli("policy", "impact", "attestation", "sample", new, "--json")
        assert impact.returncode == 0, impact.stderr
        report = json.loads(impact.stdout)
        assert (report["replayed"], report["skipped"]) == (4, 1)
        assert {f["decision"]["id"] for f in report["flips"]} == svn_2
        for flip in report["flips"]:
            assert (flip["before"], flip["after"]) == ("affirming", "contraindicated")
            assert 'input.sample.svn = "2"' in flip["text"]
            assert "ear.status: contraindicated" in flip["text"]
        human = server.cli("policy", "impact", "attestation", new)
        assert human.returncode == 0
        assert b"4 decisions replayed, 2 would flip" in human.stderr
        assert f"decision {max(svn_2)} (attestation sample".encode() in human.stdout
        later = json.loads(
            server.cli("policy", "impact", "attestation", new, "--since", "2999-01-01T00:00Z", "--json").stdout
        )
        assert later == {"replayed": 0, "skipped": 0, "flips": []}
        # The same policy decides the same: nothing flips; and nothing was stored by the replays.
        same = write_policy(tmp_path, "same.rego", policies.load("sample.rego"))
        assert json.loads(server.cli("policy", "impact", "attestation", same, "--json").stdout)["flips"] == []
        assert server.admin.list_policies() == []


def test_resource_policy_impact(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.put_resource("team-a/key/1", b"a")
        server.admin.put_resource("team-b/key/1", b"b")
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        guest = Guest(server.url)
        assert attest(guest).status_code == 200
        assert guest.resource("team-a/key/1").status_code == 200
        assert guest.resource("team-b/key/1").status_code == 200
        new = write_policy(tmp_path, "team.rego", TEAM_POLICY)
        report = json.loads(server.cli("policy", "impact", "resource", new, "--json").stdout)
        assert report["replayed"] == 2
        (flip,) = report["flips"]
        assert (flip["decision"]["path"], flip["before"], flip["after"]) == ("team-b/key/1", "released", "denied")
        assert 'data["resource-path"][0] = "team-b"' in flip["text"]
        scoped = json.loads(server.cli("policy", "impact", "resource", "team-a", new, "--json").stdout)
        assert (scoped["replayed"], scoped["flips"]) == (1, [])


def test_redaction_and_opt_out(tmp_path: Path) -> None:
    redact = {"decisions": {"redact": ["/sample/svn", "/runtime_data_claims/*"]}}
    with KbsServer(tmp_path / "redacted", config=redact) as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.put_resource("default/key/1", b"x")
        guest = Guest(server.url)
        assert attest(guest).status_code == 200
        assert guest.resource("default/key/1").status_code == 403
        resource, attestation = listed(server)
        shown = json.loads(server.cli("decisions", "show", str(attestation["id"])).stdout)
        assert shown["input"]["sample"]["svn"] == "<redacted>"
        assert shown["input"]["runtime_data_claims"] == {"nonce": "<redacted>", "tee-pubkey": "<redacted>"}
        shown = json.loads(server.cli("decisions", "show", str(resource["id"])).stdout)
        evidence = shown["input"]["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
        assert evidence["sample"]["svn"] == "<redacted>"
        database = sqlite3.connect(server.config_dir / "kbs.sqlite")
        stored = " ".join(str(r) for r in database.execute("SELECT input FROM kbs_decision"))
        database.close()
        assert guest.pubkey["x"] not in stored

    with KbsServer(tmp_path / "off", config={"decisions": {"record": False}}) as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.put_resource("default/key/1", b"x")
        guest = Guest(server.url)
        assert attest(guest).status_code == 200
        assert guest.resource("default/key/1").status_code == 403
        assert listed(server) == []
        audit = [a["action"] for a in server.admin.audit()]
        assert "resource.deny" in audit  # the audit log does not depend on it


def _stored_decisions(url: str) -> int:
    """The decisions in the database, expired or not (the broker's list hides the expired ones)."""
    store = Store(url)
    try:
        return len(store.decisions(DecisionFilter(limit=1000)))
    finally:
        store.engine.dispose()


def _wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_retention_by_time_and_count_is_swept(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> None:
    retention = {"decisions": {"retention_seconds": 3}}
    with KbsServer(tmp_path / "time", config=retention, database_url=database_url) as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        guest = Guest(server.url)
        assert attest(guest).status_code == 200
        (row,) = listed(server)
        assert _wait_for(lambda: _stored_decisions(database_url) == 0)  # swept from the database, not only hidden
        assert listed(server) == []
        gone = server.cli("decisions", "show", str(row["id"]))
        assert gone.returncode == 1
        assert b"does not exist or has expired" in gone.stderr
        assert server.cli("policy", "explain", str(row["id"])).returncode == 1

    kind = "postgres" if database_url.startswith("postgres") else "sqlite"
    url = new_database_url(request, kind, tmp_path / "count")
    count = {"decisions": {"retention_seconds": 40, "max_count": 2}}
    with KbsServer(tmp_path / "count", config=count, database_url=url) as server:
        server.admin.put_reference_value("sample_svn", ["1"])
        guest = Guest(server.url)
        for _ in range(4):
            assert attest(guest).status_code == 200
        assert _wait_for(lambda: _stored_decisions(url) == 2)
        assert len(listed(server)) == 2


def test_bad_inputs_are_refused_and_store_nothing(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        broken = write_policy(tmp_path, "broken.rego", "package policy\nallow :=")
        impact = server.cli("policy", "impact", "resource", broken)
        assert impact.returncode == 1
        assert b"policy does not compile" in impact.stderr
        missing = server.cli("policy", "explain", "999")
        assert missing.returncode == 1
        assert b"decision 999 does not exist or has expired" in missing.stderr
        assert server.cli("decisions", "show", "999").returncode == 1
        assert server.cli("policy", "explain", "not-a-number").returncode == 2
        assert server.cli("decisions", "show", "x").returncode == 2
        huge = server.cli("decisions", "show", str(2**63))  # past the INTEGER column: refused, not a driver error
        assert huge.returncode == 1
        assert b"HTTP 400" in huge.stderr
        assert server.cli("decisions", "list", "--since", "yesterday").returncode == 2
        bad_path = server.cli("decisions", "list", "--path", "default/../1")
        assert bad_path.returncode == 1
        assert b"HTTP 400" in bad_path.stderr
        assert server.cli("decisions", "list", "--since", "2026-01-01T00:00:00").returncode == 2  # no time zone
        good = write_policy(tmp_path, "good.rego", TEAM_POLICY)
        assert server.cli("policy", "impact", "resource", "a", "b", good).returncode == 2
        assert server.admin.list_policies() == []


def test_explain_a_local_policy(tmp_path: Path) -> None:
    claims = {"submods": {"cpu0": {"ear.status": "warning", "ear.veraison.annotated-evidence": {"tdx": {}}}}}
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    policy = write_policy(tmp_path, "team.rego", TEAM_POLICY)
    done = run_cli("kbs", "admin", "policy", "explain", "--input", str(tmp_path / "claims.json"), policy)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert 'false: input.submods.cpu0["ear.status"] == "affirming"  (line 7)' in text
    assert 'input.submods.cpu0["ear.status"] = "warning"' in text

    evidence = {"sample": {"svn": "5"}, "report_data": "", "runtime_data_claims": {}, "init_data": None}
    (tmp_path / "evidence.json").write_text(json.dumps(evidence))
    (tmp_path / "data.json").write_text(json.dumps({"reference": {"sample_svn": ["1"]}}))
    sample = str(Path(policies.__file__).parent / "sample.rego")
    done = run_cli(
        "kbs",
        "admin",
        "policy",
        "explain",
        "--input",
        str(tmp_path / "evidence.json"),
        "--data",
        str(tmp_path / "data.json"),
        sample,
    )
    assert done.returncode == 0, done.stderr
    assert b"ear.status: contraindicated" in done.stdout
    assert b'input.sample.svn = "5"' in done.stdout

    (tmp_path / "not.json").write_text("{not json")
    bad = run_cli("kbs", "admin", "policy", "explain", "--input", str(tmp_path / "not.json"), policy)
    assert bad.returncode == 2
    assert b"is not JSON" in bad.stderr
    broken = write_policy(tmp_path, "broken.rego", "package policy\nallow :=")
    assert (
        run_cli("kbs", "admin", "policy", "explain", "--input", str(tmp_path / "claims.json"), broken).returncode == 1
    )
