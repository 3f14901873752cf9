"""The admin API's query and path parameters read as /openapi.json types them, on a real `kbs serve`: an integer or
a number as JSON writes one, a boolean as `true` or `false`, ids and versions within their bounds. What pydantic's lax
mode took before (`since=+4` as 4.0, `denied=yes`, `limit=1_0`, `since=1e400` as infinity) is refused with 400
InvalidRequest naming the parameter; every form the document allows is still taken."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration._helpers import assert_error, provision
from tests.integration._kbs_server import KbsServer

DECISIONS = "/admin/decisions"
EXPORT = "/admin/audit/export"

# (operation, parameter, value sent): each answered 200.
ACCEPTED = {
    "since-integer": (DECISIONS, "since", "4"),
    "since-negative": (DECISIONS, "since", "-1.5"),
    "since-exponent": (DECISIONS, "since", "1.5e9"),
    "since-zero": (DECISIONS, "since", "0"),
    "denied-true": (DECISIONS, "denied", "true"),
    "denied-false": (DECISIONS, "denied", "false"),
    "limit-lowest": (DECISIONS, "limit", "1"),
    "limit-highest": (DECISIONS, "limit", "1000"),
    "export-since": (EXPORT, "since", "1E+3"),
    "export-after-id-zero": (EXPORT, "after_id", "0"),
    "audit-limit": ("/admin/audit", "limit", "5"),
    "resource-version": ("/admin/resource/default/key/1", "version", "1"),
}
# (operation, parameter, value sent): each refused, the detail naming the parameter.
REFUSED = {
    "since-plus": (DECISIONS, "since", "+4"),
    "since-blank": (DECISIONS, "since", " 4"),
    "since-underscore": (DECISIONS, "since", "4_0"),
    "since-leading-zero": (DECISIONS, "since", "04"),
    "since-bare-fraction": (DECISIONS, "since", ".5"),
    "since-trailing-point": (DECISIONS, "since", "5."),
    "since-infinite": (DECISIONS, "since", "1e400"),
    "since-inf": (DECISIONS, "since", "inf"),
    "since-nan": (DECISIONS, "since", "NaN"),
    "denied-yes": (DECISIONS, "denied", "yes"),
    "denied-one": (DECISIONS, "denied", "1"),
    "denied-capital": (DECISIONS, "denied", "True"),
    "limit-plus": (DECISIONS, "limit", "+1"),
    "limit-fraction": (DECISIONS, "limit", "1.0"),
    "limit-underscore": (DECISIONS, "limit", "1_0"),
    "limit-zero": (DECISIONS, "limit", "0"),
    "limit-over": (DECISIONS, "limit", "1001"),
    "export-since-plus": (EXPORT, "since", "+4"),
    "export-after-id-plus": (EXPORT, "after_id", "+0"),
    "export-after-id-over": (EXPORT, "after_id", str(2**31)),
    "export-limit-fraction": (EXPORT, "limit", "5.0"),
    "audit-limit-plus": ("/admin/audit", "limit", "+5"),
    "anchor-id-leading-zero": ("/admin/audit/verify", "anchor_id", "01"),
    "resource-version-plus": ("/admin/resource/default/key/1", "version", "+1"),
    "policy-version-fraction": ("/admin/policy/default", "version", "1.0"),
}
DECISION_IDS = {"plus": "%2B1", "leading-zero": "01", "underscore": "1_0", "over": str(2**31)}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KbsServer]:
    with KbsServer(tmp_path_factory.mktemp("params")) as broker:
        provision(broker)
        yield broker


def get(server: KbsServer, operation: str, params: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    return httpx.get(f"{server.url}/kbs/v0{operation}", params=params, headers=headers, timeout=30)


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_parameters_as_the_document_writes_them_are_taken(server: KbsServer, case: str) -> None:
    operation, name, value = ACCEPTED[case]
    response = get(server, operation, {name: value})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_lax_parameters_are_refused(server: KbsServer, case: str) -> None:
    operation, name, value = REFUSED[case]
    assert_error(get(server, operation, {name: value}), 400, "InvalidRequest", f"'{name}'")


@pytest.mark.parametrize("case", sorted(DECISION_IDS))
def test_lax_decision_ids_are_refused(server: KbsServer, case: str) -> None:
    response = get(server, f"/admin/decision/{DECISION_IDS[case]}")
    assert_error(response, 400, "InvalidRequest", "'decision_id'")
