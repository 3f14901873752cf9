"""The TPM evidence JSON of SPEC section 4, parsed into a frozen structure (no cryptography here).

    {"tpm_quote": {"message": b64 TPMS_ATTEST, "signature": b64 TPMT_SIGNATURE, "pcrs": PCRS},
     "ak_public": b64 DER SPKI, "ak_certificate": b64 DER?, "ek_certificate": b64 DER?, "event_log": b64?}

PCRS is trustee's list of 24 SHA-256 hex strings, or {"<bank>": {"<index>": "<hex>"}}.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .._common import b64field, optional_b64field
from ..errors import FormatError
from ._structures import HASH_SIZES

__all__ = ["PCR_COUNT", "PcrBank", "TpmEvidence", "parse_evidence"]

# TCG PC Client Platform TPM Profile §4.6: 24 PCRs per bank.
PCR_COUNT = 24
WHAT = "tpm evidence"
_INDEX_KEYS = frozenset(str(i) for i in range(PCR_COUNT))
_ALL_INDICES = list(range(PCR_COUNT))
_INDEX_STR = tuple(str(i) for i in range(PCR_COUNT))
# Size caps before decoding (the HTTP body cap is larger; these bound each field).
MAX_MESSAGE = 1024
MAX_SIGNATURE = 1024
MAX_KEY = 4096
MAX_CERTIFICATE = 16 * 1024
MAX_EVENT_LOG = 1024 * 1024


@dataclass(frozen=True)
class PcrBank(Mapping[int, bytes]):
    """One bank's PCR values: the indices in the order given and their values concatenated (a quote's
    pcrDigest input is exactly this when the selection matches, so nothing is split and joined again)."""

    bank: str
    indices: tuple[int, ...]
    concatenated: bytes

    @property
    def size(self) -> int:
        return HASH_SIZES[self.bank]

    def __getitem__(self, index: int) -> bytes:
        try:
            k = self.indices.index(index)
        except ValueError:
            raise KeyError(index) from None
        return self.concatenated[k * self.size : (k + 1) * self.size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def hex_values(self) -> dict[str, str]:
        """index -> lowercase hex, in the bank's order (one hex conversion for the whole bank)."""
        text = self.concatenated.hex()
        width = 2 * self.size
        return {_INDEX_STR[index]: text[k * width : (k + 1) * width] for k, index in enumerate(self.indices)}


@dataclass(frozen=True)
class TpmEvidence:
    message: bytes
    signature: bytes
    pcrs: Mapping[str, PcrBank]
    ak_public: bytes
    ak_certificate: bytes | None
    ek_certificate: bytes | None
    event_log: bytes | None


def _hex(value: object, bank: str, index: int) -> bytes:
    field = f"tpm_quote.pcrs {bank}[{index}]"
    if not isinstance(value, str):
        raise FormatError(f"{WHAT}: {field} is {type(value).__name__}, expected a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise FormatError(f"{WHAT}: {field} is not hex ({exc})") from exc
    if len(raw) != HASH_SIZES[bank]:
        raise FormatError(f"{WHAT}: {field} is {len(raw)} bytes, expected {HASH_SIZES[bank]} for {bank}")
    return raw


def _bank(bank: str, indices: list[int], values: list[object]) -> PcrBank:
    """Decode one bank's hex values. The common case (all well formed) is one fromhex over the joined
    strings, since a broker decodes 24 of them per quote; any anomaly takes the per-value path for its message."""
    size = HASH_SIZES[bank]
    try:
        joined = "".join(values)  # type: ignore[arg-type]
        raw = bytes.fromhex(joined) if set(map(len, values)) == {2 * size} else b""  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != size * len(values):
        raw = b"".join(_hex(value, bank, index) for index, value in zip(indices, values, strict=True))
    return PcrBank(bank=bank, indices=tuple(indices), concatenated=raw)


def _pcrs(value: object) -> Mapping[str, PcrBank]:
    if isinstance(value, list):
        if len(value) != PCR_COUNT:
            raise FormatError(f"{WHAT}: tpm_quote.pcrs is a list of {len(value)}, expected {PCR_COUNT} (sha256)")
        return {"sha256": _bank("sha256", _ALL_INDICES, value)}
    if not isinstance(value, Mapping):
        raise FormatError(f"{WHAT}: tpm_quote.pcrs is {type(value).__name__}, expected a list or an object")
    banks: dict[str, PcrBank] = {}
    for bank, registers in value.items():
        if bank not in HASH_SIZES:
            raise FormatError(f"{WHAT}: tpm_quote.pcrs bank is {bank!r}, expected one of {sorted(HASH_SIZES)}")
        if not isinstance(registers, Mapping):
            raise FormatError(f"{WHAT}: tpm_quote.pcrs.{bank} is not an object of index -> hex")
        for key in registers:
            if not (isinstance(key, str) and key in _INDEX_KEYS):
                raise FormatError(f"{WHAT}: tpm_quote.pcrs.{bank} index is {key!r}, expected '0'..'23'")
        # Ascending, as a quote selects them (JSON objects, e.g. from protobuf maps, come in any order).
        ordered = sorted(registers.items(), key=lambda item: int(item[0]))
        banks[bank] = _bank(bank, [int(key) for key, _ in ordered], [value for _, value in ordered])
    return banks


def _check_size(key: str, value: bytes | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise FormatError(f"{WHAT}: field {key} is {len(value)} bytes, at most {limit} accepted")


def _required(document: Mapping[str, object], key: str, limit: int) -> bytes:
    value = b64field(document, key, WHAT)
    _check_size(key, value, limit)
    return value


def _optional(document: Mapping[str, object], key: str, limit: int) -> bytes | None:
    value = optional_b64field(document, key, WHAT)
    _check_size(key, value, limit)
    return value


def parse_evidence(document: Mapping[str, object]) -> TpmEvidence:
    quote = document.get("tpm_quote")
    if not isinstance(quote, Mapping):
        raise FormatError(f"{WHAT}: field tpm_quote is {type(quote).__name__}, expected an object")
    return TpmEvidence(
        message=_required(quote, "message", MAX_MESSAGE),
        signature=_required(quote, "signature", MAX_SIGNATURE),
        pcrs=_pcrs(quote.get("pcrs")),
        ak_public=_required(document, "ak_public", MAX_KEY),
        ak_certificate=_optional(document, "ak_certificate", MAX_CERTIFICATE),
        ek_certificate=_optional(document, "ek_certificate", MAX_CERTIFICATE),
        event_log=_optional(document, "event_log", MAX_EVENT_LOG),
    )
