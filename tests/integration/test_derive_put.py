"""`kbs admin reference-value derive ... --put` against a real `kbs serve`: values stored through the admin API
with their expiry, nothing stored on bad input, and a TPM guest (swtpm) whose PCRs hold a real boot's event log
is affirmed once the values derived from that log are stored."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attestation_agent.attesters import SYSROOT_ENV
from attestation_agent.attesters.tpm import EVENT_LOG, TpmAttester

from tests._swtpm import Swtpm
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer
from verifier.eventlog import parse

TPM_LOG = "tpm/go-tpm-tools/rhel8-uefi.bin"
SECRET = b"released after a known boot"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs"), allow_sample=False) as running:
        yield running


def derive(server: KbsServer | None, *args: str) -> subprocess.CompletedProcess[bytes]:
    broker = ["--url", server.url] if server else []
    env = {"VERITEE_ADMIN_TOKEN": server.token} if server else None
    return run_cli("kbs", "admin", *broker, "reference-value", "derive", *args, env=env)


def stored(server: KbsServer) -> dict[str, list[tuple[str, float | None]]]:
    out: dict[str, list[tuple[str, float | None]]] = {}
    for row in server.admin.list_reference_values():
        out.setdefault(row["name"], []).append((row["value"], row["expires_at"]))
    return out


def test_put_stores_each_derived_value_with_its_expiry(server: KbsServer, vectors: Path) -> None:
    done = derive(server, "tpm", "--eventlog", str(vectors / TPM_LOG), "--pcr", "0", "--pcr", "7", "--json", "--put",
                  "--expires", "2031-01-02T03:04:05+00:00")  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    printed = json.loads(done.stdout)
    assert sorted(printed) == ["tpm_pcr0", "tpm_pcr7"]
    values = stored(server)
    for name, value in printed.items():
        assert len(values[name]) == 1
        assert values[name][0][0] == value
        assert values[name][0][1] == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert "stored tpm_pcr0" in done.stderr.decode()


def test_put_replaces_the_accepted_values_like_reference_value_put(server: KbsServer, vectors: Path) -> None:
    server.admin.put_reference_value("tdx_rtmr0", ["11" * 48, "22" * 48])
    done = derive(server, "tdx", "--ccel", str(vectors / "tdx/trustee/CCEL_data_ovmf"), "--put")
    assert done.returncode == 0, done.stderr.decode()
    values = stored(server)
    assert [v for v, _ in values["tdx_rtmr0"]] == [done.stdout.decode().split()[1]]
    assert values["tdx_rtmr2"][0][1] is None  # no --expires: no expiry


def test_bad_artefacts_store_nothing(server: KbsServer, vectors: Path, tmp_path: Path) -> None:
    before = stored(server)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes((vectors / TPM_LOG).read_bytes()[:1000])
    not_ovmf = tmp_path / "not-ovmf.fd"
    not_ovmf.write_bytes(bytes(8192))
    runs = [
        (1, ["tpm", "--eventlog", str(truncated), "--put"]),
        (1, ["snp", "--ovmf", str(not_ovmf), "--vcpus", "1", "--vcpu-type", "EPYC", "--put"]),
        (1, ["tdx", "--ccel", str(vectors / "tdx/trustee/CCEL_data_ovmf"), "--quote",
             str(vectors / "tdx/trustee/tdx_quote_5.dat"), "--put"]),
        (2, ["tpm", "--eventlog", str(vectors / TPM_LOG), "--put", "--expires", "next week"]),
        (2, ["tpm", "--eventlog", str(vectors / TPM_LOG), "--put", "--bogus"]),
    ]  # fmt: skip
    for code, args in runs:
        done = derive(server, *args)
        assert done.returncode == code, (args, done.stderr.decode())
        assert b"stored" not in done.stderr
    assert stored(server) == before


def test_put_needs_the_broker(vectors: Path) -> None:
    done = derive(None, "tpm", "--eventlog", str(vectors / TPM_LOG), "--put")
    assert done.returncode == 2
    assert "--url is required" in done.stderr.decode()


def test_put_with_a_token_the_broker_refuses_fails(server: KbsServer, vectors: Path) -> None:
    done = run_cli("kbs", "admin", "--url", server.url, "reference-value", "derive", "tpm", "--eventlog",
                   str(vectors / TPM_LOG), "--put", env={"VERITEE_ADMIN_TOKEN": "not-a-token"})  # fmt: skip
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr.decode()


# ---- a TPM guest whose PCRs hold a real boot's measurements ----


def _replay_into(tpm: Swtpm, log_bytes: bytes) -> None:
    """Extend the log's digests into the swtpm's SHA-1 and SHA-256 banks, as the firmware of that boot did."""
    attester = TpmAttester(tpm.tcti)
    for event in parse(log_bytes, "tcg2").events:
        if event.type_name == "EV_NO_ACTION":
            continue
        attester._extend(event.pcr_index, {bank: event.digests[bank] for bank in ("sha1", "sha256")})


@pytest.mark.swtpm
def test_derived_pcrs_make_the_tpm_guest_affirming(tmp_path: Path, vectors: Path) -> None:
    """The guest quotes PCRs that a real firmware extended as its log says (replayed into swtpm); the broker
    approves that boot once the PCRs derived from the log are stored. The guest sends the log too, as a real one
    does: its 82 events make the token's claims about 85 KB, more than fits in a request header, so the guest
    fetches with its session cookie (as guest-components does) rather than the token as a Bearer."""
    log = vectors / TPM_LOG
    sysroot = tmp_path / "root"
    (sysroot / EVENT_LOG).parent.mkdir(parents=True)
    (sysroot / EVENT_LOG).write_bytes(log.read_bytes())
    with Swtpm(tmp_path / "swtpm") as tpm, KbsServer(tmp_path / "kbs", allow_sample=False) as kbs:
        _replay_into(tpm, log.read_bytes())
        kbs.admin.put_resource("default/key/1", SECRET)
        ak = base64.b64decode(str(TpmAttester(tpm.tcti).evidence(bytes(32))["ak_public"]))
        kbs.admin.put_reference_value("tpm_ak_sha256", [hashlib.sha256(ak).hexdigest()])

        def get() -> subprocess.CompletedProcess[bytes]:
            return run_cli("attestation-agent", "get-resource", "--kbs", kbs.url, "kbs:///default/key/1",
                           env={"VERITEE_TPM_TCTI": tpm.tcti, SYSROOT_ENV: str(sysroot)})  # fmt: skip

        refused = get()  # a trusted AK, but no PCR reference value: not an approved boot
        assert refused.returncode == 1
        assert "denies" in refused.stderr.decode() or "403" in refused.stderr.decode()
        done = derive(kbs, "tpm", "--eventlog", str(log), "--put")
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().count("tpm_pcr") == 11
        released = get()
        assert released.returncode == 0, released.stderr.decode()
        assert released.stdout == SECRET
