"""The bounded Reader: every read is checked, messages name the structure, field, offset and sizes."""

from __future__ import annotations

import struct

import pytest

from verifier._reader import Reader
from verifier.errors import FormatError

PAIR = struct.Struct(">HB")


def test_unpack_reads_a_fixed_run_and_advances() -> None:
    reader = Reader(bytes.fromhex("000b03ff"), "TPMS_PCR_SELECTION")
    assert reader.unpack(PAIR, "hash, sizeofSelect") == (0x000B, 3)
    assert reader.offset == 3
    assert reader.take(1, "pcrSelect") == b"\xff"
    reader.finish()


def test_unpack_overrun_names_the_field_and_does_not_advance() -> None:
    reader = Reader(b"\x00\x0b", "TPMS_PCR_SELECTION")
    with pytest.raises(FormatError) as caught:
        reader.unpack(PAIR, "hash, sizeofSelect")
    assert caught.value.detail == (
        "TPMS_PCR_SELECTION: field hash, sizeofSelect needs 3 bytes at offset 0x0, only 2 remain"
    )
    assert reader.offset == 0


SIZED: dict[str, tuple[bytes, int | None, str]] = {
    "size missing": (b"\x00", None, "field extraData.size needs 2 bytes at offset 0x0, only 1 remain"),
    "body short": (b"\x00\x04abc", None, "field extraData needs 4 bytes at offset 0x2, only 3 remain"),
    "over the limit": (b"\x00\x04abcd", 3, "extraData at 0x0 is 4 bytes, at most 3 allowed"),
}


@pytest.mark.parametrize("name", list(SIZED))
def test_sized_be16_failures(name: str) -> None:
    data, limit, message = SIZED[name]
    with pytest.raises(FormatError) as caught:
        Reader(data, "TPMS_ATTEST").sized_be16("extraData", limit)
    assert caught.value.detail == f"TPMS_ATTEST: {message}"


def test_sized_be16_reads_a_tpm2b() -> None:
    reader = Reader(b"\x00\x02ab\x00\x00", "TPMS_ATTEST")
    assert reader.sized_be16("extraData", 2) == b"ab"
    assert reader.sized_be16("pcrDigest") == b""
    reader.finish()


def test_reads_return_bytes_of_any_buffer() -> None:
    # Reader is annotated for bytes; this checks that any buffer works.
    reader = Reader(memoryview(bytearray(b"\x01\x02\x03\x04\x05")), "x")  # type: ignore[arg-type]
    assert reader.u8("a") == 1
    assert reader.u16be("b") == 0x0203
    value = reader.take(2, "c")
    assert type(value) is bytes
    assert value == b"\x04\x05"


def test_skip_checks_bounds_and_finish_fails_on_trailing_bytes() -> None:
    reader = Reader(b"\x00\x00\x01", "x")
    with pytest.raises(FormatError, match="needs 4 bytes"):
        reader.skip(4, "reserved")
    reader.skip(2, "reserved")
    with pytest.raises(FormatError, match="1 trailing bytes after offset 0x2"):
        reader.finish()
