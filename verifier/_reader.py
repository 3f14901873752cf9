"""One bounded little/big-endian reader for every binary format the verifier parses.

Every read is checked against the remaining length; `finish()` fails on trailing bytes, so a parser that
returns has consumed exactly its input. Fixed-layout runs of fields are best read with `unpack` (one bounded
`struct` read for the whole run) rather than field by field: each method call costs as much as the read itself.
"""

from __future__ import annotations

import struct

from .errors import FormatError

__all__ = ["Reader"]

_U8 = struct.Struct("<B")
_U16LE = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")
_U16BE = struct.Struct(">H")
_U32BE = struct.Struct(">I")
_U64BE = struct.Struct(">Q")


class Reader:
    """Reads fields from `data` in order; every overrun raises FormatError naming the structure and field."""

    __slots__ = ("_data", "_end", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        # bytes(x) of a bytes object is that object: no copy; slices of bytes are one allocation each.
        self._data = bytes(data)
        self._end = len(self._data)
        self._pos = 0
        self.what = what

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _overrun(self, n: int, field: str) -> FormatError:
        return FormatError(
            f"{self.what}: field {field} needs {n} bytes at offset {self._pos:#x}, only {self.remaining} remain"
        )

    def take(self, n: int, field: str) -> bytes:
        pos = self._pos
        end = pos + n
        if n < 0 or end > self._end:
            raise self._overrun(n, field)
        self._pos = end
        return self._data[pos:end]

    def skip(self, n: int, field: str) -> None:
        if n < 0 or self._pos + n > self._end:
            raise self._overrun(n, field)
        self._pos += n

    def unpack(self, layout: struct.Struct, field: str) -> tuple[int, ...]:
        """A fixed-layout run of integer fields (`layout` has no padding and only integer codes), bounded like
        `take`: one read where a field-by-field parse would make one call per field."""
        pos = self._pos
        end = pos + layout.size
        if end > self._end:
            raise self._overrun(layout.size, field)
        self._pos = end
        return layout.unpack_from(self._data, pos)

    def _int(self, layout: struct.Struct, field: str) -> int:
        pos = self._pos
        end = pos + layout.size
        if end > self._end:
            raise self._overrun(layout.size, field)
        self._pos = end
        (value,) = layout.unpack_from(self._data, pos)
        return value  # type: ignore[no-any-return]

    def u8(self, field: str) -> int:
        return self._int(_U8, field)

    def u16le(self, field: str) -> int:
        return self._int(_U16LE, field)

    def u32le(self, field: str) -> int:
        return self._int(_U32LE, field)

    def u64le(self, field: str) -> int:
        return self._int(_U64LE, field)

    def u16be(self, field: str) -> int:
        return self._int(_U16BE, field)

    def u32be(self, field: str) -> int:
        return self._int(_U32BE, field)

    def u64be(self, field: str) -> int:
        return self._int(_U64BE, field)

    def sized_be16(self, field: str, limit: int | None = None) -> bytes:
        """A TPM2B: a big-endian u16 size followed by that many bytes; with `limit`, a size over it is refused
        before anything is read. (One method rather than u16be + take: quotes are full of TPM2Bs.)"""
        start = self._pos
        body = start + 2
        if body > self._end:
            raise self._overrun(2, f"{field}.size")
        (size,) = _U16BE.unpack_from(self._data, start)
        if limit is not None and size > limit:
            raise FormatError(f"{self.what}: {field} at {start:#x} is {size} bytes, at most {limit} allowed")
        self._pos = body
        end = body + size
        if end > self._end:
            raise self._overrun(size, field)
        self._pos = end
        return self._data[body:end]

    def must_be_zero(self, n: int, field: str) -> None:
        raw = self.take(n, field)
        if any(raw):
            raise FormatError(f"{self.what}: reserved field {field} is {raw.hex()}, expected all zero")

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def finish(self) -> None:
        if self._pos != self._end:
            raise FormatError(
                f"{self.what}: {self.remaining} trailing bytes after offset {self._pos:#x}, expected none"
            )
