"""Revocation, broken chains, TCB statuses and collateral sources with the test-only DCAP PKI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest

import verifier
from verifier import Options, Reason, VerifierError
from verifier.sources import TdxCollateralSource

from .make_test_chain import DcapPki, make_pki, make_quote


def options(pki: DcapPki, **extra: object) -> Options:
    values: dict[str, object] = {
        "at": pki.at,
        "collateral": pki.collateral(),
        "trust": {"tdx": (pki.root_pem,)},
    }
    values.update(extra)
    return Options(**values)  # type: ignore[arg-type]


def reason_of(quote: bytes, opts: Options) -> Reason:
    with pytest.raises(VerifierError) as info:
        verifier.verify("tdx", quote, opts)
    return info.value.reason


@pytest.fixture(scope="module")
def pki() -> DcapPki:
    return make_pki()


def test_synthetic_quote_verifies(pki: DcapPki) -> None:
    quote = make_quote(pki, b"\x07" * 64, mr_config_id=b"\x09" * 32, rtmrs=(b"\x01" * 48,))
    claims = verifier.verify("tdx", quote, options(pki, report_data=b"\x07" * 64, init_data_digest=b"\x09" * 32)).claims
    assert claims["tcb_status"] == "UpToDate"
    assert claims["debug"] is False
    assert claims["collateral_expired"] is False
    assert claims["mr_config_id"] == "09" * 32 + "00" * 16
    assert claims["rtmr"] == ["01" * 48, "00" * 48, "00" * 48, "00" * 48]
    assert claims["tdx_module_tcb_status"] == "UpToDate"


def test_debug_td(pki: DcapPki) -> None:
    assert verifier.verify("tdx", make_quote(pki, debug=True), options(pki)).claims["debug"] is True


def test_without_the_test_root_the_chain_is_untrusted(pki: DcapPki) -> None:
    assert reason_of(make_quote(pki), options(pki, trust={})) is Reason.UNTRUSTED_KEY


def _other() -> DcapPki:
    return make_pki()


FAILURES: dict[str, tuple[Callable[[], DcapPki], dict[str, object], Reason]] = {
    "pck-revoked": (lambda: make_pki(revoke_pck=True), {}, Reason.CERTIFICATE_REVOKED),
    "pck-ca-revoked": (lambda: make_pki(revoke_pck_ca=True), {}, Reason.CERTIFICATE_REVOKED),
    "fmspc-mismatch": (lambda: make_pki(fmspc=bytes.fromhex("00a06d080000")), {}, Reason.FMSPC_MISMATCH),
}


@pytest.mark.parametrize(("make", "quote_args", "reason"), FAILURES.values(), ids=FAILURES.keys())
def test_pki_failures(make: object, quote_args: dict[str, object], reason: Reason) -> None:
    pki = make()  # type: ignore[operator]
    assert reason_of(make_quote(pki, **quote_args), options(pki)) is reason  # type: ignore[arg-type]


def test_expired_pck_certificate(pki: DcapPki) -> None:
    expired = make_pki(pck_not_after=pki.at - timedelta(days=1))
    assert reason_of(make_quote(expired), options(expired)) is Reason.CERTIFICATE_EXPIRED


def test_expired_tcb_info_refused_unless_allowed() -> None:
    pki = make_pki()
    stale = make_pki(at=pki.at, tcb_info_next_update=pki.at - timedelta(hours=1))
    quote = make_quote(stale)
    assert reason_of(quote, options(stale)) is Reason.COLLATERAL_EXPIRED
    claims = verifier.verify("tdx", quote, options(stale, allow_expired_collateral=True)).claims
    assert claims["collateral_expired"] is True


def test_collateral_signed_by_another_pki(pki: DcapPki) -> None:
    other = _other()
    docs = (other.tcb_info, other.qe_identity, *pki.collateral()[2:])
    assert reason_of(make_quote(pki), options(pki, collateral=docs)) is Reason.SIGNATURE_INVALID


def test_crl_from_another_pki_is_missing_crl(pki: DcapPki) -> None:
    other = _other()
    docs = (*pki.collateral()[:3], other.collateral()[3], pki.collateral()[4])
    assert reason_of(make_quote(pki), options(pki, collateral=docs)) is Reason.COLLATERAL_MISSING


def test_broken_chain_link(pki: DcapPki) -> None:
    other = _other()
    quote = make_quote(pki, chain=(pki.pck, other.pck_ca, pki.root))
    assert reason_of(quote, options(pki)) is Reason.CERTIFICATE_INVALID


def test_chain_to_an_untrusted_root(pki: DcapPki) -> None:
    other = _other()
    quote = make_quote(other)
    assert reason_of(quote, options(pki, collateral=other.collateral())) is Reason.UNTRUSTED_KEY


def test_qe_svn_below_every_level_is_not_supported(pki: DcapPki) -> None:
    assert reason_of(make_quote(pki, qe_isvsvn=1), options(pki)) is Reason.TCB_NOT_SUPPORTED


def test_tdx_components_below_every_level(pki: DcapPki) -> None:
    quote = make_quote(pki, tee_tcb_svn=bytes([5, 0, 1]) + bytes(13))
    claims = verifier.verify("tdx", quote, options(pki)).claims
    assert claims["tcb_status"] == "OutOfDate"  # the all-zero level catches it
    assert claims["advisory_ids"] == ["INTEL-SA-00001"]


def test_unknown_module_version_is_not_supported(pki: DcapPki) -> None:
    quote = make_quote(pki, tee_tcb_svn=bytes([5, 7, 2]) + bytes(13))
    assert reason_of(quote, options(pki)) is Reason.TCB_NOT_SUPPORTED


STATUSES = {
    "sw-hardening": ("SWHardeningNeeded", "UpToDate", "SWHardeningNeeded", ["INTEL-SA-TEST-1"]),
    "module-out-of-date": ("UpToDate", "OutOfDate", "OutOfDate", ["INTEL-SA-TEST-2"]),
    "config-and-module": (
        "ConfigurationNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        ["INTEL-SA-TEST-1", "INTEL-SA-TEST-2"],
    ),
    "revoked": ("Revoked", "UpToDate", "Revoked", ["INTEL-SA-TEST-1"]),
}


@pytest.mark.parametrize(("platform", "module", "status", "advisories"), STATUSES.values(), ids=STATUSES.keys())
def test_tcb_status_convergence(platform: str, module: str, status: str, advisories: list[str]) -> None:
    pki = make_pki(tcb_status=platform, module_status=module)
    claims = verifier.verify("tdx", make_quote(pki), options(pki)).claims
    assert claims["tcb_status"] == status
    assert claims["advisory_ids"] == advisories


class FakeSource:
    """A TdxCollateralSource serving a PKI's collateral (the PCS client is tested in test_pcs.py)."""

    def __init__(self, docs: Sequence[bytes]) -> None:
        self.docs = docs
        self.calls: list[tuple[bytes, str]] = []

    def tdx_collateral(self, fmspc: bytes, ca: str) -> Sequence[bytes]:
        self.calls.append((fmspc, ca))
        return self.docs


def test_collateral_from_a_source(pki: DcapPki) -> None:
    source = FakeSource(pki.collateral())
    assert isinstance(source, TdxCollateralSource)
    opts = options(pki, collateral=(), tdx_collateral=source)
    assert verifier.verify("tdx", make_quote(pki), opts).claims["tcb_status"] == "UpToDate"
    assert source.calls == [(bytes.fromhex("00906ed50000"), "platform")]
    # Offline collateral that is complete needs no source.
    opts = options(pki, tdx_collateral=source)
    verifier.verify("tdx", make_quote(pki), opts)
    assert len(source.calls) == 1


def test_no_collateral_and_no_source(pki: DcapPki) -> None:
    assert reason_of(make_quote(pki), options(pki, collateral=())) is Reason.COLLATERAL_MISSING


def test_source_of_the_wrong_type(pki: DcapPki) -> None:
    opts = options(pki, collateral=(), tdx_collateral=object())
    assert reason_of(make_quote(pki), opts) is Reason.COLLATERAL_MISSING
