"""Reference values are validated when provisioned (issue 17): a value that the shipped SNP policy reads with
to_number must be canonical decimal, because regorus and OPA read " 4" differently. A real `kbs serve`."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kbs.admin_client import AdminError
from tests.integration._helpers import assert_error
from tests.integration._kbs_server import KbsServer

NON_CANONICAL = {
    "leading-space": " 4",
    "trailing-space": "4 ",
    "plus-sign": "+2",
    "leading-zero": "07",
    "negative": "-1",
    "fraction": "4.0",
    "exponent": "1e1",
    "hex": "0x10",
    "empty": "",
    "words": "four",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("kbs")) as running:
        yield running


@pytest.mark.parametrize("value", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_non_canonical_number_is_refused_and_not_stored(server: KbsServer, value: str) -> None:
    response = httpx.post(
        server.url + "/kbs/v0/reference-value",
        json={"name": "snp_min_tcb_tee", "values": ["3", value]},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert_error(response, 400, "InvalidRequest", f"snp_min_tcb_tee: {value!r} is not a canonical decimal number")
    assert "snp_min_tcb_tee" not in {v["name"] for v in server.admin.list_reference_values()}


def test_canonical_numbers_are_stored(server: KbsServer) -> None:
    server.admin.put_reference_value("snp_min_tcb_microcode", ["0", "115", "255"])
    stored = [v for v in server.admin.list_reference_values() if v["name"] == "snp_min_tcb_microcode"]
    assert sorted(v["value"] for v in stored) == ["0", "115", "255"]


def test_the_admin_cli_client_reports_the_reason(server: KbsServer) -> None:
    with pytest.raises(AdminError) as info:
        server.admin.put_reference_value("snp_min_tcb_fmc", ["+1"])
    assert info.value.status == 400
    assert "canonical decimal" in str(info.value)


def test_other_names_are_not_numbers(server: KbsServer) -> None:
    server.admin.put_reference_value("sample_svn", ["07"])  # no shipped policy reads sample_svn as a number
    assert "sample_svn" in {v["name"] for v in server.admin.list_reference_values()}
