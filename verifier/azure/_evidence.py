"""The evidence JSON of guest-components' az-snp-vtpm / az-tdx-vtpm attesters, every version trustee accepts.

trustee (`deps/verifier/src/az_*_vtpm/compat.rs`) tries version 2, then 1, then 0:

    v1, v2  {"version": 1 | 2,
             "tpm_quote": {"signature": hex, "message": hex, "pcrs": [24 x hex]},
             "hcl_report": base64url, "vcek": base64url DER | "td_quote": base64url}
    v0 SNP  {"quote": {"signature": [ints], "message": [ints], "pcrs": [24 x [ints]]},
             "report": [ints] (the HCL report), "vcek": PEM}
    v0 TDX  {"tpm_quote": {... integer arrays as above}, "hcl_report": [ints], "td_quote": [ints]}

`tpm_quote.signature` is the bare RSASSA-PKCS1-v1_5 signature (the TPMT_SIGNATURE's `sig`, which Azure's vTPM
makes with the AK's RSASSA-SHA256 scheme); `message` the TPMS_ATTEST; `pcrs` the SHA-256 bank, PCR 0 to 23.
Version 2 differs from 1 only in meaning: the runtime claims' `user-data` begins with the report data.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from ..errors import FormatError, Reason
from ._hcl import HCL_REPORT_MAX

__all__ = ["PCR_COUNT", "AzureEvidence", "parse_evidence"]

PCR_COUNT = 24
SHA256_SIZE = 32
VERSIONS = (0, 1, 2)
# Caps per field (verifier.verify caps the whole document first).
MAX_MESSAGE = 1024
MAX_SIGNATURE = 1024
MAX_CERTIFICATE = 16 * 1024
MAX_TD_QUOTE = 128 * 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# The byte decoding of a version: hex strings (v1, v2) or integer arrays (v0); (value, field, what, limit).
Decoder = Callable[[object, str, str, int], bytes]
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


class AzureEvidence(NamedTuple):
    """One piece of evidence, decoded: `hardware` is the VCEK (DER) for SNP, the TD quote for TDX."""

    version: int
    quote_message: bytes
    quote_signature: bytes
    pcrs: tuple[bytes, ...]  # SHA-256, PCR 0..23
    hcl_report: bytes
    hardware: bytes


def _what(tee: str) -> str:
    return f"{tee} evidence"


def _hex(value: object, field: str, what: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{what}: field {field} is {type(value).__name__}, expected a hex string")
    if len(value) > 2 * limit:
        raise FormatError(f"{what}: field {field} is {len(value) // 2} bytes, at most {limit} accepted")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise FormatError(f"{what}: field {field} is not hex ({exc})") from exc


def _ints(value: object, field: str, what: str, limit: int) -> bytes:
    """A byte string serialised by serde as a JSON array of integers 0..255 (version 0)."""
    if not isinstance(value, list):
        raise FormatError(f"{what}: field {field} is {type(value).__name__}, expected an array of bytes")
    if len(value) > limit:
        raise FormatError(f"{what}: field {field} is {len(value)} bytes, at most {limit} accepted")
    try:
        return bytes(value)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{what}: field {field} is not an array of integers 0..255 ({exc})") from exc


def _base64url(value: object, field: str, what: str, limit: int) -> bytes:
    """URL-safe base64, padded or not (serde_with's Base64<UrlSafe> writes it padded)."""
    if not isinstance(value, str):
        raise FormatError(f"{what}: field {field} is {type(value).__name__}, expected a base64url string")
    if len(value) > (limit + 2) // 3 * 4:
        raise FormatError(f"{what}: field {field} is over {limit} bytes")
    if _BASE64URL.fullmatch(value) is None or len(value.rstrip("=")) % 4 == 1:
        raise FormatError(f"{what}: field {field} is not base64url")
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise FormatError(f"{what}: field {field} is not base64url ({exc})") from exc


def _object(value: object, field: str, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise FormatError(f"{what}: field {field} is {type(value).__name__}, expected an object")
    return value


def _pcrs(value: object, what: str, decode: Decoder) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) != PCR_COUNT:
        shape = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
        raise FormatError(f"{what}: field tpm_quote.pcrs is {shape}, expected {PCR_COUNT} SHA-256 PCR values")
    pcrs = tuple(decode(v, f"tpm_quote.pcrs[{i}]", what, SHA256_SIZE) for i, v in enumerate(value))
    for i, pcr in enumerate(pcrs):
        if len(pcr) != SHA256_SIZE:
            raise FormatError(f"{what}: field tpm_quote.pcrs[{i}] is {len(pcr)} bytes, expected {SHA256_SIZE}")
    return pcrs


def _version(document: Mapping[str, object], what: str) -> int:
    if "version" not in document:
        return 0
    version = document["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in VERSIONS[1:]:
        raise FormatError(
            f"{what}: version is {version!r}, expected 1 or 2 (or none: version 0)", Reason.UNSUPPORTED_FORMAT
        )
    return version


def _pem_vcek(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_CERTIFICATE:
        raise FormatError(f"{what}: field vcek is not a PEM certificate of at most {MAX_CERTIFICATE} bytes")
    found = _PEM_CERTIFICATE.search(value.encode())
    if found is None:
        raise FormatError(f"{what}: field vcek has no PEM CERTIFICATE block")
    try:
        return binascii.a2b_base64(b"".join(found.group(1).split()), strict_mode=True)
    except binascii.Error as exc:
        raise FormatError(f"{what}: field vcek is not valid PEM base64 ({exc})") from exc


def parse_evidence(document: Mapping[str, object] | bytes, tee: str) -> AzureEvidence:
    """Decode the evidence of `tee` ("az-snp-vtpm" or "az-tdx-vtpm"); FormatError on any deviation."""
    what = _what(tee)
    if not isinstance(document, dict):
        raise FormatError(f"{what} is the attester's JSON object, not raw bytes", Reason.UNSUPPORTED_FORMAT)
    version = _version(document, what)
    snp = tee == "az-snp-vtpm"
    if version == 0:
        quote = _object(document.get("quote" if snp else "tpm_quote"), "quote" if snp else "tpm_quote", what)
        hcl = _ints(document.get("report" if snp else "hcl_report"), "report" if snp else "hcl_report", what,
                    HCL_REPORT_MAX)  # fmt: skip
        hardware = (
            _pem_vcek(document.get("vcek"), what)
            if snp
            else _ints(document.get("td_quote"), "td_quote", what, MAX_TD_QUOTE)
        )
        decode: Decoder = _ints
    else:
        quote = _object(document.get("tpm_quote"), "tpm_quote", what)
        hcl = _base64url(document.get("hcl_report"), "hcl_report", what, HCL_REPORT_MAX)
        key, limit = ("vcek", MAX_CERTIFICATE) if snp else ("td_quote", MAX_TD_QUOTE)
        hardware = _base64url(document.get(key), key, what, limit)
        decode = _hex
    return AzureEvidence(
        version,
        decode(quote.get("message"), "tpm_quote.message", what, MAX_MESSAGE),
        decode(quote.get("signature"), "tpm_quote.signature", what, MAX_SIGNATURE),
        _pcrs(quote.get("pcrs"), what, decode),
        hcl,
        hardware,
    )
