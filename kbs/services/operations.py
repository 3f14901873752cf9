"""What the operations endpoints report: readiness (the database answers, the KEK is still there) and the token
verification keys."""

from __future__ import annotations

from pathlib import Path

from ..errors import KbsError
from ..sealing import load_or_create_kek
from ..signing import KeyRing
from ..storage import Store

__all__ = ["Operations"]


class Operations:
    def __init__(self, store: Store, keys: KeyRing, kek_file: Path) -> None:
        self._store = store
        self._keys = keys
        self._kek_file = kek_file

    def ready(self) -> None:
        """Return when the database answers and the KEK file is still there, private and whole (a replica started now
        would not start without it); StorageError or 503 ServiceUnavailable when not."""
        try:
            load_or_create_kek(self._kek_file, create=False)
        except (OSError, ValueError) as exc:
            raise KbsError.unavailable(f"the key-encryption key is unavailable: {exc}") from exc
        self._store.ping()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()
