"""Reading collateral and certificate files for the broker at start-up (the `verifier` CLI, its own edge, reads its
own).

The verifier recognises documents by content, so a caller only gathers bytes: every regular file named, and
every regular file inside a named folder, recursively and in sorted order. This is the edge where files are
read; nothing in a check does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["MAX_DOCUMENT_BYTES", "read_documents"]

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


def _read(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{path}: {size} bytes, at most {MAX_DOCUMENT_BYTES}")
    return path.read_bytes()


def read_documents(paths: Iterable[str | Path]) -> tuple[bytes, ...]:
    """The bytes of every file named and of every file below a named folder. OSError when one cannot be read,
    ValueError when one is over MAX_DOCUMENT_BYTES."""
    out: list[bytes] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out.extend(_read(p) for p in sorted(path.rglob("*")) if p.is_file())
        else:
            out.append(_read(path))
    return tuple(out)
