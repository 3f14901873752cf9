"""Every console-script path of the skeleton, run as a user would: `kbs init/serve/admin/token`,
`attestation-agent tee/evidence/get-resource`, and the README demo."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

import policies
from tests.conftest import ROOT, cli_env, run_cli
from tests.integration._kbs_server import KbsServer

DEMO_POLICY = ROOT / "policies" / "demo_resource_allow_sample.rego"


def admin(server: KbsServer, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return server.cli(*args, input=input)


def test_kbs_init_secure_defaults(tmp_path: Path) -> None:
    done = run_cli("kbs", "init", str(tmp_path / "conf"))
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "conf" / "kbs.toml").read_text()
    assert "allow_sample = false" in config
    assert 'host = "127.0.0.1"' in config
    for private in ("admin.key", "admin.token", "kek.bin"):
        assert (tmp_path / "conf" / private).stat().st_mode & 0o077 == 0, private
    again = run_cli("kbs", "init", str(tmp_path / "conf"))
    assert again.returncode == 1
    assert b"exists" in again.stderr


def test_kbs_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    assert run_cli("kbs", "init", str(tmp_path / "conf")).returncode == 0
    done = run_cli("kbs", "serve", "--config", str(tmp_path / "conf" / "kbs.toml"), "--host", "0.0.0.0")
    assert done.returncode == 2
    assert b"TLS" in done.stderr


def test_admin_cli_round_trip(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        secret = tmp_path / "secret.bin"
        secret.write_bytes(b"\x00secret\xff")
        assert admin(server, "resource", "put", "default/key/1", str(secret)).returncode == 0
        got = admin(server, "resource", "get", "default/key/1")
        assert got.returncode == 0
        assert got.stdout == b"\x00secret\xff"
        listed = json.loads(admin(server, "resource", "list").stdout)
        assert [r["path"] for r in listed] == ["default/key/1"]
        assert admin(server, "resource", "put", "default/key", str(secret)).returncode == 1

        assert admin(server, "policy", "set", "resource", str(DEMO_POLICY)).returncode == 0
        scoped = admin(server, "policy", "set", "resource", str(DEMO_POLICY), "--scope", "default/key")
        assert scoped.returncode == 0
        sample = ROOT / "policies" / "sample.rego"
        assert admin(server, "policy", "set", "attestation", "sample", str(sample)).returncode == 0
        assert admin(server, "policy", "get", "resource").stdout.decode() == DEMO_POLICY.read_text()
        ids = [p["id"] for p in json.loads(admin(server, "policy", "list").stdout)]
        assert ids == ["attestation:sample", "resource", "resource:default/key"]
        assert admin(server, "policy", "delete", "resource:default/key").returncode == 0

        put = admin(server, "reference-value", "put", "sample_svn", "1", "2", "--expires", "2099-01-01T00:00:00+00:00")
        assert put.returncode == 0
        values = json.loads(admin(server, "reference-value", "list").stdout)
        assert sorted(v["value"] for v in values) == ["1", "2"]
        assert admin(server, "reference-value", "delete", "sample_svn").returncode == 0
        assert admin(server, "reference-value", "delete", "sample_svn").returncode == 1

        audit = json.loads(admin(server, "audit", "--limit", "100").stdout)
        assert {"resource.put", "resource.read", "policy.set", "reference-value.put"} <= {a["action"] for a in audit}
        assert b"secret" not in admin(server, "audit").stdout
        assert "kid" in json.loads(admin(server, "rotate-signing-key").stdout)

        no_token = run_cli("kbs", "admin", "--url", server.url, "resource", "list")
        assert no_token.returncode == 1
        assert b"401" in no_token.stderr


def test_admin_token_command(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        minted = run_cli("kbs", "token", "--key", str(server.config_dir / "admin.key"), "--role", "auditor")
        assert minted.returncode == 0
        (tmp_path / "auditor.token").write_bytes(minted.stdout)
        base = ["kbs", "admin", "--url", server.url, "--token", str(tmp_path / "auditor.token")]
        assert run_cli(*base, "audit").returncode == 0
        denied = run_cli(*base, "resource", "list")
        assert denied.returncode == 1
        assert b"403" in denied.stderr


def test_policy_authoring_tools(tmp_path: Path) -> None:
    resource = ROOT / "policies" / "resource.rego"
    assert run_cli("kbs", "admin", "policy", "lint", str(resource)).returncode == 0
    bad = tmp_path / "bad.rego"
    bad.write_text("package policy\nallow :=")
    linted = run_cli("kbs", "admin", "policy", "lint", str(bad))
    assert linted.returncode == 1
    assert b"bad.rego" in linted.stderr
    tested = run_cli("kbs", "admin", "policy", "test", str(resource), str(ROOT / "policies" / "resource_test.rego"))
    assert tested.returncode == 0
    assert b"0 failed" in tested.stderr
    claims = {"submods": {"cpu0": {"ear.status": "warning", "ear.veraison.annotated-evidence": {"tdx": {}}}}}
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    dry = run_cli(
        "kbs",
        "admin",
        "policy",
        "dry-run",
        str(resource),
        "--input",
        str(tmp_path / "claims.json"),
        "--resource",
        "default/key/1",
    )
    assert dry.returncode == 1
    assert b"denied: submod cpu0 is warning, not affirming" in dry.stderr
    assert json.loads(dry.stdout)["allow"] is False


def test_agent_tee_and_evidence() -> None:
    tee = run_cli("attestation-agent", "tee", env={"VERITEE_SYSROOT": "/nonexistent"})
    assert tee.returncode == 0
    assert tee.stdout.strip() == b"sample"
    assert b"warning" in tee.stderr
    evidence = run_cli("attestation-agent", "evidence", "--report-data", "0a0b", "--tee", "sample")
    assert evidence.returncode == 0
    assert json.loads(evidence.stdout) == {"svn": "1", "report_data": base64.b64encode(b"\x0a\x0b").decode()}
    assert run_cli("attestation-agent", "evidence", "--report-data", "xyz").returncode == 2
    assert run_cli("attestation-agent", "evidence", "--report-data", "00" * 65).returncode == 2


def test_agent_get_resource(tmp_path: Path) -> None:
    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_resource("default/key/1", b"key bytes")
        server.admin.put_reference_value("sample_svn", ["1"])
        env = {"VERITEE_SYSROOT": str(tmp_path / "empty-root")}
        denied = run_cli("attestation-agent", "get-resource", "--kbs", server.url, "kbs:///default/key/1", env=env)
        assert denied.returncode == 1
        assert b"403" in denied.stderr
        assert b"sample TEE" in denied.stderr
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        out = tmp_path / "key.bin"
        got = run_cli(
            "attestation-agent", "get-resource", "--kbs", server.url, "kbs:///default/key/1", "--out", str(out), env=env
        )
        assert got.returncode == 0, got.stderr
        assert out.read_bytes() == b"key bytes"
        stdout = run_cli("attestation-agent", "get-resource", "--kbs", server.url, "kbs:///default/key/1", env=env)
        assert stdout.stdout == b"key bytes"
        missing = run_cli("attestation-agent", "get-resource", "--kbs", server.url, "kbs:///default/key/2", env=env)
        assert missing.returncode == 1
        assert b"404" in missing.stderr
        assert run_cli("attestation-agent", "get-resource", "--kbs", server.url, "kbs:///a/b", env=env).returncode == 2
    unreachable = run_cli(
        "attestation-agent", "get-resource", "--kbs", server.url, "kbs:///default/key/1", env=env, timeout=60
    )
    assert unreachable.returncode == 1
    assert b"cannot reach" in unreachable.stderr


def test_agent_reuses_token_until_exp(tmp_path: Path) -> None:
    from attestation_agent.attesters.sample import SampleAttester
    from attestation_agent.kbs_client import KbsClient

    with KbsServer(tmp_path / "kbs") as server:
        server.admin.put_resource("default/key/1", b"a")
        server.admin.put_resource("default/key/2", b"b")
        server.admin.put_reference_value("sample_svn", ["1"])
        server.admin.set_resource_policy(policies.load("demo_resource_allow_sample.rego"))
        with KbsClient(server.url, SampleAttester()) as client:
            assert client.get_resource("kbs:///default/key/1") == b"a"
            token = client._attested.token if client._attested else None
            assert client.get_resource("default/key/2") == b"b"
            assert client._attested is not None
            assert client._attested.token == token
        audit = [a for a in server.admin.audit() if a["action"] == "resource.release"]
        assert len(audit) == 2
        assert audit[0]["claims_digest"] == audit[1]["claims_digest"]


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["--sample"]], ids=["tpm", "sample"])
def test_readme_demo(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
        capture_output=True,
        env=cli_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"demo: OK" in done.stdout
    assert b"matches the provisioned one" in done.stdout
    assert b"Hello from inside an encrypted container image!" in done.stdout
    assert b"(pulled, verified, decrypted)" in done.stdout  # the demo ends with a signed image from a registry


def test_policy_set_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["resource"], ["resource", "a.rego", "b.rego"], ["attestation", "only-a-file.rego"]):
        done = run_cli("kbs", "admin", "--url", "http://127.0.0.1:9", "policy", "set", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert b"usage" in done.stderr
