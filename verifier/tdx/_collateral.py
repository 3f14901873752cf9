"""DCAP collateral: TCB info v3 (TDX), QE identity v2 (TD_QE), CRLs and issuer chains, recognised by content.

[TCBINFO] Intel "TDX TCB Info" JSON (PCS API v4, "Get TDX TCB Info", tcbInfo version 3) and [QEID] "Enclave
Identity" JSON (version 2). Each document is
`{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}`;
the ECDSA P-256 signature covers the exact bytes of the inner object as the document carries them, so the raw
substring is located with the JSON decoder and never re-serialised (trap 3 of the vectors).

Parsers raise FormatError only; the verifier reports a document that does not parse as collateral_invalid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from .._x509 import CertificateError, load_certificates, load_crl, load_der
from ..errors import FormatError

__all__ = [
    "Collateral",
    "EnclaveIdentity",
    "ModuleIdentity",
    "QeTcbLevel",
    "SignedJson",
    "TcbInfo",
    "TcbLevel",
    "parse_qe_identity",
    "parse_signed_json",
    "parse_tcb_info",
    "recognise",
]

MAX_COLLATERAL_DOCUMENT = 1024 * 1024
TCB_COMPONENTS = 16
ECDSA_SIG_HEX = 128
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", re.DOTALL)
_WS = " \t\r\n"


@dataclass(frozen=True)
class SignedJson:
    """A signed collateral document: the inner object's exact bytes, its parsed value and the signature."""

    key: str
    signed_bytes: bytes
    body: Mapping[str, object]
    signature: bytes


@dataclass(frozen=True)
class TcbLevel:
    sgx_svns: tuple[int, ...]
    pce_svn: int
    tdx_svns: tuple[int, ...]
    status: str
    date: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class QeTcbLevel:
    isv_svn: int
    status: str
    date: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class ModuleIdentity:
    """tdxModuleIdentities[] ("TDX_01", ...) or, with id "", the tdxModule of TDX module major version 0."""

    id: str
    mr_signer: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[QeTcbLevel, ...]


@dataclass(frozen=True)
class TcbInfo:
    document: SignedJson
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    eval_number: int
    tdx_module: ModuleIdentity
    module_identities: tuple[ModuleIdentity, ...]
    levels: tuple[TcbLevel, ...]


@dataclass(frozen=True)
class EnclaveIdentity:
    document: SignedJson
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    eval_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mr_signer: bytes
    isv_prod_id: int
    levels: tuple[QeTcbLevel, ...]


@dataclass(frozen=True)
class Collateral:
    """Collateral documents sorted by kind. tcb_infos and qe_identities are signed JSON not yet checked."""

    tcb_infos: tuple[bytes, ...] = ()
    qe_identities: tuple[bytes, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    certificates: tuple[x509.Certificate, ...] = field(default=())

    def merged(self, other: Collateral) -> Collateral:
        return Collateral(
            self.tcb_infos + other.tcb_infos,
            self.qe_identities + other.qe_identities,
            self.crls + other.crls,
            self.certificates + other.certificates,
        )


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _top_level(text: str, what: str) -> dict[str, tuple[object, int, int]]:
    """The top-level members of a JSON object: key -> (value, start, end) in text."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "{":
        raise FormatError(f"{what}: not a JSON object")
    pos += 1
    members: dict[str, tuple[object, int, int]] = {}
    while True:
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == "}" and not members:
            break
        try:
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if text[pos : pos + 1] != ":" or not isinstance(key, str):
                raise FormatError(f"{what}: expected a string key and ':' at offset {pos}")
            pos += 1
            pos = _skip_ws(text, pos)
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than json can decode
            raise FormatError(f"{what}: JSON does not parse ({exc})") from exc
        if key in members:
            raise FormatError(f"{what}: key {key!r} appears twice")
        members[key] = (value, pos, end)
        pos = end
        pos = _skip_ws(text, pos)
        sep = text[pos : pos + 1]
        pos += 1
        if sep == "}":
            break
        if sep != ",":
            raise FormatError(f"{what}: expected ',' or '}}' at offset {pos - 1}")
    if text[pos:].strip(_WS):
        raise FormatError(f"{what}: trailing bytes after the JSON object")
    return members


def parse_signed_json(data: bytes, key: str) -> SignedJson:
    """Split `{"<key>": {...}, "signature": "<hex>"}` into the exact signed bytes, body and signature."""
    what = f"{key} document"
    if len(data) > MAX_COLLATERAL_DOCUMENT:
        raise FormatError(f"{what}: {len(data)} bytes, at most {MAX_COLLATERAL_DOCUMENT} accepted")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what}: not UTF-8 ({exc})") from exc
    members = _top_level(text, what)
    if key not in members or "signature" not in members:
        raise FormatError(f"{what}: members are {sorted(members)}, expected {key!r} and 'signature'")
    body, start, end = members[key]
    signature = members["signature"][0]
    if not isinstance(body, dict):
        raise FormatError(f"{what}: {key} is not a JSON object")
    if not isinstance(signature, str) or len(signature) != ECDSA_SIG_HEX:
        raise FormatError(f"{what}: signature is not {ECDSA_SIG_HEX} hex digits (ECDSA P-256 r||s)")
    try:
        sig = bytes.fromhex(signature)
    except ValueError as exc:
        raise FormatError(f"{what}: signature is not hex") from exc
    return SignedJson(key=key, signed_bytes=text[start:end].encode("utf-8"), body=body, signature=sig)


def _get(body: Mapping[str, object], name: str, kind: type, what: str) -> object:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"{what}: field {name} is {value!r}, expected {kind.__name__}")
    return value


def _int(body: Mapping[str, object], name: str, what: str) -> int:
    value = _get(body, name, int, what)
    assert isinstance(value, int)
    if value < 0:
        raise FormatError(f"{what}: field {name} is {value}, expected a non-negative integer")
    return value


def _str(body: Mapping[str, object], name: str, what: str) -> str:
    value = _get(body, name, str, what)
    assert isinstance(value, str)
    return value


def _hex(body: Mapping[str, object], name: str, size: int, what: str) -> bytes:
    value = _str(body, name, what)
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise FormatError(f"{what}: field {name} is {value!r}, expected hex") from exc
    if len(raw) != size:
        raise FormatError(f"{what}: field {name} is {len(raw)} bytes, expected {size}")
    return raw


def _date(body: Mapping[str, object], name: str, what: str) -> datetime:
    value = _str(body, name, what)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FormatError(f"{what}: field {name} is {value!r}, expected an ISO 8601 date") from exc
    if parsed.tzinfo is None:
        raise FormatError(f"{what}: field {name} is {value!r}, expected a UTC time")
    return parsed


def _objects(body: Mapping[str, object], name: str, what: str) -> list[Mapping[str, object]]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise FormatError(f"{what}: field {name} is not a list of objects")
    return value


def _advisories(level: Mapping[str, object], what: str) -> tuple[str, ...]:
    value = level.get("advisoryIDs", [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FormatError(f"{what}: advisoryIDs is not a list of strings")
    return tuple(value)


def _svns(tcb: Mapping[str, object], name: str, what: str) -> tuple[int, ...]:
    comps = _objects(tcb, name, what)
    if len(comps) != TCB_COMPONENTS:
        raise FormatError(f"{what}: {name} has {len(comps)} entries, expected {TCB_COMPONENTS}")
    return tuple(_int(comp, "svn", f"{what} {name}") for comp in comps)


def _qe_levels(body: Mapping[str, object], what: str) -> tuple[QeTcbLevel, ...]:
    levels = []
    for level in _objects(body, "tcbLevels", what):
        tcb = _get(level, "tcb", dict, what)
        assert isinstance(tcb, dict)
        levels.append(
            QeTcbLevel(
                isv_svn=_int(tcb, "isvsvn", what),
                status=_str(level, "tcbStatus", what),
                date=_str(level, "tcbDate", what),
                advisory_ids=_advisories(level, what),
            )
        )
    return tuple(levels)


def _module(body: Mapping[str, object], ident: str, what: str) -> ModuleIdentity:
    levels = _qe_levels(body, what) if "tcbLevels" in body else ()
    return ModuleIdentity(
        id=ident,
        mr_signer=_hex(body, "mrsigner", 48, what),
        attributes=_hex(body, "attributes", 8, what),
        attributes_mask=_hex(body, "attributesMask", 8, what),
        levels=levels,
    )


def parse_tcb_info(data: bytes) -> TcbInfo:
    """[TCBINFO] a TDX TCB info document (id "TDX", version 3)."""
    doc = parse_signed_json(data, "tcbInfo")
    body, what = doc.body, "tcbInfo"
    if body.get("id") != "TDX" or body.get("version") != 3:
        raise FormatError(
            f"tcbInfo: id/version are {body.get('id')!r}/{body.get('version')!r}, expected 'TDX'/3",
        )
    module = _get(body, "tdxModule", dict, what)
    assert isinstance(module, dict)
    levels = []
    for level in _objects(body, "tcbLevels", what):
        tcb = _get(level, "tcb", dict, what)
        assert isinstance(tcb, dict)
        levels.append(
            TcbLevel(
                sgx_svns=_svns(tcb, "sgxtcbcomponents", what),
                pce_svn=_int(tcb, "pcesvn", what),
                tdx_svns=_svns(tcb, "tdxtcbcomponents", what),
                status=_str(level, "tcbStatus", what),
                date=_str(level, "tcbDate", what),
                advisory_ids=_advisories(level, what),
            )
        )
    identities = _objects(body, "tdxModuleIdentities", what) if "tdxModuleIdentities" in body else []
    return TcbInfo(
        document=doc,
        version=3,
        issue_date=_date(body, "issueDate", what),
        next_update=_date(body, "nextUpdate", what),
        fmspc=_hex(body, "fmspc", 6, what),
        pce_id=_hex(body, "pceId", 2, what),
        eval_number=_int(body, "tcbEvaluationDataNumber", what),
        tdx_module=_module(module, "", "tcbInfo.tdxModule"),
        module_identities=tuple(
            _module(item, _str(item, "id", what), "tcbInfo.tdxModuleIdentities") for item in identities
        ),
        levels=tuple(levels),
    )


def parse_qe_identity(data: bytes) -> EnclaveIdentity:
    """[QEID] an enclave identity document (version 2); the verifier requires id "TD_QE"."""
    doc = parse_signed_json(data, "enclaveIdentity")
    body, what = doc.body, "enclaveIdentity"
    if body.get("version") != 2:
        raise FormatError(f"enclaveIdentity: version is {body.get('version')!r}, expected 2")
    return EnclaveIdentity(
        document=doc,
        id=_str(body, "id", what),
        version=2,
        issue_date=_date(body, "issueDate", what),
        next_update=_date(body, "nextUpdate", what),
        eval_number=_int(body, "tcbEvaluationDataNumber", what),
        miscselect=int.from_bytes(_hex(body, "miscselect", 4, what), "big"),
        miscselect_mask=int.from_bytes(_hex(body, "miscselectMask", 4, what), "big"),
        attributes=_hex(body, "attributes", 16, what),
        attributes_mask=_hex(body, "attributesMask", 16, what),
        mr_signer=_hex(body, "mrsigner", 32, what),
        isv_prod_id=_int(body, "isvprodid", what),
        levels=_qe_levels(body, what),
    )


def _load_der(data: bytes) -> Collateral:
    crl = load_crl(data)
    if crl is not None:
        return Collateral(crls=(crl,))
    try:
        return Collateral(certificates=(load_der(data),))
    except CertificateError:
        return Collateral()


def recognise(documents: Iterable[bytes]) -> Collateral:
    """Sort raw documents by content. Unrecognised documents (other TEEs' collateral) are ignored; JSON and
    PEM are split here and parsed later, so a broken TCB info is reported as collateral_invalid, not
    dropped."""
    out = Collateral()
    for data in documents:
        head = data.lstrip()[:1]
        if head == b"{":
            if b'"tcbInfo"' in data:
                out = out.merged(Collateral(tcb_infos=(data,)))
            elif b'"enclaveIdentity"' in data:
                out = out.merged(Collateral(qe_identities=(data,)))
        elif b"-----BEGIN" in data:
            try:
                certs = tuple(cert for m in _PEM_CERT.findall(data) for cert in load_certificates(m))
            except CertificateError:
                continue
            pem_crls = _PEM_CRL.findall(data)
            crls = tuple(crl for crl in map(load_crl, pem_crls) if crl is not None)
            if len(crls) != len(pem_crls):
                continue
            out = out.merged(Collateral(crls=crls, certificates=certs))
        elif head == b"\x30":
            out = out.merged(_load_der(data))
    return out
