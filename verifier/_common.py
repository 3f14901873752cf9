"""Checks shared by every TEE: the report-data binding, the init-data binding, base64 fields of evidence JSON."""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from .errors import FormatError, Reason, VerificationError
from .options import Options

__all__ = ["b64field", "check_init_data", "check_report_data", "optional_b64field", "zero_padded"]


def check_report_data(field: str, carried: bytes, options: Options, *, pad_to: int | None = None) -> None:
    """Compare the report data the evidence carries with the expected value, exactly.

    pad_to: TDX and SNP compare the full 64-byte field with the expected value zero-padded to that size;
    the TPM compares extraData as it is.
    """
    if options.report_data is None:
        return
    expected = options.report_data
    if pad_to is not None:
        if len(expected) > pad_to:
            raise VerificationError(
                Reason.REPORT_DATA_MISMATCH, f"expected report data is {len(expected)} bytes, over {pad_to}"
            )
        expected = expected + bytes(pad_to - len(expected))
    if carried != expected:
        raise VerificationError(Reason.REPORT_DATA_MISMATCH, f"{field} is {carried.hex()}, expected {expected.hex()}")


def zero_padded(digest: bytes, size: int, what: str, reason: Reason) -> bytes:
    """A digest as a `size`-byte field: zero bytes appended (docs/protocol.md), never truncated; `reason` when it is
    longer than the field."""
    if len(digest) > size:
        raise VerificationError(reason, f"{what} digest is {len(digest)} bytes, over {size}")
    return digest + bytes(size - len(digest))


def check_init_data(field: str, carried: bytes, expected: bytes) -> None:
    if carried != expected:
        raise VerificationError(
            Reason.INIT_DATA_MISMATCH, f"{field} is {carried.hex()}, expected {expected.hex()} (init-data)"
        )


def b64field(document: Mapping[str, object], key: str, what: str, limit: int | None = None) -> bytes:
    """A standard-base64 field (`base64.b64decode(validate=True)`, without its Python-level wrapper); with
    `limit`, more decoded bytes than that are refused."""
    value = document.get(key)
    if not isinstance(value, str):
        raise FormatError(f"{what}: field {key} is {type(value).__name__}, expected a base64 string")
    try:
        decoded = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{what}: field {key} is not standard base64 ({exc})") from exc
    if limit is not None and len(decoded) > limit:
        raise FormatError(f"{what}: field {key} is {len(decoded)} bytes, at most {limit} accepted")
    return decoded


def optional_b64field(document: Mapping[str, object], key: str, what: str, limit: int | None = None) -> bytes | None:
    if document.get(key) in (None, ""):
        return None
    return b64field(document, key, what, limit)
