"""The TPM evidence JSON (docs/evidence.md), parsed into a frozen structure (no cryptography here).

    {"tpm_quote": {"message": b64 TPMS_ATTEST, "signature": b64 TPMT_SIGNATURE, "pcrs": PCRS},
     "ak_public": b64 DER SPKI, "ak_certificate": b64 DER?, "ek_certificate": b64 DER?, "event_log": b64?}

PCRS is trustee's list of 24 SHA-256 hex strings, or {"<bank>": {"<index>": "<hex>"}}.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple, cast

from .._common import b64field, optional_b64field
from ..errors import FormatError
from ._structures import HASH_SIZES

__all__ = ["PCR_COUNT", "PcrBank", "TpmEvidence", "parse_evidence"]

# TCG PC Client Platform TPM Profile §4.6: 24 PCRs per bank.
PCR_COUNT = 24
WHAT = "tpm evidence"
_INDEX_KEYS = frozenset(str(i) for i in range(PCR_COUNT))
_ALL_INDICES = tuple(range(PCR_COUNT))
_INDEX_STR = tuple(str(i) for i in range(PCR_COUNT))
_INDEX_OF = {key: i for i, key in enumerate(_INDEX_STR)}
# JSON objects: dict, the type json.loads makes, is tested first (an ABC's isinstance costs three times more).
_MAPPINGS = (dict, Mapping)
# The index names "0".."n-1" as a set, for each n: a bank's keys compared with them in one set comparison.
_PREFIX_KEYS = tuple(frozenset(_INDEX_STR[:n]) for n in range(PCR_COUNT + 1))
# Size caps before decoding (the HTTP body cap is larger; these bound each field).
MAX_MESSAGE = 1024
MAX_SIGNATURE = 1024
MAX_KEY = 4096
MAX_CERTIFICATE = 16 * 1024
MAX_EVENT_LOG = 1024 * 1024


# Parsed structures are typing.NamedTuple (immutable and typed, made in a fifth of a frozen dataclass's time:
# several are made per quote verified).


class PcrBank(NamedTuple):
    """One bank's PCR values: the indices in the order given (also as their names "0".."23", the claims'
    keys), their values concatenated (a quote's pcrDigest input is exactly this when the selection matches, so
    nothing is split and joined again) and the same values as lowercase hex strings by index name (the claims'
    form, kept from the evidence's own strings rather than encoded again; never changed once made)."""

    bank: str
    indices: tuple[int, ...]
    index_names: tuple[str, ...]
    concatenated: bytes
    hexes: Mapping[str, str]

    @classmethod
    def from_values(cls, bank: str, indices: tuple[int, ...], values: list[bytes]) -> PcrBank:
        names = tuple(_INDEX_STR[index] for index in indices)
        hexes = dict(zip(names, (value.hex() for value in values), strict=True))
        return cls(bank, indices, names, b"".join(values), hexes)

    def value(self, index: int) -> bytes | None:
        """PCR `index` of this bank, or None when the bank does not carry it."""
        if index not in self.indices:
            return None
        size = HASH_SIZES[self.bank]
        k = self.indices.index(index)
        return self.concatenated[k * size : (k + 1) * size]

    def values(self) -> dict[str, bytes]:
        """index name -> value, in the bank's order."""
        size = HASH_SIZES[self.bank]
        return {name: self.concatenated[k * size : (k + 1) * size] for k, name in enumerate(self.index_names)}

    def hex_values(self) -> dict[str, str]:
        """index name -> lowercase hex, in the bank's order (a copy the caller may change)."""
        return dict(self.hexes)


class TpmEvidence(NamedTuple):
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


def _has_upper(text: str) -> bool:
    """Whether hex text has an uppercase digit (six substring scans beat lowercasing a copy to compare)."""
    return "A" in text or "B" in text or "C" in text or "D" in text or "E" in text or "F" in text


def _bank(
    bank: str,
    indices: tuple[int, ...],
    names: tuple[str, ...],
    values: list[object],
    given: dict[str, object] | None = None,
) -> PcrBank:
    """Decode one bank's hex values. The common case (every value a hex string of the bank's digest size) is
    one fromhex over the joined strings, and the claims reuse the strings (lowercased) instead of re-encoding
    the bytes; any anomaly takes the per-value path for its message. `given`: the evidence's own object when it
    is exactly names -> values in this order (then copied as a whole rather than zipped again)."""
    size = HASH_SIZES[bank]
    width = 2 * size
    count = len(values)
    try:
        # Joined with spaces (fromhex skips them), the text holds count * width hex digits when it decodes to
        # count * size bytes; if it is also count * (width + 1) - 1 characters long, the count - 1 joining
        # spaces are its only other characters, and a space every width + 1 characters from `width` on puts
        # them between strings of exactly width hex digits each. (Cheaper than measuring every string.)
        spaced = " ".join(values)  # type: ignore[arg-type]
        if len(spaced) == count * (width + 1) - 1 and spaced[width :: width + 1] == " " * (count - 1):
            raw = bytes.fromhex(spaced)
        else:
            raw = b""
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != size * count:
        decoded = [_hex(value, bank, index) for index, value in zip(indices, values, strict=True)]
        return PcrBank.from_values(bank, indices, decoded)
    strings = cast("list[str]", values)
    hexes: dict[str, str]
    if _has_upper(spaced):
        hexes = dict(zip(names, map(str.lower, strings), strict=True))
    elif given is not None:
        hexes = cast("dict[str, str]", dict(given))  # its values are `strings`: checked above
    else:
        # names and strings are as long by construction (strict's check costs a fifth of the zip).
        hexes = dict(zip(names, strings, strict=False))
    return PcrBank(bank, indices, names, raw, hexes)


def _pcrs(value: object) -> Mapping[str, PcrBank]:
    if isinstance(value, list):
        if len(value) != PCR_COUNT:
            raise FormatError(f"{WHAT}: tpm_quote.pcrs is a list of {len(value)}, expected {PCR_COUNT} (sha256)")
        return {"sha256": _bank("sha256", _ALL_INDICES, _INDEX_STR, value)}
    if not isinstance(value, _MAPPINGS):
        raise FormatError(f"{WHAT}: tpm_quote.pcrs is {type(value).__name__}, expected a list or an object")
    banks: dict[str, PcrBank] = {}
    for bank, registers in value.items():
        if bank not in HASH_SIZES:
            raise FormatError(f"{WHAT}: tpm_quote.pcrs bank is {bank!r}, expected one of {sorted(HASH_SIZES)}")
        if not isinstance(registers, _MAPPINGS):
            raise FormatError(f"{WHAT}: tpm_quote.pcrs.{bank} is not an object of index -> hex")
        names = tuple(registers)
        if names == _INDEX_STR[: len(names)] and type(registers) is dict:
            # "0".."n-1" in order, the attester's shape: nothing to validate or sort, and the object is already
            # the claims' index -> hex.
            indices = _ALL_INDICES[: len(names)]
            ordered = cast("dict[str, object]", registers)
        else:
            if len(names) <= PCR_COUNT and registers.keys() == _PREFIX_KEYS[len(names)]:
                # "0".."n-1" in another order (a protobuf map's, e.g. Google's): the ascending order is known.
                names = _INDEX_STR[: len(names)]
                indices = _ALL_INDICES[: len(names)]
            else:
                # Ascending, as a quote selects them (JSON objects, e.g. from protobuf maps, come in any order); a
                # name that is not "0".."23" is not picked, so the count differs.
                names = tuple([name for name in _INDEX_STR if name in registers])
                if len(names) != len(registers):
                    key = next(key for key in registers if not (isinstance(key, str) and key in _INDEX_KEYS))
                    raise FormatError(f"{WHAT}: tpm_quote.pcrs.{bank} index is {key!r}, expected '0'..'23'")
                indices = tuple(map(_INDEX_OF.__getitem__, names))
            ordered = {name: registers[name] for name in names}
        banks[bank] = _bank(bank, indices, names, list(ordered.values()), ordered)
    return banks


@functools.lru_cache(maxsize=256)
def _decode_per_ak(text: str, key: str, limit: int) -> bytes:
    return b64field({key: text}, key, WHAT, limit)


def _per_ak(document: Mapping[str, object], key: str, limit: int) -> bytes:
    """A field that belongs to the AK rather than to one quote (its public key), decoded once per distinct
    base64 text: a broker sees the same AKs again and again, and a certificate's base64 costs more to decode
    than the rest of the evidence JSON. Anything but a non-empty string takes the uncached path; an invalid
    text raises on every call (lru_cache keeps no exceptions)."""
    value = document.get(key)
    if isinstance(value, str) and value:
        return _decode_per_ak(value, key, limit)
    return b64field(document, key, WHAT, limit)


def _optional_per_ak(document: Mapping[str, object], key: str, limit: int) -> bytes | None:
    """`_per_ak` for a field that may be absent (the AK certificate)."""
    value = document.get(key)
    if isinstance(value, str) and value:
        return _decode_per_ak(value, key, limit)
    return optional_b64field(document, key, WHAT, limit)


def parse_evidence(document: Mapping[str, object]) -> TpmEvidence:
    quote = document.get("tpm_quote")
    if not isinstance(quote, _MAPPINGS):
        raise FormatError(f"{WHAT}: field tpm_quote is {type(quote).__name__}, expected an object")
    # Positional, in field order (message, signature, pcrs, ak_public, ak_certificate, ek_certificate,
    # event_log): keyword arguments cost more than making the tuple.
    return TpmEvidence(
        b64field(quote, "message", WHAT, MAX_MESSAGE),
        b64field(quote, "signature", WHAT, MAX_SIGNATURE),
        _pcrs(quote.get("pcrs")),
        _per_ak(document, "ak_public", MAX_KEY),
        _optional_per_ak(document, "ak_certificate", MAX_CERTIFICATE),
        optional_b64field(document, "ek_certificate", WHAT, MAX_CERTIFICATE),
        optional_b64field(document, "event_log", WHAT, MAX_EVENT_LOG),
    )
