"""TPM 2.0 wire structures a quote is made of, parsed with the bounded Reader.

Names follow TCG "TPM 2.0 Library, Part 2: Structures" (rev 1.59); every integer is big-endian (Part 1 §18).

    TPMS_ATTEST            Part 2 §10.12.12   the signed message of TPM2_Quote
    TPMS_CLOCK_INFO        Part 2 §10.11.1
    TPMS_QUOTE_INFO        Part 2 §10.12.4    attested.quote when type == TPM_ST_ATTEST_QUOTE
    TPML_PCR_SELECTION     Part 2 §10.9.7
    TPMS_PCR_SELECTION     Part 2 §10.6.2
    TPMT_SIGNATURE         Part 2 §11.3.4     RSASSA/RSAPSS (TPMS_SIGNATURE_RSA), ECDSA (TPMS_SIGNATURE_ECC)

Parsing checks structure only (magic, type, sizes, known algorithm ids, no trailing bytes); signatures and
digests are the business of `_verify`. Every failure is a FormatError.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .._reader import Reader
from ..errors import FormatError, Reason

__all__ = [
    "HASH_ALGS",
    "HASH_SIZES",
    "SIG_SCHEMES",
    "Attest",
    "PcrSelection",
    "Signature",
    "parse_attest",
    "parse_signature",
]

# Part 2 §6.2 TPM_GENERATED: TPM_GENERATED_VALUE marks a structure the TPM made itself.
TPM_GENERATED_VALUE = 0xFF544347
# Part 2 §6.9 TPM_ST: the structure tag of a TPMS_ATTEST made by TPM2_Quote.
TPM_ST_ATTEST_QUOTE = 0x8018

# TCG Algorithm Registry, Table 3: the hash algorithms a PCR bank or a signature may use.
TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
HASH_ALGS: dict[int, str] = {
    TPM_ALG_SHA1: "sha1",
    TPM_ALG_SHA256: "sha256",
    TPM_ALG_SHA384: "sha384",
    TPM_ALG_SHA512: "sha512",
}
HASH_IDS: dict[str, int] = {name: alg for alg, name in HASH_ALGS.items()}
HASH_SIZES: dict[str, int] = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

# TCG Algorithm Registry, Table 3: signature schemes of TPMT_SIGNATURE.sigAlg.
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
SIG_SCHEMES: dict[int, str] = {TPM_ALG_RSASSA: "rsassa", TPM_ALG_RSAPSS: "rsapss", TPM_ALG_ECDSA: "ecdsa"}

# Part 2 §10.12.12 TPMS_ATTEST.magic (TPM_GENERATED) and .type (TPMI_ST_ATTEST).
MAGIC_AND_TYPE = struct.Struct(">IH")
# Part 2 §11.3.4 TPMT_SIGNATURE.sigAlg and the scheme's hash (first field of every TPMU_SIGNATURE member we take).
ALG_AND_HASH = struct.Struct(">HH")
# Part 2 §10.11.1 TPMS_CLOCK_INFO {clock u64, resetCount u32, restartCount u32, safe TPMI_YES_NO}, then
# TPMS_ATTEST.firmwareVersion u64 and (§10.12.4 TPMS_QUOTE_INFO.pcrSelect, §10.9.7) TPML_PCR_SELECTION.count u32:
# one fixed-size run.
CLOCK_FIRMWARE_AND_COUNT = struct.Struct(">QIIBQI")
# Part 2 §10.6.2 TPMS_PCR_SELECTION.hash (TPMI_ALG_HASH) and .sizeofSelect u8, before pcrSelect[sizeofSelect].
HASH_AND_SIZEOF_SELECT = struct.Struct(">HB")

# Size caps (Part 2 §10.5.3 TPM2B_NAME: a digest with its algorithm id, or a 4-byte handle;
# §10.4.3 TPM2B_DATA: at most sizeof(TPMT_HA); §10.9.7: at most HASH_COUNT selections;
# §10.6.1 PCR_SELECT_MAX for 32 PCRs).
MAX_NAME_SIZE = 2 + 64
MAX_EXTRA_DATA_SIZE = 2 + 64
MAX_PCR_BANKS = 16
MAX_SIZEOF_SELECT = 4
# TCG PC Client Platform TPM Profile §4.6: 24 PCRs, so pcrSelect is 3 octets on every PC Client TPM.
PC_CLIENT_SIZEOF_SELECT = 3
# §10.4.2 TPM2B_DIGEST: at most sizeof(TPMU_HA), the largest digest.
MAX_DIGEST_SIZE = max(HASH_SIZES.values())
# TPM2B_PUBLIC_KEY_RSA holds at most a 4096-bit modulus; ECC parameters at most a P-521 coordinate.
MAX_RSA_SIGNATURE = 512
MAX_ECC_PARAMETER = 66


# The parsed structures are typing.NamedTuple: immutable and typed like a frozen dataclass, and made in a fifth
# of the time (a frozen dataclass sets each field through object.__setattr__; a quote makes several per call).


class PcrSelection(NamedTuple):
    """TPMS_PCR_SELECTION: one bank and the PCR indices selected in it, ascending (the quote's order)."""

    bank: str
    indices: tuple[int, ...]


class Attest(NamedTuple):
    """TPMS_ATTEST with attested = TPMS_QUOTE_INFO. `raw` is the exact signed byte string."""

    raw: bytes
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    pcr_selection: tuple[PcrSelection, ...]
    pcr_digest: bytes


class Signature(NamedTuple):
    """TPMT_SIGNATURE: the scheme, its hash, and the signature (RSA) or the (r, s) pair (ECDSA)."""

    scheme: str
    hash: str
    rsa_signature: bytes = b""
    ecdsa_r: bytes = b""
    ecdsa_s: bytes = b""


def _unknown(what: str, field: str, value: int, known: dict[int, str]) -> FormatError:
    return FormatError(
        f"{what}: {field} is {value:#06x}, expected one of {', '.join(f'{a:#06x} ({n})' for a, n in known.items())}",
        Reason.UNSUPPORTED_FORMAT,
    )


# Part 2 §10.6.1: bit i of pcrSelect octet j selects PCR 8*j + i. A static table (not a cache): for each octet
# position, the ascending PCR indices each octet value selects, so a bitmap decodes in one sum of tuples.
_SELECTED_BY_OCTET: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    tuple(tuple(8 * j + i for i in range(8) if octet >> i & 1) for octet in range(256))
    for j in range(MAX_SIZEOF_SELECT)
)

_BY_FIRST, _BY_SECOND, _BY_THIRD = _SELECTED_BY_OCTET[:PC_CLIENT_SIZEOF_SELECT]

# Field names of each TPMS_PCR_SELECTION for the Reader's messages, made once (not per quote).
_SELECTION_FIELDS = tuple(f"TPML_PCR_SELECTION.pcrSelections[{n}]" for n in range(MAX_PCR_BANKS))
_SELECTION_HEAD_FIELDS = tuple(f"{field}.hash, sizeofSelect" for field in _SELECTION_FIELDS)
_SELECTION_BITMAP_FIELDS = tuple(f"{field}.pcrSelect" for field in _SELECTION_FIELDS)


def _selected(bitmap: bytes) -> tuple[int, ...]:
    """PCR indices of a pcrSelect bitmap of at most MAX_SIZEOF_SELECT octets, ascending."""
    if len(bitmap) == PC_CLIENT_SIZEOF_SELECT:  # the common case, without a loop (a third of the time)
        return _BY_FIRST[bitmap[0]] + _BY_SECOND[bitmap[1]] + _BY_THIRD[bitmap[2]]
    indices: tuple[int, ...] = ()
    for by_octet, octet in zip(_SELECTED_BY_OCTET, bitmap, strict=False):
        indices += by_octet[octet]
    return indices


def _pcr_selection(reader: Reader, count: int) -> tuple[PcrSelection, ...]:
    """TPML_PCR_SELECTION after its count: count TPMS_PCR_SELECTION {hash, sizeofSelect, pcrSelect[]}."""
    if count > MAX_PCR_BANKS:
        raise FormatError(f"{reader.what}: TPML_PCR_SELECTION.count is {count}, at most {MAX_PCR_BANKS} allowed")
    selections: tuple[PcrSelection, ...] = ()  # count is usually 1: concatenating a tuple beats list + tuple()
    for n in range(count):
        alg, size = reader.unpack(HASH_AND_SIZEOF_SELECT, _SELECTION_HEAD_FIELDS[n])
        bank = HASH_ALGS.get(alg)
        if bank is None:
            raise _unknown(reader.what, f"{_SELECTION_FIELDS[n]}.hash", alg, HASH_ALGS)
        if size > MAX_SIZEOF_SELECT:
            raise FormatError(
                f"{reader.what}: {_SELECTION_FIELDS[n]}.sizeofSelect is {size}, at most {MAX_SIZEOF_SELECT} allowed"
            )
        selections += (PcrSelection(bank, _selected(reader.take(size, _SELECTION_BITMAP_FIELDS[n]))),)
    return selections


def parse_attest(data: bytes) -> Attest:
    """TPMS_ATTEST of a quote: magic, type, qualifiedSigner, extraData, clockInfo, firmwareVersion, quote.

    The fixed-size runs are read with one bounded `Reader.unpack` each (a quote is verified per request)."""
    reader = Reader(data, "TPMS_ATTEST")
    magic, kind = reader.unpack(MAGIC_AND_TYPE, "magic, type")
    if magic != TPM_GENERATED_VALUE:
        raise FormatError(f"TPMS_ATTEST: magic is {magic:#010x}, expected TPM_GENERATED_VALUE {TPM_GENERATED_VALUE:#x}")
    if kind != TPM_ST_ATTEST_QUOTE:
        raise FormatError(
            f"TPMS_ATTEST: type is {kind:#06x}, expected TPM_ST_ATTEST_QUOTE {TPM_ST_ATTEST_QUOTE:#06x}",
            Reason.UNSUPPORTED_FORMAT,
        )
    qualified_signer = reader.sized_be16("qualifiedSigner", MAX_NAME_SIZE)
    extra_data = reader.sized_be16("extraData", MAX_EXTRA_DATA_SIZE)
    clock, reset_count, restart_count, safe, firmware_version, count = reader.unpack(
        CLOCK_FIRMWARE_AND_COUNT, "clockInfo, firmwareVersion, TPML_PCR_SELECTION.count"
    )
    if safe > 1:
        raise FormatError(f"TPMS_ATTEST: clockInfo.safe is {safe}, expected TPMI_YES_NO (0 or 1)")
    # TPMS_QUOTE_INFO
    selection = _pcr_selection(reader, count)
    pcr_digest = reader.sized_be16("attested.quote.pcrDigest", MAX_DIGEST_SIZE)
    reader.finish()
    # Positional, in field order (each local is named as its field): keywords cost more than the tuple itself.
    return Attest(
        bytes(data),
        qualified_signer,
        extra_data,
        clock,
        reset_count,
        restart_count,
        safe == 1,
        firmware_version,
        selection,
        pcr_digest,
    )


def parse_signature(data: bytes) -> Signature:
    """TPMT_SIGNATURE: sigAlg, then TPMS_SIGNATURE_RSA {hash, sig} or TPMS_SIGNATURE_ECC {hash, r, s}."""
    reader = Reader(data, "TPMT_SIGNATURE")
    alg, hash_alg = reader.unpack(ALG_AND_HASH, "sigAlg, signature.hash")
    scheme = SIG_SCHEMES.get(alg)
    if scheme is None:
        raise _unknown("TPMT_SIGNATURE", "sigAlg", alg, SIG_SCHEMES)
    hash_name = HASH_ALGS.get(hash_alg)
    if hash_name is None:
        raise _unknown("TPMT_SIGNATURE", "signature.hash", hash_alg, HASH_ALGS)
    if scheme == "ecdsa":
        r = reader.sized_be16("signature.signatureR", MAX_ECC_PARAMETER)
        s = reader.sized_be16("signature.signatureS", MAX_ECC_PARAMETER)
        reader.finish()
        return Signature(scheme, hash_name, b"", r, s)
    sig = reader.sized_be16("signature.sig", MAX_RSA_SIGNATURE)
    reader.finish()
    return Signature(scheme, hash_name, sig)
