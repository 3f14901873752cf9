"""End to end with TDX evidence: a real `kbs serve` trusting the test-only DCAP root and its collateral, and the
`attestation-agent` CLI reading quotes from a fake TDX device (VERITEE_SYSROOT) emulated by a thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbs.collateral.pcs import PcsClient
from kbs.settings import VerifierSettings
from kbs.verification import build_sources
from tests.conftest import run_cli
from tests.integration._kbs_server import KbsServer
from tests.tdx.fake_device import FakeTdxDevice
from tests.tdx.make_test_chain import MRTD, DcapPki, make_pki, make_quote
from verifier.eventlog import parse
from verifier.sources import TdxCollateralSource


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def kbs_with_test_chain(tmp_path: Path, pki: DcapPki) -> KbsServer:
    (tmp_path / "tdx-root.pem").write_bytes(pki.root_pem)
    collateral = tmp_path / "tdx-collateral"
    collateral.mkdir()
    for i, doc in enumerate(pki.collateral()):
        (collateral / f"doc{i}").write_bytes(doc)
    config = {"verifier": {"trust": {"tdx": [str(tmp_path / "tdx-root.pem")]}, "collateral": [str(collateral)]}}
    return KbsServer(tmp_path / "kbs", config=config, allow_sample=False)


def get_resource(kbs: KbsServer, sysroot: Path) -> tuple[int, bytes, str]:
    done = run_cli(
        "attestation-agent",
        "get-resource",
        "--kbs",
        kbs.url,
        "kbs:///default/key/tdx",
        env={"VERITEE_SYSROOT": str(sysroot)},
    )
    return done.returncode, done.stdout, done.stderr.decode()


def test_rcar_with_tdx_evidence_releases_the_secret(tmp_path: Path, pki: DcapPki) -> None:
    (tmp_path / "kbs").mkdir()
    with kbs_with_test_chain(tmp_path, pki) as kbs, FakeTdxDevice(tmp_path / "root", pki) as device:
        kbs.admin.put_resource("default/key/tdx", b"tdx secret")
        kbs.admin.put_reference_value("tdx_mr_td", [MRTD.hex()])
        code, out, err = get_resource(kbs, tmp_path / "root")
        assert code == 0, err
        assert out == b"tdx secret"
        assert device.quotes == 1


def test_rcar_refuses_an_unknown_mrtd(tmp_path: Path, pki: DcapPki) -> None:
    (tmp_path / "kbs").mkdir()
    with kbs_with_test_chain(tmp_path, pki) as kbs, FakeTdxDevice(tmp_path / "root", pki):
        kbs.admin.put_resource("default/key/tdx", b"tdx secret")
        kbs.admin.put_reference_value("tdx_mr_td", ["00" * 48])
        code, out, err = get_resource(kbs, tmp_path / "root")
        assert code == 1
        assert out == b""
        assert "denies" in err or "403" in err


def test_build_sources_constructs_the_pcs_client(tmp_path: Path) -> None:
    assert "tdx" not in build_sources(VerifierSettings(offline=True))
    sources = build_sources(VerifierSettings(offline=False, cache_dir=tmp_path, tdx_pcs_url="https://pccs.test"))
    client = sources["tdx"]
    assert isinstance(client, PcsClient)
    assert isinstance(client, TdxCollateralSource)
    assert client.base_url == "https://pccs.test"
    assert client.cache_dir == tmp_path / "tdx"
    client.close()


def test_values_derived_from_the_reference_boot_release_the_secret(tmp_path: Path, pki: DcapPki, vectors: Path) -> None:
    """`reference-value derive tdx --put` from a real CC event log and a quote of the same boot (RTMRs equal to
    the log's replay; MRTD that of the test quotes): a TD that boots the same way is then affirmed."""
    ccel = (vectors / "tdx/trustee/CCEL_data_ovmf").read_bytes()
    rtmrs = tuple(parse(ccel, "ccel").replay()["sha384"][f"rtmr{i}"] for i in range(3))
    reference_quote = tmp_path / "reference-quote.dat"
    reference_quote.write_bytes(make_quote(pki, rtmrs=rtmrs))
    (tmp_path / "kbs").mkdir()
    with kbs_with_test_chain(tmp_path, pki) as kbs, FakeTdxDevice(tmp_path / "root", pki, ccel=ccel, rtmrs=rtmrs):
        kbs.admin.put_resource("default/key/tdx", b"tdx secret")
        code, _, err = get_resource(kbs, tmp_path / "root")
        assert code == 1, "no reference value yet: refused"
        ccel_file = tmp_path / "ccel.bin"
        ccel_file.write_bytes(ccel)
        done = run_cli(
            "kbs", "admin", "--url", kbs.url, "reference-value", "derive", "tdx", "--ccel", str(ccel_file),
            "--quote", str(reference_quote), "--put", "--json", env={"VERITEE_ADMIN_TOKEN": kbs.token},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        assert json.loads(done.stdout) == {"tdx_mr_td": MRTD.hex()} | {
            f"tdx_rtmr{i}": r.hex() for i, r in enumerate(rtmrs)
        }
        code, out, err = get_resource(kbs, tmp_path / "root")
        assert code == 0, err
        assert out == b"tdx secret"
