"""Verify an SEV-SNP report: signature, VCEK/VLEK chain to AMD's roots, TCB and chip binding, bindings.

Order (each step only trusts what the previous one proved):
 1. find the endorsement key: the extended report's VCEK/VLEK, Options.certificates/collateral, or the
    Options.snp_certificates source (an AMD KDS client) keyed by the report's chip and REPORTED_TCB;
 2. ECDSA P-384 / SHA-384 over bytes 0x000..0x29F under that key (r, s little-endian), before any field of the
    report is interpreted: a changed byte anywhere in the signed area is `signature_invalid`;
 3. parse the now-authentic report (must-be-zero areas, version) and bind it to the certificate: key type from
    SIGNER_INFO, product from the certificate and CPUID, TCB extensions == REPORTED_TCB, hwID == CHIP_ID;
 4. the certificate chain to the pinned ARK of that product (RSASSA-PSS SHA-384), validity at Options.at,
    CRLs;
 5. REPORT_DATA and HOST_DATA against the expected binding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .. import sources
from .._common import check_init_data, check_report_data
from ..errors import Reason, VerificationError, VerifierError
from ..options import Options
from ..result import Verified
from . import _abi
from ._abi import (
    AttestationReport,
    SigningKey,
    decode_tcb,
    parse_report,
    signature_parts,
)
from ._binding import init_data
from ._certs import (
    Anchor,
    Vek,
    check_validity,
    common_name,
    find_crls,
    load_certificates,
    load_ders,
    parse_vek,
    pinned_anchors,
    trust_anchors,
    vek_ders,
    verify_issued_by,
)
from ._claims import claims_from_report
from ._evidence import parse_evidence

__all__ = ["product_from_cpuid", "verify"]

TURIN_HWID_SIZE = 8


def product_from_cpuid(family: int, model: int) -> str | None:
    """The SNP product of a CPUID family/model (AMD family 19h: Milan 00h-0Fh, Genoa 10h-1Fh and A0h-AFh;
    family 1Ah: Turin 00h-1Fh)."""
    if family == 0x19 and model <= 0x0F:
        return "Milan"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "Genoa"
    if family == 0x1A and model <= 0x1F:
        return "Turin"
    return None


def _vek_candidates(items: Iterable[bytes]) -> list[bytes]:
    return [der for data in items for der in vek_ders(data)]


def _fetch_vek(report: bytes, options: Options) -> list[bytes]:
    """Ask the configured source for the VCEK, keyed by fields of the (not yet authenticated) report: they
    only choose what to fetch; the signature and bindings decide."""
    source = sources.snp_certificates(
        options.snp_certificates,
        missing="no VCEK/VLEK: the evidence carries none, none was given (--cert/--collateral), "
        "and no KDS source is configured",
    )
    signer = (int.from_bytes(report[_abi.OFF_SIGNER_INFO : _abi.OFF_SIGNER_INFO + 4], "little") >> 2) & 0b111
    if signer == SigningKey.VLEK:
        raise VerificationError(
            Reason.COLLATERAL_MISSING,
            "SIGNER_INFO.SIGNING_KEY is VLEK and no VLEK certificate was given; AMD's KDS serves VLEKs "
            "only to their cloud provider",
        )
    version = int.from_bytes(report[_abi.OFF_VERSION : _abi.OFF_VERSION + 4], "little")
    if version < _abi.VERSION_WITH_CPUID:
        raise VerificationError(
            Reason.COLLATERAL_MISSING,
            f"VERSION is {version}: the report has no CPUID, so the product for the KDS request is unknown; "
            "give the VCEK (--cert) instead",
        )
    family, model = report[_abi.OFF_CPUID_FAM_ID], report[_abi.OFF_CPUID_MOD_ID]
    product = product_from_cpuid(family, model)
    if product is None:
        raise VerificationError(
            Reason.COLLATERAL_MISSING,
            f"CPUID_FAM_ID/CPUID_MOD_ID are {family:#x}/{model:#x}, no known SNP product to ask the KDS for",
        )
    chip_id = report[_abi.OFF_CHIP_ID : _abi.OFF_CHIP_ID + _abi.CHIP_ID_SIZE]
    hwid = chip_id[:TURIN_HWID_SIZE] if product == "Turin" else chip_id
    raw_tcb = int.from_bytes(report[_abi.OFF_REPORTED_TCB : _abi.OFF_REPORTED_TCB + 8], "little")
    return [source.vcek(product, hwid, decode_tcb(raw_tcb, turin=product == "Turin"))]


def _signing_vek(report: bytes, candidates: list[bytes]) -> Vek:
    """The first candidate certificate whose key verifies the report's signature."""
    signed, r, s = signature_parts(report)
    signature = encode_dss_signature(r, s)
    tried = []
    first_error: VerifierError | None = None
    for der in candidates:
        try:
            vek = parse_vek(der)
        except VerifierError as exc:
            first_error = first_error or exc
            continue
        try:
            vek.public_key.verify(signature, signed, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            tried.append(f"{vek.kind.upper()} ({vek.product}, valid to {vek.cert.not_valid_after_utc.date()})")
            continue
        return vek
    if not tried and first_error is not None:
        raise first_error
    raise VerificationError(
        Reason.SIGNATURE_INVALID,
        f"ATTESTATION_REPORT SIGNATURE over bytes 0x000..0x29F does not verify under {', '.join(tried)}",
    )


def _bind(report: AttestationReport, vek: Vek) -> str:
    """Bind the authentic report to its certificate; returns the product."""
    expected_kind = {SigningKey.VCEK: "vcek", SigningKey.VLEK: "vlek"}.get(report.signing_key)
    if expected_kind != vek.kind:
        raise VerificationError(
            Reason.CERTIFICATE_INVALID,
            f"SIGNER_INFO.SIGNING_KEY is {report.signing_key.name}, but the signing certificate is a "
            f"{vek.kind.upper()}",
        )
    product = vek.product
    if report.cpuid is not None:
        by_cpuid = product_from_cpuid(report.cpuid.family, report.cpuid.model)
        if by_cpuid != product:
            raise VerificationError(
                Reason.CERTIFICATE_INVALID,
                f"CPUID_FAM_ID/CPUID_MOD_ID are {report.cpuid.family:#x}/{report.cpuid.model:#x} "
                f"({by_cpuid or 'no known product'}), but the {vek.kind.upper()} is for {product}: "
                "ambiguous product",
            )
    tcb = decode_tcb(report.reported_tcb, turin=product == "Turin")
    pairs: list[tuple[str, int | None, str, int | None]] = [
        ("blSPL", vek.bootloader, "BOOT_LOADER", tcb.bootloader),
        ("teeSPL", vek.tee, "TEE", tcb.tee),
        ("snpSPL", vek.snp, "SNP", tcb.snp),
        ("ucodeSPL", vek.microcode, "MICROCODE", tcb.microcode),
    ]
    if product == "Turin":
        pairs.append(("fmcSPL", vek.fmc, "FMC", tcb.fmc))
    for ext, got, field, want in pairs:
        if got != want:
            raise VerificationError(
                Reason.CERTIFICATE_INVALID,
                f"{vek.kind.upper()} {ext} is {got}, expected REPORTED_TCB.{field} {want} (REPORTED_TCB "
                f"{report.reported_tcb:#018x})",
            )
    if vek.hwid is not None:
        carried = report.chip_id[: len(vek.hwid)]
        masked = report.mask_chip_key and not any(report.chip_id)
        if carried != vek.hwid and not masked:
            raise VerificationError(
                Reason.CERTIFICATE_INVALID,
                f"CHIP_ID is {carried.hex()}, expected the VCEK hwID {vek.hwid.hex()}",
            )
    return product


@functools.lru_cache(maxsize=256)
def _issuing_anchor(vek_der: bytes, trust: tuple[bytes, ...]) -> tuple[Anchor, x509.Certificate] | str:
    """The trusted anchor whose ASK/ASVK signed this VEK, or why there is none. Cached by bytes: the RSA
    checks do not depend on the evaluation time, only validity does (checked on every call)."""
    vek = parse_vek(vek_der)
    anchors = pinned_anchors() + trust_anchors(trust)
    name = "ASK" if vek.kind == "vcek" else "ASVK"
    detail = f"no trusted {name} for {vek.product}"
    for anchor in anchors:
        candidate = anchor.intermediate(vek.kind)
        if anchor.product != vek.product or candidate is None:
            continue
        try:
            verify_issued_by(vek.cert, candidate, vek.kind.upper())
        except VerificationError as exc:
            detail = exc.detail
            continue
        return anchor, candidate
    return (
        f"{vek.kind.upper()} (issuer {vek.cert.issuer.rfc4514_string()}) does not chain to a trusted "
        f"{vek.product} {name}/ARK: {detail}"
    )


def _check_chain(vek: Vek, provided: Mapping[str, bytes], options: Options) -> Anchor:
    found = _issuing_anchor(vek.der, tuple(options.trust.get("snp", ())))
    if isinstance(found, str):
        raise VerificationError(Reason.CERTIFICATE_INVALID, found)
    anchor, intermediate = found
    name = "ASK" if vek.kind == "vcek" else "ASVK"
    _check_provided(provided, anchor, vek)
    at = options.at
    check_validity(vek.cert, at, vek.kind.upper())
    check_validity(intermediate, at, f"{name} {common_name(intermediate.subject)}")
    check_validity(anchor.ark, at, f"ARK {common_name(anchor.ark.subject)}")
    _check_revocation(anchor, intermediate, options)
    return anchor


def _check_provided(provided: Mapping[str, bytes], anchor: Anchor, vek: Vek) -> None:
    """Chain certificates in the evidence must be the trusted ones of the VEK's product, never other roots."""
    for key in ("ask", "asvk", "ark"):
        data = provided.get(key)
        if data is None:
            continue
        for cert, der in zip(load_certificates(data), load_ders(data), strict=True):
            if der not in anchor.ders:
                raise VerificationError(
                    Reason.CERTIFICATE_INVALID,
                    f"certificates.{key} in the evidence is {common_name(cert.subject)!r}, not the trusted "
                    f"{vek.product} {key.upper()} that the {vek.kind.upper()} chains to",
                )


def _check_revocation(anchor: Anchor, intermediate: x509.Certificate, options: Options) -> None:
    crls = find_crls(options.collateral, anchor.ark)
    if not crls and options.snp_certificates is not None:
        source = sources.snp_certificates(options.snp_certificates)
        fetched = source.crl(anchor.product)
        if fetched is not None:
            crls = find_crls([fetched], anchor.ark)
    for crl in crls:
        next_update = crl.next_update_utc
        if next_update is not None and next_update < options.at and not options.allow_expired_collateral:
            raise VerificationError(
                Reason.COLLATERAL_EXPIRED,
                f"{anchor.product} CRL nextUpdate is {next_update.isoformat()}, before {options.at.isoformat()}",
            )
        revoked = crl.get_revoked_certificate_by_serial_number(intermediate.serial_number)
        if revoked is not None:
            raise VerificationError(
                Reason.CERTIFICATE_REVOKED,
                f"{common_name(intermediate.subject)} serial {intermediate.serial_number:#x} is revoked by "
                f"the {anchor.product} CRL since {revoked.revocation_date_utc.isoformat()}",
            )


def verify(evidence: Mapping[str, object] | bytes, options: Options) -> Verified:
    """Verify SNP evidence (the JSON or the raw 1184-byte report); evidence and claims per docs/evidence.md."""
    parsed = parse_evidence(evidence)
    provided = [parsed.certificates[k] for k in ("vcek", "vlek") if k in parsed.certificates]
    candidates = _vek_candidates([*provided, *options.certificates, *options.collateral])
    if not candidates:
        candidates = _fetch_vek(parsed.report, options)
    vek = _signing_vek(parsed.report, candidates)
    report = parse_report(parsed.report)
    product = _bind(report, vek)
    _check_chain(vek, parsed.certificates, options)
    check_report_data("REPORT_DATA", report.report_data, options, pad_to=_abi.REPORT_DATA_SIZE)
    if options.init_data_digest is not None:
        check_init_data("HOST_DATA", report.host_data, init_data(options.init_data_digest))
    claims = claims_from_report(report, product, vek.kind)
    return Verified(tee="snp", claims=claims.to_json(), report_data=report.report_data)
