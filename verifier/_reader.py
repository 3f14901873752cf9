"""One bounded little/big-endian reader for every binary format the verifier parses.

Every read is checked against the remaining length; `finish()` fails on trailing bytes, so a parser that
returns has consumed exactly its input.
"""

from __future__ import annotations

from .errors import FormatError

__all__ = ["Reader"]


class Reader:
    """Reads fields from `data` in order; every overrun raises FormatError naming the structure and field."""

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = memoryview(data).toreadonly()
        self._pos = 0
        self.what = what

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise FormatError(
                f"{self.what}: field {field} needs {n} bytes at offset {self._pos:#x}, only {self.remaining} remain"
            )
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def skip(self, n: int, field: str) -> None:
        self.take(n, field)

    def _int(self, n: int, field: str, order: str) -> int:
        return int.from_bytes(self.take(n, field), order)  # type: ignore[arg-type]

    def u8(self, field: str) -> int:
        return self._int(1, field, "little")

    def u16le(self, field: str) -> int:
        return self._int(2, field, "little")

    def u32le(self, field: str) -> int:
        return self._int(4, field, "little")

    def u64le(self, field: str) -> int:
        return self._int(8, field, "little")

    def u16be(self, field: str) -> int:
        return self._int(2, field, "big")

    def u32be(self, field: str) -> int:
        return self._int(4, field, "big")

    def u64be(self, field: str) -> int:
        return self._int(8, field, "big")

    def sized_be16(self, field: str) -> bytes:
        """A TPM2B: a big-endian u16 size followed by that many bytes."""
        return self.take(self.u16be(f"{field}.size"), field)

    def must_be_zero(self, n: int, field: str) -> None:
        raw = self.take(n, field)
        if any(raw):
            raise FormatError(f"{self.what}: reserved field {field} is {raw.hex()}, expected all zero")

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def finish(self) -> None:
        if self.remaining:
            raise FormatError(
                f"{self.what}: {self.remaining} trailing bytes after offset {self._pos:#x}, expected none"
            )
