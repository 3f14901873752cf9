"""Verification against the test-only AMD-like chain (tests/snp/make_test_chain.py) through Options.trust."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

import verifier
from tests.snp.conftest import TODAY, trusting
from tests.snp.make_test_chain import Chain, ReportFields, Vek, make_chain, make_crl, make_report, make_vek
from verifier import Options, Reason, VerifierError
from verifier.snp import Tcb
from verifier.sources import SnpCertificateSource


def _verify(chain: Chain, report: bytes, vek: Vek | None = None, **kwargs: object) -> dict[str, object]:
    certs = (vek.der,) if vek is not None else ()
    result = verifier.verify("snp", report, trusting(chain, certificates=certs, **kwargs))
    return dict(result.claims)


def test_test_chain_report_verifies_only_when_trusted(milan_chain: Chain, milan_vcek: Vek) -> None:
    report = make_report(milan_vcek, "Milan")
    claims = _verify(milan_chain, report, milan_vcek)
    assert claims["product"] == "Milan"
    assert claims["cpuid"] == {"family": 0x19, "model": 0x01, "stepping": 0x01}
    assert claims["reported_tcb"] == {
        "bootloader": 3,
        "tee": 0,
        "snp": 8,
        "microcode": 115,
        "raw": "7308000000000003",
    }
    with pytest.raises(VerifierError) as caught:
        verifier.verify("snp", report, Options(at=TODAY, certificates=(milan_vcek.der,)))
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert "does not chain to a trusted Milan ASK/ARK" in caught.value.detail


def test_turin_v5_report_with_fmc_and_8_byte_hwid(turin_chain: Chain) -> None:
    vcek = make_vek(turin_chain, chip_id=bytes(range(1, 9)) + bytes(56), tcb=(9, 0, 21, 77, 1))
    claims = _verify(turin_chain, make_report(vcek, "Turin", ReportFields(version=5)), vcek)
    assert claims["product"] == "Turin"
    assert claims["report_version"] == 5
    assert claims["reported_tcb"] == {
        "bootloader": 9, "tee": 0, "snp": 21, "microcode": 77, "fmc": 1, "raw": "4d00000015000901",
    }  # fmt: skip
    assert (claims["launch_mit_vector"], claims["current_mit_vector"]) == (3, 7)


def test_turin_hwid_compares_the_first_8_bytes_of_chip_id(turin_chain: Chain) -> None:
    vcek = make_vek(turin_chain, chip_id=bytes(range(1, 9)) + bytes(56), tcb=(9, 0, 21, 77, 1))
    other = ReportFields(version=5, extra={0x1A0: b"\xee"})
    with pytest.raises(VerifierError) as caught:
        _verify(turin_chain, make_report(vcek, "Turin", other), vcek)
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert "CHIP_ID is ee02030405060708, expected the VCEK hwID 0102030405060708" in caught.value.detail


# Authentic reports that do not match their certificate: (report fields, detail fragment)
BINDING = {
    "cpuid-says-genoa": (
        ReportFields(cpuid=(0x19, 0x11, 0x1)),
        "0x19/0x11 (Genoa), but the VCEK is for Milan",
    ),
    "cpuid-unknown": (ReportFields(cpuid=(0x17, 0x31, 0x0)), "(no known product)"),
    "reported-tcb-microcode": (
        ReportFields(extra={0x187: b"\x74"}),
        "VCEK ucodeSPL is 115, expected REPORTED_TCB.MICROCODE 116",
    ),
    "reported-tcb-snp": (ReportFields(extra={0x186: b"\x07"}), "snpSPL is 8, expected REPORTED_TCB.SNP 7"),
    "chip-id": (ReportFields(extra={0x1A0: b"\xff"}), "CHIP_ID is ff0102"),
    "signer-says-vlek": (
        ReportFields(signer_info=1 << 2, extra={0x1A0: bytes(range(64))}),
        "SIGNING_KEY is VLEK",
    ),
}


@pytest.mark.parametrize(("fields", "detail"), BINDING.values(), ids=BINDING.keys())
def test_binding_negatives(milan_chain: Chain, milan_vcek: Vek, fields: ReportFields, detail: str) -> None:
    with pytest.raises(VerifierError) as caught:
        _verify(milan_chain, make_report(milan_vcek, "Milan", fields), milan_vcek)
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert detail in caught.value.detail


# Certificates whose product cannot be told: never guessed.
PRODUCT_NAMES = {
    "unknown-product": ("Siena-B0", "productName is 'Siena-B0', expected one of"),
    "name-contradicts-issuer": ("Genoa-B0", "productName is 'Genoa-B0' but its issuer is 'SEV-Milan'"),
}


@pytest.mark.parametrize(("name", "detail"), PRODUCT_NAMES.values(), ids=PRODUCT_NAMES.keys())
def test_ambiguous_product_is_certificate_invalid(milan_chain: Chain, name: str, detail: str) -> None:
    vcek = make_vek(milan_chain, product_name=name)
    with pytest.raises(VerifierError) as caught:
        _verify(milan_chain, make_report(vcek, "Milan"), vcek)
    assert caught.value.reason is Reason.CERTIFICATE_INVALID
    assert detail in caught.value.detail


def test_vlek_report(milan_chain: Chain) -> None:
    vlek = make_vek(milan_chain, kind="vlek")
    claims = _verify(milan_chain, make_report(vlek, "Milan", ReportFields(signer_info=1 << 2)), vlek)
    assert (claims["signing_key"], claims["chip_id"]) == ("vlek", "00" * 64)


def test_expired_vcek(milan_chain: Chain) -> None:
    vcek = make_vek(milan_chain, not_before=datetime(2020, 1, 1, tzinfo=UTC), days=30)
    with pytest.raises(VerifierError) as caught:
        _verify(milan_chain, make_report(vcek, "Milan"), vcek)
    assert caught.value.reason is Reason.CERTIFICATE_EXPIRED


def test_evidence_with_the_trusted_chain_certificates(milan_chain: Chain, milan_vcek: Vek) -> None:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    evidence = {
        "attestation_report": b64(make_report(milan_vcek, "Milan")),
        "certificates": {
            "vcek": b64(milan_vcek.der),
            "ask": b64(milan_chain.ask.public_bytes(Encoding.DER)),
            "ark": b64(milan_chain.ark.public_bytes(Encoding.DER)),
        },
    }
    assert verifier.verify("snp", evidence, trusting(milan_chain)).claims["signing_key"] == "vcek"


# CRLs (trustee's verifier has no SNP revocation check; Veritee's does). (CRL maker, options, reason or None)
def _crl_cases() -> dict[str, tuple[object, dict[str, object], Reason | None]]:
    return {
        "ask-revoked": (lambda c: make_crl(c, [c.ask.serial_number]), {}, Reason.CERTIFICATE_REVOKED),
        "other-serial-revoked": (lambda c: make_crl(c, [12345]), {}, None),
        "crl-expired": (
            lambda c: make_crl(c, [], next_update=TODAY - timedelta(days=1)),
            {},
            Reason.COLLATERAL_EXPIRED,
        ),
        "crl-expired-allowed": (
            lambda c: make_crl(c, [], next_update=TODAY - timedelta(days=1)),
            {"allow_expired_collateral": True},
            None,
        ),
        "crl-forged": (_forged_crl, {}, Reason.COLLATERAL_INVALID),
    }


def _forged_crl(chain: Chain) -> bytes:
    """A CRL with the ARK's name but signed by another key."""
    impostor = make_chain(chain.product)
    impostor.ark_key = make_chain(chain.product).ark_key
    impostor.ark = chain.ark
    return make_crl(impostor, [chain.ask.serial_number])


@pytest.mark.parametrize("case", list(_crl_cases()))
def test_crls(milan_chain: Chain, milan_vcek: Vek, case: str) -> None:
    make, extra, reason = _crl_cases()[case]
    crl = make(milan_chain)  # type: ignore[operator]
    report = make_report(milan_vcek, "Milan")
    if reason is None:
        _verify(milan_chain, report, milan_vcek, collateral=(crl,), **extra)
        return
    with pytest.raises(VerifierError) as caught:
        _verify(milan_chain, report, milan_vcek, collateral=(crl,), **extra)
    assert caught.value.reason is reason


@dataclass
class InMemorySource:
    """An SnpCertificateSource over a dictionary: what a KDS would serve."""

    vceks: dict[tuple[str, bytes, int], bytes]
    crls: dict[str, bytes] = field(default_factory=dict)
    asked: list[tuple[str, bytes, Tcb]] = field(default_factory=list)

    def vcek(self, product: str, hwid: bytes, tcb: Tcb) -> bytes:
        self.asked.append((product, hwid, tcb))
        try:
            return self.vceks[(product, hwid, tcb.raw)]
        except KeyError:
            raise VerifierError(Reason.COLLATERAL_MISSING, f"no VCEK for {product} {hwid.hex()}") from None

    def crl(self, product: str) -> bytes | None:
        return self.crls.get(product)


def test_vcek_from_the_source(turin_chain: Chain) -> None:
    vcek = make_vek(turin_chain, chip_id=bytes(range(8)) + bytes(56), tcb=(1, 0, 2, 3, 4))
    source = InMemorySource({("Turin", bytes(range(8)), vcek.tcb): vcek.der})
    assert isinstance(source, SnpCertificateSource)
    report = make_report(vcek, "Turin")
    claims = _verify(turin_chain, report, snp_certificates=source)
    assert claims["product"] == "Turin"
    product, hwid, tcb = source.asked[0]
    assert (product, hwid, tcb.fmc, tcb.microcode) == ("Turin", bytes(range(8)), 4, 3)
    source.crls["Turin"] = make_crl(turin_chain, [turin_chain.ask.serial_number])
    with pytest.raises(VerifierError) as caught:
        _verify(turin_chain, report, snp_certificates=source)
    assert caught.value.reason is Reason.CERTIFICATE_REVOKED


def test_source_cannot_serve_v2_reports_or_vleks(milan_chain: Chain, milan_vcek: Vek) -> None:
    source = InMemorySource({})
    cases = [
        (ReportFields(version=2), "VERSION is 2: the report has no CPUID"),
        (ReportFields(signer_info=1 << 2), "no VLEK certificate was given"),
        (ReportFields(extra={0x1A0: b"\x01"}), "no VCEK for Milan 01010203"),
    ]
    for fields, detail in cases:
        with pytest.raises(VerifierError) as caught:
            _verify(milan_chain, make_report(milan_vcek, "Milan", fields), snp_certificates=source)
        assert caught.value.reason is Reason.COLLATERAL_MISSING
        assert detail in caught.value.detail


# sha256 prefixes of the vendored files (verifier/snp/roots/README.md)
PINNED = {
    "milan": "cc871f0d2294176386175d9b5b962e18",
    "genoa": "7397ae50f4bac4699393121cf7ce9e72",
    "turin": "34251ef16c414387e2bf36a69b675329",
}


def test_pinned_roots_are_the_vendored_files() -> None:
    import hashlib
    from importlib import resources

    roots = resources.files("verifier.snp") / "roots"
    digests = {p: hashlib.sha256(roots.joinpath(f"{p}.pem").read_bytes()).hexdigest()[:32] for p in PINNED}
    assert digests == PINNED
    from verifier.snp._certs import pinned_anchors

    anchors = pinned_anchors()
    assert sorted(a.product for a in anchors) == ["Genoa", "Milan", "Turin"]
    assert all(a.ask is not None and a.asvk is not None for a in anchors)
