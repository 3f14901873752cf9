"""Parse an Intel TDX quote (version 4 or 5) into frozen dataclasses. Structure only: no signature checks.

Layout citations are to "Intel TDX DCAP Quote Generation Library and Quote Verification Library" (rev. 0.9 and
the 1.5 addendum), appendix A, referred to below as [QGL] with the table name:
    quote = header (48) [v5: body descriptor (6)] TD report body (584 or 648) u32 sig-data length, sig data
The quote is sized by its signature-data length: bytes after the signature data are ignored (hosts pad quotes
with zeros), a quote shorter than the lengths it declares is malformed_evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._reader import Reader
from ..errors import FormatError, Reason

__all__ = [
    "ATT_KEY_TYPE_ECDSA_P256",
    "TEE_TYPE_TDX",
    "QeReport",
    "Quote",
    "QuoteHeader",
    "TdReportBody",
    "parse_quote",
]

# [QGL] "Quote Header": 48 bytes.
HEADER_SIZE = 48
QE_VENDOR_ID_SIZE = 16
USER_DATA_SIZE = 20
QUOTE_V4 = 4
QUOTE_V5 = 5
ATT_KEY_TYPE_ECDSA_P256 = 2  # "ECDSA-256-with-P-256 curve"
TEE_TYPE_TDX = 0x81  # 0x00 is SGX

# [QGL] "TD Quote Body" (TDX 1.0, 584 bytes) and "TD Quote Body v1.5" (648 bytes); v5 "Quote Body Descriptor".
BODY_DESCRIPTOR_SIZE = 6  # u16 type, u32 size
BODY_TYPE_SGX = 1
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3
TD10_BODY_SIZE = 584
TD15_BODY_SIZE = 648
SVN_SIZE = 16  # TEE_TCB_SVN, TEE_TCB_SVN2
MR_SIZE = 48  # SHA-384 measurement registers: MRSEAM, MRTD, RTMRs, ...
ATTRIBUTES_SIZE = 8  # SEAMATTRIBUTES, TDATTRIBUTES, XFAM
RTMR_COUNT = 4
REPORT_DATA_SIZE = 64

# [QGL] "ECDSA 256-bit Quote Signature Data Structure" (v4).
SIG_DATA_LEN_SIZE = 4
ECDSA_SIG_SIZE = 64  # r || s, big-endian, 32 bytes each
ATT_KEY_SIZE = 64  # x || y of the P-256 attestation key
# [QGL] "Certification Data": u16 type, u32 size, data.
CERT_TYPE_PCK_CHAIN = 5  # "Concatenated PCK Cert Chain" (PEM)
CERT_TYPE_QE_REPORT = 6  # "QE Report Certification Data"
# [QGL] "QE Report Certification Data": QE report (an SGX REPORT body, 384), its signature, QE auth data.
QE_REPORT_SIZE = 384
# SGX REPORT BODY (Intel SDM vol. 3D, "REPORT"): offsets inside the 384 bytes.
QE_CPUSVN_SIZE = 16
QE_MISCSELECT_OFFSET = 16
QE_ATTRIBUTES_OFFSET = 48
QE_ATTRIBUTES_SIZE = 16
QE_MRENCLAVE_OFFSET = 64
QE_MRSIGNER_OFFSET = 128
QE_MR_SIZE = 32
QE_ISVPRODID_OFFSET = 256
QE_ISVSVN_OFFSET = 258
QE_REPORT_DATA_OFFSET = 320

# A sanity cap on the PEM chain (three certificates are ~3 KiB).
MAX_CERT_DATA = 64 * 1024


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class TdReportBody:
    """TD Quote Body; tee_tcb_svn2 and mr_servicetd only in the TDX 1.5 body (type 3)."""

    body_type: int
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None


@dataclass(frozen=True)
class QeReport:
    """The Quoting Enclave's SGX report (384 raw bytes kept for its signature) and the fields DCAP checks."""

    raw: bytes
    cpusvn: bytes
    miscselect: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes


@dataclass(frozen=True)
class Quote:
    """A parsed quote. signed_bytes: what the attestation key signs (header [+ descriptor] + body)."""

    header: QuoteHeader
    body: TdReportBody
    signed_bytes: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: QeReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    trailing: int


def _header(r: Reader) -> QuoteHeader:
    version = r.u16le("header.version")
    att_key_type = r.u16le("header.att_key_type")
    tee_type = r.u32le("header.tee_type")
    qe_svn = r.u16le("header.qe_svn")
    pce_svn = r.u16le("header.pce_svn")
    header = QuoteHeader(
        version=version,
        att_key_type=att_key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=r.take(QE_VENDOR_ID_SIZE, "header.qe_vendor_id"),
        user_data=r.take(USER_DATA_SIZE, "header.user_data"),
    )
    if version not in (QUOTE_V4, QUOTE_V5):
        raise FormatError(f"TDX quote: header.version is {version}, expected 4 or 5", Reason.UNSUPPORTED_FORMAT)
    if att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise FormatError(
            f"TDX quote: header.att_key_type is {att_key_type}, expected 2 (ECDSA P-256)",
            Reason.UNSUPPORTED_FORMAT,
        )
    if tee_type != TEE_TYPE_TDX:
        raise FormatError(
            f"TDX quote: header.tee_type is {tee_type:#x}, expected 0x81 (TDX)", Reason.UNSUPPORTED_FORMAT
        )
    return header


def _body(r: Reader, body_type: int) -> TdReportBody:
    fields = {
        "tee_tcb_svn": r.take(SVN_SIZE, "body.TEE_TCB_SVN"),
        "mr_seam": r.take(MR_SIZE, "body.MRSEAM"),
        "mr_signer_seam": r.take(MR_SIZE, "body.MRSIGNERSEAM"),
        "seam_attributes": r.take(ATTRIBUTES_SIZE, "body.SEAMATTRIBUTES"),
        "td_attributes": r.take(ATTRIBUTES_SIZE, "body.TDATTRIBUTES"),
        "xfam": r.take(ATTRIBUTES_SIZE, "body.XFAM"),
        "mr_td": r.take(MR_SIZE, "body.MRTD"),
        "mr_config_id": r.take(MR_SIZE, "body.MRCONFIGID"),
        "mr_owner": r.take(MR_SIZE, "body.MROWNER"),
        "mr_owner_config": r.take(MR_SIZE, "body.MROWNERCONFIG"),
    }
    rtmr = tuple(r.take(MR_SIZE, f"body.RTMR{i}") for i in range(RTMR_COUNT))
    report_data = r.take(REPORT_DATA_SIZE, "body.REPORTDATA")
    svn2 = servicetd = None
    if body_type == BODY_TYPE_TD15:
        svn2 = r.take(SVN_SIZE, "body.TEE_TCB_SVN2")
        servicetd = r.take(MR_SIZE, "body.MRSERVICETD")
    return TdReportBody(
        body_type=body_type,
        rtmr=(rtmr[0], rtmr[1], rtmr[2], rtmr[3]),
        report_data=report_data,
        tee_tcb_svn2=svn2,
        mr_servicetd=servicetd,
        **fields,
    )


def _body_type(r: Reader) -> int:
    """[QGL] v5 "Quote Body Descriptor": the body's type and size, which must agree."""
    body_type = r.u16le("body_descriptor.type")
    size = r.u32le("body_descriptor.size")
    expected = {BODY_TYPE_TD10: TD10_BODY_SIZE, BODY_TYPE_TD15: TD15_BODY_SIZE}.get(body_type)
    if expected is None:
        raise FormatError(
            f"TDX quote v5: body_descriptor.type is {body_type}, expected 2 (TD 1.0) or 3 (TD 1.5)",
            Reason.UNSUPPORTED_FORMAT,
        )
    if size != expected:
        raise FormatError(f"TDX quote v5: body_descriptor.size is {size}, expected {expected} for type {body_type}")
    return body_type


def _qe_report(raw: bytes) -> QeReport:
    """raw is exactly QE_REPORT_SIZE bytes (taken by the caller's bounded reader)."""

    def at(offset: int, size: int) -> bytes:
        return raw[offset : offset + size]

    return QeReport(
        raw=raw,
        cpusvn=at(0, QE_CPUSVN_SIZE),
        miscselect=int.from_bytes(at(QE_MISCSELECT_OFFSET, 4), "little"),
        attributes=at(QE_ATTRIBUTES_OFFSET, QE_ATTRIBUTES_SIZE),
        mr_enclave=at(QE_MRENCLAVE_OFFSET, QE_MR_SIZE),
        mr_signer=at(QE_MRSIGNER_OFFSET, QE_MR_SIZE),
        isv_prod_id=int.from_bytes(at(QE_ISVPRODID_OFFSET, 2), "little"),
        isv_svn=int.from_bytes(at(QE_ISVSVN_OFFSET, 2), "little"),
        report_data=at(QE_REPORT_DATA_OFFSET, REPORT_DATA_SIZE),
    )


def _cert_data(r: Reader, field: str) -> tuple[int, bytes]:
    cert_type = r.u16le(f"{field}.type")
    size = r.u32le(f"{field}.size")
    if size > MAX_CERT_DATA:
        raise FormatError(f"TDX quote: {field}.size is {size}, at most {MAX_CERT_DATA} accepted")
    return cert_type, r.take(size, f"{field}.data")


def _signature_data(data: bytes) -> tuple[bytes, bytes, QeReport, bytes, bytes, bytes]:
    """[QGL] "ECDSA 256-bit Quote Signature Data Structure" with certification data type 6 wrapping type 5."""
    r = Reader(data, "TDX quote signature data")
    signature = r.take(ECDSA_SIG_SIZE, "quote_signature")
    att_key = r.take(ATT_KEY_SIZE, "attestation_key")
    cert_type, cert = _cert_data(r, "certification_data")
    r.finish()
    if cert_type != CERT_TYPE_QE_REPORT:
        raise FormatError(
            f"TDX quote: certification_data.type is {cert_type}, expected 6 (QE report certification data)",
            Reason.UNSUPPORTED_FORMAT,
        )
    c = Reader(cert, "QE report certification data")
    qe_report = _qe_report(c.take(QE_REPORT_SIZE, "qe_report"))
    qe_sig = c.take(ECDSA_SIG_SIZE, "qe_report_signature")
    qe_auth = c.take(c.u16le("qe_auth_data.size"), "qe_auth_data")
    inner_type, chain = _cert_data(c, "qe_certification_data")
    c.finish()
    if inner_type != CERT_TYPE_PCK_CHAIN:
        raise FormatError(
            f"TDX quote: qe_certification_data.type is {inner_type}, expected 5 (PCK certificate chain)",
            Reason.UNSUPPORTED_FORMAT,
        )
    return signature, att_key, qe_report, qe_sig, qe_auth, chain


def parse_quote(data: bytes) -> Quote:
    """Parse a TDX quote v4 or v5. FormatError (malformed_evidence or unsupported_format) on anything else."""
    r = Reader(data, "TDX quote")
    header = _header(r)
    body_type = BODY_TYPE_TD10 if header.version == QUOTE_V4 else _body_type(r)
    body = _body(r, body_type)
    signed_end = r.offset
    sig_len = r.u32le("signature_data_len")
    sig_data = r.take(sig_len, "signature_data")
    signature, att_key, qe_report, qe_sig, qe_auth, chain = _signature_data(sig_data)
    return Quote(
        header=header,
        body=body,
        signed_bytes=bytes(data[:signed_end]),
        signature=signature,
        attestation_key=att_key,
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=qe_auth,
        pck_chain_pem=chain,
        trailing=r.remaining,
    )
