"""TDX: Veritee against Intel's QVL and Phala's dcap-qvl on the same quotes, collateral and evaluation time.

Compared: accept/reject and, where both accept, the TCB status. A TCB status of Revoked is a claim in Veritee
(policy refuses it) and a refusal in both oracles: it counts as a refusal. Known, intended divergences are
recognised by `intended` and have their reason in docs/oracles.md; any other divergence fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from verifier.tdx import parse_quote

from ..tdx._malformed import CASES as MALFORMED
from ..tdx._malformed import ROOT_POSITION, malformed_chain
from ..tdx.make_test_chain import DcapPki, make_pki, make_quote
from . import _tdx
from ._harness import TALLY, Verdict, Worker
from ._tdx import TdxCollateral

pytestmark = pytest.mark.oracles

MUTATIONS_PER_REGION = 30  # 7 regions: 210 single-byte mutations per quote
SEED = 17


def intended(oracle: str, name: str, original: bytes, ours: Verdict, theirs: Verdict) -> str | None:
    """The documented divergences (docs/oracles.md, same names), or None."""
    claimed = ours.value or {}
    if oracle == "dcap-qvl" and ours.accept and not theirs.accept and "Debug mode" in theirs.detail:
        return "debug-td: a claim for policy in Veritee, refused by dcap-qvl"
    if oracle == "qvl" and ours.accept and not theirs.accept and _trailing(original) and "@" not in name:
        return "trailing-bytes: ignored by Veritee, refused by Intel's QVL"
    if (
        oracle == "qvl"
        and ours.accept
        and theirs.accept
        and claimed.get("tdx_module_tcb_status") not in (None, "UpToDate")
        and theirs.status == "UpToDate"
    ):
        return "tdx-module-identity: this QVL build (2023) predates TDX module identities in TCB info v3"
    if oracle == "dcap-qvl" and not ours.accept and theirs.accept and _root_copy_damaged(name, original):
        return "chain-root-copy: dcap-qvl ignores the root CA certificate carried in the quote"
    return None


def _root_copy_damaged(name: str, original: bytes) -> bool:
    """Whether the case changed only the root CA certificate that the quote carries: a mutation inside its PEM
    (named region@offset^value), or a malformed-certificate case at chain position 2."""
    if "@" in name:
        return _tdx.in_chain_root(original, int(name.split("@")[1].split("^", maxsplit=1)[0]))
    return name in MALFORMED and MALFORMED[name][0] == ROOT_POSITION


def _trailing(quote: bytes) -> bool:
    return parse_quote(quote).trailing > 0


def _normal(v: Verdict) -> Verdict:
    if v.accept and v.status == "Revoked":
        return Verdict(False, "Revoked", v.detail)
    return v


def compare(
    worker: Worker,
    label: str,
    quotes: list[tuple[str, bytes]],
    coll: TdxCollateral,
    at: datetime,
    *,
    test_root: bool,
    original: bytes | None = None,
) -> list[str]:
    """Run every quote through Veritee and both oracles; returns the unexplained divergences. original: the
    quote that `quotes` are mutations of (named region@offset^value)."""
    cases = [c for _, q in quotes for c in _tdx.oracle_cases(q, coll, at, test_root=test_root)]
    answers = worker.run(cases)
    problems = []
    for i, (name, quote) in enumerate(quotes):
        ours = _normal(_tdx.veritee(quote, coll, at, test_root=test_root))
        for oracle, theirs in zip(("qvl", "dcap-qvl"), answers[2 * i : 2 * i + 2], strict=True):
            same = ours.accept == theirs.accept and (not ours.accept or ours.status == theirs.status)
            why = f"veritee {ours.accept}/{ours.status} vs {oracle} {theirs.accept}/{theirs.status} {theirs.detail}"
            reason = None if same else intended(oracle, name, original or quote, ours, theirs)
            TALLY.record(f"tdx {oracle}", f"{label} {name}", same, why, reason)
            if not same and reason is None:
                problems.append(f"{label} {name}: {why}")
    return problems


@pytest.fixture(scope="module")
def worker() -> Worker:
    return Worker()


# --- real quotes ------------------------------------------------------------------------------------------------

AT_2023 = datetime(2023, 6, 20, tzinfo=UTC)


def _real(vectors: Path, which: str) -> tuple[bytes, TdxCollateral, datetime]:
    g, t = vectors / "tdx" / "go-tdx-guest", vectors / "tdx" / "trustee"
    if which == "quote4":
        coll = TdxCollateral.of_files(g, g / "sample_tcbInfo_response", g / "sample_qeIdentity_response")
        return (t / "tdx_quote_4.dat").read_bytes(), coll, AT_2023
    if which == "quote4-fmspc-mismatch":
        coll = TdxCollateral.of_files(g, t / "tcbInfo.json", g / "sample_qeIdentity_response")
        return (t / "tdx_quote_4.dat").read_bytes(), coll, AT_2023
    if which == "quote5":
        coll = TdxCollateral.of_files(g, g / "sample_tcbinfo_response_v5", g / "sample_qeIdentity_response")
        return (t / "tdx_quote_5.dat").read_bytes(), coll, datetime(2026, 2, 10, tzinfo=UTC)
    coll = TdxCollateral.of_files(g, t / "tcbInfo.json", t / "enclaveIdentity.json")
    return (t / "tdx_quote_6.dat").read_bytes(), coll, datetime(2025, 11, 1, tzinfo=UTC)


REAL = ["quote4", "quote4-fmspc-mismatch", "quote5", "quote6"]


@pytest.mark.parametrize("which", REAL)
def test_real_quote(worker: Worker, vectors: Path, which: str) -> None:
    quote, coll, at = _real(vectors, which)
    assert compare(worker, which, [("as-is", quote)], coll, at, test_root=False) == []


@pytest.mark.parametrize("which", ["quote4", "quote5", "quote6"])
def test_real_quote_mutations(worker: Worker, vectors: Path, which: str) -> None:
    quote, coll, at = _real(vectors, which)
    quotes = _tdx.mutations(quote[: len(quote) - _trailing_len(quote)], MUTATIONS_PER_REGION, SEED)
    assert len(quotes) >= 200
    assert compare(worker, f"{which}-mutated", quotes, coll, at, test_root=False, original=quote) == []


def _trailing_len(quote: bytes) -> int:
    return parse_quote(quote).trailing


# --- synthetic quotes from the Intel-shaped test PKI --------------------------------------------------------------

SCENARIOS: dict[str, tuple[Callable[[], DcapPki], dict[str, object]]] = {
    "good": (make_pki, {}),
    "revoked-pck": (lambda: make_pki(revoke_pck=True), {}),
    "revoked-pck-ca": (lambda: make_pki(revoke_pck_ca=True), {}),
    "out-of-date": (lambda: make_pki(tcb_status="OutOfDate"), {}),
    "sw-hardening-needed": (lambda: make_pki(tcb_status="SWHardeningNeeded"), {}),
    "configuration-needed": (lambda: make_pki(tcb_status="ConfigurationNeeded"), {}),
    "config-and-sw-hardening": (lambda: make_pki(tcb_status="ConfigurationAndSWHardeningNeeded"), {}),
    "tcb-revoked": (lambda: make_pki(tcb_status="Revoked"), {}),
    "tdx-module-out-of-date": (lambda: make_pki(module_status="OutOfDate"), {}),
    "fmspc-mismatch": (lambda: make_pki(fmspc=bytes.fromhex("00a06d080000")), {}),
    "qe-svn-below": (make_pki, {"qe_isvsvn": 1}),
    "tee-svn-below": (make_pki, {"tee_tcb_svn": bytes([5, 0, 1]) + bytes(13)}),
    "unknown-module-version": (make_pki, {"tee_tcb_svn": bytes([5, 7, 2]) + bytes(13)}),
    "expired-collateral": (lambda: make_pki(tcb_info_next_update=datetime.now(UTC) - timedelta(hours=1)), {}),
    "expired-pck": (lambda: make_pki(pck_not_after=datetime.now(UTC) - timedelta(days=1)), {}),
    "debug-td": (make_pki, {"debug": True}),
    "non-intel-qe-vendor": (make_pki, {"qe_vendor_id": bytes(16)}),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_synthetic(worker: Worker, scenario: str) -> None:
    make, quote_args = SCENARIOS[scenario]
    pki = make()
    quote = make_quote(pki, b"\x5a" * 64, **quote_args)  # type: ignore[arg-type]
    coll = TdxCollateral.of_pki(pki)
    assert compare(worker, "synthetic", [(scenario, quote)], coll, pki.at, test_root=True) == []


def test_good_synthetic_quote_is_accepted_by_both_oracles(worker: Worker) -> None:
    """Issue 17 item 1: the test PKI is shaped like Intel's, so both oracles accept a good synthetic quote."""
    pki = make_pki()
    cases = _tdx.oracle_cases(make_quote(pki), TdxCollateral.of_pki(pki), pki.at, test_root=True)
    assert [(v.accept, v.status) for v in worker.run(cases)] == [(True, "UpToDate"), (True, "UpToDate")]


def test_synthetic_trailing_bytes(worker: Worker) -> None:
    pki = make_pki()
    quote = make_quote(pki) + bytes(70)
    coll = TdxCollateral.of_pki(pki)
    assert compare(worker, "synthetic", [("trailing-bytes", quote)], coll, pki.at, test_root=True) == []


def test_synthetic_mutations(worker: Worker) -> None:
    pki = make_pki()
    quote = make_quote(pki, b"\x5a" * 64)
    quotes = _tdx.mutations(quote, MUTATIONS_PER_REGION, SEED)
    coll = TdxCollateral.of_pki(pki)
    assert compare(worker, "synthetic-mutated", quotes, coll, pki.at, test_root=True, original=quote) == []


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_certificate_in_the_chain(worker: Worker, case: str) -> None:
    """The inputs of the bug this suite found (a traceback instead of a verdict): every verifier refuses them."""
    position, edit = MALFORMED[case]
    pki = make_pki()
    quote = make_quote(pki, chain_pem=malformed_chain(pki, position, edit))
    assert not _tdx.veritee(quote, TdxCollateral.of_pki(pki), pki.at, test_root=True).accept
    assert compare(worker, "synthetic", [(case, quote)], TdxCollateral.of_pki(pki), pki.at, test_root=True) == []
